//! Mailer: takes queued deliveries from the queue one at a time per message,
//! renders and sends them, records every attempt with the server's reply, and schedules
//! retries. Its relay (on a timer, and as a single step for tests) republishes rows the broker
//! never got or whose worker died.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;

use super::batch::Batcher;
use super::consumer::consume;
use super::spawn_work;
use crate::domain::EmailAddress;
use crate::error::AppError;
use crate::links::{self, ConsoleLink, PortalLink};
use crate::mail::bounce::verp_address;
use crate::mail::{
    DkimProblem, DkimSigner, EmailContent, MagicLink, Transport, build_message, dkim_signer, render,
};
use crate::metrics::StatusLabel;
use crate::queue::{MailMessage, MailQueue};
use crate::services::Services;
use crate::store::{
    AttemptRecord, ClaimRules, ClaimedDelivery, DeliveryKind, DkimSettings, Finish, FinishItem,
    Storefront,
};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Sending limits (governor): global, per recipient domain, per storefront.
pub struct SendLimits {
    global: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    per_domain: Keyed<String>,
    per_storefront: Keyed<i64>,
}

fn quota(per_second: u32) -> Quota {
    let n = NonZeroU32::new(per_second.max(1)).expect("non-zero");
    Quota::per_second(n).allow_burst(n)
}

impl SendLimits {
    pub fn new(global: u32, per_domain: u32, per_storefront: u32) -> Self {
        Self {
            global: RateLimiter::direct(quota(global)),
            per_domain: RateLimiter::keyed(quota(per_domain)),
            per_storefront: RateLimiter::keyed(quota(per_storefront)),
        }
    }

    /// Waits until all three limits allow one more email.
    async fn wait(&self, domain: &str, storefront_id: i64) {
        self.per_storefront.until_key_ready(&storefront_id).await;
        self.per_domain.until_key_ready(&domain.to_string()).await;
        self.global.until_ready().await;
    }

    fn retain_recent(&self) {
        self.per_domain.retain_recent();
        self.per_storefront.retain_recent();
    }
}

pub struct Mailer {
    work: Arc<MailWork>,
    run_relay: bool,
}

/// The Mailer's state, shared with the tasks that do its work.
pub struct MailWork {
    svc: Arc<Services>,
    transport: Arc<dyn Transport>,
    limits: SendLimits,
    /// Claims and outcomes are written in batches (group commit, see [`super::batch`]).
    claims: Batcher<(i64, bool), Option<ClaimedDelivery>>,
    outcomes: Batcher<FinishItem, bool>,
    /// Storefronts' DKIM signers, opened once per key (see [`MailWork::dkim_for`]).
    dkim: std::sync::Mutex<HashMap<i64, (DkimSettings, DkimSigner)>>,
}

impl Mailer {
    pub fn new(svc: Arc<Services>, transport: Arc<dyn Transport>, run_relay: bool) -> Self {
        let m = &svc.config.mail;
        let limits = SendLimits::new(
            m.global_per_second,
            m.per_domain_per_second,
            m.per_storefront_per_second,
        );
        let claims = {
            let svc = svc.clone();
            Batcher::new(64, 4, move |items: Vec<(i64, bool)>| {
                let svc = svc.clone();
                async move {
                    let now = svc.now();
                    let lease = chrono::Duration::seconds(svc.config.mail.lease_seconds as i64);
                    let rules = ClaimRules {
                        now,
                        lease_until: now + lease,
                        hold_until: Some(now + svc.config.claim_hold_margin()),
                    };
                    Ok(svc.store.claim_deliveries(&items, rules).await?)
                }
            })
        };
        let outcomes = {
            let svc = svc.clone();
            Batcher::new(64, 4, move |items: Vec<FinishItem>| {
                let svc = svc.clone();
                async move {
                    let done = svc.store.finish_deliveries(&items).await?;
                    if done.events > 0 {
                        svc.events_written();
                    }
                    Ok(done.written)
                }
            })
        };
        Self {
            work: Arc::new(MailWork {
                svc,
                transport,
                limits,
                claims,
                outcomes,
                dkim: Default::default(),
            }),
            run_relay,
        }
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.run_relay {
            let every = Duration::from_secs_f64(self.work.svc.config.mail.relay_interval_seconds);
            ctx.run_interval(every, |_, ctx| ctx.notify(RelayOnce));
        }
        ctx.run_interval(Duration::from_secs(60), |this, _| {
            this.work.limits.retain_recent()
        });
    }
}

/// Deliver one delivery (one queue message).
#[derive(Message)]
#[rtype(result = "Result<DeliverOutcome, AppError>")]
pub struct Deliver {
    pub delivery_id: i64,
    pub redelivered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverOutcome {
    /// Not ours to send now (another worker has it, it is final, or not due yet).
    Skipped,
    Sent,
    Deferred {
        retry_in: Duration,
    },
    Failed {
        error: String,
    },
}

/// Republish rows waiting too long; one batch.
#[derive(Message)]
#[rtype(result = "Result<RelayReport, AppError>")]
pub struct RelayOnce;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

impl Handler<Deliver> for Mailer {
    type Result = ResponseFuture<Result<DeliverOutcome, AppError>>;

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.deliver(msg.delivery_id, msg.redelivered).await })
    }
}

impl Handler<RelayOnce> for Mailer {
    type Result = ResponseFuture<Result<RelayReport, AppError>>;

    fn handle(&mut self, _: RelayOnce, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move {
            let report = work.relay_once().await;
            if let Err(e) = &report {
                tracing::warn!(error = %e, "relay pass failed");
            }
            report
        })
    }
}

impl MailWork {
    fn count(&self, status: &'static str) {
        self.svc
            .metrics
            .sends
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    async fn relay_once(&self) -> Result<RelayReport, AppError> {
        let svc = &self.svc;
        let now = svc.now();
        // The relay passes every delivery once, sent or not, so a pass walks all the rows whose
        // relay time came since the last one (at 2,000 links/s and a pass every 10 s, 20,000),
        // in steps; the pass ends when it has caught up with now (or after a bounded number of
        // steps, the rest being the next pass's).
        const STEP: i64 = 5000;
        const MAX_STEPS: usize = 100;
        let mut waiting = Vec::new();
        for _ in 0..MAX_STEPS {
            let step = svc
                .store
                .take_relay_batch(now, now + svc.config.relay_after(), STEP)
                .await?;
            waiting.extend(step.publish);
            if step.looked_at < STEP as usize {
                break;
            }
        }
        let mut report = RelayReport::default();
        for item in waiting {
            match svc
                .queue
                .publish(MailMessage {
                    delivery_id: item.id,
                })
                .await
            {
                Ok(()) => report.published += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::debug!(delivery_id = item.id, error = %e, "relay could not publish");
                }
            }
        }
        if report.published + report.failed > 0 {
            svc.metrics.relayed.inc_by(report.published as u64);
            tracing::info!(
                published = report.published,
                failed = report.failed,
                "relayed deliveries"
            );
        }
        Ok(report)
    }

    async fn deliver(&self, id: i64, redelivered: bool) -> Result<DeliverOutcome, AppError> {
        let svc = &self.svc;
        let Some(claimed) = self.claims.submit((id, redelivered)).await? else {
            return Ok(DeliverOutcome::Skipped);
        };
        let prepared = match self.prepare(&claimed).await {
            Ok(p) => p,
            Err(error) => {
                self.outcomes
                    .submit(FinishItem {
                        claimed,
                        attempt: None,
                        finish: Finish::Failed {
                            error: error.clone(),
                        },
                        now: svc.now(),
                    })
                    .await?;
                self.count("failed");
                tracing::warn!(delivery_id = id, %error, "delivery failed before sending");
                return Ok(DeliverOutcome::Failed { error });
            }
        };
        self.limits
            .wait(prepared.to.domain(), claimed.storefront_id)
            .await;
        // Held by its message alone (no claim written), the row is published again at its relay
        // time: a send that could still be under way near then takes a lease first.
        let claimed = match claimed.held_until {
            Some(until) if svc.now() + svc.config.claim_hold_margin() > until => {
                match self.claims.submit((id, false)).await? {
                    Some(leased) => leased,
                    None => return Ok(DeliverOutcome::Skipped),
                }
            }
            _ => claimed,
        };

        let started_at = svc.now();
        let timer = std::time::Instant::now();
        let result = self
            .transport
            .send(&prepared.envelope, &prepared.raw, claimed.id)
            .await;
        svc.metrics
            .send_seconds
            .observe(timer.elapsed().as_secs_f64());
        let finished_at = svc.now();
        let attempt_no = claimed.attempts + 1;
        let (finish, attempt, outcome) = match result {
            Ok(reply) => (
                Finish::Sent,
                AttemptRecord {
                    started_at,
                    finished_at,
                    smtp_code: reply.code,
                    detail: reply.detail,
                    worker: svc.worker_name.clone(),
                },
                DeliverOutcome::Sent,
            ),
            Err(f) => {
                let attempt = AttemptRecord {
                    started_at,
                    finished_at,
                    smtp_code: f.code,
                    detail: f.detail.clone(),
                    worker: svc.worker_name.clone(),
                };
                let delays = svc.config.retry_delays();
                if f.permanent {
                    let error = f.detail;
                    (
                        Finish::Failed {
                            error: error.clone(),
                        },
                        attempt,
                        DeliverOutcome::Failed { error },
                    )
                } else if let Some(delay) = delays.get(attempt_no as usize - 1) {
                    let next = finished_at
                        + chrono::Duration::from_std(*delay)
                            .unwrap_or(chrono::Duration::seconds(30));
                    (
                        Finish::Deferred {
                            next_attempt_at: next,
                            relay_at: next + svc.config.relay_after(),
                            error: f.detail,
                        },
                        attempt,
                        DeliverOutcome::Deferred { retry_in: *delay },
                    )
                } else {
                    let error = format!("gave up after {attempt_no} attempts: {}", f.detail);
                    (
                        Finish::Failed {
                            error: error.clone(),
                        },
                        attempt,
                        DeliverOutcome::Failed { error },
                    )
                }
            }
        };
        let recipient = claimed.recipient.clone();
        let detail = attempt.detail.clone();
        self.record_outcome(FinishItem {
            claimed,
            attempt: Some(attempt),
            finish,
            now: finished_at,
        })
        .await?;
        match &outcome {
            DeliverOutcome::Sent => {
                self.count("sent");
                if self.transport.is_outbox()
                    && svc.config.mail.print_links
                    && let Some(link) = &prepared.link
                {
                    tracing::info!(target: "latchkey::outbox", %recipient, "sign-in link: {link}");
                }
            }
            DeliverOutcome::Deferred { retry_in } => {
                self.count("deferred");
                svc.metrics.retries.inc();
                if let Err(e) = svc
                    .queue
                    .publish_delayed(MailMessage { delivery_id: id }, *retry_in)
                    .await
                {
                    tracing::warn!(delivery_id = id, error = %e, "could not schedule the retry; the relay will");
                }
                tracing::info!(delivery_id = id, attempt = attempt_no, error = %detail, "delivery deferred");
            }
            DeliverOutcome::Failed { error } => {
                self.count("failed");
                tracing::warn!(delivery_id = id, attempt = attempt_no, %error, "delivery failed");
            }
            DeliverOutcome::Skipped => {}
        }
        Ok(outcome)
    }

    /// Writes the outcome of a send that happened. The email is gone either way, so a database
    /// that is briefly unreachable is waited for (with growing pauses, up to the lease) rather
    /// than the message requeued, which would send it a second time.
    async fn record_outcome(&self, item: FinishItem) -> Result<(), AppError> {
        let lease = Duration::from_secs(self.svc.config.mail.lease_seconds);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.outcomes.submit(item.clone()).await {
                Ok(_) => return Ok(()),
                Err(AppError::Unavailable(e)) if started.elapsed() + pause < lease => {
                    tracing::warn!(
                        delivery_id = item.claimed.id,
                        error = %e,
                        retry_in = ?pause,
                        "sent, but the outcome cannot be written yet; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The storefront's DKIM signer. Opening the sealed key and loading an RSA key is far more
    /// work than signing one email, so a signer is kept per storefront for as long as its DKIM
    /// settings (domain, selector, sealed key) stay the same; a key that does not open is not
    /// kept, and is tried again with the next email.
    fn dkim_for(&self, sender: &Storefront) -> Result<Option<DkimSigner>, DkimProblem> {
        let Some(settings) = &sender.dkim else {
            return Ok(None);
        };
        let cache = || self.dkim.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((kept, signer)) = cache().get(&sender.id)
            && kept == settings
        {
            return Ok(Some(signer.clone()));
        }
        let signer = dkim_signer(&self.svc.keys, sender)?;
        if let Some(signer) = &signer {
            cache().insert(sender.id, (settings.clone(), signer.clone()));
        }
        Ok(signer)
    }

    /// Renders and builds the message; an `Err` is a permanent failure reason.
    async fn prepare(&self, claimed: &ClaimedDelivery) -> Result<Prepared, String> {
        let svc = &self.svc;
        // Console sign-in links come from the platform's sender, not a storefront's.
        let sender = if claimed.kind == DeliveryKind::StaffSignIn {
            std::sync::Arc::new(svc.console_sender())
        } else {
            svc.storefronts
                .by_id(claimed.storefront_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the storefront no longer exists")?
        };
        let data = claimed.data.as_ref().map_err(String::clone)?;
        let link = if data.kind().carries_link() {
            let expires = claimed.link_expires_at.ok_or("no link expiry recorded")?;
            if expires <= svc.now() {
                return Err("link expired before delivery".into());
            }
            let opened = claimed
                .sealed_token
                .as_deref()
                .and_then(|s| svc.keys.open_token(s))
                .ok_or("the link's token cannot be opened (was the secret key changed?)")?;
            let code = match data {
                crate::domain::EmailData::SignIn(g) if g.code => {
                    Some(svc.keys.sign_in_code(&opened.hash()))
                }
                _ => None,
            };
            let token = opened.encode();
            let url = match data.kind() {
                DeliveryKind::StaffSignIn => links::console(&svc.config, ConsoleLink::Auth(&token)),
                DeliveryKind::ConfirmEmail => {
                    svc.portal_link(&sender, PortalLink::ConfirmEmail(&token))
                }
                _ => svc.portal_link(&sender, PortalLink::Auth(&token)),
            };
            Some(MagicLink {
                url,
                minutes: crate::domain::link_minutes(expires - claimed.created_at),
                code,
            })
        } else {
            None
        };
        let printed = link.as_ref().map(|l| l.url.clone());
        let to = claimed.recipient.clone();
        // The reader's language: the account's, else the storefront's. Staff and owners read
        // English (the console's language).
        let catalog = &svc.languages;
        let lang = match (claimed.kind, claimed.account_id) {
            (DeliveryKind::StaffSignIn | DeliveryKind::WebhookDisabled, _) => {
                catalog.default_lang().clone()
            }
            // The account's choice comes with the claimed row.
            _ => catalog
                .for_account(claimed.account_language.as_deref(), &sender.language)
                .clone(),
        };
        let today = svc.now().date_naive();
        let content = EmailContent::new(data, link, to.as_str(), &lang, today)?;
        let subject = content
            .subject(&lang, &sender.name)
            .unwrap_or_else(|| claimed.subject.clone());
        let (text, html) = render(&lang, &sender.name, &content).map_err(|e| e.to_string())?;
        // Bounces come back to the delivery's VERP address at the storefront's bounce domain
        // (the console's emails: the global one).
        let slug = (claimed.kind != DeliveryKind::StaffSignIn).then_some(sender.slug.as_str());
        let return_path = svc
            .config
            .bounces
            .domain_for(slug)
            .map(|domain| verp_address(&svc.keys, claimed.id, domain));
        // A DKIM key that cannot be opened fails the email (with the reason) rather than
        // sending it unsigned: the operator published a record and expects signatures.
        let dkim = self.dkim_for(&sender).map_err(|e| e.to_string())?;
        let message = build_message(
            &sender,
            dkim.as_ref(),
            &to,
            &subject,
            (text, html),
            claimed.id,
            return_path.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Prepared {
            envelope: message.envelope().clone(),
            raw: message.formatted(),
            link: printed,
            to,
        })
    }
}

struct Prepared {
    envelope: lettre::address::Envelope,
    raw: Vec<u8>,
    link: Option<String>,
    to: EmailAddress,
}

/// A worker: consumes the mail queue with `concurrency` messages in flight, hands each to the
/// Mailer, and acknowledges it once the delivery row is updated. Reconnects when the broker
/// goes away. When `shutdown` turns true it takes no more messages, finishes the sends in
/// flight (for up to `grace`), and returns; messages the broker had not handed over yet stay
/// in the queue, and those it had prefetched go back when the consumer's channel closes.
pub async fn run_worker(
    queue: Arc<dyn MailQueue>,
    mailer: Addr<Mailer>,
    concurrency: u16,
    grace: Duration,
    shutdown: watch::Receiver<bool>,
) {
    consume(
        queue,
        "mail",
        concurrency,
        grace,
        shutdown,
        move |message, redelivered| {
            let mailer = mailer.clone();
            async move {
                let deliver = Deliver {
                    delivery_id: message.delivery_id,
                    redelivered,
                };
                crate::actors::send(&mailer, deliver)
                    .await
                    .map(|r| r.map(|_| ()))
            }
        },
    )
    .await
}
