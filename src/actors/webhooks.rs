//! WebhookSender: posts event deliveries taken from the webhook queue (RabbitMQ's
//! `{prefix}.webhooks`, or a second in-process queue), signs each post, records every try, and
//! schedules retries with growing delays (`webhooks.retry_delays_seconds`, the last repeating)
//! for up to `webhooks.give_up_hours` (three days) after the event; an endpoint failing that
//! long is disabled and its owners emailed ([`crate::store::Store::finish_webhook_delivery`]).
//!
//! Its relay (on a timer, woken early by [`Services::events_written`], and as a single step for
//! tests) publishes the deliveries whose relay time came: fresh events, retries whose delayed
//! message was lost, and tries whose worker died. A delivery is claimed before each try, so a
//! copy published twice is posted once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::consumer::consume;
use super::spawn_work;
use crate::error::AppError;
use crate::queue::{MailMessage, MailQueue};
use crate::services::Services;
use crate::store::{ClaimedWebhook, WebhookRetry, WebhookTry};
use crate::webhooks::{WebhookClient, signature};

pub struct WebhookSender {
    work: Arc<WebhookWork>,
    run_relay: bool,
}

/// The sender's state, shared with the tasks that do its work.
pub struct WebhookWork {
    svc: Arc<Services>,
    queue: Arc<dyn MailQueue>,
    client: WebhookClient,
}

impl WebhookSender {
    pub fn new(svc: Arc<Services>, queue: Arc<dyn MailQueue>, run_relay: bool) -> Self {
        let w = &svc.config.webhooks;
        let client = WebhookClient::new(
            Duration::from_secs(w.timeout_seconds.max(1)),
            w.allow_private_targets,
        );
        Self {
            work: Arc::new(WebhookWork { svc, queue, client }),
            run_relay,
        }
    }
}

impl Actor for WebhookSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.run_relay {
            return;
        }
        let work = self.work.clone();
        let every = Duration::from_secs_f64(work.svc.config.webhooks.relay_interval_seconds);
        ctx.spawn(
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = work.svc.webhook_nudge.notified() => {}
                    }
                    if let Err(e) = work.relay_once().await {
                        tracing::warn!(error = %e, "webhook relay pass failed");
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Post one event delivery (one queue message).
#[derive(Message)]
#[rtype(result = "Result<WebhookOutcome, AppError>")]
pub struct DeliverWebhook {
    pub delivery_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Not due, already handled, or held by another worker.
    Skipped,
    Delivered,
    /// Failed; tried again after this.
    Retrying {
        retry_in: Duration,
    },
    /// Given up (or its endpoint is disabled).
    Failed,
}

/// Publish the event deliveries whose relay time came; answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct RelayWebhooks;

impl Handler<DeliverWebhook> for WebhookSender {
    type Result = ResponseFuture<Result<WebhookOutcome, AppError>>;

    fn handle(&mut self, msg: DeliverWebhook, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.deliver(msg.delivery_id).await })
    }
}

impl Handler<RelayWebhooks> for WebhookSender {
    type Result = ResponseFuture<Result<usize, AppError>>;

    fn handle(&mut self, _: RelayWebhooks, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.relay_once().await })
    }
}

impl WebhookWork {
    fn relay_after(&self) -> chrono::Duration {
        self.svc.config.relay_after()
    }

    async fn relay_once(&self) -> Result<usize, AppError> {
        let svc = &self.svc;
        let mut published = 0;
        loop {
            let now = svc.now();
            let batch = svc
                .store
                .take_webhook_relay_batch(now, now + self.relay_after(), 500)
                .await?;
            let n = batch.len();
            for id in batch {
                match self.queue.publish(MailMessage { delivery_id: id }).await {
                    Ok(()) => published += 1,
                    Err(e) => {
                        tracing::debug!(webhook_delivery_id = id, error = %e, "webhook relay could not publish");
                    }
                }
            }
            if n < 500 {
                break;
            }
        }
        if published > 0 {
            tracing::debug!(published, "relayed webhook deliveries");
        }
        Ok(published)
    }

    async fn deliver(&self, id: i64) -> Result<WebhookOutcome, AppError> {
        let svc = &self.svc;
        let cfg = &svc.config.webhooks;
        let now = svc.now();
        let lease = chrono::Duration::seconds((cfg.timeout_seconds as i64 * 3).max(60));
        let Some(claimed) = svc
            .store
            .claim_webhook_delivery(id, now, now + lease)
            .await?
        else {
            return Ok(WebhookOutcome::Skipped);
        };
        if !claimed.endpoint_enabled && claimed.event_type != "ping" {
            svc.store
                .abandon_webhook_delivery(id, "the endpoint is disabled", now)
                .await?;
            return Ok(WebhookOutcome::Failed);
        }
        let started_at = svc.now();
        let attempt = self.post(&claimed, started_at).await;
        let finished_at = svc.now();
        let give_up = chrono::Duration::hours(cfg.give_up_hours as i64);
        let (retry, delayed) = self.next_try(&claimed, finished_at, give_up);
        let finished = svc
            .store
            .finish_webhook_delivery(
                &claimed,
                &attempt,
                retry,
                give_up,
                self.relay_after(),
                finished_at,
            )
            .await?;
        for delivery_id in &finished.owner_emails {
            svc.publisher.enqueue(*delivery_id);
        }
        if finished.endpoint_disabled {
            tracing::warn!(
                endpoint_id = claimed.endpoint_id,
                url = %claimed.url,
                "webhook endpoint disabled after failing for {} hours",
                cfg.give_up_hours
            );
        }
        if attempt.succeeded() {
            return Ok(WebhookOutcome::Delivered);
        }
        tracing::info!(
            webhook_delivery_id = id,
            attempt = claimed.attempts + 1,
            error = %attempt.summary(),
            "webhook delivery failed"
        );
        match retry {
            WebhookRetry::GiveUp => Ok(WebhookOutcome::Failed),
            WebhookRetry::At {
                next_attempt_at, ..
            } => {
                let retry_in = (next_attempt_at - finished_at).to_std().unwrap_or_default();
                // Only the configured delays get a delayed copy (one TTL queue each); a try
                // brought forward to the three-day limit is the relay's.
                if let Some(delay) = delayed
                    && let Err(e) = self
                        .queue
                        .publish_delayed(MailMessage { delivery_id: id }, delay)
                        .await
                {
                    tracing::warn!(webhook_delivery_id = id, error = %e, "could not schedule the retry; the relay will");
                }
                Ok(WebhookOutcome::Retrying { retry_in })
            }
        }
    }

    /// When to try again after a failed try, and the configured delay when it is one.
    fn next_try(
        &self,
        claimed: &ClaimedWebhook,
        now: chrono::DateTime<chrono::Utc>,
        give_up: chrono::Duration,
    ) -> (WebhookRetry, Option<Duration>) {
        let delays = self.svc.config.webhook_retry_delays();
        let give_up_at = claimed.created_at + give_up;
        if now >= give_up_at || delays.is_empty() {
            return (WebhookRetry::GiveUp, None);
        }
        let n = (claimed.attempts as usize).min(delays.len() - 1);
        let delay = delays[n];
        let planned = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
        let (next, delayed) = if planned > give_up_at {
            (give_up_at, None)
        } else {
            (planned, Some(delay))
        };
        (
            WebhookRetry::At {
                next_attempt_at: next,
                relay_at: next + self.relay_after(),
            },
            delayed,
        )
    }

    async fn post(
        &self,
        claimed: &ClaimedWebhook,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> WebhookTry {
        let svc = &self.svc;
        let worker = svc.worker_name.clone();
        let Some(secret) = svc.keys.open_secret(&claimed.secret_sealed) else {
            return WebhookTry {
                started_at,
                duration_ms: 0,
                http_status: None,
                error: Some(
                    "the signing secret cannot be opened (was the secret key changed?)".into(),
                ),
                response_excerpt: String::new(),
                worker,
            };
        };
        let sig = signature(
            secret.expose(),
            started_at.timestamp(),
            claimed.body.as_bytes(),
        );
        let out = self
            .client
            .post(&claimed.url, claimed.body.clone(), sig)
            .await;
        WebhookTry {
            started_at,
            duration_ms: out.duration.as_millis() as i64,
            http_status: out.status.map(i64::from),
            error: out.error,
            response_excerpt: out.excerpt,
            worker,
        }
    }
}

/// A worker: consumes the webhook queue with `concurrency` posts in flight and hands each to
/// the sender; reconnects when the broker goes away; on shutdown stops taking messages and
/// finishes the posts in flight (up to `grace`) before the consumer's channel closes (see
/// [`consume`]).
pub async fn run_webhook_worker(
    queue: Arc<dyn MailQueue>,
    sender: Addr<WebhookSender>,
    concurrency: u16,
    grace: Duration,
    shutdown: watch::Receiver<bool>,
) {
    consume(
        queue,
        "webhook",
        concurrency,
        grace,
        shutdown,
        move |message, _| {
            let sender = sender.clone();
            async move {
                let deliver = DeliverWebhook {
                    delivery_id: message.delivery_id,
                };
                super::send(&sender, deliver).await.map(|r| r.map(|_| ()))
            }
        },
    )
    .await
}
