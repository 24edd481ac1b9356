//! Request bodies of the API: taken from warp unread, so the key is checked before anything is
//! read, then read with a size cap and checked for their content type. A body over the cap (or
//! one that is not wanted) is read and thrown away up to a bound before the answer goes out:
//! closing a socket with unread data makes the kernel reset the connection, and the client
//! might never see the answer.
//!
//! JSON objects with a key twice are refused at any depth: which of the two would count is
//! up to each parser, so a proxy, a log and this API could each read a different request.

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use http::{HeaderMap, header};
use serde_json::Value;
use warp::Filter;

use super::error::ApiError;

/// JSON bodies.
pub const JSON_LIMIT: u64 = 1024 * 1024;
/// Rental agreements (PDF).
pub const PDF_LIMIT: u64 = 5 * 1024 * 1024;
/// How much of an unwanted body is read (and thrown away) so the client sees the answer.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

pub type BodyStream = BoxStream<'static, Result<Bytes, warp::Error>>;

/// The request body, not read yet.
pub fn stream() -> impl Filter<Extract = (BodyStream,), Error = warp::Rejection> + Clone {
    warp::body::stream().map(boxed)
}

fn boxed<S, B>(stream: S) -> BodyStream
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    stream
        .map_ok(|mut buf| buf.copy_to_bytes(buf.remaining()))
        .boxed()
}

pub struct RawBody {
    length: Option<u64>,
    content_type: Option<String>,
    stream: BodyStream,
}

enum ReadError {
    TooLarge,
    Broken,
}

impl RawBody {
    pub fn new(headers: &HeaderMap, stream: BodyStream) -> Self {
        let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            length: value(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
            // The media type without its parameters (`; charset=utf-8`), lowercased.
            content_type: value(header::CONTENT_TYPE).map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            }),
            stream,
        }
    }

    /// A body with nothing in it (one already read and thrown away).
    pub fn empty() -> Self {
        Self {
            length: Some(0),
            content_type: None,
            stream: futures::stream::empty().boxed(),
        }
    }

    /// The media type it was sent as, lowercased, without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Reads the whole body now (a JSON body, up to its limit), and the same body to read
    /// again as usual: for a look at it before its handler reads it.
    pub async fn buffer(self) -> Result<(Bytes, RawBody), ApiError> {
        let content_type = self.content_type.clone();
        let bytes = self.read(JSON_LIMIT).await.map_err(|e| match e {
            ReadError::TooLarge => ApiError::TooLarge { limit: JSON_LIMIT },
            ReadError::Broken => ApiError::BadJson("The body did not arrive whole.".into()),
        })?;
        let again = Self {
            length: Some(bytes.len() as u64),
            content_type,
            stream: futures::stream::once(futures::future::ready(Ok(bytes.clone()))).boxed(),
        };
        Ok((bytes, again))
    }

    /// Reads and throws the body away (up to a bound), for an answer that does not need it.
    pub async fn discard(mut self) {
        if self.length.is_some_and(|l| l > DRAIN_LIMIT) {
            return;
        }
        let mut total = 0u64;
        while let Some(Ok(chunk)) = self.stream.next().await {
            total += chunk.len() as u64;
            if total > DRAIN_LIMIT {
                break;
            }
        }
    }

    async fn read(mut self, limit: u64) -> Result<Bytes, ReadError> {
        if self.length.is_some_and(|l| l > limit) {
            self.discard().await;
            return Err(ReadError::TooLarge);
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.stream.next().await {
            let chunk = chunk.map_err(|_| ReadError::Broken)?;
            if (buf.len() + chunk.len()) as u64 > limit {
                self.discard().await;
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The body as a JSON value; it must be sent as `application/json`.
    pub async fn json(self) -> Result<Value, ApiError> {
        if self.content_type.as_deref() != Some("application/json") {
            self.discard().await;
            return Err(ApiError::BadJson(
                "Send the body as JSON, with the header Content-Type: application/json.".into(),
            ));
        }
        let bytes = self.read(JSON_LIMIT).await.map_err(|e| match e {
            ReadError::TooLarge => ApiError::TooLarge { limit: JSON_LIMIT },
            ReadError::Broken => ApiError::BadJson("The body did not arrive whole.".into()),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadJson(
                "The body is empty; send a JSON object.".into(),
            ));
        }
        parse_json(&bytes)
    }

    /// The body as a PDF document; it must be sent as `application/pdf`.
    pub async fn pdf(self) -> Result<Bytes, ApiError> {
        if self.content_type.as_deref() != Some("application/pdf") {
            self.discard().await;
            return Err(ApiError::BadContentType(
                "Send the agreement as the raw PDF, with the header Content-Type: application/pdf."
                    .into(),
            ));
        }
        let bytes = self.read(PDF_LIMIT).await.map_err(|e| match e {
            ReadError::TooLarge => ApiError::TooLarge { limit: PDF_LIMIT },
            ReadError::Broken => ApiError::BadContentType("The body did not arrive whole.".into()),
        })?;
        if !bytes.starts_with(b"%PDF-") {
            return Err(ApiError::field(
                "body",
                "Not a PDF document: a PDF starts with %PDF-.",
            ));
        }
        Ok(bytes)
    }
}

/// Parses a JSON body, refusing an object that has a key twice (at any depth).
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| ApiError::BadJson(format!("The body is not valid JSON: {e}.")))
}

/// A JSON value read with duplicate keys refused.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        <Strict as serde::Deserialize>::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{key}` appears twice in one object"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(
            parse_json(br#"{"a": 1, "b": [{"c": {"d": null}}], "e": 1.5}"#).unwrap(),
            serde_json::json!({"a": 1, "b": [{"c": {"d": null}}], "e": 1.5})
        );
        for body in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"a": {"b": 1, "b": 1}}"#,
            br#"[{"x": [{"y": 1, "y": 2}]}]"#,
            br#"{"a\u0062": 1, "ab": 2}"#,
        ] {
            assert!(
                matches!(parse_json(body), Err(ApiError::BadJson(m)) if m.contains("twice")),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
