//! Storefront slugs: the `{sf}` of `/s/{sf}/`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorefrontSlug(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a storefront slug is 1 to 63 lowercase letters, digits or dashes, starting with a letter or digit"
)]
pub struct InvalidSlug;

impl StorefrontSlug {
    pub fn parse(raw: &str) -> Result<Self, InvalidSlug> {
        let bytes = raw.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok && raw.chars().all(|c| !c.is_ascii_uppercase()) {
            Ok(Self(raw.to_string()))
        } else {
            Err(InvalidSlug)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorefrontSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(StorefrontSlug::parse("demo").is_ok());
        assert!(StorefrontSlug::parse("lake-side-2").is_ok());
        for bad in ["", "-x", "Demo", "a/b", "a b", "é", &"a".repeat(64)] {
            assert_eq!(StorefrontSlug::parse(bad), Err(InvalidSlug), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsed_slugs_are_path_safe(s in "\\PC{0,80}") {
            if let Ok(slug) = StorefrontSlug::parse(&s) {
                prop_assert!(slug.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                prop_assert!(!slug.as_str().is_empty() && slug.as_str().len() <= 63);
            }
        }
    }
}
