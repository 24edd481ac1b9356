//! `Idempotency-Key` on every POST and PATCH of the API (the IETF httpapi draft "The
//! Idempotency-Key HTTP Header Field", as Stripe has it): a POST with a key claims the key for the caller's
//! storefront before it runs; its answer is kept for 24 hours and a repeat gets it back,
//! marked `Idempotent-Replayed: true`, without a second effect.
//!
//! - The same key for another request (another operation, path, query, content type or body,
//!   byte for byte) is refused with 422 `idempotency_key_reused`, as the draft says: the client
//!   has a bug, and 409 stays for what retrying fixes.
//! - A repeat while the first request still runs is 409 `idempotency_key_in_use` (with
//!   `Retry-After`): the database's unique constraint lets one claim through, so two never run.
//! - An answer that asks the client to try again (429 and 5xx) is not kept: the key is
//!   released, and a retry with it runs again.
//! - Once claimed, the request runs to its end on its own task even if the client hangs up, so
//!   its answer is kept for the client's retry; a claim left without an answer by a process
//!   that stopped is taken over after two minutes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use ring::digest;
use serde_json::json;
use tracing::Instrument;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use warp::reply::Response;

use super::body::RawBody;
use super::error::ApiError;
use super::router::Op;
use super::{Caller, endpoint};
use crate::http::HttpState;
use crate::store::{Claim, KeptAnswer};
use crate::usecases::idempotency::{self, ABANDONED_AFTER_SECONDS, KEPT_FOR_HOURS};

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// The answer's header on a repeat.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key.
const MAX_LENGTH: usize = 255;
const RULE: &str = "Must be 1 to 255 visible ASCII characters (a UUID is a good key), sent once.";

/// The key a request sent, if any.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let valid =
        |k: &&str| (1..=MAX_LENGTH).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic());
    match (value.to_str().ok().filter(valid), values.next()) {
        (Some(key), None) => Ok(Some(key.to_string())),
        _ => Err(ApiError::field(HEADER, RULE)),
    }
}

/// What tells one request from another: the operation, its path parameter, the query, and the
/// body as sent with its content type.
fn fingerprint(op: Op, param: &str, query: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        op.id().as_bytes(),
        param.as_bytes(),
        query.as_bytes(),
        content_type.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(body);
    ctx.finish().as_ref().to_vec()
}

/// Whether an answer is kept for the key's repeats: not one that asks to try again.
fn kept(status: StatusCode) -> bool {
    !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
}

/// Answers a POST: as the endpoint does when it has no key, once per key when it has one.
pub async fn post(
    state: Arc<HttpState>,
    caller: Caller,
    op: Op,
    param: String,
    query: String,
    headers: &HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    let key = match key_of(headers) {
        Ok(Some(key)) => key,
        Ok(None) => return endpoint(op, &state, &caller, &param, &query, body).await,
        Err(e) => {
            body.discard().await;
            return Err(e);
        }
    };
    // The body is read before the key is claimed, so a slow client never holds a claim.
    let content_type = body.content_type().unwrap_or_default().to_string();
    let (bytes, body) = if super::reads_body(op) {
        body.buffer().await?
    } else {
        body.discard().await;
        (Bytes::new(), RawBody::empty())
    };
    let print = fingerprint(op, &param, &query, &content_type, &bytes);
    let claim = idempotency::claim(&state.svc, caller.storefront.id, &key, &print).await?;
    let claim_id = match claim {
        Claim::Claimed(id) => id,
        Claim::Answered(answer) => return Ok(replay(answer)),
        Claim::InProgress => return Err(ApiError::IdempotencyKeyInUse),
        Claim::OtherRequest => return Err(ApiError::IdempotencyKeyReused),
    };
    let run = async move {
        let answer = endpoint(op, &state, &caller, &param, &query, body)
            .await
            .unwrap_or_else(ApiError::into_response);
        settle(&state, claim_id, answer).await
    };
    tokio::spawn(run.in_current_span()).await.map_err(|e| {
        tracing::error!(error = %e, "an idempotent API request failed");
        ApiError::Internal
    })
}

/// Keeps the first answer for the key's repeats (or releases the key), and returns it.
async fn settle(state: &HttpState, claim_id: i64, answer: Response) -> Response {
    let release = || async {
        if let Err(e) = idempotency::release(&state.svc, claim_id).await {
            tracing::error!(error = %e, "could not release an idempotency key");
        }
    };
    if !kept(answer.status()) {
        release().await;
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let Some(bytes) = collect(body).await else {
        release().await;
        return ApiError::Internal.into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kept = KeptAnswer {
        status: parts.status.as_u16(),
        content_type: content_type.to_string(),
        body: bytes.to_vec(),
    };
    if let Err(e) = idempotency::keep(&state.svc, claim_id, &kept).await {
        // The effect happened; a repeat is told the key is in use until the claim is taken
        // over as abandoned.
        tracing::error!(error = %e, "could not keep the answer of an idempotency key");
    }
    Response::from_parts(parts, bytes.into())
}

/// A whole answer body (API answers are small JSON).
async fn collect<B>(body: B) -> Option<Bytes>
where
    B: http_body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(data) = frame.ok()?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Some(out.freeze())
}

/// The kept answer, again.
fn replay(answer: KeptAnswer) -> Response {
    let mut resp = Response::new(answer.body.into());
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&answer.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

/// The header as every POST documents it.
pub struct IdempotencyHeader;

impl IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_LENGTH))
            .pattern(Some("^[!-~]+$"));
        vec![
            ParameterBuilder::new()
                .name(HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Makes a retry safe: a unique key of yours for this request (a UUID). The first answer with a key is kept for {KEPT_FOR_HOURS} hours (per storefront), and a repeat of the same request with the same key gets it again, with `Idempotent-Replayed: true`, without doing anything a second time. The same key with another request (operation, path, query or body, byte for byte) is refused, 422 `idempotency_key_reused`; a repeat while the first request is still running is 409 `idempotency_key_in_use` (retry after a moment). An answer that asks you to try again (429 or 5xx) is not kept, so a retry with the key runs again. A key whose first request never answered (its server stopped) is free again after {ABANDONED_AFTER_SECONDS} seconds. {RULE}"
                )))
                .schema(Some(schema))
                .example(Some(json!("3f1c9a52-6f7e-4d0b-9b8e-2a51c1f0d7e4")))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_sent_once() {
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(HEADER, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(key_of(&headers(&[])).unwrap(), None);
        let uuid = "3f1c9a52-6f7e-4d0b-9b8e-2a51c1f0d7e4";
        assert_eq!(key_of(&headers(&[uuid])).unwrap().as_deref(), Some(uuid));
        let long = "k".repeat(MAX_LENGTH);
        assert_eq!(key_of(&headers(&[&long])).unwrap(), Some(long));
        for bad in [
            &["a b"][..],
            &["k".repeat(256).as_str()],
            &[""],
            &["a", "a"],
        ] {
            assert!(
                matches!(key_of(&headers(bad)), Err(ApiError::Validation(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_fingerprint_tells_requests_apart() {
        let base = fingerprint(Op::CreateAccount, "", "", "application/json", b"{}");
        assert_eq!(
            base,
            fingerprint(Op::CreateAccount, "", "", "application/json", b"{}")
        );
        for other in [
            fingerprint(Op::CreateAccount, "", "", "application/json", b"{ }"),
            fingerprint(Op::CreateAccount, "", "a=1", "application/json", b"{}"),
            fingerprint(Op::ResendPortalLink, "", "", "application/json", b"{}"),
            fingerprint(Op::ResendPortalLink, "1", "", "application/json", b"{}"),
            // The parts are delimited: moving bytes from one to the next is another request.
            fingerprint(Op::CreateAccount, "", "", "application/jso", b"n{}"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn answers_that_ask_to_try_again_are_not_kept() {
        for status in [200, 201, 202, 400, 404, 409, 413, 422] {
            assert!(kept(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [429, 500, 503] {
            assert!(!kept(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }
}
