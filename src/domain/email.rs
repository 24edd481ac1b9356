//! Email addresses as the portal accepts them.

use std::fmt;

/// An email address that is safe to put in a header, an SMTP envelope and a database key.
///
/// The only constructor is [`EmailAddress::parse`]: it refuses line breaks and other control
/// characters (header injection), display names, quoted local parts, comments, IP-literal
/// domains, and anything longer than RFC 5321 allows. Unicode letters are allowed in the local
/// part and the domain (internationalised addresses).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("Enter your email address.")]
    Empty,
    #[error("An email address cannot contain line breaks or control characters.")]
    ControlCharacter,
    #[error("That email address is too long.")]
    TooLong,
    #[error("Enter an email address like name@example.com.")]
    Malformed,
}

impl InvalidEmail {
    /// The id of the message that says this on a page (`locales/*/portal.ftl`); the API keeps
    /// the English text above.
    pub fn message_id(self) -> &'static str {
        match self {
            InvalidEmail::Empty => "email-empty",
            InvalidEmail::ControlCharacter => "email-control-character",
            InvalidEmail::TooLong => "email-too-long",
            InvalidEmail::Malformed => "email-malformed",
        }
    }
}

const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

impl EmailAddress {
    /// The longest address RFC 5321 allows, in bytes.
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        if super::text::has_hidden(raw) {
            return Err(InvalidEmail::ControlCharacter);
        }
        let trimmed = raw.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(InvalidEmail::Malformed)?;
        if local.is_empty() || local.len() > 64 || !valid_local(local) {
            return Err(InvalidEmail::Malformed);
        }
        if !valid_domain(domain) {
            return Err(InvalidEmail::Malformed);
        }
        Ok(Self {
            address: format!("{local}@{}", domain.to_lowercase()),
        })
    }

    /// An address read back from the store. Every address a row holds was parsed on its way in
    /// (the store's writes take an `EmailAddress`), so reading it does not parse it again: a
    /// check that a later, stricter parser might fail must not make an account unreadable. A
    /// stored address the relay cannot take still fails its delivery, with the relay's reason.
    pub(crate) fn from_stored(address: String) -> Self {
        Self { address }
    }

    /// The address as entered (domain lowercased).
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The same address as `other`, compared as the store compares them (without regard to case).
    pub fn same_as(&self, other: &EmailAddress) -> bool {
        self.address.eq_ignore_ascii_case(&other.address) || self.key() == other.key()
    }

    /// The comparison key: addresses are unique per storefront regardless of case.
    pub fn key(&self) -> String {
        self.address.to_lowercase()
    }

    /// The part before the `@`.
    pub fn local(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(l, _)| l)
            .unwrap_or(&self.address)
    }

    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default()
    }

    /// The address partly hidden for a notice that may be read by someone else:
    /// the first character of the local part and the domain (`a•••@example.com`).
    pub fn masked(&self) -> String {
        mask(&self.address)
    }
}

/// [`EmailAddress::masked`] for an address already stored (it was parsed on its way in).
pub fn mask(address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
}

fn valid_local(local: &str) -> bool {
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c == '.'
                || LOCAL_SPECIALS.contains(c)
                || (!c.is_ascii() && c.is_alphanumeric())
        })
}

fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let tld = labels[labels.len() - 1];
    if tld.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c == '-' || c.is_alphanumeric())
    })
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

/// Written as the plain address (audit details, API answers).
impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.address)
    }
}

/// Read from configuration or a request body: parsed, so a bad address is refused where it
/// is read, with the parser's reason.
impl<'de> serde::Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EmailAddress::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stored_address_reads_back_as_the_address_that_was_parsed() {
        let parsed = EmailAddress::parse(" Alex.Martin@Example.ORG ").unwrap();
        let stored = EmailAddress::from_stored(parsed.as_str().to_string());
        assert_eq!(stored, parsed);
        assert_eq!(stored.local(), "Alex.Martin");
        assert_eq!(stored.domain(), "example.org");
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            "\"Alex.Martin@example.org\""
        );
    }

    #[test]
    fn addresses_that_differ_only_in_case_are_the_same() {
        let a = EmailAddress::parse("alex@example.org").unwrap();
        let b = EmailAddress::parse("ALEX@Example.org").unwrap();
        let c = EmailAddress::parse("alexa@example.org").unwrap();
        assert_ne!(a, b, "the address keeps the case it was entered in");
        assert!(a.same_as(&b) && b.same_as(&a));
        assert!(!a.same_as(&c));
    }

    #[test]
    fn masks_all_but_the_first_character_and_the_domain() {
        let a = EmailAddress::parse("alex.martin@Example.org").unwrap();
        assert_eq!(a.masked(), "a\u{2022}\u{2022}\u{2022}@example.org");
        assert_eq!(
            mask("\u{e9}mile@example.fr"),
            "\u{e9}\u{2022}\u{2022}\u{2022}@example.fr"
        );
        assert_eq!(mask("x@y.z"), "x\u{2022}\u{2022}\u{2022}@y.z");
    }

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "alex@example.com",
            "Alex.Martin+portal@Example.COM",
            "o'brien@mail.example.co.uk",
            "josé@exämple.de",
            "  sam@example.com ",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        let e = EmailAddress::parse("Alex@Example.COM").unwrap();
        assert_eq!(e.as_str(), "Alex@example.com");
        assert_eq!(e.key(), "alex@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn refuses_injection_and_nonsense() {
        use InvalidEmail::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("alex@example.com\r\nBcc: x@evil.com", ControlCharacter),
            ("alex@example.com\n", ControlCharacter),
            ("al\u{200B}ex@example.com", ControlCharacter),
            ("alex@example.com\u{0}", ControlCharacter),
            ("alex", Malformed),
            ("alex@", Malformed),
            ("@example.com", Malformed),
            ("alex@localhost", Malformed),
            ("alex@[127.0.0.1]", Malformed),
            ("alex@1.2.3.4", Malformed),
            ("Alex <alex@example.com>", Malformed),
            ("\"alex\"@example.com", Malformed),
            ("a..b@example.com", Malformed),
            (".a@example.com", Malformed),
            ("a@-example.com", Malformed),
            ("a@exa_mple.com", Malformed),
            ("a b@example.com", Malformed),
        ];
        for (raw, want) in cases {
            assert_eq!(EmailAddress::parse(raw).err(), Some(want), "{raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long).err(), Some(TooLong));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long_local).err(), Some(Malformed));
    }

    proptest! {
        #[test]
        fn parsed_addresses_are_header_safe(s in "\\PC{0,80}|[a-z.\\r\\n@<>\" ]{0,40}") {
            if let Ok(e) = EmailAddress::parse(&s) {
                let a = e.as_str();
                prop_assert!(!a.chars().any(|c| c.is_control()));
                prop_assert!(!a.contains(['<', '>', '"', ' ', ',', ';', '\\']));
                prop_assert_eq!(a.matches('@').count(), 1);
                prop_assert!(a.len() <= 254);
                // Parsing is idempotent.
                prop_assert_eq!(EmailAddress::parse(a).unwrap(), e.clone());
            }
        }
    }
}
