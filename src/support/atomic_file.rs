//! Replacing a file so that a crash at any moment leaves either the old content or the new, never
//! a mix: write a temporary sibling, flush it to disk, rename it over the target, then flush the
//! folder so the rename itself survives a power cut.
//!
//! Each call gets a temporary of its own (`tempfile` picks an unused name), so two writers of one
//! target, two threads or two processes, never share a half-written file: the last rename wins
//! and the target always holds one complete content.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (creating its folder); a failure leaves any previous file
/// intact and no temporary behind.
///
/// # Errors
/// The first I/O error.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true, false)
}

/// [`write`] for a secret: the file is readable and writable by its owner alone (on Unix, mode
/// 0600 from the moment the temporary is made, so it is never readable by others).
///
/// # Errors
/// The first I/O error.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true, true)
}

/// [`write`] without flushing to disk: still atomic for readers (never half a file), but a power
/// cut may lose it. For files that are only a cache of something that can be made again
/// (thumbnails), where a flush per file would cost more than losing one.
///
/// # Errors
/// The first I/O error.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool, private: bool) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(directory)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    // `.name.XXXXXX.partial`: hidden, and recognisable should a crash leave one behind.
    let prefix = format!(".{}.", file_name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    // tempfile creates owner-only files, which a secret keeps; any other target gets the
    // permissions a plain `File::create` gives (0666 less the umask), as before.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(if private {
        0o600
    } else {
        0o666
    }));
    // Dropped on any error before `persist`, the temporary deletes itself.
    let mut temporary = builder.tempfile_in(directory)?;
    // Windows: the access list is set before a byte is written, and a rename keeps it.
    #[cfg(windows)]
    if private {
        crate::support::owner_only::restrict(temporary.path(), false)?;
    }
    temporary.write_all(bytes)?;
    if durable {
        temporary.as_file().sync_all()?;
    }
    persist(temporary, path)?;
    if durable {
        sync_dir(directory)?;
    }
    Ok(())
}

/// Renames the temporary over `path`. Windows refuses a rename onto a file that another rename is
/// replacing at that moment (access denied) where Unix lets the last one win, so there it is
/// tried again, briefly: two writers of one file must both succeed, as on Unix.
fn persist(mut temporary: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    let mut attempts = 0;
    loop {
        match temporary.persist(path) {
            Ok(_) => return Ok(()),
            Err(failed)
                if cfg!(windows)
                    && attempts < 50
                    && failed.error.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                attempts += 1;
                temporary = failed.file;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(failed) => return Err(failed.error),
        }
    }
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

    #[test]
    fn two_threads_writing_one_target_both_succeed_with_one_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.bin");
        // Large enough that the two writes overlap in time.
        let contents = [vec![b'a'; 1 << 20], vec![b'b'; 1 << 20]];
        for _ in 0..10 {
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                let writers: Vec<_> = contents
                    .iter()
                    .map(|content| {
                        let (path, barrier) = (&path, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            write(path, content)
                        })
                    })
                    .collect();
                for writer in writers {
                    writer.join().unwrap().unwrap();
                }
            });
            let written = fs::read(&path).unwrap();
            assert!(contents.contains(&written), "a mix of the two writes");
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                1,
                "a temporary is left"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_target_is_readable_by_others_as_a_plain_file_would_be() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (plain, atomic) = (dir.path().join("plain"), dir.path().join("atomic"));
        fs::write(&plain, b"x").unwrap();
        write_unsynced(&atomic, b"x").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode(&atomic), mode(&plain));
    }
}
