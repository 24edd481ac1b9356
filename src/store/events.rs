//! Events for the operator's systems (SPEC §9), written by [`emit_events`] inside the
//! transaction of the change they tell of: one `webhook_events` row per event that at least one
//! enabled endpoint of the storefront subscribes to, and a `pending` delivery per such endpoint,
//! due at once (the webhook relay publishes it; `webhooks` has the rest).
//!
//! The rest of the code calls only this: `emit_event(&mut *tx, NewEvent::new(storefront_id,
//! EventType::…, json!({…})), now)`.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use serde_json::json;

use super::db::{Conn, DbError, DbResult};
use crate::domain::events::{EventType, EventTypes};
use crate::params;

/// An event to tell the operator's systems about.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub storefront_id: i64,
    pub event_type: EventType,
    /// The `data` of the event's JSON.
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(storefront_id: i64, event_type: EventType, data: serde_json::Value) -> Self {
        Self {
            storefront_id,
            event_type,
            data,
        }
    }
}

/// A new event id: `evt_` and 24 hex digits.
pub(super) fn event_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("evt_{}", hex::encode(bytes))
}

/// The JSON every endpoint receives: `{id, type, created, storefront, data}`.
pub fn event_body(
    public_id: &str,
    event_type: EventType,
    created: DateTime<Utc>,
    storefront_slug: &str,
    data: &serde_json::Value,
) -> String {
    json!({
        "id": public_id,
        "type": event_type.as_str(),
        "created": created.to_rfc3339_opts(SecondsFormat::Secs, true),
        "storefront": storefront_slug,
        "data": data,
    })
    .to_string()
}

/// Writes the events inside the caller's transaction (the one of the change they tell of), each
/// with a delivery per enabled endpoint of its storefront that subscribes to its type; `only`
/// sends to that one endpoint whatever it subscribes to (the test event). Returns the ids of
/// the deliveries written (the relay publishes them; see the module's header).
pub async fn emit_events(
    conn: &mut dyn Conn,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> DbResult<Vec<i64>> {
    emit(conn, events, None, now).await
}

/// [`emit_events`] for one event.
pub async fn emit_event(
    conn: &mut dyn Conn,
    event: NewEvent,
    now: DateTime<Utc>,
) -> DbResult<Vec<i64>> {
    emit(conn, std::slice::from_ref(&event), None, now).await
}

/// An enabled endpoint: its id, what it subscribes to, its storefront's slug.
type Subscriber = (i64, EventTypes, String);

async fn emit(
    conn: &mut dyn Conn,
    events: &[NewEvent],
    only: Option<i64>,
    now: DateTime<Utc>,
) -> DbResult<Vec<i64>> {
    let mut written = Vec::new();
    // The endpoints of each storefront named, read once per storefront.
    let mut storefronts: Vec<(i64, Vec<Subscriber>)> = Vec::new();
    for event in events {
        if !storefronts.iter().any(|(sf, _)| *sf == event.storefront_id) {
            let rows = conn
                .query(
                    "SELECT e.id, e.event_types, s.slug FROM webhook_endpoints e
                     JOIN storefronts s ON s.id = e.storefront_id
                     WHERE e.storefront_id = $1 AND e.enabled ORDER BY e.id",
                    &params![event.storefront_id],
                )
                .await?;
            let endpoints = rows
                .iter()
                .map(|r| (r.i64(0), EventTypes::from_stored(&r.string(1)), r.string(2)))
                .collect();
            storefronts.push((event.storefront_id, endpoints));
        }
        let endpoints = &storefronts
            .iter()
            .find(|(sf, _)| *sf == event.storefront_id)
            .expect("just read")
            .1;
        let targets: Vec<(i64, &str)> = endpoints
            .iter()
            .filter(|(id, types, _)| match only {
                Some(only) => *id == only,
                None => types.contains(event.event_type),
            })
            .map(|(id, _, slug)| (*id, slug.as_str()))
            .collect();
        let Some((_, slug)) = targets.first() else {
            continue;
        };
        let public_id = event_id();
        let body = event_body(&public_id, event.event_type, now, slug, &event.data);
        let event_row = conn
            .query(
                "INSERT INTO webhook_events (public_id, storefront_id, type, created_at, body)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &params![
                    public_id.as_str(),
                    event.storefront_id,
                    event.event_type.as_str(),
                    now,
                    body
                ],
            )
            .await?
            .first()
            .map(|r| r.i64(0))
            .ok_or_else(|| DbError::Query("insert returned no id".into()))?;
        for (endpoint_id, _) in targets {
            let id = conn
                .query(
                    "INSERT INTO webhook_deliveries (endpoint_id, event_id, storefront_id, status,
                         created_at, updated_at, next_attempt_at, relay_at)
                     VALUES ($1, $2, $3, 'pending', $4, $4, $4, $4) RETURNING id",
                    &params![endpoint_id, event_row, event.storefront_id, now],
                )
                .await?
                .first()
                .map(|r| r.i64(0))
                .ok_or_else(|| DbError::Query("insert returned no id".into()))?;
            written.push(id);
        }
    }
    Ok(written)
}

/// `invoice.paid` or `invoice.payment_failed` for an invoice, inside the transaction that
/// changed it. `payment_intent` names the PaymentIntent the change was about when the invoice
/// no longer does (a failed one is cleared from it, so that its next Checkout starts afresh).
pub(crate) async fn emit_invoice_event(
    conn: &mut dyn Conn,
    invoice_id: i64,
    event_type: EventType,
    payment_intent: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let Some(r) = conn
        .query(
            "SELECT i.storefront_id, i.id, i.external_ref, i.number, i.amount_minor, i.currency,
                 i.status, i.paid_at, i.payment_intent_id, c.account_id
             FROM invoices i JOIN contacts c ON c.id = i.contact_id WHERE i.id = $1",
            &params![invoice_id],
        )
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let data = json!({
        "invoice_id": r.i64(1),
        "ref": r.string(2),
        "number": r.string(3),
        "amount": {"minor": r.i64(4), "currency": r.string(5)},
        "status": r.string(6),
        "paid_at": r.opt_ts(7).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "payment_intent": r.opt_string(8).or_else(|| payment_intent.map(str::to_string)),
        "account_id": r.opt_i64(9),
    });
    emit_event(conn, NewEvent::new(r.i64(0), event_type, data), now).await?;
    Ok(())
}

/// `payment_method.added` / `payment_method.removed` for the methods of an account whose
/// Stripe ids changed (`before` → `after`), inside the transaction that changed them.
pub(crate) async fn emit_payment_method_events(
    conn: &mut dyn Conn,
    account_id: i64,
    before: &[String],
    after: &[(String, String, String)],
    now: DateTime<Utc>,
) -> DbResult<()> {
    let added: Vec<_> = after
        .iter()
        .filter(|(id, _, _)| !before.contains(id))
        .collect();
    let removed: Vec<_> = before
        .iter()
        .filter(|id| !after.iter().any(|(a, _, _)| a == *id))
        .collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let Some(sf) = conn
        .query(
            "SELECT storefront_id FROM accounts WHERE id = $1",
            &params![account_id],
        )
        .await?
        .first()
        .map(|r| r.i64(0))
    else {
        return Ok(());
    };
    let mut events = Vec::new();
    for (id, kind, last4) in added {
        events.push(NewEvent::new(
            sf,
            EventType::PaymentMethodAdded,
            json!({"account_id": account_id, "payment_method": id, "kind": kind, "last4": last4}),
        ));
    }
    for id in removed {
        events.push(NewEvent::new(
            sf,
            EventType::PaymentMethodRemoved,
            json!({"account_id": account_id, "payment_method": id}),
        ));
    }
    emit_events(conn, &events, now).await?;
    Ok(())
}

/// The Stripe ids of an account's stored payment methods (before a change).
pub(crate) async fn payment_method_ids(
    conn: &mut dyn Conn,
    account_id: i64,
) -> DbResult<Vec<String>> {
    Ok(conn
        .query(
            "SELECT stripe_id FROM payment_methods WHERE account_id = $1",
            &params![account_id],
        )
        .await?
        .iter()
        .map(|r| r.string(0))
        .collect())
}
