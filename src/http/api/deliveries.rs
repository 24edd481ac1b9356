//! The delivery log (every email the storefront sent), with the Emails tab's filters and
//! keyset paging, and one delivery with its attempts.

use http::StatusCode;
use serde_json::{Value, json};
use warp::reply::Response;

use super::error::ApiError;
use super::input::*;
use super::{Caller, json_response, rfc3339};
use crate::http::HttpState;
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryScope, DeliveryStatus};

pub const LIMIT_DEFAULT: i64 = 50;
pub const LIMIT_MAX: i64 = 100;
const RECIPIENT_MAX: usize = 254;

/// A page's cursor: the id the next page starts below.
fn cursor(raw: &str) -> Option<i64> {
    super::parse_id(raw)
}

pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = parse_query(
        query,
        &["status", "recipient", "facility", "before", "limit"],
    )?;
    let mut p = Problems::default();
    let status = q.get("status").and_then(|s| {
        let parsed = DeliveryStatus::parse(s);
        if parsed.is_none() {
            let all: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            p.add("status", format!("Must be one of: {}.", all.join(", ")));
        }
        parsed
    });
    let recipient = q.get("recipient").map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = recipient
        && (r.chars().count() > RECIPIENT_MAX || has_hidden(r))
    {
        p.add(
            "recipient",
            "Must be an email address (at most 254 characters, no control characters).",
        );
    }
    if q.get("facility").is_some_and(|f| !is_ref(f)) {
        p.add("facility", REF_RULE);
    }
    let before = q.get("before").and_then(|b| {
        let parsed = cursor(b);
        if parsed.is_none() {
            p.add("before", "Must be the `next` cursor of an earlier page.");
        }
        parsed
    });
    let limit = match q.get("limit") {
        None => LIMIT_DEFAULT,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=LIMIT_MAX).contains(&n) => n,
            _ => {
                p.add(
                    "limit",
                    format!("Must be a whole number from 1 to {LIMIT_MAX}."),
                );
                LIMIT_DEFAULT
            }
        },
    };
    if !p.is_empty() {
        return Err(p.into_error());
    }
    let store = &state.svc.store;
    let scope = match q.get("facility") {
        None => DeliveryScope::Storefront(caller.storefront.id),
        Some(facility_ref) => {
            let id = store
                .facility_id_by_ref(caller.storefront.id, facility_ref)
                .await?
                .ok_or_else(|| ApiError::UnknownFacility(facility_ref.to_string()))?;
            DeliveryScope::Facility(id)
        }
    };
    let filter = DeliveryFilter {
        status,
        recipient: recipient.map(str::to_string),
    };
    let page = store.deliveries_page(scope, &filter, before, limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "data": page.deliveries.iter().map(delivery_view).collect::<Vec<_>>(),
            "next": page.next.map(|n| n.to_string()),
        }),
    ))
}

pub async fn detail(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("Your storefront has no delivery with this id.".into());
    let id = super::parse_id(id).ok_or_else(not_found)?;
    let store = &state.svc.store;
    let delivery = store
        .storefront_delivery(caller.storefront.id, id)
        .await?
        .ok_or_else(not_found)?;
    let attempts = store.delivery_attempts(id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "delivery": delivery_view(&delivery),
            "attempts": attempts.iter().map(attempt_view).collect::<Vec<_>>(),
        }),
    ))
}

fn delivery_view(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "kind": d.kind,
        "recipient": d.recipient,
        "subject": d.subject,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "last_error": d.last_error,
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
        "sent_at": d.sent_at.map(rfc3339),
    })
}

fn attempt_view(a: &Attempt) -> Value {
    json!({
        "attempt": a.attempt,
        "started_at": rfc3339(a.started_at),
        "finished_at": rfc3339(a.finished_at),
        "outcome": a.outcome,
        "smtp_code": a.smtp_code,
        "detail": a.detail,
    })
}
