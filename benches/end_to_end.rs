//! End-to-end benchmark of `latchkey serve` on PostgreSQL + RabbitMQ + SMTP.
//!
//! Run it with `cargo bench --bench end_to_end` (PostgreSQL on 127.0.0.1:5432 with trust auth
//! for `postgres`, RabbitMQ with `guest` on 127.0.0.1:5672). It prints its tables and writes
//! them under "Results" in `BENCHMARKS.md`.
//!
//! # What is measured, and how
//!
//! The real release binary runs as a child process, configured only through environment
//! variables, and is driven through its HTTP interface exactly as browsers drive it: each
//! client is its own cookie-keeping HTTP client that loads the sign-in page, reads the hidden
//! `csrf_token`, and posts the form. A sign-in link counts only when the SMTP server has the
//! email, so the figures cover the whole path: HTTP, TokenIssuer, the PostgreSQL transaction
//! that writes token and delivery, the RabbitMQ publish, the Mailer worker, SMTP.
//!
//! - **Throughput levels** (1, 8, 32 concurrent clients by default): links per second end to
//!   end (emails received / time from the level's first POST to its last email), the request
//!   rate, the POST latency and the request-to-inbox latency (email arrival minus POST sent).
//! - **Signed-in page throughput**: 8 browsers complete the magic-link flow (reading the link
//!   from the email) and then load the dashboard as fast as they can.
//! - **Known vs unknown address**: the sign-in POST latency for an address with an account and
//!   for one without, interleaved under the same load (the spec promises no measurable
//!   difference).
//! - **Where the time went**: CPU time of the benchmark process, the server, PostgreSQL and
//!   RabbitMQ over each measured window (and any other busy process, e.g. a build running
//!   alongside, which is flagged); PostgreSQL's commits, rows and WAL flushes and what its
//!   backends were waiting on; the server's peak memory.
//!
//! Choices that keep the measurement honest:
//!
//! - **Distinct accounts.** Every link goes to an address never used before in the run
//!   (`bench-0000123@bench.example`), so the per-account limit (5 links per 15 minutes) never
//!   suppresses a send: the figures are the pipeline's, not the limiter's.
//! - **The SMTP server runs in this process** ([`SmtpSink`]): it timestamps each arrival on the
//!   same monotonic clock as the POSTs, so request-to-inbox latency needs no clock sync, and it
//!   is far cheaper than a real MTA on this small machine. It keeps the messages (the
//!   signed-in phase reads links from them) and is cleared after each phase.
//! - **Policy limits are raised, capacity settings are not.** All clients come from
//!   127.0.0.1, so the per-IP burst limit (20 requests, then 2/s) would answer 429 at once; and
//!   all bench emails go to one storefront and one recipient domain, so the sending limits
//!   (200/s per domain, 500/s per storefront, 1000/s overall by default) would measure the
//!   configured policy, not the system. Both are raised; everything else (pool sizes, mail
//!   concurrency, ...) stays at the compiled-in defaults. Any `LATCHKEY_*` variable set when
//!   invoking the bench is passed on to the server and overrides these, e.g.
//!   `LATCHKEY_MAIL__CONCURRENCY=64 cargo bench --bench end_to_end`.
//! - **Warm-up.** Each phase runs a short warm-up whose requests are not measured; the clients
//!   run on without a pause into the measured window, and the warm-up's emails are still
//!   required to arrive.
//!
//! Knobs (environment): `BENCH_LEVELS` (default `1,8,32`), `BENCH_SECONDS` (per phase,
//! default 20), `BENCH_WARMUP_SECONDS` (default 2), `BENCH_DRAIN_TIMEOUT_SECONDS` (how long to
//! wait for the emails after a phase, default 120), `BENCH_MAX_RATE` (links/s the account pool
//! is sized for, default 4000), `BENCH_WRITE=0` (do not touch `BENCHMARKS.md`),
//! `LATCHKEY_TEST_DATABASE_URL` and `LATCHKEY_TEST_AMQP_URL` (as for the tests).
//!
//! The run fails (non-zero exit) when an email that was requested never arrives, or when the
//! server dies.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use common::*;
use latchkey::config::Config;
use latchkey_testkit::SmtpSink;

/// The demo storefront every request goes to.
const SLUG: &str = "demo";
/// Clients in the signed-in page phase and in the known/unknown comparison.
const PHASE_CLIENTS: usize = 8;
/// Demo customers the signed-in browsers use (half each): Alex has two active rentals at two
/// facilities, Sam none. Four links each stay under the per-account limit of five.
const DASHBOARD_CUSTOMERS: [&str; 2] = ["alex@example.com", "sam@example.com"];
/// How long the server has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
fn main() -> ExitCode {
    common::report::main("end_to_end", run)
}

/// Sets up, measures, cleans up. `Ok(false)` when the measurements show a failure.
async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let db = BenchDatabase::create(&settings.env.admin_url, "lk_bench").await?;
    let prefix = format!("latchkey.bench.{}.{}", std::process::id(), random_lower(8));
    let outcome = run_on_database(&settings, &db, &prefix).await;
    tear_down(&settings.env.amqp_url, &prefix, &db).await;
    let report = outcome?;
    publish(&report.markdown(), settings.env.write_file, write_results)?;
    Ok(report.passed())
}

/// Everything between creating the database and dropping it.
async fn run_on_database(settings: &Settings, db: &BenchDatabase, prefix: &str) -> Result<Report> {
    let sink = SmtpSink::start()
        .await
        .context("start the in-process SMTP server")?;
    let accounts_needed = settings.accounts_needed();
    prepare_data(&db.url, accounts_needed).await?;
    let pg = Arc::new(admin_client(&db.url).await?);
    let launcher = Launcher::new(&db.url, &settings.env.amqp_url, prefix, sink.port())?;
    let mut server = launcher.serve(&[]).await?;
    let mut bench = Bench {
        settings,
        root: format!("{}/s/{SLUG}", launcher.base_url),
        sink: &sink,
        accounts: Arc::new(Accounts::new(accounts_needed)),
        unknown: Arc::new(AtomicUsize::new(0)),
        pg,
        failures: Vec::new(),
    };
    let measured = bench.measure_all(&mut server).await;
    let server_memory = read_memory(server.pid);
    let bench_memory = read_memory(std::process::id());
    let stopped = server.stop(STOP_GRACE).await;
    let phases = measured?;
    let machine = MachineInfo::collect(&settings.env.admin_url).await;
    Ok(Report {
        settings: settings.clone(),
        machine,
        overrides: launcher.overrides.clone(),
        phases,
        server_memory,
        bench_memory,
        stop: stopped,
        failures: bench.failures,
    })
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    env: BenchEnv,
    levels: Vec<usize>,
    /// Links per second the account pool is sized for; running out is reported as errors.
    max_rate: f64,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let levels = env_counts("BENCH_LEVELS", &[1, 8, 32], |n| n > 0, "a positive integer")?;
        ensure!(!levels.is_empty(), "BENCH_LEVELS names no level");
        Ok(Self {
            env: BenchEnv::from_env(20.0, 2.0, 120.0)?,
            levels,
            max_rate: env_number("BENCH_MAX_RATE", 4000.0)?,
        })
    }

    /// Accounts for every level and the comparison phase at `max_rate`, with some slack.
    fn accounts_needed(&self) -> usize {
        let phase = (self.env.warmup + self.env.seconds).as_secs_f64() * self.max_rate;
        let n = (phase * (self.levels.len() + 1) as f64 * 1.1) as usize + 1000;
        n.min(10usize.pow(ACCOUNT_DIGITS as u32) - 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Browsers

/// A signed-in browser loading the dashboard until told to stop; returns (start, latency).
async fn dashboard_client(
    browser: Browser,
    stop: StopSignal,
) -> (Vec<(Instant, Duration)>, ErrorTally) {
    let url = browser.url("/dashboard");
    let mut samples = Vec::new();
    let mut errors = ErrorTally::default();
    while !stop.reached() {
        let started = Instant::now();
        match browser.get(&url, "GET dashboard").await {
            Ok((200, body)) if body.contains("<h1>Hi, ") => {
                samples.push((started, started.elapsed()))
            }
            Ok((200, _)) => errors.add("GET dashboard: 200 without \"Hi, \"".into()),
            Ok((status, _)) => errors.add(format!("GET dashboard: HTTP {status}")),
            Err(kind) => errors.add(kind),
        }
    }
    (samples, errors)
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Bench<'a> {
    settings: &'a Settings,
    /// The demo storefront's root URL, the browsers' root.
    root: String,
    sink: &'a SmtpSink,
    accounts: Arc<Accounts>,
    unknown: Arc<AtomicUsize>,
    /// A connection to the bench database, for PostgreSQL's statistics.
    pg: Arc<tokio_postgres::Client>,
    /// Reasons the run failed (missing emails, ...), reported loudly.
    failures: Vec<String>,
}

/// Everything measured.
struct Phases {
    levels: Vec<LevelResult>,
    dashboard: DashboardResult,
    comparison: ComparisonResult,
}

struct LevelResult {
    clients: usize,
    requested: usize,
    received: usize,
    /// Warm-up links, and those of them whose email arrived.
    warmup_requested: usize,
    warmup_received: usize,
    links_per_second: f64,
    requests_per_second: f64,
    get: Stats,
    post: Stats,
    inbox: Stats,
    /// From the end of issuing to the last email of the level.
    drain: Duration,
    errors: ErrorTally,
    cpu: CpuShares,
    pg: Option<PgWork>,
}

struct DashboardResult {
    requests: usize,
    requests_per_second: f64,
    latency: Stats,
    errors: ErrorTally,
    cpu: CpuShares,
    pg: Option<PgWork>,
}

struct ComparisonResult {
    known: Stats,
    unknown: Stats,
    emails_requested: usize,
    emails_received: usize,
    errors: ErrorTally,
    cpu: CpuShares,
    pg: Option<PgWork>,
}

impl Bench<'_> {
    async fn measure_all(&mut self, server: &mut Proc) -> Result<Phases> {
        let mut levels = Vec::new();
        for &clients in &self.settings.levels.clone() {
            let level = self.throughput_level(server, clients).await?;
            println!("{}", level_line(&level));
            levels.push(level);
        }
        let dashboard = self.dashboard_phase(server).await?;
        println!(
            "signed-in dashboard, {PHASE_CLIENTS} clients: {:.0} requests/s, p50 {} p99 {}, errors {}",
            dashboard.requests_per_second,
            ms(dashboard.latency.p50),
            ms(dashboard.latency.p99),
            dashboard.errors.total()
        );
        let comparison = self.comparison_phase(server).await?;
        println!(
            "known vs unknown address, {PHASE_CLIENTS} clients: POST p50 {} / {}, p99 {} / {}",
            ms(comparison.known.p50),
            ms(comparison.unknown.p50),
            ms(comparison.known.p99),
            ms(comparison.unknown.p99)
        );
        Ok(Phases {
            levels,
            dashboard,
            comparison,
        })
    }

    fn stop_signal(&self) -> (StopSignal, Instant) {
        let measure_from = Instant::now() + self.settings.env.warmup;
        let stop = StopSignal {
            at: measure_from + self.settings.env.seconds,
            abort: Arc::new(AtomicBool::new(false)),
        };
        (stop, measure_from)
    }

    /// N clients requesting links for the configured time, then wait for every email.
    async fn throughput_level(&mut self, server: &mut Proc, clients: usize) -> Result<LevelResult> {
        println!(
            "level {clients} client(s): {:.0} s warm-up + {:.0} s measured ...",
            self.settings.env.warmup.as_secs_f64(),
            self.settings.env.seconds.as_secs_f64()
        );
        self.sink.clear();
        let (stop, measure_from) = self.stop_signal();
        let usage = tokio::spawn(usage_window(
            server.pid,
            self.pg.clone(),
            measure_from,
            stop.at,
        ));
        let mut tasks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let browser = Browser::new(&self.root)?;
            let plan = AddressPlan::Known(self.accounts.clone());
            tasks.push(tokio::spawn(sign_in_client(browser, plan, stop.clone())));
        }
        let logs = drive(server, &stop.abort, tasks).await?;
        let (cpu, pg) = usage.await.context("the CPU sampler panicked")?;
        let (errors, links) = merge_logs(logs);
        let arrivals = wait_for_inbox(
            self.sink,
            std::slice::from_mut(server),
            &links,
            stop.at,
            self.settings.env.drain_timeout,
        )
        .await?;
        let mut pg = pg;
        if let Some(work) = pg.as_mut() {
            work.backlog = backlog_series(links.iter(), &arrivals, measure_from, stop.at);
        }
        let (warmup, measured): (Vec<_>, Vec<_>) =
            links.into_iter().partition(|l| l.sent < measure_from);
        let warmup_received = warmup
            .iter()
            .filter(|l| arrivals.contains_key(&l.email))
            .count();
        ensure!(
            !measured.is_empty(),
            "level {clients}: no sign-in link was requested successfully in the measured window (errors: {})",
            errors.describe()
        );
        let first_post = measured.iter().map(|l| l.sent).min().expect("not empty");
        let last_answer = measured
            .iter()
            .map(|l| l.sent + l.post_latency)
            .max()
            .expect("not empty");
        let mut inbox = Vec::with_capacity(measured.len());
        let mut last_arrival = first_post;
        for link in &measured {
            if let Some(at) = arrivals.get(&link.email) {
                inbox.push(at.saturating_duration_since(link.sent));
                last_arrival = last_arrival.max(*at);
            }
        }
        let requested = measured.len();
        let received = inbox.len();
        if received < requested || warmup_received < warmup.len() {
            self.failures.push(format!(
                "level {clients}: {} of {requested} measured emails and {} of {} warm-up emails never arrived",
                requested - received,
                warmup.len() - warmup_received,
                warmup.len()
            ));
        }
        let drain = last_arrival.saturating_duration_since(last_answer.max(stop.at));
        self.sink.clear();
        Ok(LevelResult {
            clients,
            requested,
            received,
            warmup_requested: warmup.len(),
            warmup_received,
            links_per_second: rate(received, last_arrival.saturating_duration_since(first_post)),
            requests_per_second: rate(requested, last_answer.saturating_duration_since(first_post)),
            get: Stats::of(measured.iter().map(|l| l.get_latency).collect()),
            post: Stats::of(measured.iter().map(|l| l.post_latency).collect()),
            inbox: Stats::of(inbox),
            drain,
            errors,
            cpu,
            pg,
        })
    }

    /// Signs in browsers through the magic link, then loads the dashboard as fast as they can.
    async fn dashboard_phase(&mut self, server: &mut Proc) -> Result<DashboardResult> {
        println!(
            "signed-in dashboard, {PHASE_CLIENTS} clients: signing in, then {:.0} s warm-up + {:.0} s measured ...",
            self.settings.env.warmup.as_secs_f64(),
            self.settings.env.seconds.as_secs_f64()
        );
        self.sink.clear();
        let mut browsers = Vec::with_capacity(PHASE_CLIENTS);
        for i in 0..PHASE_CLIENTS {
            let who = DASHBOARD_CUSTOMERS[i % DASHBOARD_CUSTOMERS.len()];
            browsers.push(self.signed_in_browser(server, who).await?);
        }
        let (stop, measure_from) = self.stop_signal();
        let usage = tokio::spawn(usage_window(
            server.pid,
            self.pg.clone(),
            measure_from,
            stop.at,
        ));
        let tasks = browsers
            .into_iter()
            .map(|b| tokio::spawn(dashboard_client(b, stop.clone())))
            .collect();
        let results = drive(server, &stop.abort, tasks).await?;
        let (cpu, pg) = usage.await.context("the CPU sampler panicked")?;
        let mut errors = ErrorTally::default();
        let mut latencies = Vec::new();
        let mut first = None::<Instant>;
        let mut last = None::<Instant>;
        for (samples, errs) in results {
            errors.merge(errs);
            for (started, latency) in samples.into_iter().filter(|(s, _)| *s >= measure_from) {
                first = Some(first.map_or(started, |f| f.min(started)));
                let done = started + latency;
                last = Some(last.map_or(done, |l| l.max(done)));
                latencies.push(latency);
            }
        }
        let (Some(first), Some(last)) = (first, last) else {
            bail!(
                "the dashboard phase completed no request (errors: {})",
                errors.describe()
            );
        };
        self.sink.clear();
        Ok(DashboardResult {
            requests: latencies.len(),
            requests_per_second: rate(latencies.len(), last - first),
            latency: Stats::of(latencies),
            errors,
            cpu,
            pg,
        })
    }

    /// A browser that went through the whole magic-link flow for `email`.
    async fn signed_in_browser(&self, server: &mut Proc, email: &str) -> Result<Browser> {
        let browser = Browser::new(&self.root)?;
        browser
            .sign_in_by_link(self.sink, SIGN_IN, email, || server.check())
            .await?;
        let (status, body) = browser
            .get("/dashboard", "GET dashboard")
            .await
            .map_err(|e| anyhow!(e))?;
        ensure!(
            status == 200 && body.contains("<h1>Hi, "),
            "the dashboard after signing in {email}: HTTP {status}"
        );
        Ok(browser)
    }

    /// Known and unknown addresses interleaved, same clients, same load.
    async fn comparison_phase(&mut self, server: &mut Proc) -> Result<ComparisonResult> {
        println!(
            "known vs unknown address, {PHASE_CLIENTS} clients: {:.0} s warm-up + {:.0} s measured ...",
            self.settings.env.warmup.as_secs_f64(),
            self.settings.env.seconds.as_secs_f64()
        );
        self.sink.clear();
        let (stop, measure_from) = self.stop_signal();
        let usage = tokio::spawn(usage_window(
            server.pid,
            self.pg.clone(),
            measure_from,
            stop.at,
        ));
        let mut tasks = Vec::with_capacity(PHASE_CLIENTS);
        for i in 0..PHASE_CLIENTS {
            let browser = Browser::new(&self.root)?;
            let plan = AddressPlan::Alternate {
                accounts: self.accounts.clone(),
                unknown: self.unknown.clone(),
                start_known: i.is_multiple_of(2),
            };
            tasks.push(tokio::spawn(sign_in_client(browser, plan, stop.clone())));
        }
        let logs = drive(server, &stop.abort, tasks).await?;
        let (cpu, pg) = usage.await.context("the CPU sampler panicked")?;
        let (errors, links) = merge_logs(logs);
        let arrivals = wait_for_inbox(
            self.sink,
            std::slice::from_mut(server),
            &links,
            stop.at,
            self.settings.env.drain_timeout,
        )
        .await?;
        let known: Vec<&LinkSample> = links.iter().filter(|l| l.known).collect();
        let mut pg = pg;
        if let Some(work) = pg.as_mut() {
            work.backlog = backlog_series(known.iter().copied(), &arrivals, measure_from, stop.at);
        }
        let received = known
            .iter()
            .filter(|l| arrivals.contains_key(&l.email))
            .count();
        if received < known.len() {
            self.failures.push(format!(
                "known/unknown phase: {} of {} emails never arrived",
                known.len() - received,
                known.len()
            ));
        }
        let unexpected = links
            .iter()
            .filter(|l| !l.known && arrivals.contains_key(&l.email))
            .count();
        if unexpected > 0 {
            self.failures.push(format!(
                "known/unknown phase: {unexpected} emails went to addresses without an account"
            ));
        }
        let post = |known: bool| {
            Stats::of(
                links
                    .iter()
                    .filter(|l| l.known == known && l.sent >= measure_from)
                    .map(|l| l.post_latency)
                    .collect(),
            )
        };
        self.sink.clear();
        Ok(ComparisonResult {
            known: post(true),
            unknown: post(false),
            emails_requested: known.len(),
            emails_received: received,
            errors,
            cpu,
            pg,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CPU and memory

/// Busy time not in the four columns: the kernel's interrupt work (loopback networking),
/// other processes.
impl CpuShares {
    fn other(&self) -> f64 {
        (self.machine - self.server - self.workers - self.postgres - self.rabbitmq - self.bench)
            .max(0.0)
    }
}

/// Samples CPU every second from `from` to `to` (wall clock), and PostgreSQL's counters at
/// both ends.
async fn usage_window(
    server_pid: u32,
    pg: Arc<tokio_postgres::Client>,
    from: Instant,
    to: Instant,
) -> (CpuShares, Option<PgWork>) {
    let sample = || async move {
        tokio::task::spawn_blocking(move || cpu_sample(server_pid, &[]))
            .await
            .ok()
    };
    tokio::time::sleep_until(from.into()).await;
    let pg_a = PgCounters::read(&pg).await;
    let mut samples = Vec::new();
    samples.extend(sample().await);
    let mut waits = WaitTally::default();
    let mut next = from;
    while next < to {
        next = (next + Duration::from_secs(1)).min(to);
        tokio::time::sleep_until(next.into()).await;
        samples.extend(sample().await);
        if next < to {
            waits.sample(&pg).await;
        }
    }
    let pg_b = PgCounters::read(&pg).await;
    let pg_work = match (pg_a, pg_b) {
        (Ok(a), Ok(b)) => Some(PgWork {
            counters: b.minus(&a),
            waits,
            backlog: Vec::new(),
        }),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("warning: could not read PostgreSQL's statistics: {e}");
            None
        }
    };
    (CpuShares::between(&samples), pg_work)
}

/// Cumulative PostgreSQL counters: this database's transactions and rows
/// (`pg_stat_database`), and the whole server's WAL (`pg_stat_wal`). PostgreSQL publishes
/// a backend's counts at most about once a second, so deltas over a window are approximate.
#[derive(Debug, Clone, Copy, Default)]
struct PgCounters {
    commits: f64,
    rollbacks: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
    /// Updates PostgreSQL made in place (HOT: no index touched), over this database's tables.
    hot_updated: f64,
    wal_bytes: f64,
    wal_syncs: f64,
}

/// What PostgreSQL did over a window.
#[derive(Debug, Clone, Default)]
struct PgWork {
    /// The difference of the counters.
    counters: PgCounters,
    waits: WaitTally,
    /// Emails written but not yet final (queued, in the broker, being sent, deferred), sampled
    /// once a second: the mail tier keeps up when this stays flat.
    backlog: Vec<i64>,
}

/// The backlog the mail tier has yet to work off, once a second over the window: links whose
/// POST had been answered and whose email had not arrived yet. Worked out afterwards from the
/// clients' logs and the SMTP server's arrival times, so measuring it costs the database
/// nothing (counting rows each second would itself be part of the load).
fn backlog_series<'a>(
    links: impl Iterator<Item = &'a LinkSample> + Clone,
    arrivals: &HashMap<String, Instant>,
    from: Instant,
    to: Instant,
) -> Vec<i64> {
    let mut series = Vec::new();
    let mut at = from + Duration::from_secs(1);
    while at < to {
        let waiting = links
            .clone()
            .filter(|l| l.sent + l.post_latency <= at)
            .filter(|l| arrivals.get(&l.email).is_none_or(|arrived| *arrived > at))
            .count();
        series.push(waiting as i64);
        at += Duration::from_secs(1);
    }
    series
}

/// "max 41, p50 12; every 2 s: 0, 12, 18, …": the backlog series, short enough for a table.
fn describe_backlog(series: &[i64]) -> String {
    if series.is_empty() {
        return "not sampled".into();
    }
    let mut sorted = series.to_vec();
    sorted.sort_unstable();
    let step = series.len().div_ceil(10).max(1);
    let shown: Vec<String> = series.iter().step_by(step).map(|n| n.to_string()).collect();
    format!(
        "max {}, p50 {}; every {step} s: {}",
        sorted[sorted.len() - 1],
        sorted[sorted.len() / 2],
        shown.join(", ")
    )
}

/// What this database's busy backends were doing, sampled once a second from
/// `pg_stat_activity`: a wait event, `CPU` (active, no wait), or "idle in transaction"
/// (waiting for the application inside a transaction).
#[derive(Debug, Clone, Default)]
struct WaitTally {
    counts: HashMap<String, u64>,
    samples: u64,
}

impl WaitTally {
    async fn sample(&mut self, client: &tokio_postgres::Client) {
        let rows = client
            .query(
                "SELECT CASE WHEN state LIKE 'idle in transaction%' THEN 'idle in transaction'
                             WHEN wait_event IS NULL THEN 'CPU'
                             ELSE wait_event_type || ':' || wait_event END
                 FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND state IS NOT NULL AND state <> 'idle'",
                &[],
            )
            .await;
        if let Ok(rows) = rows {
            self.samples += 1;
            for row in rows {
                *self.counts.entry(row.get::<_, String>(0)).or_default() += 1;
            }
        }
    }

    /// The most frequent states, as shares of the backend-samples, e.g.
    /// "LWLock:WALWrite 41%, CPU 20%, ...".
    fn describe(&self) -> String {
        let total: u64 = self.counts.values().sum();
        if total == 0 {
            return "none busy".into();
        }
        let mut counts: Vec<(&String, &u64)> = self.counts.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = counts
            .iter()
            .take(4)
            .map(|(k, n)| format!("{k} {:.0}%", 100.0 * **n as f64 / total as f64))
            .collect();
        let per_sample = total as f64 / self.samples.max(1) as f64;
        format!("{per_sample:.1} busy on average: {}", top.join(", "))
    }
}

impl PgCounters {
    async fn read(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
        let db = client
            .query_one(
                "SELECT xact_commit::float8, xact_rollback::float8, tup_inserted::float8,
                        tup_updated::float8, tup_deleted::float8
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?;
        let wal = client
            .query_one(
                "SELECT wal_bytes::float8, wal_sync::float8 FROM pg_stat_wal",
                &[],
            )
            .await?;
        let hot = client
            .query_one(
                "SELECT COALESCE(SUM(n_tup_hot_upd), 0)::float8 FROM pg_stat_user_tables",
                &[],
            )
            .await?;
        Ok(Self {
            commits: db.get(0),
            rollbacks: db.get(1),
            inserted: db.get(2),
            updated: db.get(3),
            deleted: db.get(4),
            hot_updated: hot.get(0),
            wal_bytes: wal.get(0),
            wal_syncs: wal.get(1),
        })
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            commits: self.commits - earlier.commits,
            rollbacks: self.rollbacks - earlier.rollbacks,
            inserted: self.inserted - earlier.inserted,
            updated: self.updated - earlier.updated,
            deleted: self.deleted - earlier.deleted,
            hot_updated: self.hot_updated - earlier.hot_updated,
            wal_bytes: self.wal_bytes - earlier.wal_bytes,
            wal_syncs: self.wal_syncs - earlier.wal_syncs,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    settings: Settings,
    machine: MachineInfo,
    overrides: Vec<(String, String)>,
    phases: Phases,
    server_memory: Option<Memory>,
    bench_memory: Option<Memory>,
    stop: String,
    failures: Vec<String>,
}

fn level_line(l: &LevelResult) -> String {
    format!(
        "  {} clients: {}/{} emails, {:.0} links/s end to end, {:.0} POST/s, POST p50 {} p99 {}, inbox p50 {} p99 {}, errors {}",
        l.clients,
        l.received,
        l.requested,
        l.links_per_second,
        l.requests_per_second,
        ms(l.post.p50),
        ms(l.post.p99),
        ms(l.inbox.p50),
        ms(l.inbox.p99),
        l.errors.total()
    )
}

impl Report {
    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The "Results" section of BENCHMARKS.md (also printed).
    fn markdown(&self) -> String {
        let mut s = String::new();
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        let _ = writeln!(s, "## Results\n\nRun of {now}.\n");
        write_failures(&mut s, &self.failures);
        let disturbed: Vec<String> = self
            .phases
            .levels
            .iter()
            .map(|l| (format!("sign-in, {} clients", l.clients), &l.cpu))
            .chain([
                ("dashboard".to_string(), &self.phases.dashboard.cpu),
                ("known/unknown".to_string(), &self.phases.comparison.cpu),
            ])
            .filter(|(_, cpu)| cpu.disturbed())
            .map(|(name, cpu)| format!("{name} ({})", cpu.describe_others()))
            .collect();
        write_disturbed(&mut s, &disturbed);
        let _ = writeln!(s, "{}", self.machine.markdown());
        let _ = writeln!(
            s,
            "Each phase: {:.0} s warm-up (not measured), then {:.0} s measured.\n",
            self.settings.env.warmup.as_secs_f64(),
            self.settings.env.seconds.as_secs_f64()
        );

        write_settings(&mut s, &[(RAISED_LIMITS, "")], &self.overrides);
        let d = Config::defaults();
        let _ = writeln!(
            s,
            "\nUnchanged, for reference: database pool {}, mail concurrency {}, SMTP pool {}.\n",
            d.database.pool_size, d.mail.concurrency, d.mail.smtp_pool_size
        );

        let _ = writeln!(s, "### Sign-in links, end to end\n");
        let _ = writeln!(
            s,
            "| clients | links requested | emails received | links/s end to end | POST/s | POST p50 | POST p95 | POST p99 | POST max | to inbox p50 | to inbox p95 | to inbox p99 | to inbox max | errors |"
        );
        let _ = writeln!(
            s,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for l in &self.phases.levels {
            let received = if l.received == l.requested {
                l.received.to_string()
            } else {
                format!("**{} (MISSING {})**", l.received, l.requested - l.received)
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{:.0}** | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                l.clients,
                l.requested,
                received,
                l.links_per_second,
                l.requests_per_second,
                ms(l.post.p50),
                ms(l.post.p95),
                ms(l.post.p99),
                ms(l.post.max),
                ms(l.inbox.p50),
                ms(l.inbox.p95),
                ms(l.inbox.p99),
                ms(l.inbox.max),
                l.errors.total()
            );
        }
        let _ = writeln!(
            s,
            "\nPer level, also: the sign-in page GET before each POST, the warm-up, the time from \
             the end of issuing to the last email, and the errors by kind.\n"
        );
        let _ = writeln!(
            s,
            "| clients | GET p50 | GET p99 | warm-up links (emails) | drain after issuing | errors |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---|");
        for l in &self.phases.levels {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} ({}) | {:.2} s | {} |",
                l.clients,
                ms(l.get.p50),
                ms(l.get.p99),
                l.warmup_requested,
                l.warmup_received,
                l.drain.as_secs_f64(),
                l.errors.describe()
            );
        }

        let dash = &self.phases.dashboard;
        let _ = writeln!(
            s,
            "\n### Signed-in page (dashboard), {PHASE_CLIENTS} clients\n"
        );
        let _ = writeln!(
            s,
            "Browsers signed in through the emailed magic link (half as Alex Martin, two active \
             rentals at two facilities; half as Sam, none), then `GET /s/demo/dashboard` in a loop.\n"
        );
        let _ = writeln!(
            s,
            "| requests | requests/s | p50 | p95 | p99 | max | errors |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---|");
        let _ = writeln!(
            s,
            "| {} | **{:.0}** | {} | {} | {} | {} | {} |",
            dash.requests,
            dash.requests_per_second,
            ms(dash.latency.p50),
            ms(dash.latency.p95),
            ms(dash.latency.p99),
            ms(dash.latency.max),
            dash.errors.describe()
        );

        let c = &self.phases.comparison;
        let _ = writeln!(
            s,
            "\n### Known vs unknown address, {PHASE_CLIENTS} clients\n"
        );
        let _ = writeln!(
            s,
            "Sign-in POSTs alternating between an address with an account and one without, \
             under the same load ({} of {} emails to the known addresses arrived).\n",
            c.emails_received, c.emails_requested
        );
        let _ = writeln!(s, "| address | POSTs | p50 | p95 | p99 | max |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for (name, st) in [
            ("with an account", &c.known),
            ("without an account", &c.unknown),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} |",
                st.n,
                ms(st.p50),
                ms(st.p95),
                ms(st.p99),
                ms(st.max)
            );
        }
        let _ = writeln!(s, "\nErrors: {}.", c.errors.describe());

        let _ = writeln!(s, "\n### Where the CPU went\n");
        let _ = writeln!(
            s,
            "CPU time over each measured window as a percentage of one core ({} cores = {}%). \
             \"bench\" is this benchmark process: the HTTP clients and the SMTP server.\n",
            self.machine.cores,
            self.machine.cores * 100
        );
        let _ = writeln!(
            s,
            "| phase | latchkey | PostgreSQL | RabbitMQ | bench | other (kernel, rest) | whole machine | PostgreSQL CPU per unit | machine CPU per unit | busy other processes |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        let mut rows: Vec<(String, &CpuShares, usize)> = self
            .phases
            .levels
            .iter()
            .map(|l| {
                (
                    format!("sign-in, {} clients", l.clients),
                    &l.cpu,
                    l.requested,
                )
            })
            .collect();
        rows.push((
            format!("dashboard, {PHASE_CLIENTS} clients"),
            &dash.cpu,
            dash.requests,
        ));
        rows.push((
            format!("known/unknown, {PHASE_CLIENTS} clients"),
            &c.cpu,
            c.known.n + c.unknown.n,
        ));
        for (name, cpu, units) in rows {
            let per_unit = |x: f64| {
                if units > 0 {
                    format!("{:.2} ms", 1000.0 * x / units as f64)
                } else {
                    "?".into()
                }
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cpu.pct(cpu.server),
                cpu.pct(cpu.postgres),
                cpu.pct(cpu.rabbitmq),
                cpu.pct(cpu.bench),
                cpu.pct(cpu.other()),
                cpu.pct(cpu.machine),
                per_unit(cpu.postgres),
                per_unit(cpu.machine),
                cpu.describe_others()
            );
        }
        let _ = writeln!(
            s,
            "\nPer unit: per link (sign-in POST answered in the window), dashboard page or POST. \
             Where the mail workers fall behind, part of a window's links are sent after it, so \
             their cost per link reads low."
        );

        let _ = writeln!(s, "\n### PostgreSQL work\n");
        let _ = writeln!(
            s,
            "Over each measured window, from `pg_stat_database` (this database) and `pg_stat_wal` \
             (the whole server); approximate, as PostgreSQL publishes its counts about once a \
             second. \"Rows written\" = inserted + updated + deleted; \"in place\" is the share of \
             updates PostgreSQL made without touching an index (HOT, `pg_stat_user_tables`). The \
             backlog is the emails asked for and not yet in the inbox (POST answered, email not \
             arrived), each second of the window, from the clients' and the SMTP server's \
             timestamps. A WAL sync is a flush to \
             disk that commits wait for. The last column says what this database's non-idle \
             backends were doing: a wait event, `CPU` (running), or `idle in transaction` \
             (waiting for the application in the middle of a transaction).\n"
        );
        let _ = writeln!(
            s,
            "| phase | commits/s | commits per unit | rows written per unit | updates in place | rollbacks/s | WAL syncs/s | WAL KiB per unit | backlog of emails | backends (sampled each second) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
        let mut rows: Vec<(String, &CpuShares, &Option<PgWork>, usize)> = self
            .phases
            .levels
            .iter()
            .map(|l| {
                (
                    format!("sign-in, {} clients (unit: link)", l.clients),
                    &l.cpu,
                    &l.pg,
                    l.requested,
                )
            })
            .collect();
        rows.push((
            format!("dashboard, {PHASE_CLIENTS} clients (unit: page)"),
            &dash.cpu,
            &dash.pg,
            dash.requests,
        ));
        rows.push((
            format!("known/unknown, {PHASE_CLIENTS} clients (unit: POST)"),
            &c.cpu,
            &c.pg,
            c.known.n + c.unknown.n,
        ));
        for (name, cpu, pg, units) in rows {
            let Some(PgWork {
                counters: pg,
                waits,
                backlog,
            }) = pg
            else {
                let _ = writeln!(s, "| {name} | ? | ? | ? | ? | ? | ? | ? | ? | ? |");
                continue;
            };
            let per_second = |x: f64| if cpu.wall > 0.0 { x / cpu.wall } else { 0.0 };
            let per_unit = |x: f64| if units > 0 { x / units as f64 } else { 0.0 };
            let _ = writeln!(
                s,
                "| {name} | {:.0} | {:.1} | {:.1} | {} | {:.1} | {:.0} | {:.1} | {} | {} |",
                per_second(pg.commits),
                per_unit(pg.commits),
                per_unit(pg.inserted + pg.updated + pg.deleted),
                if pg.updated > 0.0 {
                    format!("{:.0}%", 100.0 * pg.hot_updated / pg.updated)
                } else {
                    "-".into()
                },
                per_second(pg.rollbacks),
                per_second(pg.wal_syncs),
                per_unit(pg.wal_bytes) / 1024.0,
                describe_backlog(backlog),
                waits.describe()
            );
        }

        let _ = writeln!(s, "\n### Memory\n");
        let mem = |m: &Option<Memory>| {
            m.map_or("not readable".into(), |m| {
                format!(
                    "peak {:.0} MiB (VmHWM), {:.0} MiB at the end (VmRSS)",
                    m.peak_mib, m.current_mib
                )
            })
        };
        let _ = writeln!(s, "- `latchkey serve`: {}", mem(&self.server_memory));
        let _ = writeln!(
            s,
            "- the benchmark process (clients and SMTP server, which keeps one phase's emails): {}",
            mem(&self.bench_memory)
        );
        let _ = writeln!(s, "- the server {}.", self.stop);

        if let (Some(one), Some(top)) = (
            self.phases.levels.iter().find(|l| l.clients == 1),
            self.phases.levels.iter().max_by_key(|l| l.clients),
        ) && top.clients > 1
        {
            let _ = writeln!(s, "\n### Against the target\n");
            let _ = writeln!(
                s,
                "Target on this machine: at least 1,200 links/s end to end at 32 clients, POST p99 \
                 under 50 ms, and throughput at 32 clients several times that at 1 client.\n"
            );
            let _ = writeln!(
                s,
                "- {} clients: {:.0} links/s end to end ({}), POST p99 {} ({})",
                top.clients,
                top.links_per_second,
                if top.links_per_second >= 1200.0 {
                    "met"
                } else {
                    "NOT met"
                },
                ms(top.post.p99),
                if top.post.p99 < Duration::from_millis(50) {
                    "met"
                } else {
                    "NOT met"
                },
            );
            let _ = writeln!(
                s,
                "- scaling: {:.1}× the 1-client throughput ({:.0} links/s)",
                if one.links_per_second > 0.0 {
                    top.links_per_second / one.links_per_second
                } else {
                    0.0
                },
                one.links_per_second
            );
        }
        s
    }
}

/// The stable top of BENCHMARKS.md, used when the file does not exist yet.
const HEADER: &str = r#"# Benchmarks

## How to run

```sh
cargo bench --bench end_to_end   # sign-in links end to end, signed-in pages: "Results" below
cargo bench --bench operations   # mail workers, the Emails tab, customer pages: "Operations benchmark"
cargo bench --bench cluster      # web and worker pools on a 3-node RabbitMQ cluster losing a node: "Cluster benchmark"
```

The rest of this section is about `end_to_end`; the other two say what they need and do in
their own sections.

It needs PostgreSQL on 127.0.0.1:5432 (user `postgres`, trust authentication) and RabbitMQ on
127.0.0.1:5672 (user `guest`), the same as the PostgreSQL tests; other addresses through
`LATCHKEY_TEST_DATABASE_URL` and `LATCHKEY_TEST_AMQP_URL`. It builds the release binary, creates a
fresh database (dropped at the end), starts `latchkey serve` as a child process configured only
through environment variables, and runs about two minutes with the defaults. It prints the tables
and replaces the "Results" section below; the sections above it are kept as they are.

Knobs:

| variable | default | meaning |
|---|---|---|
| `BENCH_LEVELS` | `1,8,32` | concurrent clients of each sign-in level |
| `BENCH_SECONDS` | `20` | measured seconds of each phase |
| `BENCH_WARMUP_SECONDS` | `2` | unmeasured warm-up before each phase |
| `BENCH_DRAIN_TIMEOUT_SECONDS` | `120` | how long to wait for a phase's emails to arrive |
| `BENCH_MAX_RATE` | `4000` | links/s the pre-created account pool is sized for |
| `BENCH_WRITE` | `1` | `0`: print only, leave this file alone |
| `LATCHKEY_*` | | passed on to the server, e.g. `LATCHKEY_MAIL__CONCURRENCY=64` |

## What is measured

- **Sign-in links end to end.** Each client is a browser of its own (cookie jar, keep-alive,
  no redirects): `GET /s/demo/sign-in`, read the hidden `csrf_token`, `POST /s/demo/sign-in` with
  an address that has an account; the answer must be the 303 to "Check your email" (`/sign-in/sent`,
  not fetched: reloading it sends nothing), anything else is an
  error. A link counts when the SMTP server has its email. *Links/s end to end* = emails received
  / (first measured POST → last email's arrival); *POST/s* = POSTs answered / the issuing period;
  *to inbox* = email arrival − POST sent. Every email requested must arrive, or the run fails.
- **Signed-in page**: browsers sign in through the magic link from the email, then load the
  dashboard in a loop.
- **Known vs unknown address**: the sign-in POST latency with and without an account behind the
  address, interleaved under the same load (the spec: no timing difference worth measuring).
- **Where the time went**: CPU time of the server, PostgreSQL, RabbitMQ and the benchmark itself
  over each measured window (to see whether the client or a dependency is the bottleneck; other
  busy processes, such as a build running alongside, are named and flagged); PostgreSQL's commits,
  rows written and WAL flushes per link, and what its backends were waiting on (sampled each
  second from `pg_stat_activity`); the server's peak resident memory.

Choices that keep it honest:

- Every link goes to a different account (`bench-0000123@bench.example`), so the per-account
  limit (5 links per 15 minutes) never suppresses a send.
- The SMTP server runs inside the benchmark process (`latchkey_testkit::SmtpSink`), so arrivals
  and POSTs are timed on the same clock, and it costs far less CPU than a real mail server.
- All clients come from 127.0.0.1 and all emails go to one storefront and one domain, so the
  per-IP burst limit and the sending limits (per domain, per storefront, global) are raised: they
  are policy, and left at their defaults they, not the system, would be measured. Nothing else is
  changed.
- The benchmark shares the machine with everything it measures (server, PostgreSQL, RabbitMQ):
  the CPU table shows how much of it the client took.

"#;

/// Replaces the "Results" section of BENCHMARKS.md, keeping everything above it.
fn write_results(results: &str) -> Result<()> {
    let path = common::report::benchmarks_file();
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let top = match existing.find("\n## Results") {
        Some(at) => existing[..at + 1].to_string(),
        None if existing.trim().is_empty() => HEADER.to_string(),
        None => format!("{}\n\n", existing.trim_end()),
    };
    std::fs::write(&path, format!("{top}{results}"))
        .with_context(|| format!("write {}", path.display()))
}
