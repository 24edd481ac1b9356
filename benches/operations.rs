//! Operations benchmark of the real release binary on PostgreSQL + RabbitMQ + SMTP: the mail
//! worker pool draining a backlog, the facility Emails tab over a million deliveries, and the
//! signed-in customer pages that `end_to_end` does not cover.
//!
//! Run it with `cargo bench --bench operations` (PostgreSQL on 127.0.0.1:5432 with trust auth
//! for `postgres`, RabbitMQ with `guest` on 127.0.0.1:5672, as for the tests). It prints its
//! tables and writes them into `BENCHMARKS.md` between the lines
//! `<!-- operations-bench:start -->` and `<!-- operations-bench:end -->` (inserted just above
//! `## Results` the first time), a part of the file `end_to_end` leaves alone.
//!
//! # What is measured, and how
//!
//! `latchkey serve` runs as a child process with its in-process workers off
//! (`LATCHKEY_RUN_WORKERS=false`: the web front and the mail workers as separate pools, as in
//! production), configured only through environment variables; `latchkey worker` processes
//! are started and stopped by the bench. Everything is driven through HTTP as a browser would
//! (cookie jar, CSRF token from the form, no redirects followed), and sign-ins go through the
//! real magic link read from the in-process SMTP server ([`SmtpSink`]).
//!
//! 1. **Mail throughput through the workers.** With no worker running, 32 browsers request
//!    sign-in links for `BENCH_MAIL_BACKLOG` distinct accounts (default 20,000) through
//!    `POST /s/demo/sign-in`, so the rows (token + delivery, one transaction) and the RabbitMQ
//!    messages are exactly what the product makes. The bench waits until the broker holds
//!    every message, then starts N `latchkey worker` processes (1, then 2 with a fresh
//!    backlog: `BENCH_WORKERS`) and times until the SMTP server has every email. Every email
//!    must arrive exactly once (the run fails otherwise), and every delivery row must end
//!    `sent` with its one try recorded. Reported: emails/s over the whole drain (worker start to
//!    last email) and over its middle 80% (without start-up and tail), the workers' CPU and
//!    peak RSS, and what PostgreSQL, RabbitMQ and the bench (the SMTP server) used meanwhile.
//! 2. **The facility Emails tab with a million deliveries.** One `generate_series` load writes
//!    `BENCH_DELIVERIES` (default 1,000,000) deliveries for the demo storefront over six months
//!    (sign-in links, booking confirmations, receipts, email-changed notices to 50,000
//!    recipients; mostly sent, some sent after a deferral, failed, suppressed, and a few
//!    deferred in the last two hours), their facility rows (65% Downtown, 40% Marina, some in
//!    both), one attempt row per try and the spent links of the last 30 days' sign-in emails
//!    (so the link table's statistics are a running portal's, not an empty table's). Staff
//!    (created with `latchkey admin staff`) sign in to `/console` by the emailed link; then 1 and 8 clients load: the first page of Downtown's
//!    Emails tab, the page filtered by `status=failed`, filtered by one recipient, a deep page
//!    (the bench follows the "Older" link `BENCH_DEEP_PAGES` times, then measures that page),
//!    the page below 90% of the tab's rows (where a client reading every page ends up), and the
//!    delivery detail page. `EXPLAIN (ANALYZE, BUFFERS)` of the page query (a copy of
//!    `Store::deliveries_page`'s SQL, checked against the server's answer) is recorded with
//!    the custom plan and with the generic plan a long-lived prepared statement may switch to.
//! 3. **Signed-in customer pages**: 8 browsers signed in through the magic link (half Alex
//!    Martin, half Sam) load the billing and the account page.
//!
//! Policy limits are raised (every client is 127.0.0.1, every bench email goes to one domain
//! and one storefront), capacity settings are left at their defaults; any `LATCHKEY_*`
//! variable set when invoking the bench is passed on to every process and overrides these.
//!
//! Knobs (environment): `BENCH_MAIL_BACKLOG` (20000), `BENCH_WORKERS` (`1,2`),
//! `BENCH_DELIVERIES` (1000000), `BENCH_DEEP_PAGES` (50), `BENCH_SECONDS` (5, per measured
//! page load), `BENCH_WARMUP_SECONDS` (1), `BENCH_DRAIN_TIMEOUT_SECONDS` (180),
//! `BENCH_WRITE=0` (print only), `LATCHKEY_TEST_DATABASE_URL`, `LATCHKEY_TEST_AMQP_URL`.
//!
//! The run fails (non-zero exit) when an email is lost or duplicated, a delivery row does not
//! end `sent`, a page answers anything but 200, or a process dies.

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use common::cpu::CpuSample;
use common::*;
use latchkey::config::Config;
use latchkey::queue::MailQueue as _;
use latchkey::queue::rabbit::RabbitQueue;
use latchkey_testkit::SmtpSink;
use tokio::task::JoinHandle;

/// The demo storefront.
const SLUG: &str = "demo";
/// Where the bench's section of BENCHMARKS.md starts and ends.
const MARK_START: &str = "<!-- operations-bench:start -->";
const MARK_END: &str = "<!-- operations-bench:end -->";
/// Browsers that build each mail backlog.
const BUILD_CLIENTS: usize = 32;
/// Clients of the page-load levels.
const LEVELS: [usize; 2] = [1, 8];
/// Signed-in browsers (staff in the console, customers in the portal).
const BROWSERS: usize = 8;
/// Staff users of the demo storefront; each signs in twice (the per-user limit is 5 links in
/// 15 minutes). The first is created as the owner.
const STAFF: [(&str, &str, &str); 4] = [
    ("olivia.owner@harborview.example", "Olivia Owner", "owner"),
    ("max.manager@harborview.example", "Max Manager", "manager"),
    ("mia.manager@harborview.example", "Mia Manager", "manager"),
    ("stan.staff@harborview.example", "Stan Staff", "staff"),
];
/// Demo customers of the customer-page phase (half each; four links each stay under five).
const CUSTOMERS: [&str; 2] = ["alex@example.com", "sam@example.com"];
/// Recipients of the history deliveries.
const HISTORY_RECIPIENTS: usize = 50_000;
/// Addresses of the mail-backlog accounts: `mail-0000123@bench.example`.
const ACCOUNT_DIGITS: usize = 7;
/// How long a process has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long the bench keeps listening after the last expected email, for duplicates.
const DUPLICATE_GRACE: Duration = Duration::from_secs(3);
/// Only for `latchkey serve`.
const SERVE_SETTINGS: &[BenchSetting] = &[(
    "LATCHKEY_RUN_WORKERS",
    "false",
    "`latchkey serve` runs the web front only; the bench starts `latchkey worker` processes, so the backlog builds while no worker runs",
)];
/// Only for `latchkey worker`.
const WORKER_SETTINGS: &[BenchSetting] = &[(
    "LATCHKEY_LOG_LEVEL",
    "warn,latchkey::actors::mailer=info",
    "workers: warnings, and the Mailer's relay passes, which the bench counts",
)];

fn main() -> ExitCode {
    common::report::main("operations", run)
}

async fn run() -> Result<bool> {
    let started = Instant::now();
    let settings = Settings::from_env()?;
    let db = BenchDatabase::create(&settings.env.admin_url, "lk_opsbench").await?;
    let prefix = format!(
        "latchkey.opsbench.{}.{}",
        std::process::id(),
        random_lower(8)
    );
    let outcome = run_on_database(&settings, &db, &prefix).await;
    tear_down(&settings.env.amqp_url, &prefix, &db).await;
    let mut report = outcome?;
    report.total = started.elapsed();
    publish(&report.markdown(), settings.env.write_file, |text| {
        write_marked_section(MARK_START, MARK_END, text)
    })?;
    Ok(report.passed())
}

async fn run_on_database(settings: &Settings, db: &BenchDatabase, prefix: &str) -> Result<Report> {
    let sink = SmtpSink::start()
        .await
        .context("start the in-process SMTP server")?;
    let mail_accounts = settings.backlog * settings.workers.len();
    let data = prepare_data(&db.url, mail_accounts, settings.deliveries).await?;
    let launcher = Launcher::new(&db.url, &settings.env.amqp_url, prefix, sink.port())?;
    for (email, name, role) in STAFF {
        let out = launcher
            .admin(&[
                "admin",
                "staff",
                "--email",
                email,
                "--name",
                name,
                "--role",
                role,
                "--storefront",
                SLUG,
            ])
            .await?;
        println!("{}", out.trim());
    }
    let pg = admin_client(&db.url).await?;
    let queue = RabbitQueue::new(
        &settings.env.amqp_url,
        prefix,
        false,
        Duration::from_secs(5),
    );
    let mut server = launcher.serve(SERVE_SETTINGS).await?;
    let mut bench = Bench {
        settings,
        sink: &sink,
        launcher: &launcher,
        pg: &pg,
        queue: &queue,
        data: &data,
        failures: Vec::new(),
    };
    let measured = bench.measure_all(&mut server).await;
    let server_memory = read_memory(server.pid);
    let stopped = server.stop(STOP_GRACE).await;
    let (console, customer, plans, mail) = measured?;
    let machine = MachineInfo::collect(&settings.env.admin_url).await;
    Ok(Report {
        settings: settings.clone(),
        machine,
        overrides: launcher.overrides.clone(),
        data: data.clone(),
        console,
        customer,
        plans,
        mail,
        server_memory,
        server_stop: stopped,
        failures: bench.failures,
        total: Duration::ZERO,
    })
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    env: BenchEnv,
    backlog: usize,
    workers: Vec<usize>,
    deliveries: usize,
    deep_pages: usize,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let workers = env_counts(
            "BENCH_WORKERS",
            &[1, 2],
            |n| (1..=16).contains(&n),
            "a number from 1 to 16",
        )?;
        ensure!(!workers.is_empty(), "BENCH_WORKERS names no worker count");
        let backlog = env_number("BENCH_MAIL_BACKLOG", 20_000.0)? as usize;
        ensure!(
            backlog * workers.len() < 10usize.pow(ACCOUNT_DIGITS as u32),
            "BENCH_MAIL_BACKLOG is too large"
        );
        Ok(Self {
            env: BenchEnv::from_env(5.0, 1.0, 180.0)?,
            backlog,
            workers,
            deliveries: (env_number("BENCH_DELIVERIES", 1_000_000.0)? as usize).max(10_000),
            deep_pages: env_number("BENCH_DEEP_PAGES", 50.0)? as usize,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Database and data

/// What the database holds before the first process starts.
#[derive(Debug, Clone, Default)]
struct DataInfo {
    downtown: i64,
    deliveries: i64,
    downtown_deliveries: i64,
    marina_deliveries: i64,
    attempts: i64,
    by_status: Vec<(String, i64)>,
    load_seconds: f64,
    vacuum_seconds: f64,
    database_size: String,
}

/// Migrates, loads the demo storefront, the mail-backlog accounts and the delivery history.
async fn prepare_data(db_url: &str, mail_accounts: usize, deliveries: usize) -> Result<DataInfo> {
    let demo = migrate_with_demo(db_url).await?;
    let client = admin_client(db_url).await?;
    let sf = demo.storefront_id;
    let facility = |ext: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT id FROM facilities WHERE storefront_id = $1 AND external_ref = $2",
                    &[&sf, &ext],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
                .with_context(|| format!("find the demo facility {ext}"))
        }
    };
    let downtown = facility("FAC-DT").await?;
    let marina = facility("FAC-MR").await?;
    insert_accounts(
        &client,
        demo.storefront_id,
        "mail",
        "Mail Bench",
        mail_accounts,
    )
    .await?;

    println!("loading {deliveries} deliveries of history ...");
    let started = Instant::now();
    client
        .batch_execute(&history_sql(
            demo.storefront_id,
            downtown,
            marina,
            deliveries,
        ))
        .await
        .context("load the delivery history")?;
    let load_seconds = started.elapsed().as_secs_f64();
    let backwards: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY id) AS back
             FROM deliveries WHERE recipient LIKE 'customer-%') x WHERE back",
            &[],
        )
        .await
        .context("check the history's order")?
        .get(0);
    ensure!(
        backwards == 0,
        "{backwards} history deliveries are older than the one before them: ids must rise with time"
    );
    // VACUUM, not only ANALYZE, on a fresh connection: it sets the visibility map (index-only
    // scans need no heap visits) and hint bits now, so neither the first reads nor an
    // autovacuum of the fresh tables land inside a measured window.
    let started = Instant::now();
    let vacuum = admin_client(db_url).await?;
    vacuum
        .batch_execute("VACUUM ANALYZE")
        .await
        .context("vacuum and analyze the bench database")?;
    let vacuum_seconds = started.elapsed().as_secs_f64();

    let one = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .with_context(|| format!("count: {sql}"))
        }
    };
    let by_status = client
        .query(
            "SELECT status, COUNT(*) FROM deliveries WHERE recipient LIKE 'customer-%'
             GROUP BY status ORDER BY COUNT(*) DESC",
            &[],
        )
        .await
        .context("count the history by status")?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let per_facility = |id: i64| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT COUNT(*) FROM delivery_facilities WHERE facility_id = $1",
                    &[&id],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
                .context("count a facility's deliveries")
        }
    };
    let info = DataInfo {
        downtown,
        deliveries: one("SELECT COUNT(*) FROM deliveries").await?,
        downtown_deliveries: per_facility(downtown).await?,
        marina_deliveries: per_facility(marina).await?,
        attempts: one("SELECT COUNT(*) FROM delivery_attempts").await?,
        by_status,
        load_seconds,
        vacuum_seconds,
        database_size: client
            .query_one(
                "SELECT pg_size_pretty(pg_database_size(current_database()))",
                &[],
            )
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|_| "?".into()),
    };
    println!(
        "prepared the database: {} deliveries ({} Downtown, {} Marina), {} attempts, {} ({:.1} s load, {:.1} s vacuum)",
        info.deliveries,
        info.downtown_deliveries,
        info.marina_deliveries,
        info.attempts,
        info.database_size,
        load_seconds,
        vacuum_seconds
    );
    Ok(info)
}

/// The delivery history, generated server-side: `n` deliveries over 180 days (ids rise with
/// time, as in production) to `HISTORY_RECIPIENTS` customer accounts, their facility rows, one
/// attempt row per try, and the spent links of the last 30 days' sign-in emails. Deterministic
/// (hashes of the row number, not `random()`), so every run loads the same rows.
fn history_sql(sf: i64, downtown: i64, marina: i64, n: usize) -> String {
    let step = 180.0 * 86400.0 / n as f64;
    format!(
        r#"SET synchronous_commit = off;
INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
SELECT {sf}, x.e, x.e, 'Customer ' || i, '', now() - interval '200 days', now() - interval '200 days'
FROM generate_series(1, {recipients}) AS i,
     LATERAL (SELECT 'customer-' || lpad(i::text, 5, '0') || '@'
         || (ARRAY['gmail.example', 'yahoo.example', 'outlook.example', 'icloud.example', 'harbor-mail.example'])[1 + i % 5] AS e) x;
CREATE TEMP TABLE history_accounts AS
    SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, email FROM accounts WHERE email LIKE 'customer-%';
INSERT INTO deliveries (storefront_id, account_id, kind, recipient, subject, status, attempts, last_error, payload,
    link_expires_at, created_at, updated_at, next_attempt_at, relay_at, sent_at)
SELECT {sf}, a.id, k.kind, a.email, k.subject, s.status, s.attempts, s.err, '{{"first_name":"Customer"}}',
    CASE WHEN k.kind IN ('sign_in', 'booking_confirmation') THEN t.created + interval '1 hour' END,
    t.created, s.done,
    CASE WHEN s.status = 'deferred' THEN now() + interval '50 minutes' ELSE s.done END,
    CASE WHEN s.status = 'deferred' THEN now() + interval '51 minutes' END,
    CASE WHEN s.status = 'sent' THEN s.done END
FROM generate_series(1, {n}) AS g
CROSS JOIN LATERAL (SELECT now() - ({n} - g) * {step} * interval '1 second' AS created,
    abs(hashint8(g)) % 1000 AS rk, abs(hashint8(-g)) % 1000 AS rs,
    abs(hashint8(g + 4000000000)) % {recipients} AS rc) t
JOIN history_accounts a ON a.n = t.rc
CROSS JOIN LATERAL (SELECT CASE WHEN t.rk < 700 THEN 'sign_in' WHEN t.rk < 850 THEN 'booking_confirmation'
        WHEN t.rk < 950 THEN 'payment_receipt' ELSE 'email_changed' END AS kind) k0
CROSS JOIN LATERAL (SELECT k0.kind, CASE k0.kind
        WHEN 'sign_in' THEN 'Your sign-in link for Harborview Rentals'
        WHEN 'booking_confirmation' THEN 'Your booking with Harborview Rentals is confirmed: Unit C-' || (t.rk % 300)
        WHEN 'payment_receipt' THEN 'Your Harborview Rentals receipt for invoice INV-' || lpad((g % 100000)::text, 6, '0')
        ELSE 'Your Harborview Rentals email address was changed' END AS subject) k
CROSS JOIN LATERAL (SELECT CASE WHEN k.kind = 'sign_in' AND t.rs < 25 THEN 'suppressed'
        WHEN t.rs < 55 THEN 'failed'
        WHEN t.rs < 85 AND t.created > now() - interval '2 hours' THEN 'deferred'
        ELSE 'sent' END AS status) s0
CROSS JOIN LATERAL (SELECT s0.status,
    CASE s0.status WHEN 'suppressed' THEN 0
        WHEN 'failed' THEN CASE WHEN t.rs < 49 THEN 1 ELSE 6 END
        WHEN 'deferred' THEN 1 + t.rs % 4
        ELSE CASE WHEN t.rs >= 980 THEN 2 ELSE 1 END END AS attempts,
    CASE s0.status WHEN 'suppressed' THEN 'not sent: 5 sign-in links in 15 minutes is the limit'
        WHEN 'failed' THEN CASE WHEN t.rs < 49
            THEN '550 5.1.1 <' || a.email || '>: Recipient address rejected: User unknown'
            ELSE 'gave up after 6 attempts: 421 4.7.0 Try again later' END
        WHEN 'deferred' THEN '421 4.7.0 Try again later'
        ELSE CASE WHEN t.rs >= 980 THEN '421 4.7.0 Try again later' END END AS err,
    t.created + CASE WHEN t.rs >= 49 AND t.rs < 55 THEN interval '102 minutes'
        WHEN t.rs >= 980 THEN interval '32 seconds' ELSE interval '2 seconds' END AS done) s
-- In time order, so ids rise with created_at as in production (not in the join's order).
ORDER BY g;
INSERT INTO delivery_facilities (facility_id, delivery_id)
SELECT f.id, d.id FROM deliveries d
JOIN (VALUES ({downtown}::bigint, 0, 650), ({marina}::bigint, 600, 1000)) AS f(id, lo, hi)
    ON abs(hashint8(d.id + 17)) % 1000 >= f.lo AND abs(hashint8(d.id + 17)) % 1000 < f.hi
WHERE d.recipient LIKE 'customer-%';
INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
SELECT d.id, a.n, d.created_at + (a.n - 1) * interval '20 minutes',
    d.created_at + (a.n - 1) * interval '20 minutes' + interval '180 milliseconds',
    CASE WHEN a.n < d.attempts OR d.status = 'deferred' THEN 'deferred' ELSE d.status END,
    CASE WHEN a.n < d.attempts OR d.status = 'deferred' THEN 421 WHEN d.status = 'sent' THEN 250
        WHEN d.attempts = 1 THEN 550 ELSE 421 END,
    CASE WHEN a.n < d.attempts OR d.status = 'deferred' THEN '421 4.7.0 Try again later'
        WHEN d.status = 'sent' THEN '250 2.0.0 Ok: queued as ' || upper(to_hex(d.id * 7919))
        ELSE d.last_error END,
    'mail-' || (d.id % 3 + 1) || ':' || (4000 + d.id / 200000)
FROM deliveries d CROSS JOIN LATERAL generate_series(1, d.attempts) AS a(n)
WHERE d.recipient LIKE 'customer-%';
-- The spent links behind the last 30 days' sign-in emails. Without them the link table starts
-- empty, and the issuing statements, planned once per connection, keep plans made for an
-- empty table until an ANALYZE (on a server without autovacuum, never).
INSERT INTO sign_in_tokens (token_hash, storefront_id, account_id, requested_by, created_at, expires_at, used_at)
SELECT sha256(('history-' || d.id)::bytea), {sf}, d.account_id, 'customer', d.created_at,
    d.created_at + interval '1 hour', d.created_at + interval '1 minute'
FROM deliveries d
WHERE d.kind = 'sign_in' AND d.recipient LIKE 'customer-%' AND d.created_at > now() - interval '30 days';
DROP TABLE history_accounts;"#,
        recipients = HISTORY_RECIPIENTS,
    )
}

fn mail_address(n: usize) -> String {
    format!("mail-{n:0width$}@bench.example", width = ACCOUNT_DIGITS)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// What only this bench starts: workers, and one-shot commands.
impl Launcher {
    fn worker(&self, n: usize) -> Result<Proc> {
        self.spawn(
            &format!("latchkey worker #{n}"),
            &["worker"],
            WORKER_SETTINGS,
        )
    }

    /// Runs a one-shot command (`latchkey admin ...`); returns its output.
    async fn admin(&self, args: &[&str]) -> Result<String> {
        let (mut cmd, log_path) = self.command(args, &[])?;
        let status = cmd
            .status()
            .await
            .with_context(|| format!("run `latchkey {}`", args.join(" ")))?;
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        ensure!(
            status.success(),
            "`latchkey {}` failed ({status}): {output}",
            args.join(" ")
        );
        Ok(output)
    }
}

// ---------------------------------------------------------------------------------------------
// Browsers

/// The ids of the delivery rows of an Emails tab page (`data-delivery="123"`).
fn delivery_ids(html: &str) -> Vec<i64> {
    const MARK: &str = r#"data-delivery=""#;
    html.match_indices(MARK)
        .filter_map(|(at, _)| {
            let rest = &html[at + MARK.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// The first link of the page whose query has a `before=` cursor (the "Older" link), with
/// HTML entities of the attribute undone.
fn older_link(html: &str) -> Option<String> {
    html.match_indices("href=\"").find_map(|(at, m)| {
        let rest = &html[at + m.len()..];
        let value = &rest[..rest.find('"')?];
        value
            .contains("before=")
            .then(|| value.replace("&amp;", "&").replace("&#38;", "&"))
    })
}

// ---------------------------------------------------------------------------------------------
// Figures

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Bench<'a> {
    settings: &'a Settings,
    sink: &'a SmtpSink,
    launcher: &'a Launcher,
    /// A connection to the bench database.
    pg: &'a tokio_postgres::Client,
    queue: &'a RabbitQueue,
    data: &'a DataInfo,
    failures: Vec<String>,
}

/// What one load client did: (request started, latency) of each success, and the errors.
type ClientSamples = (Vec<(Instant, Duration)>, ErrorTally);

/// Everything the phases measured.
type Measured = (
    ConsoleResult,
    CustomerResult,
    Vec<PlanResult>,
    Vec<MailRound>,
);

/// One page measured at one level of concurrency.
struct LoadResult {
    page: String,
    clients: usize,
    requests: usize,
    requests_per_second: f64,
    latency: Stats,
    errors: ErrorTally,
    cpu: CpuShares,
}

/// The Emails tab results.
struct ConsoleResult {
    /// What each measured page shows, by label: rows on the page, whether it has an Older link.
    pages: Vec<PageInfo>,
    loads: Vec<LoadResult>,
    recipient: String,
    recipient_total: i64,
    /// Walking the recipient filter to its end: (pages, emails found, time).
    recipient_walk: Option<(usize, usize, Duration)>,
    /// Following the Older link `deep_pages` times: (pages, time).
    deep_walk: (usize, Duration),
    /// The ids of the first page's rows.
    first_ids: Vec<i64>,
    /// The cursor 90% down the tab, and how many rows are above it.
    far_before: i64,
    far_rows_above: i64,
    staff_sign_in: Duration,
}

struct PageInfo {
    label: String,
    path: String,
    rows: usize,
    older: bool,
}

struct CustomerResult {
    loads: Vec<LoadResult>,
}

impl Bench<'_> {
    async fn measure_all(&mut self, server: &mut Proc) -> Result<Measured> {
        // Sign-in emails need a worker: one runs while the browsers sign in, then stops.
        let mut helper = self.launcher.worker(0)?;
        let started = Instant::now();
        let mut staff = Vec::with_capacity(BROWSERS);
        // The console's home sends staff of one storefront on to it.
        let console_home = format!("/console/s/{SLUG}");
        for i in 0..BROWSERS {
            let (email, _, _) = STAFF[i % STAFF.len()];
            staff.push(
                self.signed_in(
                    server,
                    &mut helper,
                    email,
                    "/console/sign-in",
                    &console_home,
                )
                .await?,
            );
        }
        let staff_sign_in = started.elapsed();
        let mut customers = Vec::with_capacity(BROWSERS);
        let form = format!("/s/{SLUG}/sign-in");
        let dashboard = format!("/s/{SLUG}/dashboard");
        for i in 0..BROWSERS {
            let email = CUSTOMERS[i % CUSTOMERS.len()];
            customers.push(
                self.signed_in(server, &mut helper, email, &form, &dashboard)
                    .await?,
            );
        }
        println!(
            "signed in {BROWSERS} staff browsers ({:.1} s) and {BROWSERS} customer browsers",
            staff_sign_in.as_secs_f64()
        );
        let helper_stop = helper.stop(STOP_GRACE).await;
        if !helper_stop.starts_with("stopped on SIGTERM") {
            self.failures
                .push(format!("the sign-in helper worker {helper_stop}"));
        }
        self.sink.clear();

        let mut console = self.console_phase(server, &staff).await?;
        console.staff_sign_in = staff_sign_in;
        let customer = self.customer_phase(server, &customers).await?;
        let plans = self.query_plans(&console).await?;
        let mut mail = Vec::new();
        for (round, &workers) in self.settings.workers.clone().iter().enumerate() {
            let result = self.mail_round(server, round, workers).await?;
            println!("{}", result.line());
            mail.push(result);
        }
        Ok((console, customer, plans, mail))
    }

    /// A browser that went through the whole magic-link flow for `email`: the form at
    /// `form_path`, the emailed link, its landing page and form; then `home` answers 200.
    async fn signed_in(
        &self,
        server: &mut Proc,
        worker: &mut Proc,
        email: &str,
        form_path: &str,
        home: &str,
    ) -> Result<Browser> {
        let browser = Browser::new(&self.launcher.base_url)?;
        browser
            .sign_in_by_link(self.sink, form_path, email, || {
                server.check()?;
                worker.check()
            })
            .await?;
        let (status, _) = browser
            .get(home, "GET home")
            .await
            .map_err(|e| anyhow!(e))?;
        ensure!(
            status == 200,
            "{home} after signing in {email}: HTTP {status}"
        );
        Ok(browser)
    }

    /// `clients` browsers load `paths` (each starting at its own offset, round robin) for the
    /// warm-up and the measured window. A request counts as an error unless it answers 200
    /// (and, when given, with `expect` in the body).
    async fn load(
        &mut self,
        server: &mut Proc,
        page: &str,
        browsers: &[Browser],
        paths: &[String],
        expect: Option<&'static str>,
    ) -> Result<LoadResult> {
        let clients = browsers.len();
        let measure_from = Instant::now() + self.settings.env.warmup;
        let stop_at = measure_from + self.settings.env.seconds;
        let abort = Arc::new(AtomicBool::new(false));
        let cpu = tokio::spawn(cpu_window(server.pid, Vec::new(), measure_from, stop_at));
        let paths = Arc::new(paths.to_vec());
        let mut tasks: Vec<JoinHandle<ClientSamples>> = Vec::new();
        for (i, browser) in browsers.iter().enumerate() {
            let browser = browser.clone();
            let paths = paths.clone();
            let abort = abort.clone();
            let page = page.to_string();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = ErrorTally::default();
                let mut k = i * 7;
                while Instant::now() < stop_at && !abort.load(Ordering::Relaxed) {
                    let path = &paths[k % paths.len()];
                    k += 1;
                    let started = Instant::now();
                    match browser.get(path, &format!("GET {page}")).await {
                        Ok((200, body)) if expect.is_none_or(|e| body.contains(e)) => {
                            samples.push((started, started.elapsed()))
                        }
                        Ok((200, _)) => errors.add(format!(
                            "GET {page}: 200 without {:?}",
                            expect.unwrap_or_default()
                        )),
                        Ok((status, _)) => errors.add(format!("GET {page}: HTTP {status}")),
                        Err(kind) => errors.add(kind),
                    }
                }
                (samples, errors)
            }));
        }
        let results = drive(server, &abort, tasks).await?;
        let cpu = cpu.await.context("the CPU sampler panicked")?;
        let mut errors = ErrorTally::default();
        let mut latencies = Vec::new();
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for (samples, errs) in results {
            errors.merge(errs);
            for (started, latency) in samples.into_iter().filter(|(s, _)| *s >= measure_from) {
                first = Some(first.map_or(started, |f| f.min(started)));
                let done = started + latency;
                last = Some(last.map_or(done, |l| l.max(done)));
                latencies.push(latency);
            }
        }
        if errors.total() > 0 {
            self.failures.push(format!(
                "{page}, {clients} client(s): {}",
                errors.describe()
            ));
        }
        let (Some(first), Some(last)) = (first, last) else {
            bail!(
                "{page}: no request completed (errors: {})",
                errors.describe()
            );
        };
        let result = LoadResult {
            page: page.to_string(),
            clients,
            requests: latencies.len(),
            requests_per_second: rate(latencies.len(), last - first),
            latency: Stats::of(latencies),
            errors,
            cpu,
        };
        println!(
            "  {page}, {clients} client(s): {:.0} requests/s, p50 {} p99 {}, errors {}",
            result.requests_per_second,
            ms(result.latency.p50),
            ms(result.latency.p99),
            result.errors.total()
        );
        Ok(result)
    }

    async fn console_phase(
        &mut self,
        server: &mut Proc,
        staff: &[Browser],
    ) -> Result<ConsoleResult> {
        println!("facility Emails tab ...");
        let dt = self.data.downtown;
        let emails = format!("/console/s/{SLUG}/facilities/{dt}/emails");
        let recipient: String = self
            .pg
            .query_one(
                "SELECT d.recipient FROM delivery_facilities df JOIN deliveries d ON d.id = df.delivery_id
                 WHERE df.facility_id = $1 AND d.recipient LIKE 'customer-%'
                 ORDER BY df.delivery_id DESC LIMIT 1 OFFSET 9",
                &[&dt],
            )
            .await
            .context("pick a recipient")?
            .get(0);
        let recipient_total: i64 = self
            .pg
            .query_one(
                "SELECT COUNT(*) FROM delivery_facilities df JOIN deliveries d ON d.id = df.delivery_id
                 WHERE df.facility_id = $1 AND lower(d.recipient) = lower($2)",
                &[&dt, &recipient],
            )
            .await
            .context("count the recipient's deliveries")?
            .get(0);
        let encoded: String = url::form_urlencoded::byte_serialize(recipient.as_bytes()).collect();
        let b = &staff[0];
        let fetch = |path: String| async move {
            let (status, body) = b.get(&path, "GET page").await.map_err(|e| anyhow!(e))?;
            ensure!(status == 200, "GET {path}: HTTP {status}");
            Ok::<_, anyhow::Error>(body)
        };
        let first = fetch(emails.clone()).await?;
        let first_ids = delivery_ids(&first);
        ensure!(
            !first_ids.is_empty(),
            "the Emails tab shows no delivery rows (no `data-delivery` attributes)"
        );
        // The deep page: follow the Older link.
        let started = Instant::now();
        let mut deep = emails.clone();
        let mut body = first.clone();
        let mut walked = 0;
        while walked < self.settings.deep_pages {
            let Some(next) = older_link(&body) else {
                break;
            };
            deep = resolve(&emails, &next);
            body = fetch(deep.clone()).await?;
            walked += 1;
        }
        let deep_walk = (walked, started.elapsed());
        if walked < self.settings.deep_pages {
            self.failures.push(format!(
                "the Emails tab had only {walked} Older pages, {} wanted",
                self.settings.deep_pages
            ));
        }
        // The recipient filter, walked to its end (at most 1,000 pages).
        let filtered = format!("{emails}?recipient={encoded}");
        let started = Instant::now();
        let mut path = filtered.clone();
        let (mut pages, mut found) = (0usize, 0usize);
        let recipient_walk = loop {
            let body = fetch(path.clone()).await?;
            pages += 1;
            found += delivery_ids(&body).len();
            match older_link(&body) {
                Some(next) if pages < 1000 => path = resolve(&emails, &next),
                Some(_) => break None,
                None => break Some((pages, found, started.elapsed())),
            }
        };
        if let Some((_, found, _)) = recipient_walk
            && found as i64 != recipient_total
        {
            self.failures.push(format!(
                "the recipient filter showed {found} emails of {recipient}, the database has {recipient_total}"
            ));
        }

        // A cursor 90% down the tab, as a client walking every page reaches (the integration
        // API pages the same way).
        let far_rows_above = self.data.downtown_deliveries * 9 / 10;
        let far_before: i64 = self
            .pg
            .query_one(
                "SELECT delivery_id FROM delivery_facilities WHERE facility_id = $1
                 ORDER BY delivery_id DESC OFFSET $2 LIMIT 1",
                &[&dt, &far_rows_above],
            )
            .await
            .context("find a cursor 90% down the tab")?
            .get(0);

        let targets: Vec<(String, Vec<String>)> = vec![
            ("first page".into(), vec![emails.clone()]),
            (
                "status=failed".into(),
                vec![format!("{emails}?status=failed")],
            ),
            ("recipient=…".into(), vec![filtered.clone()]),
            (format!("page {} (deep)", walked + 1), vec![deep.clone()]),
            (
                FAR_PAGE.into(),
                vec![format!("{emails}?before={far_before}")],
            ),
            (
                "delivery detail".into(),
                first_ids
                    .iter()
                    .map(|id| format!("/console/s/{SLUG}/deliveries/{id}"))
                    .collect(),
            ),
        ];
        let mut pages_info = Vec::new();
        for (label, paths) in &targets {
            let body = fetch(paths[0].clone()).await?;
            pages_info.push(PageInfo {
                label: label.clone(),
                path: paths[0].clone(),
                rows: delivery_ids(&body).len(),
                older: older_link(&body).is_some(),
            });
        }
        let mut loads = Vec::new();
        for (label, paths) in &targets {
            for clients in LEVELS {
                loads.push(
                    self.load(server, label, &staff[..clients], paths, None)
                        .await?,
                );
            }
        }
        Ok(ConsoleResult {
            pages: pages_info,
            loads,
            recipient,
            recipient_total,
            recipient_walk,
            deep_walk,
            first_ids,
            far_before,
            far_rows_above,
            staff_sign_in: Duration::ZERO,
        })
    }

    async fn customer_phase(
        &mut self,
        server: &mut Proc,
        customers: &[Browser],
    ) -> Result<CustomerResult> {
        println!("signed-in customer pages ...");
        let mut loads = Vec::new();
        for (page, expect) in [
            ("billing", "<h1>Billing</h1>"),
            ("account", "<h1>Account</h1>"),
        ] {
            let paths = vec![format!("/s/{SLUG}/{page}")];
            loads.push(
                self.load(server, page, customers, &paths, Some(expect))
                    .await?,
            );
        }
        Ok(CustomerResult { loads })
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of the page query for the measured pages, with the custom
    /// and the generic plan; and a check that the bench's copy of the query returns what the
    /// server showed.
    async fn query_plans(&mut self, console: &ConsoleResult) -> Result<Vec<PlanResult>> {
        println!("query plans ...");
        let dt = self.data.downtown;
        self.pg
            .batch_execute(&format!(
                "PREPARE lk_page(bigint, bigint, bigint, text, bigint) AS {PAGE_SQL};
                 PREPARE lk_recipient(bigint, text, bigint, text, bigint) AS {RECIPIENT_SQL}"
            ))
            .await
            .context("prepare the bench's copy of the page query")?;
        let deep_before = console
            .pages
            .iter()
            .find(|p| p.label.contains("deep"))
            .and_then(|p| p.path.split("before=").nth(1))
            .and_then(|b| b.split('&').next())
            .and_then(|b| b.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let cases = [
            ("first page", i64::MAX, String::new(), String::new()),
            ("status=failed", i64::MAX, "failed".into(), String::new()),
            (
                "recipient=…",
                i64::MAX,
                String::new(),
                console.recipient.to_lowercase(),
            ),
            (
                "status=deferred (rare)",
                i64::MAX,
                "deferred".into(),
                String::new(),
            ),
            ("deep page", deep_before, String::new(), String::new()),
            (FAR_PAGE, console.far_before, String::new(), String::new()),
        ];
        // The bench's copy must answer as the server did (first page).
        let rows = self
            .pg
            .simple_query(&format!(
                "EXECUTE lk_page({dt}, {}, {SCAN_LIMIT}, '', {})",
                i64::MAX,
                PAGE_SIZE + 1
            ))
            .await
            .context("run the bench's copy of the page query")?;
        let copy_ids: Vec<i64> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .take(PAGE_SIZE as usize)
            .collect();
        let matches_server = copy_ids == console.first_ids;
        let mut out = Vec::new();
        for (label, before, status, recipient) in cases {
            for mode in ["force_custom_plan", "force_generic_plan"] {
                self.pg
                    .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                    .await?;
                let execute = if recipient.is_empty() {
                    format!(
                        "lk_page({dt}, {before}, {SCAN_LIMIT}, {}, {})",
                        quote(&status),
                        PAGE_SIZE + 1
                    )
                } else {
                    format!(
                        "lk_recipient({dt}, {}, {before}, {}, {})",
                        quote(&recipient),
                        quote(&status),
                        PAGE_SIZE + 1
                    )
                };
                let sql = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {execute}");
                // Twice: the first run reads what the load did not touch; the second is what
                // a page costs with the working set cached, as in the load.
                let mut json = String::new();
                for _ in 0..2 {
                    json = self
                        .pg
                        .simple_query(&sql)
                        .await
                        .with_context(|| format!("EXPLAIN {label}"))?
                        .iter()
                        .find_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => {
                                r.get(0).map(str::to_string)
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                }
                out.push(PlanResult::parse(
                    label,
                    if mode == "force_custom_plan" {
                        "custom"
                    } else {
                        "generic"
                    },
                    &json,
                    matches_server,
                ));
            }
        }
        self.pg
            .batch_execute("RESET plan_cache_mode; DEALLOCATE lk_page; DEALLOCATE lk_recipient")
            .await?;
        if !matches_server {
            eprintln!(
                "warning: the bench's copy of the page query returned {copy_ids:?}, the server's first page {:?}: the copy in benches/operations.rs is out of date",
                console.first_ids
            );
        }
        Ok(out)
    }

    /// Builds a backlog of `backlog` sign-in emails with no worker running, then starts
    /// `workers` worker processes and times the drain.
    async fn mail_round(
        &mut self,
        server: &mut Proc,
        round: usize,
        workers: usize,
    ) -> Result<MailRound> {
        let n = self.settings.backlog;
        println!(
            "mail round {}: backlog of {n} sign-in emails, then {workers} worker process(es) ...",
            round + 1
        );
        self.sink.clear();
        let depth_at_start = self.queue.depth().await.unwrap_or(0);
        ensure!(
            depth_at_start == 0,
            "the mail queue holds {depth_at_start} messages before the backlog is built"
        );
        let low_id: i64 = self
            .pg
            .query_one("SELECT COALESCE(MAX(id), 0) FROM deliveries", &[])
            .await?
            .get(0);

        // Build the backlog through the sign-in form, as customers would.
        let next = Arc::new(AtomicUsize::new(round * n + 1));
        let last = (round + 1) * n;
        let abort = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(BUILD_CLIENTS);
        for _ in 0..BUILD_CLIENTS {
            let browser = Browser::new(&self.launcher.base_url)?;
            let next = next.clone();
            let abort = abort.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                let mut errors = ErrorTally::default();
                let form = format!("/s/{SLUG}/sign-in");
                while !abort.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k > last {
                        break;
                    }
                    let email = mail_address(k);
                    match browser.request_link(&form, &email).await {
                        Ok(()) => done.push(email),
                        Err(kind) => errors.add(kind),
                    }
                }
                (done, errors)
            }));
        }
        let results = drive(server, &abort, tasks).await?;
        let build_time = started.elapsed();
        let mut expected: HashSet<String> = HashSet::with_capacity(n);
        let mut build_errors = ErrorTally::default();
        for (done, errors) in results {
            expected.extend(done);
            build_errors.merge(errors);
        }
        if build_errors.total() > 0 {
            self.failures.push(format!(
                "mail round {}: building the backlog: {}",
                round + 1,
                build_errors.describe()
            ));
        }
        let expected_n = expected.len();
        // The message is published after the transaction commits (with publisher confirms):
        // wait until the broker holds all of them.
        let deadline = Instant::now() + Duration::from_secs(60);
        let depth = loop {
            let depth = self.queue.depth().await.unwrap_or(0);
            if depth as usize >= expected_n || Instant::now() >= deadline {
                break depth;
            }
            server.check()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let queued: i64 = self
            .pg
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE id > $1 AND status = 'queued' AND recipient LIKE 'mail-%'",
                &[&low_id],
            )
            .await?
            .get(0);
        ensure!(
            queued as usize == expected_n && depth as usize == expected_n,
            "mail round {}: {expected_n} links requested, but {queued} rows are queued and the broker holds {depth} messages",
            round + 1
        );
        ensure!(
            self.sink.count() == 0,
            "emails arrived while no worker was running"
        );
        println!(
            "  backlog: {expected_n} links requested in {:.1} s ({:.0}/s), {depth} messages in RabbitMQ",
            build_time.as_secs_f64(),
            rate(expected_n, build_time)
        );

        // Drain.
        let server_pid = server.pid;
        let cpu_a = tokio::task::spawn_blocking(move || cpu_sample(server_pid, &[])).await?;
        let t0 = Instant::now();
        let mut procs = Vec::with_capacity(workers);
        for i in 0..workers {
            procs.push(self.launcher.worker(round * 10 + i + 1)?);
        }
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        let deadline = t0 + self.settings.env.drain_timeout;
        let mut timed_out = false;
        while self.sink.count() < expected_n {
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            server.check()?;
            for p in &mut procs {
                p.check()?;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let all_in = Instant::now();
        let cpu_pids = pids.clone();
        let cpu_b = tokio::task::spawn_blocking(move || cpu_sample(server_pid, &cpu_pids)).await?;
        let memory: Vec<Option<Memory>> = pids.iter().map(|p| read_memory(*p)).collect();
        // Listen on for duplicates.
        tokio::time::sleep(DUPLICATE_GRACE).await;
        let received = self.sink.count();
        let arrivals = self.sink.first_arrivals();
        let delivered: usize = expected
            .iter()
            .filter(|e| arrivals.contains_key(*e))
            .count();
        let unexpected = arrivals.len() - delivered;
        let duplicates = received.saturating_sub(arrivals.len());
        // Every row must end `sent`, with its one try recorded (on the row since migration 0011).
        let deadline = Instant::now() + Duration::from_secs(30);
        let (sent, attempts, other) = loop {
            let row = self
                .pg
                .query_one(
                    "SELECT COUNT(*) FILTER (WHERE status = 'sent'),
                            COALESCE(SUM(attempts) FILTER (WHERE status = 'sent'), 0)::bigint,
                            COUNT(*) FILTER (WHERE status <> 'sent')
                     FROM deliveries WHERE id > $1 AND recipient LIKE 'mail-%'",
                    &[&low_id],
                )
                .await?;
            let (sent, attempts, other): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if other == 0 || Instant::now() >= deadline {
                break (sent, attempts, other);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Tries recorded: attempt rows (failed or deferred tries) plus the sending try that
        // each sent row records itself (migration 0011).
        let attempt_rows: i64 = self
            .pg
            .query_one(
                "SELECT (SELECT COUNT(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
                         WHERE d.id > $1 AND d.recipient LIKE 'mail-%')
                      + (SELECT COUNT(*) FROM deliveries d
                         WHERE d.id > $1 AND d.recipient LIKE 'mail-%' AND d.sent_detail IS NOT NULL)",
                &[&low_id],
            )
            .await?
            .get(0);
        let depth_after = self.queue.depth().await.unwrap_or(u64::MAX);
        let mut stops = Vec::new();
        let mut relayed = 0u64;
        for p in &mut procs {
            stops.push(p.stop(STOP_GRACE).await);
            relayed += relayed_in_log(&p.log());
        }

        let label = format!("mail round {} ({workers} worker(s))", round + 1);
        if timed_out || delivered < expected_n {
            self.failures.push(format!(
                "{label}: {} of {expected_n} emails never arrived (waited {:.0} s)",
                expected_n - delivered,
                self.settings.env.drain_timeout.as_secs_f64()
            ));
        }
        if duplicates > 0 || unexpected > 0 {
            self.failures.push(format!(
                "{label}: {duplicates} duplicate emails, {unexpected} to unexpected addresses"
            ));
        }
        if sent as usize != expected_n || other != 0 || attempts != sent || attempt_rows != sent {
            self.failures.push(format!(
                "{label}: {sent} rows sent (with {attempts} attempts, {attempt_rows} tries recorded), {other} not sent, {expected_n} expected"
            ));
        }
        if depth_after != 0 {
            self.failures.push(format!(
                "{label}: {depth_after} messages left in the queue after the drain"
            ));
        }
        for (p, s) in procs.iter().zip(&stops) {
            if !s.starts_with("stopped on SIGTERM") {
                self.failures.push(format!("{label}: {} {s}", p.name));
            }
        }

        let mut times: Vec<Instant> = expected
            .iter()
            .filter_map(|e| arrivals.get(e).copied())
            .collect();
        times.sort_unstable();
        let last_arrival = times.last().copied().unwrap_or(all_in);
        let first_arrival = times.first().copied().unwrap_or(t0);
        let middle = if times.len() >= 10 {
            let lo = times[times.len() / 10];
            let hi = times[times.len() * 9 / 10];
            rate(times.len() * 8 / 10, hi - lo)
        } else {
            0.0
        };
        let cpu = cpu_b.minus(&cpu_a);
        Ok(MailRound {
            workers,
            backlog: expected_n,
            build_time,
            build_errors,
            broker_depth: depth,
            received: delivered,
            duplicates,
            first_email: first_arrival.saturating_duration_since(t0),
            drain: last_arrival.saturating_duration_since(t0),
            rate_whole: rate(delivered, last_arrival.saturating_duration_since(t0)),
            rate_middle: middle,
            cpu,
            worker_memory: memory,
            sent,
            attempt_rows,
            not_sent: other,
            relayed,
            depth_after,
            stops,
        })
    }
}

/// Resolves an href of an Emails tab page against the page's path.
fn resolve(page_path: &str, href: &str) -> String {
    if href.starts_with('?') {
        let base = page_path.split('?').next().unwrap_or(page_path);
        format!("{base}{href}")
    } else {
        href.to_string()
    }
}

/// Sums `published=N` of the Mailer's "relayed deliveries" log lines.
fn relayed_in_log(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("relayed deliveries"))
        .filter_map(|l| {
            let at = l.find("published=")? + "published=".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The page query and its plans

/// The label of the page 90% down the tab.
const FAR_PAGE: &str = "cursor 90% down";

/// Rows per Emails tab page and rows a page scans at most (`src/http/console.rs`,
/// `src/store/console.rs`).
const PAGE_SIZE: i64 = 50;
const SCAN_LIMIT: i64 = 5_000;

/// A copy of the SQL of `Store::deliveries_page` for a facility (src/store/console.rs), for
/// EXPLAIN. The bench checks that it returns the rows of the server's first page.
const PAGE_SQL: &str = "WITH scan AS (SELECT delivery_id AS id FROM delivery_facilities WHERE facility_id = $1 AND delivery_id < $2
                 ORDER BY delivery_id DESC LIMIT $3),
             picked AS (
                 SELECT d.* FROM delivery_facilities f JOIN deliveries d ON d.id = f.delivery_id
                 WHERE f.facility_id = $1 AND f.delivery_id < $2 AND f.delivery_id >= (SELECT MIN(id) FROM scan)
                 AND ($4 = '' OR d.status = $4)
                 ORDER BY d.id DESC LIMIT $5)
             SELECT p.id, p.storefront_id, p.account_id, p.kind, p.recipient, p.subject, p.status, p.attempts,
                 p.last_error, p.created_at, p.updated_at, p.next_attempt_at, p.sent_at, p.sealed_token IS NOT NULL,
                 s.low, s.n
             FROM (SELECT MIN(id) AS low, COUNT(*) AS n FROM scan) AS s
             LEFT JOIN picked p ON TRUE
             ORDER BY p.id DESC";

/// A copy of the SQL of `Store::recipient_page` for a facility: the recipient filter reads the
/// recipient index directly.
const RECIPIENT_SQL: &str = "SELECT d.id, d.storefront_id, d.account_id, d.kind, d.recipient, d.subject, d.status,
                 d.attempts, d.last_error, d.created_at, d.updated_at, d.next_attempt_at, d.sent_at,
                 d.sealed_token IS NOT NULL
             FROM deliveries d JOIN delivery_facilities f ON f.delivery_id = d.id AND f.facility_id = $1 WHERE TRUE
               AND lower(d.recipient) = $2 AND d.id < $3 AND ($4 = '' OR d.status = $4)
             ORDER BY d.id DESC LIMIT $5";

struct PlanResult {
    query: String,
    plan: &'static str,
    execution_ms: f64,
    planning_ms: f64,
    shared_hit: i64,
    shared_read: i64,
    /// Index scans as "Node Type on index", in plan order.
    indexes: Vec<String>,
    seq_scans: Vec<String>,
    heap_fetches: i64,
    rows_removed: i64,
    matches_server: bool,
}

impl PlanResult {
    fn parse(query: &str, plan: &'static str, json: &str, matches_server: bool) -> Self {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let top = &v[0];
        let root = &top["Plan"];
        let mut r = Self {
            query: query.to_string(),
            plan,
            execution_ms: top["Execution Time"].as_f64().unwrap_or(-1.0),
            planning_ms: top["Planning Time"].as_f64().unwrap_or(-1.0),
            shared_hit: root["Shared Hit Blocks"].as_i64().unwrap_or(0),
            shared_read: root["Shared Read Blocks"].as_i64().unwrap_or(0),
            indexes: Vec::new(),
            seq_scans: Vec::new(),
            heap_fetches: 0,
            rows_removed: 0,
            matches_server,
        };
        r.walk(root);
        r
    }

    fn walk(&mut self, node: &serde_json::Value) {
        let kind = node["Node Type"].as_str().unwrap_or("");
        let backward = node["Scan Direction"].as_str() == Some("Backward");
        if let Some(index) = node["Index Name"].as_str() {
            let name = format!(
                "{kind}{} on {index}",
                if backward { " Backward" } else { "" }
            );
            if !self.indexes.contains(&name) {
                self.indexes.push(name);
            }
        }
        if kind == "Seq Scan" {
            self.seq_scans
                .push(node["Relation Name"].as_str().unwrap_or("?").to_string());
        }
        self.heap_fetches += node["Heap Fetches"].as_i64().unwrap_or(0);
        self.rows_removed += node["Rows Removed by Filter"].as_i64().unwrap_or(0)
            * node["Actual Loops"].as_i64().unwrap_or(1);
        if let Some(children) = node["Plans"].as_array() {
            for child in children {
                self.walk(child);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mail rounds

struct MailRound {
    workers: usize,
    backlog: usize,
    build_time: Duration,
    build_errors: ErrorTally,
    broker_depth: u64,
    received: usize,
    duplicates: usize,
    /// From starting the workers to the first and to the last email.
    first_email: Duration,
    drain: Duration,
    rate_whole: f64,
    rate_middle: f64,
    cpu: CpuShares,
    worker_memory: Vec<Option<Memory>>,
    sent: i64,
    attempt_rows: i64,
    not_sent: i64,
    relayed: u64,
    depth_after: u64,
    stops: Vec<String>,
}

impl MailRound {
    fn line(&self) -> String {
        format!(
            "  {} worker(s): {}/{} emails in {:.2} s: {:.0} emails/s (middle 80%: {:.0}/s), duplicates {}, workers {} CPU, peak RSS {}",
            self.workers,
            self.received,
            self.backlog,
            self.drain.as_secs_f64(),
            self.rate_whole,
            self.rate_middle,
            self.duplicates,
            self.cpu.pct(self.cpu.workers),
            self.peak_rss()
        )
    }

    fn peak_rss(&self) -> String {
        let peaks: Vec<String> = self
            .worker_memory
            .iter()
            .map(|m| m.map_or("?".into(), |m| format!("{:.0} MiB", m.peak_mib)))
            .collect();
        peaks.join(" + ")
    }
}

// ---------------------------------------------------------------------------------------------
// CPU and memory

impl CpuSample {
    /// The CPU used between `earlier` and this sample (see [`CpuShares::between`]).
    fn minus(&self, earlier: &CpuSample) -> CpuShares {
        CpuShares::between(&[earlier.clone(), self.clone()])
    }
}

/// CPU from `from` to `to` (server and workers by pid).
async fn cpu_window(server_pid: u32, workers: Vec<u32>, from: Instant, to: Instant) -> CpuShares {
    tokio::time::sleep_until(from.into()).await;
    let w = workers.clone();
    let a = tokio::task::spawn_blocking(move || cpu_sample(server_pid, &w)).await;
    tokio::time::sleep_until(to.into()).await;
    let b = tokio::task::spawn_blocking(move || cpu_sample(server_pid, &workers)).await;
    match (a, b) {
        (Ok(a), Ok(b)) => b.minus(&a),
        _ => CpuShares::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    settings: Settings,
    machine: MachineInfo,
    overrides: Vec<(String, String)>,
    data: DataInfo,
    console: ConsoleResult,
    customer: CustomerResult,
    plans: Vec<PlanResult>,
    mail: Vec<MailRound>,
    server_memory: Option<Memory>,
    server_stop: String,
    failures: Vec<String>,
    total: Duration,
}

/// The stable text at the top of the section.
const INTRO: &str = r#"## Operations benchmark

```sh
cargo bench --bench operations
```

Same needs as the benchmark above (PostgreSQL and RabbitMQ on 127.0.0.1, or
`LATCHKEY_TEST_DATABASE_URL` / `LATCHKEY_TEST_AMQP_URL`); a fresh database, dropped at the end;
about three minutes with the defaults, besides building. It writes only this section, between the
`operations-bench` marker lines; `BENCH_WRITE=0` prints only.

| variable | default | meaning |
|---|---|---|
| `BENCH_MAIL_BACKLOG` | `20000` | sign-in emails in each mail backlog |
| `BENCH_WORKERS` | `1,2` | `latchkey worker` processes of each mail round (a fresh backlog each) |
| `BENCH_DELIVERIES` | `1000000` | deliveries of history loaded for the Emails tab |
| `BENCH_DEEP_PAGES` | `50` | Older links followed to reach the deep page |
| `BENCH_SECONDS` / `BENCH_WARMUP_SECONDS` | `5` / `1` | measured / warm-up seconds of each page load |
| `BENCH_DRAIN_TIMEOUT_SECONDS` | `180` | longest wait for a backlog to drain |
| `LATCHKEY_*` | | passed on to every `latchkey` process |

What is measured:

- **Mail throughput through the workers.** `latchkey serve` runs with its workers off
  (`LATCHKEY_RUN_WORKERS=false`). With no worker running, 32 browsers request sign-in links for
  distinct accounts through the sign-in form (GET the form, POST it with its CSRF token), so the
  token and delivery rows and the RabbitMQ messages are exactly what the product makes; the bench
  waits until the broker holds every message. Then it starts `latchkey worker` processes and
  times until the SMTP server has every email. *emails/s* = emails / (workers started → last
  email); *middle 80%* = the rate between the 10th and the 90th percentile arrival (no start-up,
  no tail). Every email must arrive exactly once (the bench listens 3 s more for duplicates) and
  every delivery row must end `sent` with its one try recorded, or the run fails. CPU is over the
  drain, as a percentage of one core.
- **The facility Emails tab with a million deliveries.** One `generate_series` load writes the
  history (see below; with it the spent links of the last 30 days' sign-in emails, so the link
  table is planned for as in a running portal, not as an empty table), then `VACUUM ANALYZE`.
  Staff users made with `latchkey admin staff` sign in to `/console` by the emailed link (8
  browsers, two per staff user); 1 and 8 of them load each page in a loop. The deep page is reached by following the Older link; *cursor 90% down* is the
  page below 90% of the tab's rows, where a client reading every page ends up (the integration
  API pages the same way); the detail pages are those of the first page's rows.
  `EXPLAIN (ANALYZE, BUFFERS)` runs the page query (a copy of `Store::deliveries_page`'s SQL,
  which the bench checks against the server's first page) for those pages and for a rare status,
  as a custom plan and as the generic plan a prepared statement may switch to after five runs;
  the second of two runs is shown (cached, as under load).
- **Signed-in customer pages**: 8 browsers signed in through the magic link (4 as Alex Martin, 4
  as Sam) load the billing and the account page in a loop.

Choices: the policy limits (per-IP, and the sending limits per domain, per storefront and overall)
are raised, since all clients are 127.0.0.1 and all backlog emails go to one domain and one
storefront; capacity settings (pools, mail concurrency, threads) keep their defaults. The SMTP
server runs in the benchmark process (`latchkey_testkit::SmtpSink`). Everything shares the
machine, so the CPU columns say who used it. A page that answers anything but 200 fails the run.
"#;

impl Report {
    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{MARK_START}\n{INTRO}");
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        let _ = writeln!(
            s,
            "### Operations results\n\nRun of {now}, {:.0} s in all.\n",
            self.total.as_secs_f64()
        );
        write_failures(&mut s, &self.failures);
        let mut disturbed: Vec<String> = self
            .console
            .loads
            .iter()
            .chain(&self.customer.loads)
            .filter(|l| l.cpu.disturbed())
            .map(|l| {
                format!(
                    "{}, {} client(s) ({})",
                    l.page,
                    l.clients,
                    l.cpu.describe_others()
                )
            })
            .collect();
        disturbed.extend(self.mail.iter().filter(|r| r.cpu.disturbed()).map(|r| {
            format!(
                "mail, {} worker(s) ({})",
                r.workers,
                r.cpu.describe_others()
            )
        }));
        write_disturbed(&mut s, &disturbed);
        let _ = writeln!(s, "{}", self.machine.markdown());
        write_settings(
            &mut s,
            &[
                (RAISED_LIMITS, ""),
                (SERVE_SETTINGS, " for `latchkey serve`"),
                (WORKER_SETTINGS, " for `latchkey worker`"),
            ],
            &self.overrides,
        );
        let d = Config::defaults();
        let _ = writeln!(
            s,
            "\nUnchanged, for reference: database pool {} per process, mail concurrency {} per worker process (= RabbitMQ prefetch), SMTP pool {}, relay after {} s.\n",
            d.database.pool_size,
            d.mail.concurrency,
            d.mail.smtp_pool_size,
            d.mail.relay_after_seconds
        );

        self.mail_markdown(&mut s);
        self.console_markdown(&mut s);
        self.plans_markdown(&mut s);
        self.customer_markdown(&mut s);

        let _ = writeln!(
            s,
            "`latchkey serve`: peak RSS {}; it {}.\n",
            self.server_memory
                .map_or("not readable".into(), |m| format!("{:.0} MiB", m.peak_mib)),
            self.server_stop
        );
        let _ = writeln!(s, "{MARK_END}");
        s
    }

    fn mail_markdown(&self, s: &mut String) {
        let _ = writeln!(s, "#### Mail throughput through the workers\n");
        let _ = writeln!(
            s,
            "Each round: a backlog of {} sign-in emails to distinct accounts, built through the sign-in form while no worker runs, then drained by fresh `latchkey worker` processes.\n",
            thousands(self.settings.backlog as i64)
        );
        let _ = writeln!(
            s,
            "| worker processes | emails received / queued | duplicates | first email after | drained in | emails/s | emails/s, middle 80% | workers CPU | workers peak RSS | PostgreSQL CPU | RabbitMQ CPU | bench (SMTP server) CPU | whole machine | busy other processes |"
        );
        let _ = writeln!(
            s,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &self.mail {
            let received = if r.received == r.backlog {
                format!("{} / {}", r.received, r.backlog)
            } else {
                format!(
                    "**{} / {} (MISSING {})**",
                    r.received,
                    r.backlog,
                    r.backlog - r.received
                )
            };
            let _ = writeln!(
                s,
                "| {} | {received} | {} | {:.2} s | {:.2} s | **{:.0}** | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                r.workers,
                r.duplicates,
                r.first_email.as_secs_f64(),
                r.drain.as_secs_f64(),
                r.rate_whole,
                r.rate_middle,
                r.cpu.pct(r.cpu.workers),
                r.peak_rss(),
                r.cpu.pct(r.cpu.postgres),
                r.cpu.pct(r.cpu.rabbitmq),
                r.cpu.pct(r.cpu.bench),
                r.cpu.pct(r.cpu.machine),
                r.cpu.describe_others()
            );
        }
        let _ = writeln!(
            s,
            "\n| worker processes | backlog built in | links/s (32 browsers) | messages in RabbitMQ | delivery rows `sent` / attempt rows / not sent | republished by the relay | queue after | workers stopped |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---|---:|---:|---|");
        for r in &self.mail {
            let _ = writeln!(
                s,
                "| {} | {:.1} s | {:.0} | {} | {} / {} / {} | {} | {} | {} |",
                r.workers,
                r.build_time.as_secs_f64(),
                rate(r.backlog, r.build_time),
                r.broker_depth,
                r.sent,
                r.attempt_rows,
                r.not_sent,
                r.relayed,
                r.depth_after,
                r.stops.join("; ")
            );
        }
        let errors: Vec<String> = self
            .mail
            .iter()
            .filter(|r| r.build_errors.total() > 0)
            .map(|r| format!("{} worker(s): {}", r.workers, r.build_errors.describe()))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\nErrors while building: {}.", errors.join("; "));
        }
        let _ = writeln!(
            s,
            "\n*Republished by the relay*: rows still `queued` {} s after they were written are published again by a worker's relay (the broker may have lost them); the duplicate messages are skipped when claimed. The sending limits are per worker process (governor, in memory).\n",
            Config::defaults().mail.relay_after_seconds
        );
        if let (Some(one), Some(top)) = (
            self.mail.iter().find(|r| r.workers == 1),
            self.mail.iter().max_by_key(|r| r.workers),
        ) && top.workers > 1
            && one.rate_middle > 0.0
        {
            let _ = writeln!(
                s,
                "{} worker processes: {:.2}× the steady rate of one.\n",
                top.workers,
                top.rate_middle / one.rate_middle
            );
        }
    }

    fn console_markdown(&self, s: &mut String) {
        let d = &self.data;
        let c = &self.console;
        let _ = writeln!(
            s,
            "#### Facility Emails tab, {} deliveries\n",
            thousands(d.deliveries)
        );
        let statuses: Vec<String> = d
            .by_status
            .iter()
            .map(|(st, n)| format!("{} {st}", thousands(*n)))
            .collect();
        let _ = writeln!(
            s,
            "History: {} deliveries over 180 days to {} recipients ({}; 70% sign-in links, 15% booking confirmations, 10% receipts, 5% email-changed notices), {} attempt rows; Downtown's Emails tab has {}, Marina's {}. Loaded in {:.1} s, `VACUUM ANALYZE` {:.1} s; database {}.\n",
            thousands(d.deliveries),
            thousands(HISTORY_RECIPIENTS as i64),
            statuses.join(", "),
            thousands(d.attempts),
            thousands(d.downtown_deliveries),
            thousands(d.marina_deliveries),
            d.load_seconds,
            d.vacuum_seconds,
            d.database_size
        );
        let _ = writeln!(
            s,
            "Pages of Downtown's tab (`/console/s/demo/facilities/{}/emails`), as an owner, managers and staff signed in by link:\n",
            d.downtown
        );
        let _ = writeln!(
            s,
            "| page | clients | requests | requests/s | p50 | p95 | p99 | max | rows on the page | Older link | latchkey CPU | PostgreSQL CPU | errors |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
        );
        for l in &c.loads {
            let info = c.pages.iter().find(|p| p.label == l.page);
            let rows = info.map_or("?".into(), |p| {
                if l.page == "delivery detail" {
                    "1 of 50".into()
                } else {
                    p.rows.to_string()
                }
            });
            let older = info.map_or("?", |p| {
                if l.page == "delivery detail" {
                    "–"
                } else if p.older {
                    "yes"
                } else {
                    "no"
                }
            });
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{:.0}** | {} | {} | {} | {} | {rows} | {older} | {} | {} | {} |",
                l.page,
                l.clients,
                l.requests,
                l.requests_per_second,
                ms(l.latency.p50),
                ms(l.latency.p95),
                ms(l.latency.p99),
                ms(l.latency.max),
                l.cpu.pct(l.cpu.server),
                l.cpu.pct(l.cpu.postgres),
                l.errors.describe()
            );
        }
        let _ = writeln!(
            s,
            "\nThe recipient is `{}`, the 10th newest recipient of the tab, with {} emails at Downtown over the six months.",
            c.recipient, c.recipient_total
        );
        match c.recipient_walk {
            Some((pages, found, took)) => {
                let _ = writeln!(
                    s,
                    "Following the recipient filter's Older links to the end took {pages} page(s) and {:.2} s ({} per page) and showed {found} emails: the filter reads the recipient index, so a recipient's emails come {PAGE_SIZE} to a page however many deliveries the facility has.",
                    took.as_secs_f64(),
                    ms(took / pages.max(1) as u32),
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "The recipient filter still had an Older link after 1,000 pages."
                );
            }
        }
        let (pages, took) = c.deep_walk;
        let _ = writeln!(
            s,
            "Reaching the deep page: {pages} Older links followed one after the other in {:.2} s ({} per page). *{FAR_PAGE}*: `?before={}`, the cursor below the newest {} of the tab's rows (page {} if followed link by link), as a client reading every page reaches it.\n",
            took.as_secs_f64(),
            ms(took / pages.max(1) as u32),
            c.far_before,
            thousands(c.far_rows_above),
            thousands(c.far_rows_above / PAGE_SIZE + 1)
        );
        let _ = writeln!(
            s,
            "The {BROWSERS} staff browsers signed in (form, emailed link, landing page) one after the other in {:.1} s.\n",
            c.staff_sign_in.as_secs_f64()
        );
    }

    fn plans_markdown(&self, s: &mut String) {
        let _ = writeln!(s, "#### Query plans of the Emails tab\n");
        let _ = writeln!(
            s,
            "`EXPLAIN (ANALYZE, BUFFERS)` of the page query for Downtown ({} rows per page, at most {} rows scanned).\n",
            PAGE_SIZE,
            thousands(SCAN_LIMIT)
        );
        let _ = writeln!(
            s,
            "| query | plan | execution | planning | buffers hit / read | indexes used | sequential scans | heap fetches | rows removed by filter |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|---:|---:|");
        for p in &self.plans {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} ms | {:.2} ms | {} / {} | {} | {} | {} | {} |",
                p.query,
                p.plan,
                p.execution_ms,
                p.planning_ms,
                p.shared_hit,
                p.shared_read,
                if p.indexes.is_empty() {
                    "none".into()
                } else {
                    p.indexes.join("; ")
                },
                if p.seq_scans.is_empty() {
                    "none".into()
                } else {
                    p.seq_scans.join(", ")
                },
                p.heap_fetches,
                p.rows_removed
            );
        }
        if self.plans.iter().any(|p| !p.matches_server) {
            let _ = writeln!(
                s,
                "\n**The bench's copy of the query did not return what the server's page showed: it is out of date.**"
            );
        }
        s.push('\n');
    }

    fn customer_markdown(&self, s: &mut String) {
        let _ = writeln!(s, "#### Signed-in customer pages, {BROWSERS} clients\n");
        let _ = writeln!(
            s,
            "Browsers signed in through the emailed magic link (half as Alex Martin: two active rentals at two facilities, a pending and a paid invoice; half as Sam); payments are off (no Stripe keys).\n"
        );
        let _ = writeln!(
            s,
            "| page | requests | requests/s | p50 | p95 | p99 | max | latchkey CPU | PostgreSQL CPU | bench CPU | errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for l in &self.customer.loads {
            let _ = writeln!(
                s,
                "| `GET /s/demo/{}` | {} | **{:.0}** | {} | {} | {} | {} | {} | {} | {} | {} |",
                l.page,
                l.requests,
                l.requests_per_second,
                ms(l.latency.p50),
                ms(l.latency.p95),
                ms(l.latency.p99),
                ms(l.latency.max),
                l.cpu.pct(l.cpu.server),
                l.cpu.pct(l.cpu.postgres),
                l.cpu.pct(l.cpu.bench),
                l.errors.describe()
            );
        }
        s.push('\n');
    }
}
