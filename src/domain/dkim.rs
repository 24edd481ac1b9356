//! DKIM signing settings that refuse bad data: the private key (PEM, RSA or Ed25519, checked by
//! loading it), the selector and signing domain (DNS names), the rule that the signing domain
//! is the sender's domain or a parent of it, and the DNS TXT record the public key goes in.
//!
//! Keys are accepted as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`, `openssl genrsa -traditional`),
//! PKCS#8 PEM (`BEGIN PRIVATE KEY`, RSA or Ed25519, what `openssl genpkey` writes), and, for
//! keys stored before this module existed, lettre's own Ed25519 form (the base64 of the 32-byte
//! seed). The public key of the record is derived from the private key (RFC 6376 §3.6.1:
//! `p=` is the base64 of the SubjectPublicKeyInfo for RSA; RFC 8463: the raw 32 bytes for
//! Ed25519).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use super::{EmailAddress, Secret};

/// The smallest RSA key accepted (RFC 8301: verifiers must refuse smaller ones).
pub const RSA_MIN_BITS: usize = 1024;

/// The signature algorithm of a key, as DKIM's `k=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rsa" => Some(DkimAlgorithm::Rsa),
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// Why a private key was refused. Never repeats the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimKeyError {
    #[error(
        "not a PEM private key (expected `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN PRIVATE KEY-----`, RSA or Ed25519)"
    )]
    NotPem,
    #[error("the PEM private key does not load as an RSA or Ed25519 key")]
    Unreadable,
    #[error("the RSA key has {0} bits; DKIM needs at least {RSA_MIN_BITS} (2048 recommended)")]
    TooShort(usize),
}

/// A DKIM private key that loads, with its public half. `Debug` hides the key.
#[derive(Clone)]
pub struct DkimKey {
    algorithm: DkimAlgorithm,
    /// The key in the form lettre's `DkimSigningKey::new` takes: PKCS#1 PEM for RSA, the base64
    /// seed for Ed25519.
    signing_form: Secret<String>,
    /// The `p=` value of the DNS record.
    public_key: String,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKey({}, [redacted])", self.algorithm.as_str())
    }
}

impl DkimKey {
    /// Loads a private key from its text (see the module's header for the forms).
    pub fn parse(text: &str) -> Result<Self, DkimKeyError> {
        let text = text.trim();
        if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            let key =
                rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|_| DkimKeyError::Unreadable)?;
            return Self::from_rsa(key);
        }
        if text.contains("-----BEGIN PRIVATE KEY-----") {
            if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
                return Self::from_rsa(key);
            }
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map_err(|_| DkimKeyError::Unreadable)?;
            return Ok(Self::from_ed25519(&key));
        }
        // lettre's Ed25519 form: exactly the base64 of a 32-byte seed.
        if let Ok(seed) = STANDARD.decode(text)
            && let Ok(seed) = <[u8; 32]>::try_from(seed.as_slice())
        {
            return Ok(Self::from_ed25519(&ed25519_dalek::SigningKey::from_bytes(
                &seed,
            )));
        }
        Err(DkimKeyError::NotPem)
    }

    fn from_rsa(key: rsa::RsaPrivateKey) -> Result<Self, DkimKeyError> {
        let bits = key.size() * 8;
        if bits < RSA_MIN_BITS {
            return Err(DkimKeyError::TooShort(bits));
        }
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| DkimKeyError::Unreadable)?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|_| DkimKeyError::Unreadable)?;
        Ok(Self {
            algorithm: DkimAlgorithm::Rsa,
            signing_form: Secret::new(pem.to_string()),
            public_key: STANDARD.encode(public.as_bytes()),
        })
    }

    fn from_ed25519(key: &ed25519_dalek::SigningKey) -> Self {
        Self {
            algorithm: DkimAlgorithm::Ed25519,
            signing_form: Secret::new(STANDARD.encode(key.to_bytes())),
            public_key: STANDARD.encode(key.verifying_key().to_bytes()),
        }
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// The base64 public key (`p=`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The key as lettre takes it.
    pub fn signing_form(&self) -> &Secret<String> {
        &self.signing_form
    }
}

/// The DNS TXT record that publishes a DKIM public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimRecord {
    /// `{selector}._domainkey.{domain}`
    pub name: String,
    /// `v=DKIM1; k=rsa|ed25519; p=…`
    pub value: String,
}

impl DkimRecord {
    pub fn new(
        selector: &DnsName,
        domain: &DnsName,
        algorithm: DkimAlgorithm,
        public_key: &str,
    ) -> Self {
        Self {
            name: format!("{selector}._domainkey.{domain}"),
            value: format!("v=DKIM1; k={}; p={public_key}", algorithm.as_str()),
        }
    }
}

/// A DNS name as DKIM uses it for `d=` and `s=`: labels of ASCII letters, digits and hyphens
/// (not at either end), 1 to 63 characters each, joined by dots, at most 253 in all; kept in
/// lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be a DNS name: letters, digits and hyphens in dot-separated labels of 1 to 63 characters"
)]
pub struct InvalidDnsName;

impl DnsName {
    pub fn parse(raw: &str) -> Result<Self, InvalidDnsName> {
        let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(InvalidDnsName);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this name is `other` or a parent domain of it (`example.com` for
    /// `mail.example.com`).
    pub fn is_or_parent_of(&self, other: &str) -> bool {
        let other = other.to_ascii_lowercase();
        other == self.0 || other.ends_with(&format!(".{}", self.0))
    }
}

impl std::fmt::Display for DnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a signing domain does not fit the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlignmentError {
    #[error(
        "the DKIM domain {domain} is not the sender's domain ({sender}) or a parent of it, so receivers (DMARC) would not count the signature for it"
    )]
    NotAligned { domain: String, sender: String },
    #[error("the DKIM domain must have at least two labels (not a top-level domain)")]
    TopLevel,
}

/// The signing domain must be the sender's domain or a parent of it (DMARC's relaxed alignment
/// asks for the same organisational domain; a parent of the sender's is the form of that which
/// can be checked without the public suffix list), and not a bare top-level domain.
pub fn check_alignment(domain: &DnsName, sender: &EmailAddress) -> Result<(), AlignmentError> {
    if !domain.as_str().contains('.') {
        return Err(AlignmentError::TopLevel);
    }
    if domain.is_or_parent_of(sender.domain()) {
        Ok(())
    } else {
        Err(AlignmentError::NotAligned {
            domain: domain.to_string(),
            sender: sender.domain().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/dkim/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn public_keys_match_what_openssl_derives() {
        for (key, public, algorithm) in [
            (
                "rsa2048.pkcs1.pem",
                "rsa2048.pkcs1.pub.b64",
                DkimAlgorithm::Rsa,
            ),
            (
                "rsa2048.pkcs8.pem",
                "rsa2048.pkcs8.pub.b64",
                DkimAlgorithm::Rsa,
            ),
            ("ed25519.pem", "ed25519.pub.b64", DkimAlgorithm::Ed25519),
        ] {
            let k = DkimKey::parse(&fixture(key)).unwrap();
            assert_eq!(k.algorithm(), algorithm, "{key}");
            assert_eq!(k.public_key(), fixture(public).trim(), "{key}");
            assert!(!format!("{k:?}").contains("BEGIN"));
        }
    }

    #[test]
    fn the_signing_form_loads_in_lettre() {
        use lettre::message::dkim::{DkimSigningAlgorithm, DkimSigningKey};
        for key in ["rsa2048.pkcs8.pem", "ed25519.pem"] {
            let k = DkimKey::parse(&fixture(key)).unwrap();
            let alg = match k.algorithm() {
                DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
                DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
            };
            assert!(DkimSigningKey::new(k.signing_form().expose(), alg).is_ok());
            // The signing form loads again as the same key (what the store keeps is reread).
            let again = DkimKey::parse(k.signing_form().expose()).unwrap();
            assert_eq!(again.public_key(), k.public_key());
        }
    }

    #[test]
    fn bad_keys_are_refused_without_repeating_them() {
        assert_eq!(DkimKey::parse("hello").unwrap_err(), DkimKeyError::NotPem);
        assert_eq!(DkimKey::parse("").unwrap_err(), DkimKeyError::NotPem);
        // The first line of base64 (the DER header) damaged, the PEM frame intact.
        let pem = fixture("rsa2048.pkcs1.pem");
        let first = pem.lines().nth(1).unwrap();
        let broken = pem.replacen(first, &"B".repeat(first.len()), 1);
        assert_eq!(
            DkimKey::parse(&broken).unwrap_err(),
            DkimKeyError::Unreadable
        );
        let truncated: String = fixture("ed25519.pem").lines().take(1).collect();
        assert!(DkimKey::parse(&truncated).is_err());
        // A public key is not a private key.
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----";
        assert_eq!(DkimKey::parse(public).unwrap_err(), DkimKeyError::NotPem);
    }

    #[test]
    fn the_record_names_selector_and_domain() {
        let k = DkimKey::parse(&fixture("ed25519.pem")).unwrap();
        let r = DkimRecord::new(
            &DnsName::parse("Portal2026").unwrap(),
            &DnsName::parse("harborview.example.").unwrap(),
            k.algorithm(),
            k.public_key(),
        );
        assert_eq!(r.name, "portal2026._domainkey.harborview.example");
        assert_eq!(
            r.value,
            format!(
                "v=DKIM1; k=ed25519; p={}",
                fixture("ed25519.pub.b64").trim()
            )
        );
    }

    #[test]
    fn dns_names_and_alignment() {
        for bad in ["", "a..b", "-a.b", "a-.b", "a_b.c", "a b", &"x".repeat(64)] {
            assert!(DnsName::parse(bad).is_err(), "{bad:?}");
        }
        let sender = EmailAddress::parse("portal@mail.harborview.example").unwrap();
        let ok = |d: &str| check_alignment(&DnsName::parse(d).unwrap(), &sender);
        assert!(ok("mail.harborview.example").is_ok());
        assert!(ok("harborview.example").is_ok());
        assert!(ok("other.example").is_err());
        assert!(ok("view.example").is_err(), "a suffix is not a parent");
        assert!(ok("sub.mail.harborview.example").is_err());
        assert_eq!(ok("example"), Err(AlignmentError::TopLevel));
    }
}
