//! Files only their owner may read: the token files of `spreadout serve` and its clients, and the
//! server's keys. Written whole (a crash leaves the old file or the new one) with mode 0600 in a
//! folder made 0700; refused when other users of this machine can read them, as ssh refuses a
//! readable private key. On Windows a file in the user's profile is the user's alone by its
//! folder's access list, which is what the data folder is; there is no mode to check there.

use std::io;
use std::path::Path;

/// Writes `bytes` to `path`, readable and writable by this user alone, replacing the file whole
/// when `replace` (else refusing one that exists); a folder it makes is this user's alone too.
///
/// # Errors
/// The file cannot be written, or exists and `replace` is false.
pub fn write(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    if !replace && path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the file exists, and Spreadout does not overwrite it",
        ));
    }
    if let Some(parent) = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        std::fs::create_dir_all(parent)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    crate::support::atomic_file::write_private(path, bytes)
}

/// Whether users other than the owner can read or write `path` (always false off Unix).
///
/// # Errors
/// Its metadata cannot be read.
pub fn is_exposed(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_their_owners_alone_and_kept_unless_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/token");
        write(&path, b"one", false).unwrap();
        assert!(!is_exposed(&path).unwrap());
        assert_eq!(
            write(&path, b"two", false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        write(&path, b"three", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(is_exposed(&path).unwrap());
        }
    }
}
