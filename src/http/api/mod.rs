//! The integration API under `/api/v1`: JSON for the operator's own systems, authenticated by
//! an API key (`Authorization: Bearer lk_…`) and scoped to the key's storefront. Nothing of
//! another storefront is reachable: its ids and references answer 404 (or, inside a body, the
//! same 422 as a reference that does not exist), so existence never leaks.
//!
//! The OpenAPI document (`doc.rs`) is generated from the handlers' `#[utoipa::path]`
//! attributes and the request and answer types, and served at `/api/v1/openapi.json`; the
//! route table is read from it (`router.rs`). Routes are matched first (unknown paths and
//! methods answer JSON 404/405 here, never the portal's pages), then the key is checked before
//! the body is read; errors become responses in one place, [`ApiError::into_response`]. Every
//! POST (and PATCH) goes through `idempotency.rs` (its `Idempotency-Key`) on its way to its handler; lists
//! share the keyset paging of `paging.rs`.

mod accounts;
mod body;
mod deliveries;
mod doc;
mod error;
mod error_doc;
mod fields;
mod idempotency;
mod input;
mod paging;
mod records;
mod router;
mod sender;
mod suppressions;
mod webhooks;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::path::Tail;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::body::{BodyStream, RawBody};
pub use self::error::{ApiError, ErrorCode};
use self::router::{Matched, Op, Router};
use super::HttpState;
use crate::store::{ApiKeyInfo, Storefront};
use crate::usecases::api_keys::{self, KeyCheck};

/// What every API key starts with.
const KEY_PREFIX: &str = "lk_";
/// An API key's length: the prefix and 43 characters of URL-safe base64.
const KEY_LENGTH: usize = 46;

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    doc::document()
}

/// The routes the API serves, as (METHOD, /path/{param}) under `/api/v1`.
pub fn served_routes() -> Vec<(String, String)> {
    Router::new(&openapi()).routes()
}

/// What the routes share: the state, the router and the document as served.
struct Api {
    state: Arc<HttpState>,
    router: Router,
    document: Bytes,
}

/// Everything under `/api`: the endpoints, and JSON errors for what no endpoint takes.
pub fn routes(state: Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let doc = openapi();
    let api = Arc::new(Api {
        state,
        router: Router::new(&doc),
        document: doc.to_json().expect("the document is JSON").into(),
    });
    let with_api = warp::any().map(move || api.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let v1 = warp::path("v1")
        .and(warp::path::tail())
        .and(warp::method())
        .and(with_api)
        .and(warp::header::headers_cloned())
        .and(raw_query)
        .and(body::stream())
        .then(dispatch);
    warp::path("api").and(v1.or_else(unrouted)).boxed()
}

async fn unrouted(_: Rejection) -> Result<(Response,), Infallible> {
    Ok((not_found().into_response(),))
}

fn not_found() -> ApiError {
    ApiError::NotFound(
        "There is no such endpoint. GET /api/v1/openapi.json describes them all.".into(),
    )
}

/// Who calls: the API key and its storefront.
pub struct Caller {
    pub key: ApiKeyInfo,
    pub storefront: Arc<Storefront>,
}

async fn dispatch(
    tail: Tail,
    method: Method,
    api: Arc<Api>,
    headers: HeaderMap,
    query: String,
    stream: BodyStream,
) -> Response {
    let body = RawBody::new(&headers, stream);
    let (op, params) = match api.router.find(&method, tail.as_str()) {
        Matched::Op(op, params) => (op, params),
        Matched::MethodNotAllowed => return ApiError::MethodNotAllowed.into_response(),
        Matched::NotFound => return not_found().into_response(),
    };
    let param = params.into_iter().next().map(decoded).unwrap_or_default();
    let answer = match op {
        Op::GetOpenApi => Ok(document(&api.document)),
        op => match authenticate(&api.state, &headers).await {
            Ok(caller) if method == Method::POST || method == Method::PATCH => {
                idempotency::post(api.state.clone(), caller, op, param, query, &headers, body).await
            }
            Ok(caller) => endpoint(op, &api.state, &caller, &param, &query, body).await,
            Err(e) => {
                body.discard().await;
                Err(e)
            }
        },
    };
    answer.unwrap_or_else(ApiError::into_response)
}

/// A path parameter, percent-decoded (`FAC%2DDT` is `FAC-DT`, as RFC 3986 has it); warp hands
/// segments over as sent. One that does not decode stays as sent, and fails the rule for
/// references or ids like any other bad value.
fn decoded(segment: String) -> String {
    match percent_encoding::percent_decode_str(&segment).decode_utf8() {
        Ok(text) => text.into_owned(),
        Err(_) => segment,
    }
}

async fn endpoint(
    op: Op,
    state: &HttpState,
    caller: &Caller,
    param: &str,
    query: &str,
    body: RawBody,
) -> Result<Response, ApiError> {
    match op {
        Op::GetOpenApi => unreachable!("the document needs no key"),
        Op::PutFacility => records::facility::put(state, caller, param, body.json().await?).await,
        Op::PutContact => records::contact::put(state, caller, param, body.json().await?).await,
        Op::PutRental => records::rental::put(state, caller, param, body.json().await?).await,
        Op::PutInvoice => records::invoice::put(state, caller, param, body.json().await?).await,
        Op::PutRentalAgreement => records::agreement::put(state, caller, param, query, body).await,
        Op::CreateAccount => accounts::create(state, caller, body.json().await?).await,
        Op::SendBookingConfirmation => {
            body.discard().await;
            accounts::booking_confirmation(state, caller, param).await
        }
        Op::ResendPortalLink => {
            body.discard().await;
            accounts::portal_link(state, caller, param).await
        }
        Op::ListDeliveries => {
            body.discard().await;
            deliveries::list(state, caller, query).await
        }
        Op::GetDelivery => {
            body.discard().await;
            deliveries::detail(state, caller, param).await
        }
        Op::ListFacilities => {
            body.discard().await;
            records::facility::list(state, caller, query).await
        }
        Op::GetFacility => {
            body.discard().await;
            records::facility::get(state, caller, param).await
        }
        Op::ListContacts => {
            body.discard().await;
            records::contact::list(state, caller, query).await
        }
        Op::GetContact => {
            body.discard().await;
            records::contact::get(state, caller, param).await
        }
        Op::ListRentals => {
            body.discard().await;
            records::rental::list(state, caller, query).await
        }
        Op::GetRental => {
            body.discard().await;
            records::rental::get(state, caller, param).await
        }
        Op::ListInvoices => {
            body.discard().await;
            records::invoice::list(state, caller, query).await
        }
        Op::GetInvoice => {
            body.discard().await;
            records::invoice::get(state, caller, param).await
        }
        Op::ListAccounts => {
            body.discard().await;
            accounts::list(state, caller, query).await
        }
        Op::GetAccount => {
            body.discard().await;
            accounts::detail(state, caller, param).await
        }
        // Webhooks (issue 11).
        Op::ListWebhookEndpoints => {
            body.discard().await;
            webhooks::list(state, caller).await
        }
        Op::CreateWebhookEndpoint => webhooks::create(state, caller, body.json().await?).await,
        Op::GetWebhookEndpoint => {
            body.discard().await;
            webhooks::get(state, caller, param).await
        }
        Op::UpdateWebhookEndpoint => {
            webhooks::update(state, caller, param, body.json().await?).await
        }
        Op::DeleteWebhookEndpoint => {
            body.discard().await;
            webhooks::delete(state, caller, param).await
        }
        Op::SendWebhookTest => {
            body.discard().await;
            webhooks::test(state, caller, param).await
        }
        Op::ListWebhookDeliveries => {
            body.discard().await;
            webhooks::deliveries(state, caller, param).await
        }
        Op::ListSuppressions => {
            body.discard().await;
            suppressions::list(state, caller, query).await
        }
        Op::GetSuppression => {
            body.discard().await;
            suppressions::detail(state, caller, param).await
        }
        Op::GetSender => {
            body.discard().await;
            sender::get(state, caller).await
        }
        Op::UpdateSender => sender::patch(state, caller, body.json().await?).await,
    }
}

/// Whether an operation reads its request body (the others throw it away unread).
fn reads_body(op: Op) -> bool {
    match op {
        Op::PutFacility
        | Op::PutContact
        | Op::PutRental
        | Op::PutInvoice
        | Op::PutRentalAgreement
        | Op::CreateAccount
        | Op::CreateWebhookEndpoint
        | Op::UpdateWebhookEndpoint
        | Op::UpdateSender => true,
        Op::GetOpenApi
        | Op::SendBookingConfirmation
        | Op::ResendPortalLink
        | Op::ListDeliveries
        | Op::GetDelivery
        | Op::ListFacilities
        | Op::GetFacility
        | Op::ListContacts
        | Op::GetContact
        | Op::ListRentals
        | Op::GetRental
        | Op::ListInvoices
        | Op::GetInvoice
        | Op::ListAccounts
        | Op::GetAccount
        | Op::ListWebhookEndpoints
        | Op::GetWebhookEndpoint
        | Op::DeleteWebhookEndpoint
        | Op::SendWebhookTest
        | Op::ListWebhookDeliveries
        | Op::ListSuppressions
        | Op::GetSuppression
        | Op::GetSender => false,
    }
}

/// What an API key looks like: `lk_` and 43 characters of URL-safe base64.
fn looks_like_key(key: &str) -> bool {
    key.len() == KEY_LENGTH
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The caller's key and storefront, from `Authorization: Bearer <key>`.
async fn authenticate(state: &HttpState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized { key_sent: false });
    };
    let unknown = ApiError::Unauthorized { key_sent: true };
    let key = value.to_str().ok().and_then(|v| {
        let (scheme, key) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
    });
    let Some(key) = key.filter(|k| looks_like_key(k)) else {
        return Err(unknown);
    };
    match api_keys::check(&state.svc, key).await? {
        KeyCheck::Live { key, storefront } => Ok(Caller { key, storefront }),
        KeyCheck::Unknown => Err(unknown),
        KeyCheck::Revoked => Err(ApiError::Revoked),
    }
}

fn document(json: &Bytes) -> Response {
    let mut resp = Response::new(json.clone().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON answer; API answers are never cached.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut resp = warp::reply::with_status(warp::reply::json(body), status).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Optional text is stored as `""`; the API shows it as `null`.
fn opt_text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn no_rental(rental_ref: &str) -> ApiError {
    no_record("rental", rental_ref)
}

/// The 404 of a reference that names no `kind` of the storefront (one that breaks the rule
/// for references is not repeated back).
fn no_record(kind: &str, ext_ref: &str) -> ApiError {
    ApiError::NotFound(if fields::is_ref(ext_ref) {
        format!("Your storefront has no {kind} with the reference {ext_ref:?}.")
    } else {
        format!("Your storefront has no {kind} with this reference.")
    })
}
