//! Reading a JSON request into checked values. Every problem is collected under its field's
//! name (`rate.currency` for nested ones), so one 422 lists them all. Text is trimmed and may
//! not hold control or invisible characters; an optional field may be absent, `null` or `""`.

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};

use super::error::{ApiError, Fields};
use crate::domain::EmailAddress;

/// Names of people and things.
pub const NAME_MAX: usize = 100;
pub const TITLE_MAX: usize = 200;
pub const ADDRESS_MAX: usize = 300;
pub const DESCRIPTION_MAX: usize = 1000;
pub const NUMBER_MAX: usize = 50;
pub const PHONE_MAX: usize = 30;
pub const URL_MAX: usize = 2000;
pub const REF_MAX: usize = 100;
/// Ten billion in major units: more than any rent or invoice.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000;

/// An external reference: 1–100 letters, digits, `-`, `_`, `.`.
pub fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= REF_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub const REF_RULE: &str = "Use 1 to 100 letters, digits, '-', '_' or '.'.";

pub use crate::domain::text::has_hidden;

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems(Fields);

impl Problems {
    pub fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_insert_with(|| problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The 422 to answer (only meaningful when there are problems).
    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.0)
    }
}

/// A JSON object of the request (the body, or an object inside it).
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Object<'a> {
    /// The body, which must be an object (anything else is `bad_json`).
    pub fn root(value: &'a Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                prefix: String::new(),
            }),
            _ => Err(ApiError::BadJson("The body must be a JSON object.".into())),
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Flags fields the endpoint does not know (a typo would otherwise be ignored silently).
    pub fn only(&self, known: &[&str], p: &mut Problems) {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                p.add(
                    &self.name(key),
                    format!("Unknown field. Known fields: {}.", known.join(", ")),
                );
            }
        }
    }

    /// The value, `None` when absent or `null`; a required one is reported missing.
    fn value(&self, key: &str, required: bool, p: &mut Problems) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                if required {
                    p.add(&self.name(key), "Required.");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// Trimmed text of at most `max` characters; `""` counts as absent.
    pub fn text(&self, key: &str, max: usize, required: bool, p: &mut Problems) -> Option<String> {
        let name = self.name(key);
        let s = match self.value(key, required, p)? {
            Value::String(s) => s.trim(),
            _ => {
                p.add(&name, "Must be a string.");
                return None;
            }
        };
        if s.is_empty() {
            if required {
                p.add(&name, "Required; may not be empty.");
            }
            return None;
        }
        if has_hidden(s) {
            p.add(
                &name,
                "May not contain line breaks, control or invisible characters.",
            );
            return None;
        }
        if s.chars().count() > max {
            p.add(&name, format!("Use at most {max} characters."));
            return None;
        }
        Some(s.to_string())
    }

    pub fn email(&self, key: &str, required: bool, p: &mut Problems) -> Option<EmailAddress> {
        let name = self.name(key);
        let raw = match self.value(key, required, p)? {
            Value::String(s) => s,
            _ => {
                p.add(&name, "Must be a string.");
                return None;
            }
        };
        if raw.trim().is_empty() && !required {
            return None;
        }
        match EmailAddress::parse(raw.trim()) {
            Ok(e) => Some(e),
            Err(e) => {
                p.add(&name, e.to_string());
                None
            }
        }
    }

    /// A phone number: digits, spaces, `+`, `-`, `.` and brackets, with at least 4 digits.
    pub fn phone(&self, key: &str, p: &mut Problems) -> Option<String> {
        let s = self.text(key, PHONE_MAX, false, p)?;
        let ok = s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
            && s.chars().filter(char::is_ascii_digit).count() >= 4;
        if !ok {
            p.add(
                &self.name(key),
                "Enter a phone number with digits, spaces, +, - or brackets.",
            );
            return None;
        }
        Some(s)
    }

    /// An external reference (the body names another record by it).
    pub fn reference(&self, key: &str, required: bool, p: &mut Problems) -> Option<String> {
        let name = self.name(key);
        match self.value(key, required, p)? {
            Value::String(s) if is_ref(s) => Some(s.clone()),
            Value::String(_) => {
                p.add(&name, REF_RULE);
                None
            }
            _ => {
                p.add(&name, "Must be a string (a reference).");
                None
            }
        }
    }

    /// A list of external references, without repeats.
    pub fn references(&self, key: &str, max: usize, p: &mut Problems) -> Vec<String> {
        let name = self.name(key);
        let Some(value) = self.value(key, false, p) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            p.add(&name, "Must be a list of references.");
            return Vec::new();
        };
        if items.len() > max {
            p.add(&name, format!("List at most {max} references."));
            return Vec::new();
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
        out
    }

    /// A calendar date written `YYYY-MM-DD`.
    pub fn date(&self, key: &str, required: bool, p: &mut Problems) -> Option<NaiveDate> {
        let name = self.name(key);
        let parsed = match self.value(key, required, p)? {
            Value::String(s) => parse_date(s),
            _ => None,
        };
        if parsed.is_none() {
            p.add(&name, "Must be a date written YYYY-MM-DD, like 2025-03-01.");
        }
        parsed
    }

    /// One of `allowed`.
    pub fn choice(
        &self,
        key: &str,
        allowed: &[&'static str],
        required: bool,
        p: &mut Problems,
    ) -> Option<&'static str> {
        let name = self.name(key);
        let found = match self.value(key, required, p)? {
            Value::String(s) => allowed.iter().find(|a| **a == s.as_str()).copied(),
            _ => None,
        };
        if found.is_none() {
            p.add(&name, format!("Must be one of: {}.", allowed.join(", ")));
        }
        found
    }

    /// An amount in minor units (cents): a whole number, 0 or more.
    pub fn amount(&self, key: &str, p: &mut Problems) -> Option<i64> {
        let name = self.name(key);
        let amount = match self.value(key, true, p)? {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match amount {
            Some(a) if (0..=AMOUNT_MAX).contains(&a) => Some(a),
            Some(a) if a < 0 => {
                p.add(&name, "May not be negative.");
                None
            }
            _ => {
                p.add(
                    &name,
                    "Must be a whole number of minor units (12900 for 129.00), 0 or more.",
                );
                None
            }
        }
    }

    /// A currency: three letters (ISO 4217), stored in capitals.
    pub fn currency(&self, key: &str, p: &mut Problems) -> Option<String> {
        let name = self.name(key);
        match self.value(key, true, p)? {
            Value::String(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(s.to_ascii_uppercase())
            }
            _ => {
                p.add(&name, "Must be a currency code of three letters, like USD.");
                None
            }
        }
    }

    /// An http(s) URL.
    pub fn url(&self, key: &str, p: &mut Problems) -> Option<String> {
        let s = self.text(key, URL_MAX, false, p)?;
        match url::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if s.contains(' ') {
                    p.add(&self.name(key), "May not contain spaces.");
                    return None;
                }
                Some(s)
            }
            _ => {
                p.add(&self.name(key), "Must be an http:// or https:// address.");
                None
            }
        }
    }

    /// A nested object; its fields are named `key.field`.
    pub fn object(&self, key: &str, required: bool, p: &mut Problems) -> Option<Object<'a>> {
        match self.value(key, required, p)? {
            Value::Object(map) => Some(Object {
                map,
                prefix: format!("{}.", self.name(key)),
            }),
            _ => {
                p.add(&self.name(key), "Must be an object.");
                None
            }
        }
    }
}

/// A query string's parameters; an empty value counts as absent.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Parses a query string strictly: UTF-8 only, each parameter at most once, only `known` ones.
pub fn parse_query(raw: &str, known: &[&str]) -> Result<Query, ApiError> {
    let mut p = Problems::default();
    let mut out = Query::default();
    for pair in raw.split('&').filter(|s| !s.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(name), Some(value)) = (decode(name), decode(value)) else {
            p.add(
                "query",
                "The query string is not valid percent-encoded UTF-8.",
            );
            continue;
        };
        if !known.contains(&name.as_str()) {
            p.add(
                &name,
                format!("Unknown parameter. Known parameters: {}.", known.join(", ")),
            );
        } else if out.0.iter().any(|(n, _)| *n == name) {
            p.add(&name, "Give this parameter once.");
        } else {
            out.0.push((name, value));
        }
    }
    if p.is_empty() {
        Ok(out)
    } else {
        Err(p.into_error())
    }
}

fn decode(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A date written exactly `YYYY-MM-DD`, between the years 1900 and 2200.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..=2200).contains(&d.year()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value, f: impl FnOnce(&Object, &mut Problems)) -> Problems {
        let mut p = Problems::default();
        let obj = Object::root(&body).unwrap();
        f(&obj, &mut p);
        p
    }

    #[test]
    fn references_are_short_and_plain() {
        assert!(is_ref("RNT-DT_B112.v2"));
        for bad in ["", "a b", "a/b", "é", "a%20b", &"x".repeat(101)] {
            assert!(!is_ref(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_exactly_iso() {
        assert_eq!(
            parse_date("2025-03-01"),
            NaiveDate::from_ymd_opt(2025, 3, 1)
        );
        for bad in [
            "2025-3-1",
            "2025-02-30",
            "01/03/2025",
            "2025-03-01T00:00",
            "+2025-03-0",
            "1800-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_is_trimmed_and_refuses_hidden_characters() {
        let p = check(
            json!({"a": "  Alex  ", "b": "Al\nex", "c": "Al\u{202E}ex", "d": 5, "e": "", "f": "Al\u{2028}ex", "g": "Al\u{2029}ex", "h": "Al\u{061C}ex"}),
            |o, p| {
                assert_eq!(o.text("a", 10, true, p).as_deref(), Some("Alex"));
                assert_eq!(o.text("b", 10, true, p), None);
                assert_eq!(o.text("c", 10, true, p), None);
                assert_eq!(o.text("d", 10, true, p), None);
                assert_eq!(o.text("e", 10, false, p), None);
                assert_eq!(o.text("missing", 10, false, p), None);
                for k in ["f", "g", "h"] {
                    assert_eq!(o.text(k, 10, true, p), None, "{k}");
                }
            },
        );
        assert!(!p.has("a") && !p.has("e") && !p.has("missing"));
        assert!(p.has("b") && p.has("c") && p.has("d"));
        assert!(p.has("f") && p.has("g") && p.has("h"));
    }

    #[test]
    fn nested_fields_are_named_with_their_path() {
        let p = check(
            json!({"rate": {"amount_minor": -1, "currency": "US", "extra": 1}}),
            |o, p| {
                let rate = o.object("rate", true, p).unwrap();
                rate.only(&["amount_minor", "currency"], p);
                assert_eq!(rate.amount("amount_minor", p), None);
                assert_eq!(rate.currency("currency", p), None);
            },
        );
        assert!(p.has("rate.amount_minor"));
        assert!(p.has("rate.currency"));
        assert!(p.has("rate.extra"));
    }

    #[test]
    fn amounts_are_whole_and_not_negative() {
        check(
            json!({"a": 12900, "b": 12.5, "c": "100", "d": -5, "e": 1e20}),
            |o, p| {
                assert_eq!(o.amount("a", p), Some(12900));
                for k in ["b", "c", "d", "e"] {
                    assert_eq!(o.amount(k, p), None, "{k}");
                    assert!(p.has(k));
                }
            },
        );
    }

    #[test]
    fn urls_are_http_only() {
        check(
            json!({"a": "https://track.example/x?y=1", "b": "javascript:alert(1)", "c": "ftp://x.example/", "d": "http://"}),
            |o, p| {
                assert!(o.url("a", p).is_some());
                for k in ["b", "c", "d"] {
                    assert_eq!(o.url(k, p), None, "{k}");
                }
            },
        );
    }
}
