//! Places on this computer that several parts share: the per-user cache folder (the CLI's and
//! the app's pixel caches, the GPU kernel cache) and how much disk a folder takes (the cache, run
//! folders). Kept beside the path encodings rather than in the modules that use them, so that
//! neither the data cache nor training depends on the GPU module or on each other for them.

use std::path::{Path, PathBuf};

/// The per-user cache folder: `~/.cache/spreadout` (`$XDG_CACHE_HOME` honoured; the platform's
/// cache folder elsewhere, the temporary folder when there is no home).
pub fn default_cache_dir() -> PathBuf {
    use etcetera::BaseStrategy;
    etcetera::choose_base_strategy()
        .map(|strategy| strategy.cache_dir())
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("spreadout")
}

/// The per-user data folder: `~/.local/share/spreadout` (`$XDG_DATA_HOME` honoured; the
/// platform's data folder elsewhere). For what Spreadout makes that a person may come back to,
/// such as the demo's images and run, which a cache folder may lose and a temporary one does.
pub fn default_data_dir() -> PathBuf {
    use etcetera::BaseStrategy;
    etcetera::choose_base_strategy()
        .map(|strategy| strategy.data_dir())
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("spreadout")
}

/// The per-user data folder as [`default_data_dir`] finds it, without its fallback to the
/// temporary folder, which other users of the machine can write to: for secrets (a server's keys),
/// which must not sit where someone else could have planted their own.
pub fn private_data_dir() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    etcetera::choose_base_strategy()
        .ok()
        .map(|strategy| strategy.data_dir().join("spreadout"))
}

/// Bytes of the files at or below `path` (links not followed; unreadable entries count as 0).
pub fn disk_use(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.metadata().map_or(0, |meta| meta.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_counts_files_below_and_not_what_links_point_at() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top"), [0u8; 3]).unwrap();
        std::fs::write(dir.path().join("a/b/deep"), [0u8; 40]).unwrap();
        assert_eq!(disk_use(dir.path()), 43);
        assert_eq!(disk_use(&dir.path().join("top")), 3);
        assert_eq!(disk_use(&dir.path().join("missing")), 0);
        #[cfg(unix)]
        {
            let elsewhere = tempfile::tempdir().unwrap();
            std::fs::write(elsewhere.path().join("big"), [0u8; 1000]).unwrap();
            std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("link")).unwrap();
            assert_eq!(disk_use(dir.path()), 43);
        }
    }
}
