//! Replacing a file so that a crash at any moment leaves either the old content or the new, never
//! a mix: write a temporary sibling, flush it to disk, rename it over the target, then flush the
//! folder so the rename itself survives a power cut.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (creating its folder); a failure leaves any previous file
/// intact and no temporary behind.
///
/// # Errors
/// The first I/O error.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(directory)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let temporary = directory.join(format!(
        ".{}.{}.partial",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        sync_dir(directory)
    })();
    if result.is_err() {
        // The partial file is useless; the previous target is untouched.
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Flushes a folder's entries (a rename or a new file in it) to disk. Only Unix can open a folder
/// for this; Windows makes renames durable with the file system's own journal.
pub fn sync_dir(directory: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(directory)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = directory;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/out.json");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // A target that is a folder cannot be replaced: the error comes back, nothing is left.
        fs::create_dir(dir.path().join("taken")).unwrap();
        fs::write(dir.path().join("taken/inside"), b"x").unwrap();
        assert!(write(&dir.path().join("taken"), b"y").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
