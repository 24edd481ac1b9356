//! Stripe webhook signatures: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{raw body}"` with the endpoint's signing secret.
//!
//! Checking costs nothing until the request has earned it: the header is parsed without any
//! hashing ([`SignatureHeader::parse`] refuses a long header and more than
//! [`MAX_SIGNATURES`] `v1` entries), the timestamp is checked next
//! ([`SignatureHeader::check_time`]), and only then is the HMAC computed, once, and compared
//! in constant time with each candidate ([`SignatureHeader::verify`]).

use ring::hmac;

/// How old (or how far ahead) a signature's timestamp may be.
pub const TOLERANCE_SECONDS: i64 = 300;

/// How many `v1` signatures a header may carry. Stripe sends one per active signing secret
/// (two while a secret is being rolled); more is not Stripe.
pub const MAX_SIGNATURES: usize = 3;

/// A longer header is not Stripe's (a few signatures of 64 hex digits and a timestamp).
const MAX_HEADER_LEN: usize = 1024;

/// An HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header carries more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("no signature matches")]
    Mismatch,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
}

/// A parsed `Stripe-Signature` header: its timestamp and at most [`MAX_SIGNATURES`] candidate
/// tags. Parsing hashes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    /// Candidates of the right length; entries of another length can never match and are
    /// dropped (but still counted against the cap).
    candidates: Vec<[u8; TAG_LEN]>,
}

impl SignatureHeader {
    pub fn parse(header: Option<&str>) -> Result<Self, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        if header.len() > MAX_HEADER_LEN {
            // Either garbage or a flood of signatures: say which when it is cheap to tell.
            return Err(if header.matches("v1=").count() > MAX_SIGNATURES {
                SignatureError::TooManySignatures
            } else {
                SignatureError::Malformed
            });
        }
        let mut timestamp = None;
        let mut seen = 0usize;
        let mut candidates = Vec::new();
        for part in header.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed)?;
            match k {
                "t" if timestamp.is_none() => {
                    timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" => {
                    seen += 1;
                    if seen > MAX_SIGNATURES {
                        return Err(SignatureError::TooManySignatures);
                    }
                    let bytes = hex::decode(v).map_err(|_| SignatureError::Malformed)?;
                    if let Ok(tag) = <[u8; TAG_LEN]>::try_from(bytes.as_slice()) {
                        candidates.push(tag);
                    }
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if seen == 0 {
            return Err(SignatureError::Malformed);
        }
        Ok(Self {
            timestamp,
            candidates,
        })
    }

    /// The replay defence, checked before any hashing.
    pub fn check_time(&self, now: i64, tolerance_seconds: i64) -> Result<(), SignatureError> {
        if now.abs_diff(self.timestamp) > tolerance_seconds.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }

    /// Computes the HMAC once and compares it in constant time with every candidate. On a
    /// match the payload becomes a [`VerifiedPayload`].
    pub fn verify(
        &self,
        payload: bytes::Bytes,
        secret: &str,
    ) -> Result<VerifiedPayload, SignatureError> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(self.timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(&payload);
        let tag = ctx.sign();
        // Every candidate is compared, so the time taken does not say which one matched.
        let matched = self
            .candidates
            .iter()
            .fold(false, |any, c| any | constant_time_eq(tag.as_ref(), c));
        if matched {
            Ok(VerifiedPayload(payload))
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A webhook body whose signature was checked: only [`SignatureHeader::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedPayload(bytes::Bytes);

impl VerifiedPayload {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Checks a webhook's signature at time `now` (unix seconds): parse, timestamp, one HMAC.
pub fn verify(
    payload: bytes::Bytes,
    header: Option<&str>,
    secret: &str,
    now: i64,
    tolerance_seconds: i64,
) -> Result<VerifiedPayload, SignatureError> {
    let header = SignatureHeader::parse(header)?;
    header.check_time(now, tolerance_seconds)?;
    header.verify(payload, secret)
}

/// The header Stripe would send (tests, the fake Stripe server).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(hmac::sign(&key, &signed))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const SECRET: &str = "whsec_test";

    fn check(
        payload: &'static [u8],
        header: Option<&str>,
        secret: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        verify(Bytes::from_static(payload), header, secret, now, 300).map(|_| ())
    }

    #[test]
    fn accepts_a_good_signature_within_tolerance() {
        let header = sign(b"{}", SECRET, 1_000);
        assert_eq!(check(b"{}", Some(&header), SECRET, 1_100), Ok(()));
        // Stripe may send several signatures (secret rotation): any match will do.
        let good = &header[header.find("v1=").unwrap() + 3..];
        let two = format!("t=1000,v1={},v1={good}", "00".repeat(32));
        assert_eq!(check(b"{}", Some(&two), SECRET, 1_000), Ok(()));
        let short_first = format!("t=1000,v1=00ff,v1={good}");
        assert_eq!(check(b"{}", Some(&short_first), SECRET, 1_000), Ok(()));
    }

    #[test]
    fn refuses_the_rest() {
        let header = sign(b"{}", SECRET, 1_000);
        assert_eq!(
            check(b"{}", None, SECRET, 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(b"{ }", Some(&header), SECRET, 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"{}", Some(&header), "other", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"{}", Some(&header), SECRET, 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(b"{}", Some(&header), SECRET, 699),
            Err(SignatureError::Stale)
        );
        for malformed in [
            "garbage",
            "t=x,v1=00",
            "t=1000",
            "t=1000,t=1000,v1=00",
            "t=1000,v1=zz",
        ] {
            assert_eq!(
                check(b"{}", Some(malformed), SECRET, 1_000),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn more_than_a_few_signatures_are_refused_before_anything_is_hashed() {
        let good = sign(b"{}", SECRET, 1_000);
        let good = &good[good.find("v1=").unwrap() + 3..];
        let four = format!("t=1000,v1=00,v1=00,v1=00,v1={good}");
        assert_eq!(
            check(b"{}", Some(&four), SECRET, 1_000),
            Err(SignatureError::TooManySignatures)
        );
        let flood = format!("t=1000{}", ",v1=00".repeat(5_000));
        assert_eq!(
            SignatureHeader::parse(Some(&flood)),
            Err(SignatureError::TooManySignatures)
        );
    }

    #[test]
    fn the_timestamp_is_checked_without_the_secret() {
        let header = SignatureHeader::parse(Some("t=1000,v1=00")).unwrap();
        assert_eq!(header.check_time(5_000, 300), Err(SignatureError::Stale));
        assert_eq!(header.check_time(1_200, 300), Ok(()));
    }
}
