//! For operations: `/healthz`, `/readyz` (database and broker), `/metrics` (Prometheus), and
//! the static assets.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use warp::Reply;
use warp::reply::Response;

use super::HttpState;
use super::pages::{IndexPage, render};

pub const APP_CSS: &str = include_str!("../../static/app.css");
pub const APP_JS: &str = include_str!("../../static/app.js");
pub const CONSOLE_JS: &str = include_str!("../../static/console.js");

pub fn healthz() -> Response {
    warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response()
}

pub async fn readyz(state: Arc<HttpState>) -> Response {
    let db = state.svc.store.ping().await;
    let queue = state.svc.queue.check().await;
    let body = serde_json::json!({
        "database": db.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "queue": queue.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
    });
    let status = if db.is_ok() && queue.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

pub async fn metrics(state: Arc<HttpState>) -> Response {
    let m = &state.svc.metrics;
    if let Ok(n) = state.svc.store.pending_deliveries().await {
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
        _ => return super::not_found_page(),
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

pub fn index() -> Response {
    render(
        StatusCode::OK,
        &IndexPage {
            asset_version: super::ASSET_VERSION.as_str(),
        },
    )
    .unwrap_or_else(|_| {
        super::plain_error(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
    })
}
