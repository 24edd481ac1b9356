//! Request bodies: read with a size cap, and `application/x-www-form-urlencoded` parsed
//! strictly (invalid UTF-8 is an error, not replacement characters). [`Frame::read_form`] is
//! how every page of the portal and the console reads a posted form: read, parsed and
//! CSRF-checked, or refused.

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use warp::Filter;
use warp::reply::Response;

use super::{Frame, Site};

/// Forms are small; anything bigger is refused with 413 before it is read.
pub const FORM_LIMIT: u64 = 16 * 1024;

#[derive(Debug)]
pub enum Body {
    Read(Bytes),
    TooLarge,
    Broken,
}

/// The request body, read up to `limit` bytes (whether or not a Content-Length was sent).
pub fn body(limit: u64) -> impl Filter<Extract = (Body,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |length: Option<u64>, stream| read_limited(length, stream, limit))
}

/// A body over the limit is still read (and thrown away) up to this size before the 413 goes
/// out: closing a socket with unread data makes the kernel reset the connection, and the client
/// might never see the answer.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

async fn read_limited<S, B>(length: Option<u64>, stream: S, limit: u64) -> Body
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if length.is_some_and(|l| l > DRAIN_LIMIT) {
        return Body::TooLarge;
    }
    let mut too_large = length.is_some_and(|l| l > limit);
    let mut stream = std::pin::pin!(stream);
    let mut buf = BytesMut::new();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(mut chunk) = chunk else {
            return if too_large {
                Body::TooLarge
            } else {
                Body::Broken
            };
        };
        total += chunk.remaining() as u64;
        if total > limit {
            too_large = true;
        }
        if total > DRAIN_LIMIT {
            break;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            if !too_large {
                buf.extend_from_slice(part);
            }
            chunk.advance(n);
        }
    }
    if too_large {
        Body::TooLarge
    } else {
        Body::Read(buf.freeze())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("The form could not be read: it is not valid UTF-8.")]
    InvalidUtf8,
    #[error("The form could not be read.")]
    Malformed,
}

/// Why a posted form was refused.
pub(super) enum FormRefused {
    TooLarge,
    Broken,
    Unreadable(FormError),
    Expired,
}

/// A parsed form. Repeated fields keep their first value.
#[derive(Debug, Default, Clone)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        if std::str::from_utf8(body).is_err() {
            return Err(FormError::InvalidUtf8);
        }
        let mut fields = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            if name.is_empty() {
                return Err(FormError::Malformed);
            }
            let value = decode(value)?;
            if !fields.iter().any(|(n, _)| *n == name) {
                fields.push((name, value));
            }
        }
        Ok(Self { fields })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Site> Frame<S> {
    /// Reads a posted form and checks its CSRF token; `Err(page)` for a 4xx (boxed: it is built
    /// once per refused request, and keeps the `Result` small).
    pub fn read_form(&mut self, body: Body) -> Result<Form, Box<Response>> {
        let refused = match body {
            Body::Read(bytes) => match Form::parse(&bytes) {
                Ok(form) if self.csrf_ok(form.get("csrf_token")) => return Ok(form),
                Ok(_) => FormRefused::Expired,
                Err(e) => FormRefused::Unreadable(e),
            },
            Body::TooLarge => FormRefused::TooLarge,
            Body::Broken => FormRefused::Broken,
        };
        Err(Box::new(self.form_refused(refused)))
    }
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| FormError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_fields() {
        let f = Form::parse(b"email=alex%40example.com&csrf_token=abc&name=Al+Ex&email=second")
            .unwrap();
        assert_eq!(f.get("email"), Some("alex@example.com"));
        assert_eq!(f.get("name"), Some("Al Ex"));
        assert_eq!(f.get("csrf_token"), Some("abc"));
        assert_eq!(f.get("missing"), None);
    }

    #[test]
    fn refuses_invalid_utf8() {
        assert_eq!(
            Form::parse(b"email=%FF%FE").unwrap_err(),
            FormError::InvalidUtf8
        );
        assert_eq!(
            Form::parse(b"email=\xff").unwrap_err(),
            FormError::InvalidUtf8
        );
        assert_eq!(Form::parse(b"=x").unwrap_err(), FormError::Malformed);
    }

    #[test]
    fn keeps_line_breaks_for_the_validators() {
        let f = Form::parse(b"email=a%40b.com%0D%0ABcc%3A+x%40y.com").unwrap();
        assert_eq!(f.get("email"), Some("a@b.com\r\nBcc: x@y.com"));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Form::parse(&body);
        }
    }
}
