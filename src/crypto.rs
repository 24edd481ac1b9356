//! Keys derived from the server secret: sealing link tokens for the Mailer, and CSRF tokens.
//!
//! The secret comes from `secret_key` (every web and worker node shares it). On the embedded
//! default without one, a random secret is generated once into `data_dir/secret.key`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

use crate::domain::{OpaqueToken, Secret};

/// The application's keys. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    seal: std::sync::Arc<LessSafeKey>,
    csrf: hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not read or create the secret key file {path}: {source}")]
pub struct KeyFileError {
    path: String,
    source: std::io::Error,
}

const SEAL_AAD: &[u8] = b"latchkey sign-in token v1";

impl Keys {
    pub fn from_secret(secret: &Secret<String>) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let derive = |label: &[u8]| hmac::sign(&master, label);
        let seal_bytes = derive(b"latchkey seal key");
        let csrf_bytes = derive(b"latchkey csrf key");
        let seal = LessSafeKey::new(
            UnboundKey::new(&aead::CHACHA20_POLY1305, seal_bytes.as_ref()).expect("32-byte key"),
        );
        Self {
            seal: std::sync::Arc::new(seal),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, csrf_bytes.as_ref()),
        }
    }

    /// Reads `data_dir/secret.key`, creating it (mode 0600) with a random secret if missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyFileError> {
        let path = data_dir.join("secret.key");
        let err = |source| KeyFileError {
            path: path.display().to_string(),
            source,
        };
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return Ok(Self::from_secret(&Secret::new(existing.trim().to_string())));
        }
        std::fs::create_dir_all(data_dir).map_err(err)?;
        let mut bytes = [0u8; 48];
        rand::rng().fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        write_private(&path, secret.as_bytes()).map_err(err)?;
        Ok(Self::from_secret(&Secret::new(secret)))
    }

    /// Seals a token for the delivery row: nonce ‖ ciphertext ‖ tag.
    pub fn seal_token(&self, token: &OpaqueToken) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = token.as_bytes().to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEAL_AAD),
                &mut buf,
            )
            .expect("sealing cannot fail for 32 bytes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Opens a sealed token; `None` if it was sealed with another key or tampered with.
    pub fn open_token(&self, sealed: &[u8]) -> Option<OpaqueToken> {
        if sealed.len() != 12 + 32 + 16 {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..12]).ok()?;
        let mut buf = sealed[12..].to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(SEAL_AAD), &mut buf)
            .ok()?;
        let bytes: [u8; 32] = plain.try_into().ok()?;
        Some(OpaqueToken::from_bytes(bytes))
    }

    /// A keyed hash of an email address (for records that must not hold the address itself).
    pub fn address_hash(&self, address_key: &str) -> Vec<u8> {
        hmac::sign(&self.csrf, format!("address:{address_key}").as_bytes())
            .as_ref()
            .to_vec()
    }

    /// A short tag that names this installation in Stripe idempotency keys, so two
    /// installations sharing a Stripe account never reuse each other's keys. Stable for a
    /// given secret; reveals nothing about it.
    pub fn idempotency_scope(&self) -> String {
        hex::encode(&hmac::sign(&self.csrf, b"stripe idempotency scope").as_ref()[..6])
    }

    /// The CSRF token that goes with a CSRF cookie value (double-submit, signed).
    pub fn csrf_token(&self, cookie_value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.csrf, cookie_value.as_bytes()))
    }

    /// Constant-time check of a submitted CSRF token against the cookie.
    pub fn csrf_valid(&self, cookie_value: &str, submitted: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(submitted) {
            Ok(tag) => hmac::verify(&self.csrf, cookie_value.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(unix)]
/// Creates `path` (it must not exist) readable and writable by its owner only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Keys {
        Keys::from_secret(&Secret::new(s.to_string()))
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_key() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let t = OpaqueToken::generate();
        let sealed = k.seal_token(&t);
        assert!(!sealed.windows(32).any(|w| w == t.as_bytes()));
        assert_eq!(k.open_token(&sealed), Some(t.clone()));
        assert_eq!(
            keys("another-secret-of-thirty-two-chars-long").open_token(&sealed),
            None
        );
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(k.open_token(&tampered), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_cookie() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let token = k.csrf_token("cookie-a");
        assert!(k.csrf_valid("cookie-a", &token));
        assert!(!k.csrf_valid("cookie-b", &token));
        assert!(!k.csrf_valid("cookie-a", "forged"));
        assert!(!k.csrf_valid("cookie-a", ""));
    }

    #[test]
    fn the_key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let b = Keys::load_or_create(dir.path()).unwrap();
        let t = OpaqueToken::generate();
        assert_eq!(b.open_token(&a.seal_token(&t)), Some(t));
    }
}
