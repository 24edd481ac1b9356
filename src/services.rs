//! What the actors and the HTTP layer share: configuration, storage, clock, keys, queue,
//! metrics. Passed explicitly (no globals), so each test runs its own application.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::crypto::Keys;
use crate::domain::clock::SharedClock;
use crate::links::PortalLink;
use crate::metrics::Metrics;
use crate::queue::{MailQueue, Publisher};
use crate::store::{DbResult, Store, Storefront, WroteDelivery};

pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    pub keys: Keys,
    pub queue: Arc<dyn MailQueue>,
    /// Publishes deliveries just written (the relay covers what it skips).
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub storefronts: StorefrontCache,
    /// Names this process in delivery attempt rows.
    pub worker_name: String,
    /// Wakes the webhook relay: a change that may have written events committed.
    pub webhook_nudge: Arc<tokio::sync::Notify>,
    /// The languages of pages and emails (SPEC §10).
    pub languages: Arc<crate::i18n::Catalog>,
}

impl Services {
    /// A full link to a page of a storefront's portal ([`crate::links`]).
    pub fn portal_link(&self, storefront: &Storefront, page: PortalLink<'_>) -> String {
        crate::links::portal(&self.config, storefront, page)
    }

    /// The sender of console emails (staff sign-in links), shaped like a storefront.
    pub fn console_sender(&self) -> Storefront {
        Storefront {
            id: 0,
            slug: String::new(),
            name: self.config.console_from_name.clone(),
            from_name: self.config.console_from_name.clone(),
            from_email: self.config.console_from_email.clone(),
            reply_to: None,
            rent_url: String::new(),
            custom_host: None,
            acss_debit: false,
            dkim: None,
            language: crate::i18n::DEFAULT.to_string(),
        }
    }

    /// A change that may have written webhook events committed: the webhook relay publishes
    /// them at once instead of on its next round.
    pub fn events_written(&self) {
        self.webhook_nudge.notify_one();
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs a store step that writes an email in the transaction of the change it tells of
    /// (a sign-in link, a confirmation, a receipt…), then, once that committed, hands the
    /// delivery it wrote to the queue. The one way a fresh delivery is published: the row is
    /// the source of truth, so a publish skipped here (broker down or busy) is the relay's.
    pub async fn write_then_enqueue<T: WroteDelivery, E>(
        &self,
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = self.now();
        let outcome = step.await?;
        // The change may have written events too (`store::emit_events`): publish them now.
        self.events_written();
        if let Some(delivery_id) = outcome.written_delivery() {
            // The relay looks at a delivery when its relay time comes, and only once; a row
            // committed so late that the relay may already have passed its time is given a new
            // one (see `Store::take_relay_batch`). It takes a transaction stuck for half of
            // `mail.relay_after_seconds`.
            let relay_after = self.config.relay_after();
            if self.now() - started > relay_after / 2 {
                let again = self.now() + relay_after;
                if let Err(e) = self.store.relay_later(delivery_id, again, self.now()).await {
                    tracing::warn!(delivery_id, error = %e, "a slow write's relay time could not be moved on");
                }
            }
            self.publisher.enqueue(delivery_id);
        }
        Ok(outcome)
    }
}

/// Storefronts change rarely and every request needs one: a short-lived cache in front of
/// the database. Unknown slugs and hosts are attacker-chosen, so they are remembered as
/// unknown for [`MISS_TTL`] only, in a table of at most [`MAX_MISSES`] entries: a flood of
/// requests for one unknown name costs one query per few seconds, and a flood of different
/// names cannot grow the memory. (A storefront created meanwhile answers after `MISS_TTL`.)
pub struct StorefrontCache {
    store: Store,
    ttl: Duration,
    clock: SharedClock,
    by_slug: RwLock<HashMap<String, (Arc<Storefront>, Instant)>>,
    by_host: RwLock<HashMap<String, (Arc<Storefront>, Instant)>>,
    by_id: RwLock<HashMap<i64, (Arc<Storefront>, Instant)>>,
    /// Unknown names, with when they stop counting as unknown (the application's clock).
    misses: Mutex<HashMap<Miss, DateTime<Utc>>>,
}

/// How long an unknown slug or host is answered from memory.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// How many unknown names are remembered at once; past it, expired ones are dropped, and
/// if none has expired the new one is not remembered (it costs a query, as before).
pub const MAX_MISSES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Miss {
    Slug(String),
    Host(String),
}

impl StorefrontCache {
    pub fn new(store: Store, ttl: Duration, clock: SharedClock) -> Self {
        Self {
            store,
            ttl,
            clock,
            by_slug: RwLock::default(),
            by_host: RwLock::default(),
            by_id: RwLock::default(),
            misses: Mutex::default(),
        }
    }

    fn cached<K: std::hash::Hash + Eq>(
        &self,
        map: &RwLock<HashMap<K, (Arc<Storefront>, Instant)>>,
        key: &K,
    ) -> Option<Arc<Storefront>> {
        map.read()
            .expect("cache lock")
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(sf, _)| sf.clone())
    }

    fn remember(&self, sf: &Arc<Storefront>) {
        let now = Instant::now();
        self.by_slug
            .write()
            .expect("cache lock")
            .insert(sf.slug.clone(), (sf.clone(), now));
        self.by_id
            .write()
            .expect("cache lock")
            .insert(sf.id, (sf.clone(), now));
        if let Some(host) = &sf.custom_host {
            self.by_host
                .write()
                .expect("cache lock")
                .insert(host.clone(), (sf.clone(), now));
        }
    }

    fn known_missing(&self, miss: &Miss) -> bool {
        let now = self.clock.now();
        self.misses
            .lock()
            .expect("cache lock")
            .get(miss)
            .is_some_and(|until| *until > now)
    }

    fn remember_missing(&self, miss: Miss) {
        let now = self.clock.now();
        let mut misses = self.misses.lock().expect("cache lock");
        if misses.len() >= MAX_MISSES {
            misses.retain(|_, until| *until > now);
        }
        if misses.len() < MAX_MISSES {
            let ttl = chrono::Duration::from_std(MISS_TTL).unwrap_or_default();
            misses.insert(miss, now + ttl);
        }
    }

    /// Looks a name up: the cache, then the remembered misses, then the database.
    async fn lookup<K, F>(
        &self,
        map: &RwLock<HashMap<K, (Arc<Storefront>, Instant)>>,
        key: K,
        miss: Miss,
        query: F,
    ) -> DbResult<Option<Arc<Storefront>>>
    where
        K: std::hash::Hash + Eq,
        F: Future<Output = DbResult<Option<Storefront>>>,
    {
        if let Some(sf) = self.cached(map, &key) {
            return Ok(Some(sf));
        }
        if self.known_missing(&miss) {
            return Ok(None);
        }
        let found = query.await?.map(Arc::new);
        match &found {
            Some(sf) => self.remember(sf),
            None => self.remember_missing(miss),
        }
        Ok(found)
    }

    pub async fn by_slug(&self, slug: &str) -> DbResult<Option<Arc<Storefront>>> {
        self.lookup(
            &self.by_slug,
            slug.to_string(),
            Miss::Slug(slug.to_string()),
            self.store.storefront_by_slug(slug),
        )
        .await
    }

    pub async fn by_host(&self, host: &str) -> DbResult<Option<Arc<Storefront>>> {
        let host = host.to_ascii_lowercase();
        self.lookup(
            &self.by_host,
            host.clone(),
            Miss::Host(host.clone()),
            self.store.storefront_by_host(&host),
        )
        .await
    }

    pub async fn by_id(&self, id: i64) -> DbResult<Option<Arc<Storefront>>> {
        if let Some(sf) = self.cached(&self.by_id, &id) {
            return Ok(Some(sf));
        }
        let found = self.store.storefront(id).await?.map(Arc::new);
        if let Some(sf) = &found {
            self.remember(sf);
        }
        Ok(found)
    }

    /// Forgets everything (after `latchkey admin` changes, in tests).
    pub fn clear(&self) {
        self.by_slug.write().expect("cache lock").clear();
        self.by_host.write().expect("cache lock").clear();
        self.by_id.write().expect("cache lock").clear();
        self.misses.lock().expect("cache lock").clear();
    }
}
