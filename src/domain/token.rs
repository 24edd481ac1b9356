//! Opaque random tokens (magic links, session ids) and their hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// A 256-bit random secret, shown to its holder once (in a link or a cookie) and stored only
/// as its SHA-256 [`TokenHash`]. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken([u8; 32]);

/// The SHA-256 of an [`OpaqueToken`]: what the database keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenHash(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a token")]
pub struct InvalidToken;

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the 43-character URL-safe form; anything else is refused before any lookup.
    pub fn parse(raw: &str) -> Result<Self, InvalidToken> {
        if raw.len() != 43 {
            return Err(InvalidToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| InvalidToken)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| InvalidToken)?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The URL- and cookie-safe text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn hash(&self) -> TokenHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        TokenHash(out)
    }
}

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken([redacted])")
    }
}

impl TokenHash {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenHash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_hashes() {
        let t = OpaqueToken::generate();
        let text = t.encode();
        assert_eq!(text.len(), 43);
        assert_eq!(OpaqueToken::parse(&text).unwrap(), t);
        assert_ne!(t.hash().0, *t.as_bytes());
        assert_eq!(format!("{t:?}"), "OpaqueToken([redacted])");
        assert_ne!(OpaqueToken::generate(), t);
    }

    #[test]
    fn refuses_other_shapes() {
        let text = OpaqueToken::generate().encode();
        assert!(OpaqueToken::parse(&text[..42]).is_err());
        assert!(OpaqueToken::parse(&format!("{text}A")).is_err());
        assert!(OpaqueToken::parse(&text.replace(|_: char| true, "+")).is_err());
        assert!(OpaqueToken::parse("").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = OpaqueToken::parse(&s);
        }
    }
}

/// How many minutes a link lasts, as every page and email says it: its lifetime rounded to the
/// nearest minute, at least one. A link created a few milliseconds after its expiry was set
/// still reads 60 minutes, not 59.
pub fn link_minutes(lifetime: chrono::Duration) -> i64 {
    ((lifetime.num_milliseconds() + 30_000) / 60_000).max(1)
}

#[cfg(test)]
mod lifetime_tests {
    use super::link_minutes;
    use chrono::Duration;

    #[test]
    fn a_link_lifetime_reads_in_whole_minutes_rounded() {
        assert_eq!(link_minutes(Duration::minutes(60)), 60);
        assert_eq!(
            link_minutes(Duration::minutes(60) - Duration::milliseconds(40)),
            60
        );
        assert_eq!(link_minutes(Duration::seconds(89)), 1);
        assert_eq!(link_minutes(Duration::seconds(91)), 2);
        assert_eq!(link_minutes(Duration::seconds(5)), 1);
    }
}
