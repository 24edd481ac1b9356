//! Keys derived from the server secret: sealing link tokens for the Mailer, CSRF tokens, the
//! signed device cookie of browsers that signed in before, the keyed hash of a client's
//! address that the sign-in limits count by, the MAC of the VERP bounce addresses, and the
//! sealing of storefronts' DKIM private keys (stored encrypted, never in plaintext).
//!
//! The secret comes from `secret_key` (every web and worker node shares it). On the embedded
//! default without one, a random secret is generated once into `data_dir/secret.key`.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

use crate::domain::{OpaqueToken, Secret, TokenHash};

/// The application's keys. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    seal: std::sync::Arc<LessSafeKey>,
    csrf: hmac::Key,
    device: hmac::Key,
    verp: hmac::Key,
    code: hmac::Key,
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
/// Webhook signing secrets are sealed with the same key under their own label, so a sealed
/// secret never opens as a sign-in token or the other way round; DKIM keys likewise, under a
/// label that also names their storefront ([`dkim_aad`]).
const SECRET_AAD: &[u8] = b"latchkey webhook secret v1";
const NONCE_LEN: usize = 12;
const AEAD_TAG_LEN: usize = 16;

impl Keys {
    pub fn from_secret(secret: &Secret<String>) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let derive = |label: &[u8]| hmac::sign(&master, label);
        let seal_bytes = derive(b"latchkey seal key");
        let csrf_bytes = derive(b"latchkey csrf key");
        let device_bytes = derive(b"latchkey device key");
        let verp_bytes = derive(b"latchkey verp key");
        let code_bytes = derive(b"latchkey sign-in code key");
        let seal = LessSafeKey::new(
            UnboundKey::new(&aead::CHACHA20_POLY1305, seal_bytes.as_ref()).expect("32-byte key"),
        );
        Self {
            seal: std::sync::Arc::new(seal),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, csrf_bytes.as_ref()),
            device: hmac::Key::new(hmac::HMAC_SHA256, device_bytes.as_ref()),
            verp: hmac::Key::new(hmac::HMAC_SHA256, verp_bytes.as_ref()),
            code: hmac::Key::new(hmac::HMAC_SHA256, code_bytes.as_ref()),
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
        self.seal_with(SEAL_AAD, token.as_bytes())
    }

    /// Opens a sealed token; `None` if it was sealed with another key or tampered with.
    pub fn open_token(&self, sealed: &[u8]) -> Option<OpaqueToken> {
        if sealed.len() != NONCE_LEN + 32 + AEAD_TAG_LEN {
            return None;
        }
        let bytes: [u8; 32] = self.open_with(SEAL_AAD, sealed)?.try_into().ok()?;
        Some(OpaqueToken::from_bytes(bytes))
    }

    /// Seals a secret the product must read back (a webhook's signing secret): nonce ‖
    /// ciphertext ‖ tag.
    pub fn seal_secret(&self, secret: &str) -> Vec<u8> {
        self.seal_with(SECRET_AAD, secret.as_bytes())
    }

    /// Opens a sealed secret; `None` if it was sealed with another key or tampered with.
    pub fn open_secret(&self, sealed: &[u8]) -> Option<Secret<String>> {
        let plain = self.open_with(SECRET_AAD, sealed)?;
        String::from_utf8(plain).ok().map(Secret::new)
    }

    /// Seals a storefront's DKIM private key for its row: nonce ‖ ciphertext ‖ tag, with the
    /// storefront's id bound in (a sealed key copied to another storefront does not open).
    pub fn seal_dkim_key(&self, storefront_id: i64, key: &Secret<String>) -> Vec<u8> {
        self.seal_with(&dkim_aad(storefront_id), key.expose().as_bytes())
    }

    /// Opens a sealed DKIM key; `None` if it was sealed with another secret (or for another
    /// storefront) or tampered with.
    pub fn open_dkim_key(&self, storefront_id: i64, sealed: &[u8]) -> Option<Secret<String>> {
        let plain = self.open_with(&dkim_aad(storefront_id), sealed)?;
        String::from_utf8(plain).ok().map(Secret::new)
    }

    /// ChaCha20-Poly1305 under the seal key with a random nonce: nonce ‖ ciphertext ‖ tag. The
    /// `aad` says what the plaintext is, so one kind of sealed value never opens as another.
    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = plain.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .expect("sealing fails only for plaintexts of 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Opens what [`Self::seal_with`] sealed under the same `aad`; `None` if it was sealed with
    /// another key or label, tampered with, or too short.
    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + AEAD_TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .ok()?;
        Some(plain.to_vec())
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

    /// The short MAC in a delivery's VERP Return-Path (`bounces+{id}-{mac}@…`): the first 48
    /// bits of an HMAC-SHA256 of the delivery id, as 12 lowercase hex digits. Short enough for
    /// a local part, long enough that guessing one for a chosen delivery takes 2^47 tries on
    /// average, each one an SMTP transaction the listener refuses.
    pub fn verp_mac(&self, delivery_id: i64) -> String {
        hex::encode(
            &hmac::sign(&self.verp, format!("verp v1|{delivery_id}").as_bytes()).as_ref()[..6],
        )
    }

    /// The bucket the sign-in limits count a client's requests in: a keyed hash (no raw
    /// address is stored) of its IPv4 address, or of the /64 network of its IPv6 address (one
    /// customer's devices usually share it, and an attacker has a whole /64 to rotate through).
    pub fn client_bucket(&self, ip: Option<IpAddr>) -> Vec<u8> {
        let subject = match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            None => "ip:unknown".to_string(),
        };
        hmac::sign(&self.device, subject.as_bytes()).as_ref()[..BUCKET_LEN].to_vec()
    }

    /// A new device cookie value for a browser that just signed in as `subject` (a customer
    /// account of one storefront, or a staff user): a random device id and the HMAC that binds
    /// it to the subject. It names no one; only this server can tell whom it is for.
    pub fn device_cookie(&self, subject: DeviceSubject) -> String {
        let mut id = [0u8; DEVICE_ID_LEN];
        rand::rng().fill_bytes(&mut id);
        let mut out = id.to_vec();
        out.extend_from_slice(hmac::sign(&self.device, &device_message(subject, &id)).as_ref());
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Reads a device cookie presented on a sign-in form of `scope`. The claim is only checked
    /// against an account once the account is known (see [`DeviceClaim::is_for`]); a malformed
    /// value is `None`.
    pub fn device_claim(&self, scope: DeviceScope, cookie: &str) -> Option<DeviceClaim> {
        let raw = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if raw.len() != DEVICE_ID_LEN + TAG_LEN {
            return None;
        }
        let (id, tag) = raw.split_at(DEVICE_ID_LEN);
        let mut bucket_of = b"device:".to_vec();
        bucket_of.extend_from_slice(id);
        Some(DeviceClaim {
            key: self.device.clone(),
            scope,
            id: id.try_into().ok()?,
            tag: tag.to_vec(),
            bucket: hmac::sign(&self.device, &bucket_of).as_ref()[..BUCKET_LEN].to_vec(),
        })
    }

    /// The 6-digit sign-in code that goes with a customer's link (SPEC §11): derived from the
    /// link's token hash with a key of its own, so the Mailer computes it from the sealed token,
    /// the portal checks it against the link's row, and no code is stored anywhere. Whoever has
    /// the code has seen the link's email (or has the server key).
    pub fn sign_in_code(&self, token_hash: &TokenHash) -> SignInCode {
        let mut message = b"sign-in code v1|".to_vec();
        message.extend_from_slice(&token_hash.0);
        let tag = hmac::sign(&self.code, &message);
        let head: [u8; 8] = tag.as_ref()[..8].try_into().expect("8 of 32 bytes");
        // 2^64 is so much larger than 10^6 that the remainder's bias is below 10^-13.
        SignInCode(format!("{:06}", u64::from_be_bytes(head) % 1_000_000))
    }

    /// Constant-time check of a typed code against the code of the link with this token hash.
    pub fn sign_in_code_matches(&self, token_hash: &TokenHash, typed: &str) -> bool {
        let expected = self.sign_in_code(token_hash);
        let (a, b) = (expected.0.as_bytes(), typed.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// What a link's row keeps of the browser that asked for it: a keyed hash of the random
    /// value in that browser's sign-in cookie. The code is tried only against the links whose
    /// binding is the trying browser's, so it is worth nothing in another browser.
    pub fn sign_in_binding(&self, binding: &[u8]) -> Vec<u8> {
        let mut message = b"sign-in code binding v1|".to_vec();
        message.extend_from_slice(binding);
        hmac::sign(&self.code, &message).as_ref().to_vec()
    }

    /// A tag that vouches for what a confirmation page showed (`shown`: every value the
    /// confirmation acts on, written by the page that asks), so that the form's answer can be
    /// checked against the state it was asked about. Only this server can make one.
    pub fn confirmation_tag(&self, shown: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(
            &self.csrf,
            format!("confirm v1|{shown}").as_bytes(),
        ))
    }

    /// Constant-time check of a confirmation tag against what the page shows now.
    pub fn confirmation_valid(&self, shown: &str, submitted: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(submitted) {
            Ok(tag) => {
                hmac::verify(&self.csrf, format!("confirm v1|{shown}").as_bytes(), &tag).is_ok()
            }
            Err(_) => false,
        }
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

/// A sign-in code (six digits). `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignInCode(String);

impl SignInCode {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SignInCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInCode([redacted])")
    }
}

fn dkim_aad(storefront_id: i64) -> Vec<u8> {
    format!("latchkey dkim key v1|{storefront_id}").into_bytes()
}

const BUCKET_LEN: usize = 16;
const DEVICE_ID_LEN: usize = 16;
const TAG_LEN: usize = 32;

/// Where a device cookie was presented: a storefront's portal, or the staff console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceScope {
    Portal { storefront_id: i64 },
    Console,
}

/// Whom a device cookie is for: an account (in its storefront's portal) or a staff user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSubject {
    pub scope: DeviceScope,
    pub id: i64,
}

fn device_message(subject: DeviceSubject, id: &[u8; DEVICE_ID_LEN]) -> Vec<u8> {
    let scope = match subject.scope {
        DeviceScope::Portal { storefront_id } => format!("portal:{storefront_id}"),
        DeviceScope::Console => "console".to_string(),
    };
    let mut m = format!("latchkey device v1|{scope}|{}|", subject.id).into_bytes();
    m.extend_from_slice(id);
    m
}

/// A device cookie as presented, not yet checked: whether it is good depends on the account
/// the typed address belongs to, which the store finds.
#[derive(Clone)]
pub struct DeviceClaim {
    key: hmac::Key,
    scope: DeviceScope,
    id: [u8; DEVICE_ID_LEN],
    tag: Vec<u8>,
    bucket: Vec<u8>,
}

impl std::fmt::Debug for DeviceClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceClaim([redacted])")
    }
}

impl DeviceClaim {
    /// Whether this cookie was issued to `subject_id` in this claim's scope (constant time).
    pub fn is_for(&self, subject_id: i64) -> bool {
        let subject = DeviceSubject {
            scope: self.scope,
            id: subject_id,
        };
        hmac::verify(&self.key, &device_message(subject, &self.id), &self.tag).is_ok()
    }

    /// The bucket this device's requests are counted in (a keyed hash of its id).
    pub fn bucket(&self) -> &[u8] {
        &self.bucket
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
    fn sign_in_codes_are_six_digits_derived_from_the_link() {
        let k = keys("a-secret-of-at-least-thirty-two-chars");
        let t = OpaqueToken::generate().hash();
        let code = k.sign_in_code(&t);
        assert_eq!(code.expose().len(), 6);
        assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(k.sign_in_code(&t), code, "derived, not random");
        assert_eq!(format!("{code:?}"), "SignInCode([redacted])");
        assert!(k.sign_in_code_matches(&t, code.expose()));
        let wrong = format!(
            "{:06}",
            (code.expose().parse::<u32>().unwrap() + 1) % 1_000_000
        );
        assert!(!k.sign_in_code_matches(&t, &wrong));
        assert!(!k.sign_in_code_matches(&t, &code.expose()[..5]));
        let other_key = keys("another-secret-of-thirty-two-chars-long");
        assert_eq!(k.sign_in_binding(b"browser-a").len(), 32);
        assert_ne!(
            k.sign_in_binding(b"browser-a"),
            k.sign_in_binding(b"browser-b")
        );
        assert_ne!(
            k.sign_in_binding(b"browser-a"),
            other_key.sign_in_binding(b"browser-a")
        );
    }

    #[test]
    fn sealed_dkim_keys_open_only_with_the_same_key_and_storefront() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let pem = Secret::new("-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n".to_string());
        let sealed = k.seal_dkim_key(7, &pem);
        assert!(!sealed.windows(10).any(|w| w == b"BEGIN PRIV"));
        assert_eq!(k.open_dkim_key(7, &sealed), Some(pem.clone()));
        assert_eq!(k.open_dkim_key(8, &sealed), None, "another storefront");
        let other = keys("another-secret-of-thirty-two-chars-long");
        assert_eq!(other.open_dkim_key(7, &sealed), None);
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert_eq!(k.open_dkim_key(7, &tampered), None);
        assert_eq!(k.open_dkim_key(7, &sealed[..20]), None);
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
    fn device_cookies_are_bound_to_their_subject_and_scope() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let portal = DeviceScope::Portal { storefront_id: 7 };
        let cookie = k.device_cookie(DeviceSubject {
            scope: portal,
            id: 42,
        });
        let claim = k.device_claim(portal, &cookie).unwrap();
        assert!(claim.is_for(42));
        assert!(!claim.is_for(43), "another account");
        let other_sf = k
            .device_claim(DeviceScope::Portal { storefront_id: 8 }, &cookie)
            .unwrap();
        assert!(!other_sf.is_for(42), "another storefront");
        assert!(
            !k.device_claim(DeviceScope::Console, &cookie)
                .unwrap()
                .is_for(42)
        );
        let other_key = keys("another-secret-of-thirty-two-chars-long");
        assert!(!other_key.device_claim(portal, &cookie).unwrap().is_for(42));
        assert!(k.device_claim(portal, "forged").is_none());
        assert!(!cookie.contains("42"));
        // Each sign-in is a new device with its own bucket.
        let again = k.device_cookie(DeviceSubject {
            scope: portal,
            id: 42,
        });
        assert_ne!(
            k.device_claim(portal, &again).unwrap().bucket(),
            claim.bucket()
        );
    }

    #[test]
    fn client_buckets_group_ipv6_by_64_and_hide_the_address() {
        let k = keys("a-secret-of-at-least-thirty-two-chars!!");
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            k.client_bucket(ip("2001:db8:1:2::1")),
            k.client_bucket(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            k.client_bucket(ip("2001:db8:1:2::1")),
            k.client_bucket(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            k.client_bucket(ip("192.0.2.1")),
            k.client_bucket(ip("192.0.2.2"))
        );
        assert_eq!(
            k.client_bucket(ip("::ffff:192.0.2.1")),
            k.client_bucket(ip("192.0.2.1"))
        );
        let other = keys("another-secret-of-thirty-two-chars-long");
        assert_ne!(
            k.client_bucket(ip("192.0.2.1")),
            other.client_bucket(ip("192.0.2.1"))
        );
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
