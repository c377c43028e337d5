//! Files only their owner may read: the token files of `spreadout serve` and its clients, and the
//! server's keys. Written whole (a crash leaves the old file or the new one) with mode 0600 in a
//! folder made 0700; refused when other users of this machine can read them, as ssh refuses a
//! readable private key. On Windows the same holds through access lists (`owner_only`): the file
//! and a folder made for it name the current user alone, and a file whose list lets anyone else
//! read or change it is refused.

use std::io;
use std::path::Path;

/// What a person does to make an exposed secret theirs alone, for the messages that refuse one.
pub const REMEDY: &str = if cfg!(windows) {
    "give it an access list of your account alone (icacls <file> /inheritance:r /grant:r \"%USERNAME%\":F, then icacls <file> /remove any other name it lists)"
} else {
    "chmod 600 it"
};

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
        #[cfg(windows)]
        crate::support::owner_only::restrict(parent, true)?;
    }
    crate::support::atomic_file::write_private(path, bytes)
}

/// Whether users other than the owner can read or write `path` (on Windows: anyone but the owner,
/// the system and the administrators).
///
/// # Errors
/// Its metadata cannot be read.
pub fn is_exposed(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
    }
    #[cfg(windows)]
    {
        crate::support::owner_only::is_exposed(path)
    }
}

/// Whether this machine cannot keep a file private by the means this module uses, recording the
/// calling test as skipped when so: under Wine, which derives a file's Windows access list from its
/// Unix mode and keeps none that is set (what it reports is true of the Unix file, so Spreadout
/// rightly refuses its own secrets there).
#[cfg(test)]
pub(crate) fn skipped_without_access_lists() -> bool {
    #[cfg(windows)]
    if crate::support::owner_only::under_wine() {
        crate::skip::because(
            "Wine derives a file's access list from its Unix mode and keeps none that is set",
        );
        return true;
    }
    false
}

/// Lets every user of this machine read `path` (mode 0644; on Windows an access list naming
/// Everyone), as a copy onto a shared drive might: for the tests of each refusal.
///
/// # Errors
/// The permissions cannot be changed.
#[cfg(test)]
pub(crate) fn expose(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
    }
    #[cfg(windows)]
    {
        crate::support::owner_only::share_with_everyone(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_their_owners_alone_and_kept_unless_replaced() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/token");
        write(&path, b"one", false).unwrap();
        assert!(!is_exposed(&path).unwrap());
        assert_eq!(
            write(&path, b"two", false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        expose(&path).unwrap();
        assert!(is_exposed(&path).unwrap());
        // Replacing writes a new file with its own owner-only permissions.
        write(&path, b"three", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert!(!is_exposed(&path).unwrap());
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
