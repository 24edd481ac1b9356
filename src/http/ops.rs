//! For operations: `/healthz` (public and operations port); on the operations port only
//! (`ops_listen`), `/readyz` (database and broker, each named) and `/metrics` (Prometheus);
//! and the static assets.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::frame::{not_found_page, plain_error, render};
use crate::services::Services;

/// What the operations listener needs.
pub struct OpsState {
    pub svc: Arc<Services>,
    /// A worker is not ready without its broker; a web node is (the relay publishes what the
    /// broker missed), so a broker outage never takes every web node out of the balancer.
    pub broker_required: bool,
}

/// The operations port's routes: `/healthz`, `/readyz`, `/metrics`; anything else 404.
pub fn routes(state: Arc<OpsState>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || state.clone());
    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(healthz);
    let readyz = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .then(readyz);
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state)
        .then(metrics);
    healthz
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .recover(|_| async {
            Ok::<_, std::convert::Infallible>(
                warp::reply::with_status("not found\n", StatusCode::NOT_FOUND).into_response(),
            )
        })
        .unify()
        .boxed()
}

pub const APP_CSS: &str = include_str!("../../static/app.css");
pub const APP_JS: &str = include_str!("../../static/app.js");
pub const CONSOLE_JS: &str = include_str!("../../static/console.js");

pub fn healthz() -> Response {
    warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response()
}

/// Ready when the database answers, and for a worker the broker too. Each dependency is named
/// with `ok` or its error; `role` says which rule applied.
pub async fn readyz(state: Arc<OpsState>) -> Response {
    // The probe asks the dependencies themselves (the store's ping, the broker's check): it is
    // about the infrastructure, not a use case, and its answer names their own errors.
    let (db, queue) = tokio::join!(state.svc.store.ping(), state.svc.queue.check());
    let ready = db.is_ok() && (queue.is_ok() || !state.broker_required);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "role": if state.broker_required { "worker" } else { "web" },
        "database": db.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "queue": queue.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

pub async fn metrics(state: Arc<OpsState>) -> Response {
    let m = &state.svc.metrics;
    if let Ok(n) = crate::usecases::deliveries::pending(&state.svc).await {
        m.pending_deliveries.set(n);
    }
    if let Ok(n) = state.svc.queue.depth().await {
        m.queue_depth.set(n as i64);
    }
    let mut resp = m.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

pub fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        _ => return not_found_page(),
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

#[derive(askama::Template)]
#[template(path = "index.html")]
struct IndexPage {
    asset_version: &'static str,
    /// No storefront here: the visitor's language cookie, else `Accept-Language`.
    t: crate::i18n::Lang,
}

pub fn index(svc: &Services, info: &super::frame::RequestInfo) -> Response {
    let t = svc.languages.for_visitor(
        info.cookie(crate::i18n::COOKIE),
        info.accept_language.as_deref(),
        crate::i18n::DEFAULT,
    );
    render(
        StatusCode::OK,
        &IndexPage {
            asset_version: super::ASSET_VERSION.as_str(),
            t,
        },
    )
    .unwrap_or_else(|_| plain_error(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong."))
}
