//! Reading a JSON request into its typed struct. Every problem is collected under its field's
//! name (`rate.currency` for nested ones, `contacts[1]` for list items), so one 422 lists them
//! all; a field the struct does not read is reported as unknown, with the fields it does. An
//! optional field may be absent or `null` (and, for text, `""`). What each field accepts is
//! its type's business ([`FromJson`], in `fields.rs`).

use serde_json::{Map, Value};

use super::error::{ApiError, Fields};

/// The problems found so far.
#[derive(Debug, Default)]
pub struct Problems(Fields);

impl Problems {
    /// Records what is wrong with `field`; the first problem of a field is the one reported.
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

/// A value of a request field, read from its JSON.
pub trait FromJson: Sized {
    /// Whether a string that is blank once trimmed counts as absent when the field is optional
    /// (text does; references, dates and choices do not).
    const BLANK_IS_ABSENT: bool = false;

    /// Reads the value of the field `name`, adding what is wrong with it to `p`.
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self>;
}

/// A request body, or an object inside one: a typed struct read field by field.
pub trait Request: Sized {
    /// Reads every field (so every problem is found); `None` when one is missing or invalid.
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self>;

    /// The body, which must be a JSON object (anything else is `bad_json`), as this struct.
    fn from_body(body: &Value, p: &mut Problems) -> Result<Option<Self>, ApiError> {
        let mut o = Object::root(body)?;
        let read = Self::read(&mut o, p);
        o.finish(p);
        Ok(read)
    }

    /// An object inside the body, for [`FromJson::read`] of a nested struct.
    fn nested(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let Value::Object(map) = value else {
            p.add(name, "Must be an object.");
            return None;
        };
        let mut o = Object {
            map,
            prefix: format!("{name}."),
            read: Vec::new(),
        };
        let read = Self::read(&mut o, p);
        o.finish(p);
        read
    }
}

/// A JSON object of the request, with the names of the fields read from it so far.
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    read: Vec<&'static str>,
}

impl<'a> Object<'a> {
    fn root(value: &'a Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                prefix: String::new(),
                read: Vec::new(),
            }),
            _ => Err(ApiError::BadJson("The body must be a JSON object.".into())),
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value, `None` when absent or `null`.
    fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A field that must be given.
    pub fn required<T: FromJson>(&mut self, key: &'static str, p: &mut Problems) -> Option<T> {
        let name = self.name(key);
        match self.value(key) {
            Some(v) => T::read(v, &name, p),
            None => {
                p.add(&name, "Required.");
                None
            }
        }
    }

    /// A field that may be left out (`None` when it is, or when it is invalid).
    pub fn optional<T: FromJson>(&mut self, key: &'static str, p: &mut Problems) -> Option<T> {
        let name = self.name(key);
        let value = self.value(key)?;
        if T::BLANK_IS_ABSENT && value.as_str().is_some_and(|s| s.trim().is_empty()) {
            return None;
        }
        T::read(value, &name, p)
    }

    /// A field that may be left out (`None`), or set to `null` to clear it (`Some(None)`; for
    /// text, `""` too), or given. An invalid value is a problem in `p` (and reads as cleared,
    /// so the caller must check `p` before using it).
    pub fn nullable<T: FromJson>(
        &mut self,
        key: &'static str,
        p: &mut Problems,
    ) -> Option<Option<T>> {
        let name = self.name(key);
        self.read.push(key);
        let value = self.map.get(key)?;
        if value.is_null()
            || (T::BLANK_IS_ABSENT && value.as_str().is_some_and(|s| s.trim().is_empty()))
        {
            return Some(None);
        }
        Some(T::read(value, &name, p))
    }

    /// Flags the fields nothing read (a typo would otherwise be ignored silently).
    fn finish(self, p: &mut Problems) {
        for key in self.map.keys() {
            if !self.read.contains(&key.as_str()) {
                p.add(
                    &self.name(key),
                    format!("Unknown field. Known fields: {}.", self.read.join(", ")),
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::api::fields::{AmountMinor, Currency, Title};
    use serde_json::json;

    struct Pair {
        a: Title,
        b: Option<Title>,
    }

    impl Request for Pair {
        fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
            let a = o.required("a", p);
            let b = o.optional("b", p);
            Some(Self { a: a?, b })
        }
    }

    struct Outer {
        inner: Money,
    }

    struct Money {
        amount: AmountMinor,
        currency: Currency,
    }

    impl Request for Money {
        fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
            let amount = o.required("amount", p);
            let currency = o.required("currency", p);
            Some(Self {
                amount: amount?,
                currency: currency?,
            })
        }
    }

    impl FromJson for Money {
        fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
            <Self as Request>::nested(value, name, p)
        }
    }

    impl Request for Outer {
        fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
            Some(Self {
                inner: o.required("inner", p)?,
            })
        }
    }

    #[test]
    fn optional_fields_may_be_absent_null_or_blank() {
        for body in [
            json!({"a": "x"}),
            json!({"a": "x", "b": null}),
            json!({"a": "x", "b": "  "}),
        ] {
            let mut p = Problems::default();
            let pair = Pair::from_body(&body, &mut p).unwrap().unwrap();
            assert_eq!(pair.a.into_string(), "x");
            assert!(pair.b.is_none() && p.is_empty(), "{body}");
        }
        let mut p = Problems::default();
        assert!(
            Pair::from_body(&json!({"b": "y"}), &mut p)
                .unwrap()
                .is_none()
        );
        assert!(p.has("a"));
    }

    #[test]
    fn nullable_fields_tell_absent_from_null() {
        struct Patch {
            b: Option<Option<Title>>,
        }
        impl Request for Patch {
            fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
                Some(Self {
                    b: o.nullable("b", p),
                })
            }
        }
        let read = |body: Value| {
            let mut p = Problems::default();
            let patch = Patch::from_body(&body, &mut p).unwrap().unwrap();
            (patch.b.map(|b| b.map(Title::into_string)), p.is_empty())
        };
        assert_eq!(read(json!({})), (None, true));
        assert_eq!(read(json!({"b": null})), (Some(None), true));
        assert_eq!(read(json!({"b": " "})), (Some(None), true));
        assert_eq!(read(json!({"b": "x"})), (Some(Some("x".into())), true));
        assert!(!read(json!({"b": 5})).1, "an invalid value is a problem");
    }

    #[test]
    fn unknown_and_nested_fields_are_named_with_their_path() {
        let mut p = Problems::default();
        let body = json!({"inner": {"amount": -1, "currency": "US", "extra": 1}, "typo": 2});
        assert!(Outer::from_body(&body, &mut p).unwrap().is_none());
        for field in ["inner.amount", "inner.currency", "inner.extra", "typo"] {
            assert!(p.has(field), "{field}: {p:?}");
        }
        let mut p = Problems::default();
        Outer::from_body(&json!({"inner": 5}), &mut p).unwrap();
        assert!(p.has("inner"));
        let read = Outer::from_body(
            &json!({"inner": {"amount": 5, "currency": "usd"}}),
            &mut Problems::default(),
        );
        let inner = read.unwrap().unwrap().inner;
        assert_eq!((inner.amount.get(), inner.currency.as_str()), (5, "USD"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_bad_json() {
        for body in [json!([]), json!(null), json!("a"), json!(1)] {
            let read = Pair::from_body(&body, &mut Problems::default());
            assert!(matches!(read, Err(ApiError::BadJson(_))), "{body}");
        }
    }
}
