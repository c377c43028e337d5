//! TLS between a client and the server, authenticated as Syncthing authenticates devices: the
//! server holds a key it created once ([`ServerKey`]), presents a self-signed certificate for it
//! made at each start, and a client accepts only the key its token file pins ([`Pin`], the SHA-256
//! of the key's SubjectPublicKeyInfo). No certificate authority is consulted or needed; pinning
//! the key rather than the certificate lets the certificate be remade without new token files.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::support::error_kind::ErrorKind;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring as provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;

/// The SHA-256 of a server's public key (its DER SubjectPublicKeyInfo), written `sha256:HEX`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of the key `certificate` is for.
    fn of_certificate(certificate: &CertificateDer<'_>) -> Result<Self, rustls::Error> {
        let parsed = ParsedCertificate::try_from(certificate)?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            parsed.subject_public_key_info().as_ref(),
        );
        let mut pin = [0; 32];
        pin.copy_from_slice(digest.as_ref());
        Ok(Self(pin))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Pin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("'{text}' is not a key pin: it starts with sha256:"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "'{text}' is not a key pin: sha256: and 64 hexadecimal digits"
            ));
        }
        let mut pin = [0; 32];
        for (byte, pair) in pin.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).expect("hexadecimal digits are ASCII");
            *byte = u8::from_str_radix(pair, 16).expect("checked as hexadecimal");
        }
        Ok(Self(pin))
    }
}

/// The server's TLS key, kept in a file readable by its owner alone.
pub struct ServerKey {
    key: rcgen::KeyPair,
    pin: Pin,
    certificate: CertificateDer<'static>,
}

/// Why a server key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read, written or created.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Other users of this machine can read it: they could pose as the server.
    #[error(
        "other users of this machine can read it: {}, or delete it and let serve make another (clients then need the new token file)",
        crate::support::private_file::REMEDY
    )]
    Exposed,
    /// It is not a key this release made.
    #[error("it is not a PEM private key: {0}")]
    Unreadable(String),
}

impl KeyError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Files
    }
}

impl ServerKey {
    /// The key in `path`, made there (mode 0600 on Unix) when the file does not exist yet.
    ///
    /// # Errors
    /// The file cannot be read or written, others can read it, or it holds no key.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let key = if path.exists() {
            if crate::support::private_file::is_exposed(path)? {
                return Err(KeyError::Exposed);
            }
            let pem = std::fs::read_to_string(path)?;
            rcgen::KeyPair::from_pem(&pem).map_err(|e| KeyError::Unreadable(e.to_string()))?
        } else {
            let key =
                rcgen::KeyPair::generate().map_err(|e| KeyError::Unreadable(e.to_string()))?;
            crate::support::private_file::write(path, key.serialize_pem().as_bytes(), false)?;
            key
        };
        Self::from_key(key)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Self, KeyError> {
        let unreadable = |e: &dyn fmt::Display| KeyError::Unreadable(e.to_string());
        let certificate = rcgen::CertificateParams::new(vec!["spreadout-serve".to_owned()])
            .and_then(|params| params.self_signed(&key))
            .map_err(|e| unreadable(&e))?
            .der()
            .clone();
        let pin = Pin::of_certificate(&certificate).map_err(|e| unreadable(&e))?;
        Ok(Self {
            key,
            pin,
            certificate,
        })
    }

    /// The pin clients keep for this key.
    pub fn pin(&self) -> Pin {
        self.pin
    }

    /// The server's half of TLS: this key's certificate, no client certificates (clients prove
    /// themselves with the token, inside the encrypted stream).
    pub(super) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .with_no_client_auth()
                .with_single_cert(vec![self.certificate.clone()], key)
                .expect("the certificate was made from this key");
        Arc::new(config)
    }
}

/// The client's half of TLS: the server must present a certificate for the key `pin` names, and
/// prove that it holds the key; names, dates and issuers are not consulted.
pub(super) fn client_config(pin: Pin) -> (Arc<rustls::ClientConfig>, Arc<PinnedKey>) {
    let provider = Arc::new(provider::default_provider());
    let verifier = Arc::new(PinnedKey {
        pin,
        presented: std::sync::Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    (Arc::new(config), verifier)
}

/// Accepts the server's certificate when its key is the pinned one, and remembers what was
/// presented, so that a refusal can name it.
#[derive(Debug)]
pub(super) struct PinnedKey {
    pin: Pin,
    presented: std::sync::Mutex<Option<Pin>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedKey {
    /// The key the server presented, when it was not the pinned one.
    pub(super) fn mismatch(&self) -> Option<(Pin, Pin)> {
        let presented = (*self.presented.lock().expect("never poisoned"))?;
        (presented != self.pin).then_some((self.pin, presented))
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Pin::of_certificate(end_entity)?;
        *self.presented.lock().expect("never poisoned") = Some(presented);
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_made_once_keeps_its_pin_and_its_file_private() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/tls.key");
        let first = ServerKey::load_or_create(&path).unwrap();
        let again = ServerKey::load_or_create(&path).unwrap();
        assert_eq!(first.pin(), again.pin());
        assert_ne!(
            first.certificate, again.certificate,
            "the certificate is remade"
        );
        let other = ServerKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(first.pin(), other.pin());
        assert_eq!(first.pin().to_string().parse::<Pin>(), Ok(first.pin()));
        assert!("sha256:12".parse::<Pin>().is_err());
        assert!(format!("md5:{}", "0".repeat(64)).parse::<Pin>().is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                ServerKey::load_or_create(&path),
                Err(KeyError::Exposed)
            ));
        }
        std::fs::write(dir.path().join("junk.key"), "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("junk.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        assert!(matches!(
            ServerKey::load_or_create(&dir.path().join("junk.key")),
            Err(KeyError::Unreadable(_))
        ));
    }
}
