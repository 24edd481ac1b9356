//! The values the API takes and gives, each a type that holds its own rule: the limits are
//! written once, here, and both the reading of a request ([`FromJson`]) and the OpenAPI
//! document (each type's schema) use them. This file has references and text, which is
//! trimmed and may not hold control or invisible characters; `values.rs` the rest.

mod values;

pub use values::*;

use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::input::{FromJson, Problems};
use crate::domain::EmailAddress;
pub use crate::domain::text::has_hidden;

/// Adds `problem` under `name` when `result` is one.
fn checked<T>(result: Result<T, String>, name: &str, p: &mut Problems) -> Option<T> {
    result.map_err(|problem| p.add(name, problem)).ok()
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn known_format(known: KnownFormat) -> Option<SchemaFormat> {
    Some(SchemaFormat::KnownFormat(known))
}

/// A format of JSON Schema that OpenAPI's list lacks (`email`, `uri`).
pub fn custom_format(name: &str) -> Option<SchemaFormat> {
    Some(SchemaFormat::Custom(name.into()))
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/// The longest reference.
pub const REF_MAX: usize = 100;

/// What a reference may be, for a person.
pub const REF_RULE: &str = "Use 1 to 100 letters, digits, '-', '_' or '.'.";

/// An external reference: 1–100 letters, digits, `-`, `_`, `.`.
pub fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= REF_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// [`is_ref`] as a JSON Schema pattern.
fn ref_pattern() -> String {
    format!("^[A-Za-z0-9._-]{{1,{REF_MAX}}}$")
}

/// The operator's own identifier of a record (`FAC-DT`, `RNT-DT-B112`), unique per storefront
/// and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef(String);

impl ExternalRef {
    pub fn parse(s: &str) -> Option<Self> {
        is_ref(s).then(|| Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromJson for ExternalRef {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value {
            Value::String(s) => Self::parse(s).ok_or_else(|| REF_RULE.to_string()),
            _ => Err("Must be a string (a reference).".to_string()),
        };
        checked(read, name, p)
    }
}

impl PartialSchema for ExternalRef {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .pattern(Some(ref_pattern()))
            .description(Some(format!(
                "A reference: your own identifier, 1 to {REF_MAX} letters, digits, `-`, `_` or `.`, unique per storefront and kind."
            )))
            .examples(["FAC-DT"])
            .into()
    }
}

impl ToSchema for ExternalRef {}

/// Contacts one sign-up may link.
pub const CONTACTS_MAX: usize = 100;

/// References of the contacts a sign-up links, without repeats.
#[derive(Debug, Clone, Default)]
pub struct ContactRefs(Vec<String>);

impl ContactRefs {
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl FromJson for ContactRefs {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let Value::Array(items) = value else {
            p.add(name, "Must be a list of references.");
            return None;
        };
        if items.len() > CONTACTS_MAX {
            p.add(name, format!("List at most {CONTACTS_MAX} references."));
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if is_ref(s) => {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
                _ => p.add(&format!("{name}[{i}]"), REF_RULE),
            }
        }
        Some(Self(out))
    }
}

impl ToSchema for ContactRefs {}

impl PartialSchema for ContactRefs {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(ExternalRef::schema())
            .max_items(Some(CONTACTS_MAX))
            .into()
    }
}

/// A file name for the agreement download: a reference ending in `.pdf`.
#[derive(Debug, Clone)]
pub struct FileName(String);

impl FileName {
    pub const RULE: &str = "Use up to 100 letters, digits, '-', '_' or '.', ending in .pdf.";

    pub fn parse(name: &str) -> Option<Self> {
        (is_ref(name) && name.to_ascii_lowercase().ends_with(".pdf") && name.len() > 4)
            .then(|| Self(name.to_string()))
    }

    /// The name when none is given.
    pub fn default_for(rental_ref: &str) -> Self {
        Self(format!("agreement-{rental_ref}.pdf"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialSchema for FileName {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .pattern(Some(format!(
                "^[A-Za-z0-9._-]{{1,{}}}\\.[pP][dD][fF]$",
                REF_MAX - 4
            )))
            .into()
    }
}

impl ToSchema for FileName {}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// Trimmed text of at most `max` characters, without hidden characters.
fn text(value: &Value, max: usize) -> Result<String, String> {
    let Value::String(s) = value else {
        return Err("Must be a string.".into());
    };
    let s = s.trim();
    if s.is_empty() {
        return Err("Required; may not be empty.".into());
    }
    if has_hidden(s) {
        return Err("May not contain line breaks, control or invisible characters.".into());
    }
    if s.chars().count() > max {
        return Err(format!("Use at most {max} characters."));
    }
    Ok(s.to_string())
}

/// Text of `min` to `max` characters (`min` is 0 for text only ever optional, where `""` counts
/// as left out, and 1 for text that is required).
fn text_schema(min: usize, max: usize) -> ObjectBuilder {
    string_schema()
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
}

/// Text fields: a type per limit, each a component of the document.
macro_rules! text_field {
    ($name:ident, $max:ident = $limit:expr, min = $min:literal, $what:literal) => {
        #[doc = $what]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        #[doc = concat!("The longest [`", stringify!($name), "`].")]
        pub const $max: usize = $limit;

        impl $name {
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromJson for $name {
            const BLANK_IS_ABSENT: bool = true;

            fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
                checked(text(value, $max).map(Self), name, p)
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                text_schema($min, $max)
                    .description(Some(concat!(
                        $what,
                        " Trimmed; no line breaks, control or invisible characters."
                    )))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

text_field!(PersonName, NAME_MAX = 100, min = 1, "A person's name.");
text_field!(
    Title,
    TITLE_MAX = 200,
    min = 1,
    "A name or label shown to customers."
);
text_field!(Address, ADDRESS_MAX = 300, min = 0, "A postal address.");
text_field!(
    Description,
    DESCRIPTION_MAX = 1000,
    min = 1,
    "A description shown to customers."
);
text_field!(
    InvoiceNumber,
    NUMBER_MAX = 50,
    min = 1,
    "An invoice number as the customer reads it."
);

/// The longest phone number.
pub const PHONE_MAX: usize = 30;

/// A phone number: digits, spaces, `+`, `-`, `.` and brackets, with at least 4 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromJson for Phone {
    const BLANK_IS_ABSENT: bool = true;

    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = text(value, PHONE_MAX).and_then(|s| {
            let ok = s
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
                && s.chars().filter(char::is_ascii_digit).count() >= 4;
            if ok {
                Ok(Self(s))
            } else {
                Err("Enter a phone number with digits, spaces, +, - or brackets.".into())
            }
        });
        checked(read, name, p)
    }
}

impl PartialSchema for Phone {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .max_length(Some(PHONE_MAX))
            .description(Some(format!(
                "Digits, spaces, +, -, . and brackets, at least 4 digits; at most {PHONE_MAX} characters."
            )))
            .into()
    }
}

impl ToSchema for Phone {}

impl FromJson for EmailAddress {
    const BLANK_IS_ABSENT: bool = true;

    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value {
            Value::String(raw) => EmailAddress::parse(raw.trim()).map_err(|e| e.to_string()),
            _ => Err("Must be a string.".into()),
        };
        checked(read, name, p)
    }
}

impl PartialSchema for EmailAddress {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .format(custom_format("email"))
            .max_length(Some(EmailAddress::MAX_LEN))
            .description(Some("An email address."))
            .into()
    }
}

impl ToSchema for EmailAddress {}

/// The longest URL.
pub const URL_MAX: usize = 2000;

/// An http(s) URL, like a delivery's tracking page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl(String);

impl WebUrl {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromJson for WebUrl {
    const BLANK_IS_ABSENT: bool = true;

    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = text(value, URL_MAX).and_then(|s| match url::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if s.contains(' ') {
                    Err("May not contain spaces.".to_string())
                } else {
                    Ok(Self(s))
                }
            }
            _ => Err("Must be an http:// or https:// address.".into()),
        });
        checked(read, name, p)
    }
}

impl PartialSchema for WebUrl {
    fn schema() -> RefOr<Schema> {
        string_schema()
            .format(custom_format("uri"))
            .max_length(Some(URL_MAX))
            .description(Some("An http:// or https:// address."))
            .into()
    }
}

impl ToSchema for WebUrl {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T: FromJson>(value: Value) -> (Option<T>, Problems) {
        let mut p = Problems::default();
        (T::read(&value, "f", &mut p), p)
    }

    #[test]
    fn references_are_short_and_plain() {
        assert!(is_ref("RNT-DT_B112.v2"));
        for bad in ["", "a b", "a/b", "é", "a%20b", &"x".repeat(101)] {
            assert!(!is_ref(bad), "{bad}");
        }
        let pattern = regex::Regex::new(&ref_pattern()).unwrap();
        for s in [
            "RNT-DT_B112.v2",
            &"x".repeat(100),
            "",
            "a b",
            &"x".repeat(101),
        ] {
            assert_eq!(
                pattern.is_match(s),
                is_ref(s),
                "the document's pattern agrees: {s:?}"
            );
        }
    }

    #[test]
    fn text_is_trimmed_and_refuses_hidden_characters() {
        assert_eq!(
            read::<PersonName>(json!("  Alex  "))
                .0
                .unwrap()
                .into_string(),
            "Alex"
        );
        for bad in [
            json!("Al\nex"),
            json!("Al\u{202E}ex"),
            json!(5),
            json!(""),
            json!("Al\u{2028}ex"),
            json!("Al\u{2029}ex"),
            json!("Al\u{061C}ex"),
            json!("x".repeat(NAME_MAX + 1)),
        ] {
            let (value, p) = read::<PersonName>(bad.clone());
            assert!(value.is_none() && p.has("f"), "{bad}");
        }
        assert!(read::<PersonName>(json!("x".repeat(NAME_MAX))).0.is_some());
    }

    #[test]
    fn urls_are_http_only() {
        assert!(
            read::<WebUrl>(json!("https://track.example/x?y=1"))
                .0
                .is_some()
        );
        for bad in ["javascript:alert(1)", "ftp://x.example/", "http://"] {
            assert!(read::<WebUrl>(json!(bad)).1.has("f"), "{bad}");
        }
    }

    #[test]
    fn contact_lists_name_each_bad_item() {
        let (refs, p) = read::<ContactRefs>(json!(["A", "A", "B"]));
        assert_eq!(refs.unwrap().into_vec(), ["A", "B"]);
        assert!(p.is_empty());
        let (_, p) = read::<ContactRefs>(json!(["A", "bad ref"]));
        assert!(p.has("f[1]"));
        assert!(read::<ContactRefs>(json!("A")).1.has("f"));
        let many: Vec<String> = (0..=CONTACTS_MAX).map(|i| format!("C{i}")).collect();
        assert!(read::<ContactRefs>(json!(many)).1.has("f"));
    }

    #[test]
    fn file_names_end_in_pdf() {
        assert!(FileName::parse("B-220.pdf").is_some());
        assert!(FileName::parse("B-220.PDF").is_some());
        for bad in [
            "../../etc/passwd.pdf",
            "agreement.exe",
            ".pdf",
            "a\r\nBcc.pdf",
        ] {
            assert!(FileName::parse(bad).is_none(), "{bad}");
        }
    }
}
