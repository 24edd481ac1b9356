//! The sign-in load the benches drive: the run's data (the demo storefront, a pool of bench
//! accounts, history rows), the browsers requesting links until told to stop, and waiting
//! for their emails. `end_to_end` and `cluster` use it; `operations` makes its load otherwise.
#![allow(
    dead_code,
    reason = "the operations bench compiles it without using it"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use latchkey_testkit::SmtpSink;

use super::{Browser, ErrorTally, Proc, admin_client};

/// The sign-in form, below the storefront.
pub const SIGN_IN: &str = "/sign-in";
/// Addresses of the bench accounts: `bench-0000001@bench.example`, ...
pub const ACCOUNT_DIGITS: usize = 7;

/// Migrates, loads the demo storefront and inserts `accounts` bench accounts.
/// Inserts `n` accounts `{prefix}-0000001@bench.example`, … named `{name} 1`, …, in one
/// statement that generates the rows server-side (far faster than one INSERT per account).
pub async fn insert_accounts(
    client: &tokio_postgres::Client,
    storefront_id: i64,
    prefix: &str,
    name: &str,
    n: usize,
) -> Result<()> {
    let inserted = client
        .execute(
            "INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
             SELECT $1, a.email, a.email, $5 || ' ' || i, '', now(), now()
             FROM generate_series(1, $2::bigint) AS i,
                  LATERAL (SELECT $4 || '-' || lpad(i::text, $3::int, '0') || '@bench.example' AS email) a",
            &[&storefront_id, &(n as i64), &(ACCOUNT_DIGITS as i32), &prefix, &name],
        )
        .await
        .with_context(|| format!("insert the {prefix} accounts"))?;
    ensure!(
        inserted as usize == n,
        "inserted {inserted} {prefix} accounts, wanted {n}"
    );
    Ok(())
}

/// The links and errors of every client, together.
pub fn merge_logs(logs: Vec<ClientLog>) -> (ErrorTally, Vec<LinkSample>) {
    let mut errors = ErrorTally::default();
    let mut links = Vec::new();
    for log in logs {
        errors.merge(log.errors);
        links.extend(log.links);
    }
    (errors, links)
}

pub async fn prepare_data(db_url: &str, accounts: usize) -> Result<()> {
    let started = Instant::now();
    let demo = super::migrate_with_demo(db_url).await?;
    // One statement generates every row server-side: far faster than one INSERT per account.
    let client = admin_client(db_url).await?;
    insert_accounts(
        &client,
        demo.storefront_id,
        "bench",
        "Bench Customer",
        accounts,
    )
    .await?;
    // A portal that has been running has history: sent deliveries (their sending try on the row), spent
    // links. Without it the tables start empty, PostgreSQL plans their first statements for
    // empty tables (sequential scans) and keeps those plans until autovacuum's ANALYZE catches
    // up, somewhere inside a measured window: the figures would depend on when that happens.
    client
        .batch_execute(&format!(
            "INSERT INTO deliveries (storefront_id, account_id, kind, recipient, subject, status, attempts,
                 payload, link_expires_at, created_at, updated_at, next_attempt_at, sent_at,
                 sent_started_at, sent_code, sent_detail, sent_worker)
             SELECT {sf}, NULL, 'sign_in', 'history-' || i || '@bench.example', 'Your sign-in link',
                 'sent', 1, '{{}}', now() - interval '1 day', now() - interval '2 days',
                 now() - interval '2 days', now() - interval '2 days', now() - interval '2 days',
                 now() - interval '2 days', 250, '250 2.0.0 Ok', 'history'
             FROM generate_series(1, {HISTORY}) AS i;
             INSERT INTO sign_in_tokens (token_hash, storefront_id, account_id, requested_by, created_at, expires_at, used_at)
             SELECT sha256(i::text::bytea), {sf}, 1, 'customer', now() - interval '2 days',
                 now() - interval '2 days' + interval '1 hour', now() - interval '2 days'
             FROM generate_series(1, {HISTORY}) AS i;",
            sf = demo.storefront_id
        ))
        .await
        .context("insert the history rows")?;
    // VACUUM too, not only ANALYZE: it sets the visibility map and hint bits now, so neither
    // the first reads nor an autovacuum of the fresh tables land inside a measured window.
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .context("vacuum and analyze the bench database")?;
    println!(
        "prepared the database: demo storefront, {accounts} bench accounts ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows of history (deliveries, attempts, spent links) the database starts with.
pub const HISTORY: u64 = 200_000;

/// The pool of bench accounts; each is handed out once.
pub struct Accounts {
    next: AtomicUsize,
    count: usize,
}

impl Accounts {
    pub fn new(count: usize) -> Self {
        Self {
            next: AtomicUsize::new(1),
            count,
        }
    }

    /// The next unused account number, if any is left.
    pub fn take(&self) -> Option<usize> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n <= self.count).then_some(n)
    }
}

pub fn account_address(n: usize) -> String {
    format!("bench-{n:0width$}@bench.example", width = ACCOUNT_DIGITS)
}

pub fn unknown_address(n: usize) -> String {
    format!("nobody-{n:0width$}@bench.example", width = ACCOUNT_DIGITS)
}

/// When a client stops issuing requests.
#[derive(Clone)]
pub struct StopSignal {
    pub at: Instant,
    /// Set when the server died: stop at once.
    pub abort: Arc<AtomicBool>,
}

impl StopSignal {
    pub fn reached(&self) -> bool {
        Instant::now() >= self.at || self.abort.load(Ordering::Relaxed)
    }
}

/// One sign-in link requested successfully.
#[derive(Debug, Clone)]
pub struct LinkSample {
    /// Recipient address (the account's, or an unknown one in the comparison phase).
    pub email: String,
    /// Whether an account has this address (so an email must arrive).
    pub known: bool,
    pub get_latency: Duration,
    /// When the POST was sent.
    pub sent: Instant,
    pub post_latency: Duration,
}

#[derive(Default)]
pub struct ClientLog {
    pub links: Vec<LinkSample>,
    pub errors: ErrorTally,
}

/// Which address a sign-in client asks for next.
#[derive(Clone)]
pub enum AddressPlan {
    /// Always a fresh bench account.
    Known(Arc<Accounts>),
    /// Alternately a fresh bench account and an address without an account.
    Alternate {
        accounts: Arc<Accounts>,
        unknown: Arc<AtomicUsize>,
        start_known: bool,
    },
}

/// A browser requesting sign-in links until told to stop: GET the form, POST it.
pub async fn sign_in_client(browser: Browser, plan: AddressPlan, stop: StopSignal) -> ClientLog {
    let mut log = ClientLog::default();
    let mut iteration = 0usize;
    while !stop.reached() {
        let (email, known) = match &plan {
            AddressPlan::Known(accounts) => match accounts.take() {
                Some(n) => (account_address(n), true),
                None => {
                    log.errors
                        .add("bench account pool exhausted (raise BENCH_MAX_RATE)".into());
                    break;
                }
            },
            AddressPlan::Alternate {
                accounts,
                unknown,
                start_known,
            } => {
                if iteration.is_multiple_of(2) == *start_known {
                    match accounts.take() {
                        Some(n) => (account_address(n), true),
                        None => {
                            log.errors
                                .add("bench account pool exhausted (raise BENCH_MAX_RATE)".into());
                            break;
                        }
                    }
                } else {
                    (
                        unknown_address(unknown.fetch_add(1, Ordering::Relaxed)),
                        false,
                    )
                }
            }
        };
        iteration += 1;
        let get_started = Instant::now();
        let csrf = match browser.sign_in_form(SIGN_IN).await {
            Ok(token) => token,
            Err(kind) => {
                log.errors.add(kind);
                continue;
            }
        };
        let get_latency = get_started.elapsed();
        let sent = Instant::now();
        match browser.post_sign_in(SIGN_IN, &csrf, &email).await {
            Ok(()) => log.links.push(LinkSample {
                email,
                known,
                get_latency,
                sent,
                post_latency: sent.elapsed(),
            }),
            Err(kind) => log.errors.add(kind),
        }
    }
    log
}

/// Waits until every known-address link has its email, or `drain_timeout` after the end of
/// issuing, while watching `procs` (a process that died fails the wait); returns the first
/// arrival of each recipient. `sink` holds only this phase's emails.
pub async fn wait_for_inbox(
    sink: &SmtpSink,
    procs: &mut [Proc],
    links: &[LinkSample],
    issuing_ended: Instant,
    drain_timeout: Duration,
) -> Result<HashMap<String, Instant>> {
    let expected = links.iter().filter(|l| l.known).count() as u64;
    let deadline = Instant::now().max(issuing_ended) + drain_timeout;
    loop {
        if sink.count() as u64 >= expected {
            let arrivals = sink.first_arrivals();
            if links
                .iter()
                .filter(|l| l.known)
                .all(|l| arrivals.contains_key(&l.email))
            {
                return Ok(arrivals);
            }
        }
        if Instant::now() >= deadline {
            eprintln!(
                "!!! gave up after {drain_timeout:?}: {} emails received, {expected} requested",
                sink.count()
            );
            return Ok(sink.first_arrivals());
        }
        for p in procs.iter_mut() {
            p.check()?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
