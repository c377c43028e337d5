//! Places on this computer that several parts share: the per-user cache folder (the CLI's and
//! the app's pixel caches, the GPU kernel cache) and how much disk a folder takes (the cache, run
//! folders). Kept beside the path encodings rather than in the modules that use them, so that
//! neither the data cache nor training depends on the GPU module or on each other for them.

use std::path::{Path, PathBuf};

/// The per-user cache folder, where each platform keeps what can be made again:
/// `~/.cache/spreadout` on Linux (`$XDG_CACHE_HOME` honoured), `~/Library/Caches/Spreadout` on
/// macOS, `%LOCALAPPDATA%\Spreadout\cache` on Windows; the temporary folder when there is no home.
pub fn default_cache_dir() -> PathBuf {
    native()
        .map(|folders| folders.cache)
        .unwrap_or_else(|| std::env::temp_dir().join(NAME))
}

/// The per-user data folder, for what Spreadout makes that a person may come back to, such as
/// the demo's images and run, which a cache folder may lose and a temporary one does:
/// `~/.local/share/spreadout` on Linux (`$XDG_DATA_HOME` honoured), `~/Library/Application
/// Support/Spreadout` on macOS, `%LOCALAPPDATA%\Spreadout\data` on Windows (local rather than
/// roaming: gigabytes of images must not follow a person's profile from machine to machine).
pub fn default_data_dir() -> PathBuf {
    private_data_dir().unwrap_or_else(|| std::env::temp_dir().join(NAME))
}

/// The per-user data folder as [`default_data_dir`] finds it, without its fallback to the
/// temporary folder, which other users of the machine can write to: for secrets (a server's keys),
/// which must not sit where someone else could have planted their own.
pub fn private_data_dir() -> Option<PathBuf> {
    native().map(|folders| folders.data)
}

/// The folder's name: lower case where Unix names its folders so, the product's name elsewhere.
const NAME: &str = if cfg!(any(target_os = "macos", windows)) {
    "Spreadout"
} else {
    "spreadout"
};

struct Folders {
    cache: PathBuf,
    data: PathBuf,
}

/// The platform's own per-user folders (etcetera's native strategy: XDG on Linux, Apple's on
/// macOS, Known Folders on Windows), or none without a home folder.
fn native() -> Option<Folders> {
    use etcetera::BaseStrategy;
    let strategy = etcetera::base_strategy::choose_native_strategy().ok()?;
    Some(if cfg!(windows) {
        // Windows has one local folder for both (`%LOCALAPPDATA%`); each app divides its own.
        let root = strategy.cache_dir().join(NAME);
        Folders {
            cache: root.join("cache"),
            data: root.join("data"),
        }
    } else {
        Folders {
            cache: strategy.cache_dir().join(NAME),
            data: strategy.data_dir().join(NAME),
        }
    })
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

    #[test]
    fn per_user_folders_are_the_platforms_own() {
        let (cache, data) = (default_cache_dir(), default_data_dir());
        assert_ne!(cache, data);
        let expected: &[&str] = if cfg!(windows) {
            &["Spreadout\\cache", "Spreadout\\data"]
        } else if cfg!(target_os = "macos") {
            &[
                "Library/Caches/Spreadout",
                "Library/Application Support/Spreadout",
            ]
        } else {
            &["spreadout", "spreadout"]
        };
        assert!(cache.ends_with(expected[0]), "{}", cache.display());
        assert!(data.ends_with(expected[1]), "{}", data.display());
        assert_eq!(private_data_dir(), Some(data));
    }
}
