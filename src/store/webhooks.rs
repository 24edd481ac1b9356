//! Event webhooks (SPEC §9): the storefront's endpoints, the events they subscribe to, and one
//! delivery per event and endpoint with every try logged.
//!
//! An event is written by [`emit_events`] inside the transaction of the change it tells of,
//! with one `pending` delivery per enabled endpoint that subscribes to its type (an event no
//! endpoint wants is not written at all). The deliveries are due at once and the relay
//! ([`Store::take_webhook_relay_batch`]) publishes them; a worker claims one
//! ([`Store::claim_webhook_delivery`]), posts it and records the outcome
//! ([`Store::finish_webhook_delivery`]), which after three days of failure disables the
//! endpoint and writes its owners' emails in the same transaction.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

use super::Store;
use super::db::{Conn, DbResult, Row};
use super::deliveries::{NewDelivery, insert_delivery};
use super::events::{event_body, event_id};
use super::rows::StaffUser;
use crate::domain::emails::{EmailData, WebhookDisabled};
use crate::domain::events::{EventType, EventTypes};
use crate::params;

/// One endpoint, without its secret.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub storefront_id: i64,
    pub url: String,
    pub event_types: EventTypes,
    pub description: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// The start of the current run of failed tries (none since the last success).
    pub first_failure_at: Option<DateTime<Utc>>,
}

const ENDPOINT_COLUMNS: &str = "id, storefront_id, url, event_types, description, enabled, created_at, updated_at, disabled_at, disabled_reason, first_failure_at";

fn endpoint_from(r: &Row) -> WebhookEndpoint {
    WebhookEndpoint {
        id: r.i64(0),
        storefront_id: r.i64(1),
        url: r.string(2),
        event_types: EventTypes::from_stored(&r.string(3)),
        description: r.string(4),
        enabled: r.bool(5),
        created_at: r.ts(6),
        updated_at: r.ts(7),
        disabled_at: r.opt_ts(8),
        disabled_reason: r.opt_string(9),
        first_failure_at: r.opt_ts(10),
    }
}

/// An endpoint to create; the secret is already sealed with the server key.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub storefront_id: i64,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub event_types: EventTypes,
    pub description: String,
    pub enabled: bool,
}

/// What an update changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointChange {
    pub url: Option<String>,
    pub event_types: Option<EventTypes>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Who changed an endpoint, for the audit log.
#[derive(Debug, Clone, Copy)]
pub enum WebhookActor<'a> {
    Staff(&'a StaffUser),
    /// An integration API key, by its label.
    ApiKey(&'a str),
}

/// An event delivery a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedWebhook {
    pub id: i64,
    pub endpoint_id: i64,
    pub storefront_id: i64,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    /// The exact JSON to post.
    pub body: String,
    pub event_public_id: String,
    pub event_type: String,
    /// Tries before this one.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub endpoint_enabled: bool,
}

/// One try's record.
#[derive(Debug, Clone)]
pub struct WebhookTry {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub http_status: Option<i64>,
    /// The connection error, timeout, or refused target.
    pub error: Option<String>,
    pub response_excerpt: String,
    pub worker: String,
}

impl WebhookTry {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }

    /// As the attempt list and `last_error` say it.
    pub fn summary(&self) -> String {
        match (&self.error, self.http_status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("HTTP {s}"),
            (None, None) => "no answer".into(),
        }
    }
}

/// What happens after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookRetry {
    /// Try again at this time; the relay publishes it then if the queue's delayed copy is lost.
    At {
        next_attempt_at: DateTime<Utc>,
        relay_at: DateTime<Utc>,
    },
    /// Given up (three days of tries).
    GiveUp,
}

/// The outcome of a try as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFinished {
    /// The endpoint was disabled by this outcome.
    pub endpoint_disabled: bool,
    /// The owners' emails written with the disabling (to publish after the commit).
    pub owner_emails: Vec<i64>,
}

/// A delivery of an endpoint, as the console and the API list them.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_public_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub tries: Vec<WebhookAttempt>,
}

/// One logged try.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: String,
}

impl Store {
    /// Creates an endpoint (audited in the same transaction).
    pub async fn create_webhook_endpoint(
        &self,
        new: &NewWebhookEndpoint,
        actor: WebhookActor<'_>,
        now: DateTime<Utc>,
    ) -> DbResult<WebhookEndpoint> {
        let mut tx = self.db().begin().await?;
        let sql = format!(
            "INSERT INTO webhook_endpoints (storefront_id, url, secret_sealed, event_types, description,
                 enabled, created_at, updated_at, disabled_at, disabled_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) RETURNING {ENDPOINT_COLUMNS}"
        );
        let (disabled_at, reason) = if new.enabled {
            (None, None)
        } else {
            (Some(now), Some("disabled when created"))
        };
        let row = tx
            .query_one(
                &sql,
                &params![
                    new.storefront_id,
                    new.url.as_str(),
                    new.secret_sealed.clone(),
                    new.event_types.stored(),
                    new.description.as_str(),
                    new.enabled,
                    now,
                    disabled_at,
                    reason
                ],
            )
            .await?;
        let endpoint = endpoint_from(&row);
        audit(
            &mut *tx,
            new.storefront_id,
            actor,
            "webhook_endpoint_created",
            json!({"endpoint_id": endpoint.id, "url": endpoint.url, "event_types": endpoint.event_types.names()}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    /// The storefront's endpoints, oldest first.
    pub async fn webhook_endpoints(&self, storefront_id: i64) -> DbResult<Vec<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE storefront_id = $1 ORDER BY id"
        );
        Ok(self
            .db()
            .query(&sql, &params![storefront_id])
            .await?
            .iter()
            .map(endpoint_from)
            .collect())
    }

    /// One endpoint of the storefront (another storefront's is `None`).
    pub async fn webhook_endpoint(
        &self,
        storefront_id: i64,
        id: i64,
    ) -> DbResult<Option<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE storefront_id = $1 AND id = $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, id])
            .await?
            .as_ref()
            .map(endpoint_from))
    }

    /// Changes an endpoint of the storefront (audited); `None` when it has no such endpoint.
    /// Enabling clears the disabled time, its reason and the run of failures; disabling by hand
    /// records who did it.
    pub async fn update_webhook_endpoint(
        &self,
        storefront_id: i64,
        id: i64,
        change: &WebhookEndpointChange,
        actor: WebhookActor<'_>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<WebhookEndpoint>> {
        let mut tx = self.db().begin().await?;
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE storefront_id = $1 AND id = $2"
        );
        let Some(current) = tx
            .query_opt(&sql, &params![storefront_id, id])
            .await?
            .as_ref()
            .map(endpoint_from)
        else {
            return Ok(None);
        };
        let enabled = change.enabled.unwrap_or(current.enabled);
        let (disabled_at, reason, first_failure) = match (current.enabled, enabled) {
            (_, true) if !current.enabled => (None, None, None),
            (true, false) => (
                Some(now),
                Some(format!("disabled by {}", actor.name())),
                current.first_failure_at,
            ),
            _ => (
                current.disabled_at,
                current.disabled_reason.clone(),
                current.first_failure_at,
            ),
        };
        let sql = format!(
            "UPDATE webhook_endpoints SET url = $3, event_types = $4, description = $5, enabled = $6,
                 updated_at = $7, disabled_at = $8, disabled_reason = $9, first_failure_at = $10
             WHERE storefront_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
        );
        let row = tx
            .query_one(
                &sql,
                &params![
                    storefront_id,
                    id,
                    change.url.clone().unwrap_or(current.url.clone()),
                    change
                        .event_types
                        .as_ref()
                        .unwrap_or(&current.event_types)
                        .stored(),
                    change
                        .description
                        .clone()
                        .unwrap_or(current.description.clone()),
                    enabled,
                    now,
                    disabled_at,
                    reason,
                    first_failure
                ],
            )
            .await?;
        let updated = endpoint_from(&row);
        let mut details = json!({"endpoint_id": id});
        if change.url.is_some() {
            details["url"] = json!(updated.url);
        }
        if change.event_types.is_some() {
            details["event_types"] = json!(updated.event_types.names());
        }
        if let Some(e) = change.enabled {
            details["enabled"] = json!(e);
        }
        audit(
            &mut *tx,
            storefront_id,
            actor,
            "webhook_endpoint_updated",
            details,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(updated))
    }

    /// Deletes an endpoint of the storefront with its deliveries and their tries (audited);
    /// false when it has no such endpoint.
    pub async fn delete_webhook_endpoint(
        &self,
        storefront_id: i64,
        id: i64,
        actor: WebhookActor<'_>,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let mut tx = self.db().begin().await?;
        let url = tx
            .query_opt(
                "SELECT url FROM webhook_endpoints WHERE storefront_id = $1 AND id = $2",
                &params![storefront_id, id],
            )
            .await?
            .map(|r| r.string(0));
        let Some(url) = url else {
            return Ok(false);
        };
        tx.execute(
            "DELETE FROM webhook_attempts WHERE delivery_id IN
                 (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
            &params![id],
        )
        .await?;
        tx.execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            &params![id],
        )
        .await?;
        tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &params![id])
            .await?;
        audit(
            &mut *tx,
            storefront_id,
            actor,
            "webhook_endpoint_deleted",
            json!({"endpoint_id": id, "url": url}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes a `ping` event for one endpoint of the storefront, enabled or not (audited);
    /// `None` when it has no such endpoint, else the delivery written.
    pub async fn send_webhook_test(
        &self,
        storefront_id: i64,
        id: i64,
        actor: WebhookActor<'_>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<i64>> {
        let mut tx = self.db().begin().await?;
        let slug = tx
            .query_opt(
                "SELECT s.slug FROM webhook_endpoints e JOIN storefronts s ON s.id = e.storefront_id
                 WHERE e.storefront_id = $1 AND e.id = $2",
                &params![storefront_id, id],
            )
            .await?
            .map(|r| r.string(0));
        let Some(slug) = slug else {
            return Ok(None);
        };
        let public_id = event_id();
        let data = json!({"endpoint_id": id, "message": "A test event from Latchkey."});
        let body = event_body(&public_id, EventType::Ping, now, &slug, &data);
        let event_row = tx
            .query_one(
                "INSERT INTO webhook_events (public_id, storefront_id, type, created_at, body)
                 VALUES ($1, $2, 'ping', $3, $4) RETURNING id",
                &params![public_id.as_str(), storefront_id, now, body],
            )
            .await?
            .i64(0);
        let delivery = tx
            .query_one(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, storefront_id, status,
                     created_at, updated_at, next_attempt_at, relay_at)
                 VALUES ($1, $2, $3, 'pending', $4, $4, $4, $4) RETURNING id",
                &params![id, event_row, storefront_id, now],
            )
            .await?
            .i64(0);
        audit(
            &mut *tx,
            storefront_id,
            actor,
            "webhook_test_sent",
            json!({"endpoint_id": id, "event": public_id}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(delivery))
    }

    /// Takes an event delivery that is due (or whose worker's lease ran out) for a try.
    pub async fn claim_webhook_delivery(
        &self,
        id: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> DbResult<Option<ClaimedWebhook>> {
        let mut tx = self.db().begin().await?;
        let claimed = tx
            .query(
                "UPDATE webhook_deliveries SET status = 'sending', lease_until = $3, updated_at = $2
                 WHERE id = $1 AND ((status = 'pending' AND next_attempt_at <= $2)
                                    OR (status = 'sending' AND lease_until <= $2))
                 RETURNING id",
                &params![id, now, lease_until],
            )
            .await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let row = tx
            .query_one(
                "SELECT d.id, d.endpoint_id, d.storefront_id, e.url, e.secret_sealed, v.body,
                     v.public_id, v.type, d.attempts, d.created_at, e.enabled
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 JOIN webhook_events v ON v.id = d.event_id
                 WHERE d.id = $1",
                &params![id],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(ClaimedWebhook {
            id: row.i64(0),
            endpoint_id: row.i64(1),
            storefront_id: row.i64(2),
            url: row.string(3),
            secret_sealed: row.bytes(4),
            body: row.string(5),
            event_public_id: row.string(6),
            event_type: row.string(7),
            attempts: row.i64(8),
            created_at: row.ts(9),
            endpoint_enabled: row.bool(10),
        }))
    }

    /// Ends a claimed delivery without a try (its endpoint was disabled meanwhile).
    pub async fn abandon_webhook_delivery(
        &self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE webhook_deliveries SET status = 'failed', relay_at = NULL, lease_until = NULL,
                     updated_at = $2, last_error = $3
                 WHERE id = $1 AND status = 'sending'",
                &params![id, now, reason],
            )
            .await?;
        Ok(())
    }

    /// Records a try and what follows it, in one transaction: delivered; or tried again later;
    /// or given up. A success ends the endpoint's run of failures; a failure starts one (or
    /// continues it), and a run that has lasted `give_up` disables the endpoint, fails its
    /// other deliveries still waiting, and writes an email to each of the storefront's owners.
    pub async fn finish_webhook_delivery(
        &self,
        claimed: &ClaimedWebhook,
        attempt: &WebhookTry,
        retry: WebhookRetry,
        give_up: Duration,
        relay_after: Duration,
        now: DateTime<Utc>,
    ) -> DbResult<WebhookFinished> {
        let mut tx = self.db().begin().await?;
        let attempt_no = claimed.attempts + 1;
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, http_status,
                 error, response_excerpt, worker)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &params![
                claimed.id,
                attempt_no,
                attempt.started_at,
                attempt.duration_ms,
                attempt.http_status,
                attempt.error.clone(),
                attempt.response_excerpt.clone(),
                attempt.worker.clone()
            ],
        )
        .await?;
        let mut finished = WebhookFinished::default();
        if attempt.succeeded() {
            tx.execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, updated_at = $3,
                     delivered_at = $3, relay_at = NULL, lease_until = NULL, last_error = NULL
                 WHERE id = $1",
                &params![claimed.id, attempt_no, now],
            )
            .await?;
            tx.execute(
                "UPDATE webhook_endpoints SET first_failure_at = NULL WHERE id = $1",
                &params![claimed.endpoint_id],
            )
            .await?;
            tx.commit().await?;
            return Ok(finished);
        }
        let error = attempt.summary();
        match retry {
            WebhookRetry::At {
                next_attempt_at,
                relay_at,
            } => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = $2, updated_at = $3,
                         next_attempt_at = $4, relay_at = $5, lease_until = NULL, last_error = $6
                     WHERE id = $1",
                    &params![
                        claimed.id,
                        attempt_no,
                        now,
                        next_attempt_at,
                        relay_at,
                        error.as_str()
                    ],
                )
                .await?;
            }
            WebhookRetry::GiveUp => {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', attempts = $2, updated_at = $3,
                         relay_at = NULL, lease_until = NULL, last_error = $4
                     WHERE id = $1",
                    &params![
                        claimed.id,
                        attempt_no,
                        now,
                        format!("gave up after {attempt_no} tries: {error}")
                    ],
                )
                .await?;
            }
        }
        let endpoint = tx
            .query_opt(
                "UPDATE webhook_endpoints SET first_failure_at = COALESCE(first_failure_at, $2)
                 WHERE id = $1 RETURNING first_failure_at, enabled, url, storefront_id",
                &params![claimed.endpoint_id, now],
            )
            .await?;
        if let Some(ep) = endpoint
            && ep.bool(1)
            && now - ep.ts(0) >= give_up
        {
            let since = ep.ts(0);
            let url = ep.string(2);
            let storefront_id = ep.i64(3);
            let reason = format!(
                "deliveries failed for {} hours since {} (last: {error})",
                give_up.num_hours(),
                since.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            tx.execute(
                "UPDATE webhook_endpoints SET enabled = FALSE, disabled_at = $2, disabled_reason = $3,
                     updated_at = $2
                 WHERE id = $1",
                &params![claimed.endpoint_id, now, reason.as_str()],
            )
            .await?;
            tx.execute(
                "UPDATE webhook_deliveries SET status = 'failed', relay_at = NULL, lease_until = NULL,
                     updated_at = $2, last_error = 'the endpoint was disabled'
                 WHERE endpoint_id = $1 AND status IN ('pending', 'sending') AND id <> $3",
                &params![claimed.endpoint_id, now, claimed.id],
            )
            .await?;
            super::audit::insert_audit(
                &mut *tx,
                Some(storefront_id),
                None,
                "webhook_endpoint_disabled",
                &json!({"endpoint_id": claimed.endpoint_id, "url": url, "reason": reason}),
                now,
            )
            .await?;
            let owners = tx
                .query(
                    "SELECT email, full_name FROM staff_users
                     WHERE storefront_id = $1 AND role = 'owner' AND disabled_at IS NULL ORDER BY id",
                    &params![storefront_id],
                )
                .await?;
            for owner in &owners {
                let data = EmailData::WebhookDisabled(WebhookDisabled {
                    first_name: owner
                        .string(1)
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    url: url.clone(),
                    failing_since: since.to_rfc3339_opts(SecondsFormat::Secs, true),
                    last_error: error.clone(),
                });
                let delivery = NewDelivery::new(
                    storefront_id,
                    None,
                    owner.email(0),
                    "A webhook endpoint was disabled".into(),
                    data,
                    relay_after,
                );
                // An owner's address on the suppression list gets no email (nothing to publish).
                if let Some(id) = insert_delivery(&mut *tx, &delivery, now)
                    .await?
                    .to_publish()
                {
                    finished.owner_emails.push(id);
                }
            }
            finished.endpoint_disabled = true;
        }
        tx.commit().await?;
        Ok(finished)
    }

    /// Event deliveries whose relay time came: each given the next relay time, then returned
    /// for publishing (a row published twice is harmless: only one claim takes it).
    pub async fn take_webhook_relay_batch(
        &self,
        now: DateTime<Utc>,
        next_relay: DateTime<Utc>,
        limit: i64,
    ) -> DbResult<Vec<i64>> {
        let rows = self
            .db()
            .query(
                "UPDATE webhook_deliveries SET relay_at = $2
                 WHERE relay_at <= $1 AND id IN
                     (SELECT id FROM webhook_deliveries WHERE relay_at <= $1 ORDER BY relay_at LIMIT $3)
                 RETURNING id",
                &params![now, next_relay, limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.i64(0)).collect())
    }

    /// The newest deliveries of an endpoint of the storefront, each with its tries in order.
    pub async fn webhook_deliveries(
        &self,
        storefront_id: i64,
        endpoint_id: i64,
        limit: i64,
    ) -> DbResult<Vec<WebhookDelivery>> {
        let rows = self
            .db()
            .query(
                "SELECT d.id, d.endpoint_id, v.public_id, v.type, d.status, d.attempts, d.last_error,
                     d.created_at, d.next_attempt_at, d.delivered_at
                 FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
                 WHERE d.storefront_id = $1 AND d.endpoint_id = $2
                 ORDER BY d.id DESC LIMIT $3",
                &params![storefront_id, endpoint_id, limit],
            )
            .await?;
        let mut out: Vec<WebhookDelivery> = rows
            .iter()
            .map(|r| WebhookDelivery {
                id: r.i64(0),
                endpoint_id: r.i64(1),
                event_public_id: r.string(2),
                event_type: r.string(3),
                status: r.string(4),
                attempts: r.i64(5),
                last_error: r.opt_string(6),
                created_at: r.ts(7),
                next_attempt_at: r.ts(8),
                delivered_at: r.opt_ts(9),
                tries: Vec::new(),
            })
            .collect();
        let Some(oldest) = out.last().map(|d| d.id) else {
            return Ok(out);
        };
        let tries = self
            .db()
            .query(
                "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.http_status, a.error,
                     a.response_excerpt
                 FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
                 WHERE d.endpoint_id = $1 AND d.storefront_id = $2 AND a.delivery_id >= $3
                 ORDER BY a.delivery_id, a.attempt",
                &params![endpoint_id, storefront_id, oldest],
            )
            .await?;
        // The deliveries and their tries are two statements: a try that committed between them
        // (its delivery's count read before it) is left for the next read, so that each
        // delivery's status and its tries tell the same moment.
        for t in &tries {
            if let Some(d) = out
                .iter_mut()
                .find(|d| d.id == t.i64(0) && t.i64(1) <= d.attempts)
            {
                d.tries.push(WebhookAttempt {
                    attempt: t.i64(1),
                    started_at: t.ts(2),
                    duration_ms: t.i64(3),
                    http_status: t.opt_i64(4),
                    error: t.opt_string(5),
                    response_excerpt: t.string(6),
                });
            }
        }
        Ok(out)
    }
}

impl WebhookActor<'_> {
    fn name(&self) -> String {
        match self {
            WebhookActor::Staff(s) => s.actor(),
            WebhookActor::ApiKey(label) => format!("API key {label}"),
        }
    }
}

async fn audit(
    conn: &mut dyn Conn,
    storefront_id: i64,
    actor: WebhookActor<'_>,
    action: &str,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> DbResult<()> {
    match actor {
        WebhookActor::Staff(staff) => {
            super::audit::insert_audit(
                conn,
                Some(storefront_id),
                Some(staff),
                action,
                &details,
                now,
            )
            .await
        }
        WebhookActor::ApiKey(_) => {
            conn.execute(
                "INSERT INTO audit_log (storefront_id, staff_user_id, actor, action, details, created_at)
                 VALUES ($1, NULL, $2, $3, $4, $5)",
                &params![
                    storefront_id,
                    actor.name(),
                    action,
                    details.to_string(),
                    now
                ],
            )
            .await?;
            Ok(())
        }
    }
}
