//! `POST /webhooks/stripe`: Stripe's events, handed to BillingSync. 400 for a bad signature, a
//! stale timestamp or a malformed body (nothing changes); 200 once the event is stored; 503
//! when it cannot be stored (Stripe tries again).
//!
//! An unsigned request must not cost more than a normal page: the header is parsed and its
//! timestamp checked before any hashing, a header with more than a few signatures is refused,
//! and the one HMAC runs on the blocking pool (at most one per CPU core at a time), never on
//! the threads that answer requests.

use std::sync::Arc;

use http::StatusCode;
use tokio::sync::Semaphore;
use warp::Reply;
use warp::reply::Response;

use super::HttpState;
use super::frame::Body;
use crate::billing::WebhookError;
use crate::domain::webhook::{SignatureError, SignatureHeader, TOLERANCE_SECONDS};
use crate::error::AppError;
use crate::usecases::billing;

/// Stripe's events are a few KiB; 256 KiB leaves room for the largest of them.
pub const WEBHOOK_LIMIT: u64 = 256 * 1024;

/// How many signature checks run at once: one per CPU core. More requests wait their turn
/// (each holds only its connection meanwhile).
#[derive(Clone)]
pub struct SignatureChecks(Arc<Semaphore>);

impl Default for SignatureChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self(Arc::new(Semaphore::new(cores)))
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn refused(e: WebhookError) -> Response {
    tracing::info!(error = %e, "webhook refused");
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"error": e.to_string()}),
    )
}

fn try_again() -> Response {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({"error": "try again"}),
    )
}

pub async fn stripe(
    state: Arc<HttpState>,
    checks: SignatureChecks,
    signature: Option<String>,
    body: Body,
) -> Response {
    let payload = match body {
        Body::Read(b) => b,
        Body::TooLarge => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "too large"}),
            );
        }
        Body::Broken => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "broken body"}),
            );
        }
    };
    let config = state.svc.config.clone();
    if config.stripe_webhook_secret.is_none() {
        return refused(WebhookError::NotConfigured);
    }
    // The cheap checks: the header's shape, the number of signatures, the timestamp.
    let now = state.svc.now().timestamp();
    let header = match SignatureHeader::parse(signature.as_deref())
        .and_then(|h| h.check_time(now, TOLERANCE_SECONDS).map(|()| h))
    {
        Ok(h) => h,
        Err(e) => return refused(e.into()),
    };
    let Ok(permit) = checks.0.clone().acquire_owned().await else {
        return try_again();
    };
    state.svc.metrics.webhook_hmacs.inc();
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let secret = config
            .stripe_webhook_secret
            .as_ref()
            .ok_or(SignatureError::Missing)?;
        header.verify(payload, secret.expose())
    })
    .await;
    let payload = match verified {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return refused(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "webhook signature check failed");
            return try_again();
        }
    };
    match billing::handle_webhook(&state.payments, payload).await {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"received": true})),
        Err(WebhookError::App(AppError::Unavailable(e))) => {
            tracing::warn!(error = %e, "could not store a webhook event");
            try_again()
        }
        Err(WebhookError::App(e)) => {
            tracing::error!(error = %e, "webhook failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "internal"}),
            )
        }
        Err(e) => refused(e),
    }
}
