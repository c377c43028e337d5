//! Token files: the secret a server lets clients in by, and for a server reached over TLS the pin
//! of its key, in a file readable by its owner alone. The first line is the token (at least 32
//! hexadecimal digits, 128 bits; `spreadout serve` writes 64); a line `tls-key sha256:HEX` pins
//! the server's TLS key. A file others can read is refused, as ssh refuses a readable key: its
//! token may already be someone else's.

use std::path::Path;

use crate::link::Pin;

use super::RemoteError;

/// The fewest hexadecimal digits a token may have: 128 bits.
const MIN_TOKEN_DIGITS: usize = 32;
/// The word that starts the line holding the server's TLS key pin.
const PIN_WORD: &str = "tls-key";

/// What a token file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The token clients say.
    pub token: String,
    /// The server's TLS key, for `wss://` addresses.
    pub pin: Option<Pin>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: a Debug print may end up in a log.
        f.debug_struct("Secret")
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// A fresh random token (32 bytes from the thread's cryptographically secure generator, in
    /// hexadecimal), with `pin`.
    pub fn generate(pin: Option<Pin>) -> Self {
        let token = rand::random::<[u8; 32]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { token, pin }
    }

    /// The text of a token file: what `spreadout serve` writes, and what a person pastes into the
    /// app. Blank lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// No token, a token under 128 bits, or a line that is neither a token nor a pin; `path`
    /// names the file in the message.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RemoteError> {
        let invalid = |reason: String| RemoteError::TokenInvalid {
            path: path.to_owned(),
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        let token = lines
            .next()
            .ok_or_else(|| RemoteError::EmptyToken(path.to_owned()))?;
        if token.len() < MIN_TOKEN_DIGITS || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "a token is at least {MIN_TOKEN_DIGITS} hexadecimal digits (128 bits), and this one is not: use the file `spreadout serve` wrote"
            )));
        }
        let mut pin = None;
        for line in lines {
            match line.split_once(' ') {
                Some((PIN_WORD, value)) if pin.is_none() => {
                    pin = Some(value.trim().parse().map_err(invalid)?);
                }
                _ => {
                    return Err(invalid(format!(
                        "'{}' is neither the token nor a `{PIN_WORD} sha256:…` line",
                        super::printable(line)
                    )));
                }
            }
        }
        Ok(Self {
            token: token.to_owned(),
            pin,
        })
    }

    /// The text [`parse`](Self::parse) reads back.
    pub fn text(&self) -> String {
        match self.pin {
            Some(pin) => format!("{}\n{PIN_WORD} {pin}\n", self.token),
            None => format!("{}\n", self.token),
        }
    }
}

/// Reads the token file at `path`.
///
/// # Errors
/// The file cannot be read, others can read it, or it holds no token of 128 bits or more.
pub fn read_token(path: &Path) -> Result<Secret, RemoteError> {
    let error = |source| RemoteError::TokenFile {
        path: path.to_owned(),
        source,
    };
    if crate::support::private_file::is_exposed(path).map_err(error)? {
        return Err(RemoteError::TokenExposed(path.to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(error)?;
    Secret::parse(&text, path)
}

/// Writes `secret` to `path`, readable and writable by this user alone, replacing the file whole.
/// With `replace` false an existing file is an error (`serve` makes a token file only where none
/// is).
///
/// # Errors
/// The file cannot be written (or exists, without `replace`).
pub fn write_token(path: &Path, secret: &Secret, replace: bool) -> Result<(), RemoteError> {
    crate::support::private_file::write(path, secret.text().as_bytes(), replace).map_err(|source| {
        RemoteError::TokenFile {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_private_strong_never_overwritten_by_serve_and_read_back() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token");
        let secret = Secret::generate(None);
        assert_eq!(secret.token.len(), 64);
        write_token(&path, &secret, false).unwrap();
        assert_eq!(read_token(&path).unwrap(), secret);
        assert!(matches!(
            write_token(&path, &Secret::generate(None), false),
            Err(RemoteError::TokenFile { .. })
        ));
        assert_eq!(read_token(&path).unwrap(), secret);
        let pinned = Secret {
            pin: Some(format!("sha256:{}", "ab".repeat(32)).parse().unwrap()),
            ..secret.clone()
        };
        write_token(&path, &pinned, true).unwrap();
        assert_eq!(read_token(&path).unwrap(), pinned);
        assert!(!format!("{pinned:?}").contains(&pinned.token));
        use crate::support::private_file;
        assert!(!private_file::is_exposed(&path).unwrap());
        private_file::expose(&path).unwrap();
        let refused = read_token(&path).unwrap_err();
        assert!(matches!(refused, RemoteError::TokenExposed(_)), "{refused}");
        assert!(
            refused.to_string().contains(private_file::REMEDY),
            "{refused}"
        );
        // Written again, it is the owner's alone again.
        write_token(&path, &pinned, true).unwrap();
        assert_eq!(read_token(&path).unwrap(), pinned);
        for (text, weak) in [
            ("\n\n", false),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host\n", true),
            ("0123456789abcdef\n", true),
            (&format!("{}\ntls-key md5:00\n", secret.token), true),
            (&format!("{}\nsomething else\n", secret.token), true),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = read_token(&path).unwrap_err();
            assert_eq!(
                matches!(error, RemoteError::TokenInvalid { .. }),
                weak,
                "{text}: {error}"
            );
        }
        // Comments and blank lines are skipped.
        let text = format!("# from gpu-box\n\n{}\n", secret.token);
        assert_eq!(Secret::parse(&text, &path).unwrap(), secret);
    }
}
