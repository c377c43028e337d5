//! Token files: the secret a server lets clients in by, written readable by its owner only
//! and read back as its first line.

use std::io::Write;
use std::path::Path;

use super::RemoteError;

/// Reads the token in `path`: its first line, without surrounding white space.
///
/// # Errors
/// The file cannot be read, or holds no token.
pub fn read_token(path: &Path) -> Result<String, RemoteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RemoteError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(RemoteError::EmptyToken(path.to_owned()));
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "token file {} is readable by other users of this machine (chmod 600 it)",
                path.display()
            );
        }
    }
    Ok(token.to_owned())
}

/// A fresh random token: 32 bytes from the thread's cryptographically secure generator, in hex.
pub fn new_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `token` to `path`, readable and writable by this user only. With `replace` false an
/// existing file is an error (`serve` creates a token file only where none is); the app replaces
/// only the file it keeps for itself.
///
/// # Errors
/// The file cannot be written (or exists, without `replace`).
pub fn write_token(path: &Path, token: &str, replace: bool) -> Result<(), RemoteError> {
    let error = |source| RemoteError::TokenFile {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    // A replaced file keeps the mode it had; tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_private_never_overwritten_by_serve_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token");
        let token = new_token();
        assert_eq!(token.len(), 64);
        write_token(&path, &token, false).unwrap();
        assert_eq!(read_token(&path).unwrap(), token);
        assert!(matches!(
            write_token(&path, "other", false),
            Err(RemoteError::TokenFile { .. })
        ));
        assert_eq!(read_token(&path).unwrap(), token);
        write_token(&path, "replaced", true).unwrap();
        assert_eq!(read_token(&path).unwrap(), "replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token(&path), Err(RemoteError::EmptyToken(_))));
    }
}
