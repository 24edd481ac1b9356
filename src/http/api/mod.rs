//! The integration API under `/api/v1`: JSON for the operator's own systems, authenticated by
//! an API key (`Authorization: Bearer lk_…`) and scoped to the key's storefront. Nothing of
//! another storefront is reachable: its ids and references answer 404 (or, inside a body, the
//! same 422 as a reference that does not exist), so existence never leaks.
//!
//! Routes are matched first (unknown paths and methods answer JSON 404/405 here, never the
//! portal's pages), then the key is checked before the body is read; errors become responses in
//! one place, [`ApiError::into_response`]. The OpenAPI document (`openapi.json` next to this
//! file) describes every endpoint and is served at `/api/v1/openapi.json`.

mod accounts;
mod body;
mod deliveries;
mod error;
mod input;
mod records;

use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::body::{BodyStream, RawBody};
pub use self::error::ApiError;
use super::HttpState;
use crate::operations::api_key_hash;
use crate::store::{ApiKeyInfo, Storefront};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The endpoints, matched before anything else is looked at.
enum Route {
    OpenApi,
    Facility(String),
    Contact(String),
    Rental(String),
    Invoice(String),
    Agreement(String),
    CreateAccount,
    BookingConfirmation(String),
    PortalLink(String),
    Deliveries,
    Delivery(String),
}

fn route() -> impl Filter<Extract = (Route,), Error = Rejection> + Clone {
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| Route::OpenApi);
    let facility = warp::path!("facilities" / String)
        .and(warp::put())
        .map(|p: String| Route::Facility(decoded(p)));
    let contact = warp::path!("contacts" / String)
        .and(warp::put())
        .map(|p: String| Route::Contact(decoded(p)));
    let rental = warp::path!("rentals" / String)
        .and(warp::put())
        .map(|p: String| Route::Rental(decoded(p)));
    let invoice = warp::path!("invoices" / String)
        .and(warp::put())
        .map(|p: String| Route::Invoice(decoded(p)));
    let agreement = warp::path!("rentals" / String / "agreement")
        .and(warp::put())
        .map(|p: String| Route::Agreement(decoded(p)));
    let booking = warp::path!("rentals" / String / "booking-confirmation")
        .and(warp::post())
        .map(|p: String| Route::BookingConfirmation(decoded(p)));
    let create_account = warp::path!("accounts")
        .and(warp::post())
        .map(|| Route::CreateAccount);
    let portal_link = warp::path!("accounts" / String / "portal-link")
        .and(warp::post())
        .map(|p: String| Route::PortalLink(decoded(p)));
    let deliveries = warp::path!("deliveries")
        .and(warp::get())
        .map(|| Route::Deliveries);
    let delivery = warp::path!("deliveries" / String)
        .and(warp::get())
        .map(|p: String| Route::Delivery(decoded(p)));
    openapi
        .or(facility)
        .unify()
        .or(contact)
        .unify()
        .or(rental)
        .unify()
        .or(invoice)
        .unify()
        .or(agreement)
        .unify()
        .or(booking)
        .unify()
        .or(create_account)
        .unify()
        .or(portal_link)
        .unify()
        .or(deliveries)
        .unify()
        .or(delivery)
        .unify()
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

/// Everything under `/api`: the endpoints, and JSON errors for what no endpoint takes.
pub fn routes(state: Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || state.clone());
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let v1 = warp::path("v1")
        .and(route())
        .and(with_state)
        .and(warp::header::headers_cloned())
        .and(raw_query)
        .and(body::stream())
        .then(dispatch);
    warp::path("api").and(v1.recover(unrouted).unify()).boxed()
}

async fn unrouted(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else {
        ApiError::NotFound(
            "There is no such endpoint. GET /api/v1/openapi.json describes them all.".into(),
        )
    };
    Ok(error.into_response())
}

/// Who calls: the API key and its storefront.
pub struct Caller {
    pub key: ApiKeyInfo,
    pub storefront: Arc<Storefront>,
}

async fn dispatch(
    route: Route,
    state: Arc<HttpState>,
    headers: HeaderMap,
    query: String,
    stream: BodyStream,
) -> Response {
    let body = RawBody::new(&headers, stream);
    let answer = match route {
        Route::OpenApi => Ok(openapi()),
        route => match authenticate(&state, &headers).await {
            Ok(caller) => endpoint(route, &state, &caller, &query, body).await,
            Err(e) => {
                body.discard().await;
                Err(e)
            }
        },
    };
    answer.unwrap_or_else(ApiError::into_response)
}

async fn endpoint(
    route: Route,
    state: &HttpState,
    caller: &Caller,
    query: &str,
    body: RawBody,
) -> Result<Response, ApiError> {
    match route {
        Route::OpenApi => Ok(openapi()),
        Route::Facility(r) => records::facility(state, caller, &r, body.json().await?).await,
        Route::Contact(r) => records::contact(state, caller, &r, body.json().await?).await,
        Route::Rental(r) => records::rental(state, caller, &r, body.json().await?).await,
        Route::Invoice(r) => records::invoice(state, caller, &r, body.json().await?).await,
        Route::Agreement(r) => records::agreement(state, caller, &r, query, body).await,
        Route::CreateAccount => accounts::create(state, caller, body.json().await?).await,
        Route::BookingConfirmation(r) => {
            body.discard().await;
            accounts::booking_confirmation(state, caller, &r).await
        }
        Route::PortalLink(id) => {
            body.discard().await;
            accounts::portal_link(state, caller, &id).await
        }
        Route::Deliveries => {
            body.discard().await;
            deliveries::list(state, caller, query).await
        }
        Route::Delivery(id) => {
            body.discard().await;
            deliveries::detail(state, caller, &id).await
        }
    }
}

/// What an API key looks like: `lk_` and 43 characters of URL-safe base64.
fn looks_like_key(key: &str) -> bool {
    key.len() == 46
        && key.starts_with("lk_")
        && key[3..]
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
    let svc = &state.svc;
    let Some(found) = svc.store.api_key_lookup(&api_key_hash(key)).await? else {
        return Err(unknown);
    };
    if found.revoked {
        return Err(ApiError::Revoked);
    }
    let Some(storefront) = svc.storefronts.by_id(found.key.storefront_id).await? else {
        return Err(unknown);
    };
    let now = svc.now();
    if found
        .last_used_at
        .is_none_or(|t| now - t >= chrono::Duration::minutes(1))
        && let Err(e) = svc.store.touch_api_key(found.key.id, now).await
    {
        tracing::warn!(error = %e, "could not record an API key's use");
    }
    Ok(Caller {
        key: found.key,
        storefront,
    })
}

fn openapi() -> Response {
    let mut resp = OPENAPI.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON answer; API answers are never cached.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = warp::reply::with_status(warp::reply::json(body), status).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Times as RFC 3339 in UTC, to the millisecond.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Optional text is stored as `""`; the API shows it as `null`.
fn opt_text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::from(s)
    }
}

/// A database id in a path or cursor: a positive decimal number.
fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|id| *id > 0)
}

fn no_rental(rental_ref: &str) -> ApiError {
    ApiError::NotFound(if input::is_ref(rental_ref) {
        format!("Your storefront has no rental with the reference {rental_ref:?}.")
    } else {
        "Your storefront has no rental with this reference.".into()
    })
}
