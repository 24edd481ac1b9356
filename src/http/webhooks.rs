//! `POST /webhooks/stripe`: Stripe's events, handed to BillingSync. 400 for a bad signature, a
//! stale timestamp or a malformed body (nothing changes); 200 once the event is stored; 503
//! when it cannot be stored (Stripe tries again).

use http::StatusCode;
use warp::Reply;
use warp::reply::Response;

use super::HttpState;
use super::form::Body;
use crate::actors::billing_sync::{HandleWebhook, WebhookError};
use crate::error::AppError;

/// Stripe's events are small; anything bigger is not one of them.
pub const WEBHOOK_LIMIT: u64 = 1024 * 1024;

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

pub async fn stripe(
    state: std::sync::Arc<HttpState>,
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
    let handled = state
        .actors
        .billing_sync
        .send(HandleWebhook { payload, signature })
        .await;
    match handled {
        Ok(Ok(())) => json(StatusCode::OK, serde_json::json!({"received": true})),
        Ok(Err(WebhookError::App(AppError::Unavailable(e)))) => {
            tracing::warn!(error = %e, "could not store a webhook event");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "try again"}),
            )
        }
        Ok(Err(WebhookError::App(e))) => {
            tracing::error!(error = %e, "webhook failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "internal"}),
            )
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "webhook refused");
            json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e.to_string()}),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "billing actor unavailable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "try again"}),
            )
        }
    }
}
