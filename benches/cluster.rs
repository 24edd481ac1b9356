//! Cluster benchmark: Latchkey beyond one machine, on one machine. A web pool and a worker pool
//! against one PostgreSQL and a three-node RabbitMQ cluster with quorum queues, driven with
//! sign-ins while one RabbitMQ node is killed.
//!
//! Run it with `cargo bench --bench cluster` (PostgreSQL on 127.0.0.1:5432 with trust auth for
//! `postgres`, as for the tests; Debian's `rabbitmq-server` package installed: the bench starts
//! its own nodes and leaves the machine's RabbitMQ alone). It prints its tables and writes them
//! into `BENCHMARKS.md` between the lines `<!-- cluster-bench:start -->` and
//! `<!-- cluster-bench:end -->` (inserted just above `## Results` the first time), a part of the
//! file the other benches leave alone; `BENCH_WRITE=0` prints only.
//!
//! # What it does
//!
//! 1. A fresh PostgreSQL database with the demo storefront, a pool of bench accounts (one per
//!    link, so the per-account limit never suppresses a send) and history rows, as
//!    `end_to_end` prepares it.
//! 2. Three RabbitMQ nodes on loopback ports ([`RabbitCluster`]), nodes 2 and 3 joined to
//!    node 1.
//! 3. Two `latchkey serve --no-workers` and two `latchkey worker` processes, configured only
//!    through `LATCHKEY_*` variables: quorum queues on, the queue URL listing the three nodes
//!    (node 1 first, so every connection starts there), SMTP to the bench's in-process SMTP
//!    server ([`SmtpSink`]).
//! 4. `BENCH_CLIENTS` browsers (half on each web process) request sign-in links for
//!    `BENCH_WARMUP_SECONDS` + `BENCH_SECONDS`; `BENCH_KILL_AT_SECONDS` into the measured window
//!    node 1, where every connection is and where the work queue's leader was placed, gets
//!    SIGKILL (its Erlang VM, no goodbye to anyone).
//! 5. It waits for every requested email (`BENCH_DRAIN_TIMEOUT_SECONDS` at most; the relay
//!    republishes, after `mail.relay_after_seconds`, what never reached the broker), and counts
//!    what arrived, what never did, duplicates and strays.
//!
//! The run fails when a requested email never arrives, an email goes to an address nobody
//! requested, no email of a link requested after the kill arrives, or a process dies. It stops
//! every process it started, the RabbitMQ nodes included, whatever happens.

#[allow(
    dead_code,
    unused_imports,
    reason = "the harness serves three benches; the others use what this one does not"
)]
mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use common::*;
use latchkey_testkit::SmtpSink;

/// The demo storefront every request goes to.
const SLUG: &str = "demo";
const RABBIT_NODES: usize = 3;
const WEB_NODES: usize = 2;
const WORKERS: usize = 2;
/// How long a `latchkey` process has to stop on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Where the bench's section of BENCHMARKS.md starts and ends.
const MARK_START: &str = "<!-- cluster-bench:start -->";
const MARK_END: &str = "<!-- cluster-bench:end -->";
/// An email slower than this to arrive is counted as late (it waited for the relay).
const LATE: Duration = Duration::from_secs(10);
/// Seconds around the kill shown second by second.
const TIMELINE_BEFORE: i64 = 3;
const TIMELINE_AFTER: i64 = 12;

/// The settings every `latchkey` process of this bench gets besides the harness's.
const CLUSTER_SETTINGS: &[BenchSetting] = &[(
    "LATCHKEY_QUEUE__QUORUM",
    "true",
    "quorum queues, replicated on the three nodes",
)];

fn main() -> ExitCode {
    common::report::main("cluster", run)
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    env: BenchEnv,
    clients: usize,
    /// Seconds into the measured window when node 1 is killed.
    kill_at: Duration,
    /// Links per second the account pool is sized for.
    max_rate: f64,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let env = BenchEnv::from_env(30.0, 2.0, 300.0)?;
        let clients = env_number("BENCH_CLIENTS", 16.0)? as usize;
        ensure!(clients > 0, "BENCH_CLIENTS must be at least 1");
        let kill_at = Duration::from_secs_f64(env_number(
            "BENCH_KILL_AT_SECONDS",
            env.seconds.as_secs_f64() / 2.0,
        )?);
        ensure!(
            kill_at < env.seconds,
            "BENCH_KILL_AT_SECONDS ({:.1}) must fall inside the measured window of BENCH_SECONDS ({:.1})",
            kill_at.as_secs_f64(),
            env.seconds.as_secs_f64()
        );
        Ok(Self {
            env,
            clients,
            kill_at,
            max_rate: env_number("BENCH_MAX_RATE", 2500.0)?,
        })
    }

    fn accounts_needed(&self) -> usize {
        let n = ((self.env.warmup + self.env.seconds).as_secs_f64() * self.max_rate * 1.1) as usize
            + 1000;
        n.min(10usize.pow(ACCOUNT_DIGITS as u32) - 1)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run() -> Result<bool> {
    let settings = Settings::from_env()?;
    let db = BenchDatabase::create(&settings.env.admin_url, "lk_cluster").await?;
    let outcome = run_on_database(&settings, &db).await;
    db.drop_database().await;
    let report = outcome?;
    publish(&report.markdown(), settings.env.write_file, |text| {
        write_marked_section(MARK_START, MARK_END, text)
    })?;
    Ok(report.passed())
}

async fn run_on_database(settings: &Settings, db: &BenchDatabase) -> Result<Report> {
    let sink = SmtpSink::start()
        .await
        .context("start the in-process SMTP server")?;
    prepare_data(&db.url, settings.accounts_needed()).await?;
    let mut cluster = RabbitCluster::start(RABBIT_NODES).await?;
    let measured = run_on_cluster(settings, db, &sink, &mut cluster).await;
    let stopped = cluster.stop().await;
    println!("RabbitMQ: {stopped}");
    let mut report = measured?;
    report.rabbit_stop = stopped;
    Ok(report)
}

/// Everything between starting the cluster and stopping it.
async fn run_on_cluster(
    settings: &Settings,
    db: &BenchDatabase,
    sink: &SmtpSink,
    cluster: &mut RabbitCluster,
) -> Result<Report> {
    let prefix = format!(
        "latchkey.cluster.{}.{}",
        std::process::id(),
        random_lower(8)
    );
    let launcher = Launcher::new(&db.url, &cluster.queue_url(), &prefix, sink.port())?;
    let mut procs = Vec::new();
    let started = start_pools(&launcher, &mut procs).await;
    let result = match started {
        Ok(roots) => measure(settings, sink, cluster, &prefix, &mut procs, &roots).await,
        Err(e) => Err(e),
    };
    let mut stops = Vec::new();
    for p in procs.iter_mut() {
        let how = p.stop(STOP_GRACE).await;
        stops.push(format!("{}: {how}", p.name));
    }
    if result.as_ref().map_or(true, |r| !r.passed()) {
        for p in &procs {
            eprintln!("{}", p.log_tail());
        }
    }
    let mut report = result?;
    report.moved = procs
        .iter()
        .map(|p| (p.name.clone(), moved_over(&p.log())))
        .collect();
    report.overrides = launcher.overrides.clone();
    report.latchkey_stop = stops;
    report.machine = Some(MachineInfo::collect(&settings.env.admin_url).await);
    report.ports = cluster
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.amqp_port, n.dist_port))
        .collect();
    Ok(report)
}

/// The web pool, then the worker pool, each process once it answers; the storefront's root on
/// each web process.
async fn start_pools(launcher: &Launcher, procs: &mut Vec<Proc>) -> Result<Vec<String>> {
    let mut roots = Vec::new();
    for n in 1..=WEB_NODES {
        let (web, base) = launcher
            .web_node(
                &format!("latchkey serve --no-workers #{n}"),
                CLUSTER_SETTINGS,
            )
            .await?;
        procs.push(web);
        roots.push(format!("{base}/s/{SLUG}"));
    }
    for n in 1..=WORKERS {
        let ops = free_port()?;
        let name = format!("latchkey worker #{n}");
        procs.push(launcher.spawn_with(
            &name,
            &["worker"],
            CLUSTER_SETTINGS,
            &[("LATCHKEY_OPS_LISTEN", format!("127.0.0.1:{ops}"))],
        )?);
        // A worker is ready while its database and its broker answer.
        let worker = procs.last_mut().expect("just pushed");
        common::process::wait_until_ok(worker, &format!("http://127.0.0.1:{ops}/readyz")).await?;
        println!("{name} is ready (pid {})", worker.pid);
    }
    Ok(roots)
}

/// How many times a process's log says it lost a node and moved on to the next (the queue's
/// warning).
fn moved_over(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("lost the connection to a RabbitMQ node"))
        .count()
}

async fn measure(
    settings: &Settings,
    sink: &SmtpSink,
    cluster: &mut RabbitCluster,
    prefix: &str,
    procs: &mut [Proc],
    roots: &[String],
) -> Result<Report> {
    let (leader_before, _) = cluster.quorum_queue(0, prefix).await?;
    let victim = 0;
    println!(
        "work queue {prefix}: quorum queue, leader {leader_before}; {} will be killed",
        cluster.nodes[victim].name
    );
    sink.clear();
    let measure_from = Instant::now() + settings.env.warmup;
    let stop = StopSignal {
        at: measure_from + settings.env.seconds,
        abort: Arc::new(AtomicBool::new(false)),
    };
    let kill_time = measure_from + settings.kill_at;
    println!(
        "{} clients on {WEB_NODES} web processes: {:.0} s warm-up + {:.0} s measured, node 1 killed {:.0} s in ...",
        settings.clients,
        settings.env.warmup.as_secs_f64(),
        settings.env.seconds.as_secs_f64(),
        settings.kill_at.as_secs_f64()
    );
    let accounts = Arc::new(Accounts::new(settings.accounts_needed()));
    let mut tasks = Vec::with_capacity(settings.clients);
    for i in 0..settings.clients {
        let browser = Browser::new(&roots[i % roots.len()])?;
        let plan = AddressPlan::Known(accounts.clone());
        tasks.push(tokio::spawn(sign_in_client(browser, plan, stop.clone())));
    }
    let web_pids: Vec<u32> = procs[..WEB_NODES].iter().map(|p| p.pid).collect();
    let worker_pids: Vec<u32> = procs[WEB_NODES..].iter().map(|p| p.pid).collect();
    let usage = tokio::spawn(cpu_window(web_pids, worker_pids, measure_from, stop.at));
    let kill = async {
        tokio::time::sleep_until(kill_time.into()).await;
        let killed = cluster.kill_node(victim);
        if let Ok(at) = &killed {
            println!(
                "killed {} (SIGKILL) at {:.1} s",
                cluster.nodes[victim].name,
                at.saturating_duration_since(measure_from).as_secs_f64()
            );
        }
        killed
    };
    let (logs, killed) = tokio::join!(drive_all(procs, &stop.abort, tasks), kill);
    let logs = logs?;
    let killed_at = killed?;
    let cpu = usage.await.context("the CPU sampler panicked")?;
    let (errors, links) = merge_logs(logs);
    println!(
        "{} links requested; waiting for their emails ...",
        links.len()
    );
    let arrivals = wait_for_inbox(sink, procs, &links, stop.at, settings.env.drain_timeout).await?;
    let (leader_after, online_after) = cluster.quorum_queue(1, prefix).await?;
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for message in sink.messages() {
        for to in message.to() {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    Ok(Report::new(
        settings,
        Outcome {
            links,
            arrivals,
            per_recipient,
            errors,
            measure_from,
            stop_at: stop.at,
            killed_at,
            killed: cluster.nodes[victim].name.clone(),
            leader_before,
            leader_after,
            online_after,
            cpu,
        },
    ))
}

/// CPU of the web pool, the worker pool and the rest over `from..to`, sampled each second.
async fn cpu_window(web: Vec<u32>, workers: Vec<u32>, from: Instant, to: Instant) -> CpuShares {
    let sample = |web: Vec<u32>, workers: Vec<u32>| async move {
        tokio::task::spawn_blocking(move || cpu_sample_of(&web, &workers))
            .await
            .ok()
    };
    tokio::time::sleep_until(from.into()).await;
    let mut samples = Vec::new();
    samples.extend(sample(web.clone(), workers.clone()).await);
    let mut next = from;
    while next < to {
        next = (next + Duration::from_secs(1)).min(to);
        tokio::time::sleep_until(next.into()).await;
        samples.extend(sample(web.clone(), workers.clone()).await);
    }
    CpuShares::between(&samples)
}

// ---------------------------------------------------------------------------------------------
// Results

/// What the run saw, before it is summed up.
struct Outcome {
    links: Vec<LinkSample>,
    /// First arrival of each recipient.
    arrivals: HashMap<String, Instant>,
    /// Emails received per recipient.
    per_recipient: HashMap<String, usize>,
    errors: ErrorTally,
    measure_from: Instant,
    stop_at: Instant,
    killed_at: Instant,
    killed: String,
    leader_before: String,
    leader_after: String,
    online_after: Vec<String>,
    cpu: CpuShares,
}

/// One second of the timeline around the kill.
struct Second {
    /// Seconds from the kill (0 = the second that starts with it).
    offset: i64,
    posts: usize,
    emails: usize,
}

struct Report {
    settings: Settings,
    requested: usize,
    received: usize,
    warmup_requested: usize,
    warmup_received: usize,
    /// Recipients that got more than one email, and the extra emails.
    duplicated_recipients: usize,
    extra_emails: usize,
    /// Emails to addresses no client asked a link for.
    strays: usize,
    links_per_second: f64,
    posts_per_second: f64,
    post: Stats,
    inbox: Stats,
    /// Emails that took longer than [`LATE`].
    late: usize,
    /// Emails per second arriving before the kill and after the recovery.
    rate_before: f64,
    rate_after: f64,
    /// Kill → first email of a link requested after the kill.
    recovery: Option<Duration>,
    /// The longest pause between two arrivals from the kill to the end of the window.
    longest_gap: Duration,
    killed_after: Duration,
    killed: String,
    leader_before: String,
    leader_after: String,
    online_after: Vec<String>,
    timeline: Vec<Second>,
    errors: ErrorTally,
    cpu: CpuShares,
    /// Per process: how many times it lost a node and moved on to the next.
    moved: Vec<(String, usize)>,
    ports: Vec<(String, u16, u16)>,
    overrides: Vec<(String, String)>,
    machine: Option<MachineInfo>,
    latchkey_stop: Vec<String>,
    rabbit_stop: String,
    failures: Vec<String>,
}

impl Report {
    fn new(settings: &Settings, o: Outcome) -> Self {
        let (warmup, measured): (Vec<&LinkSample>, Vec<&LinkSample>) =
            o.links.iter().partition(|l| l.sent < o.measure_from);
        let arrived = |l: &LinkSample| o.arrivals.contains_key(&l.email);
        let warmup_received = warmup.iter().filter(|l| arrived(l)).count();
        let received = measured.iter().filter(|l| arrived(l)).count();
        let requested_all: std::collections::HashSet<&str> =
            o.links.iter().map(|l| l.email.as_str()).collect();
        let duplicated_recipients = o.per_recipient.values().filter(|n| **n > 1).count();
        let extra_emails = o.per_recipient.values().map(|n| n.saturating_sub(1)).sum();
        let strays = o
            .per_recipient
            .keys()
            .filter(|to| !requested_all.contains(to.as_str()))
            .count();
        let first_post = measured.iter().map(|l| l.sent).min();
        let last_answer = measured.iter().map(|l| l.sent + l.post_latency).max();
        let mut inbox = Vec::with_capacity(measured.len());
        let mut last_arrival = None::<Instant>;
        for l in &measured {
            if let Some(at) = o.arrivals.get(&l.email) {
                inbox.push(at.saturating_duration_since(l.sent));
                last_arrival = Some(last_arrival.map_or(*at, |t| t.max(*at)));
            }
        }
        let late = inbox.iter().filter(|d| **d > LATE).count();
        let (links_per_second, posts_per_second) = match (first_post, last_answer, last_arrival) {
            (Some(first), Some(answered), Some(arrived)) => (
                rate(received, arrived.saturating_duration_since(first)),
                rate(measured.len(), answered.saturating_duration_since(first)),
            ),
            _ => (0.0, 0.0),
        };
        let mut arrival_times: Vec<Instant> = o.arrivals.values().copied().collect();
        arrival_times.sort_unstable();
        // The longest pause in arrivals from the kill to the end of the window (the relay's
        // late emails after it are counted apart); its end is when emails flow again.
        let (longest_gap, flowing_again) = std::iter::once(o.killed_at)
            .chain(
                arrival_times
                    .iter()
                    .copied()
                    .filter(|t| *t >= o.killed_at && *t < o.stop_at),
            )
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| (w[1] - w[0], w[1]))
            .max()
            .unwrap_or((Duration::ZERO, o.killed_at));
        // Recovered: emails flow again, and one of a link requested after the kill has come.
        let first_after = o
            .links
            .iter()
            .filter(|l| l.sent >= o.killed_at)
            .filter_map(|l| o.arrivals.get(&l.email))
            .min()
            .copied();
        let recovery = first_after.map(|first| {
            first
                .max(flowing_again)
                .saturating_duration_since(o.killed_at)
        });
        let count_between = |from: Instant, to: Instant| {
            arrival_times
                .iter()
                .filter(|t| **t >= from && **t < to)
                .count()
        };
        let rate_before = rate(
            count_between(o.measure_from, o.killed_at),
            o.killed_at.saturating_duration_since(o.measure_from),
        );
        let rate_after = match recovery {
            Some(r) if o.killed_at + r < o.stop_at => rate(
                count_between(o.killed_at + r, o.stop_at),
                o.stop_at.saturating_duration_since(o.killed_at + r),
            ),
            _ => 0.0,
        };
        let timeline = (-TIMELINE_BEFORE..TIMELINE_AFTER)
            .map(|offset| {
                let shift = Duration::from_secs(offset.unsigned_abs());
                let from = if offset < 0 {
                    o.killed_at.checked_sub(shift).unwrap_or(o.killed_at)
                } else {
                    o.killed_at + shift
                };
                let to = from + Duration::from_secs(1);
                Second {
                    offset,
                    posts: o
                        .links
                        .iter()
                        .filter(|l| {
                            let answered = l.sent + l.post_latency;
                            answered >= from && answered < to
                        })
                        .count(),
                    emails: count_between(from, to),
                }
            })
            .collect();
        let mut failures = Vec::new();
        if received < measured.len() || warmup_received < warmup.len() {
            failures.push(format!(
                "{} of {} measured emails and {} of {} warm-up emails never arrived",
                measured.len() - received,
                measured.len(),
                warmup.len() - warmup_received,
                warmup.len()
            ));
        }
        if strays > 0 {
            failures.push(format!(
                "{strays} addresses nobody asked a link for got an email"
            ));
        }
        if recovery.is_none() {
            failures.push("no email of a link requested after the kill arrived".into());
        }
        if measured.is_empty() {
            failures.push(format!(
                "no sign-in link was requested successfully in the measured window (errors: {})",
                o.errors.describe()
            ));
        }
        Self {
            settings: settings.clone(),
            requested: measured.len(),
            received,
            warmup_requested: warmup.len(),
            warmup_received,
            duplicated_recipients,
            extra_emails,
            strays,
            links_per_second,
            posts_per_second,
            post: Stats::of(measured.iter().map(|l| l.post_latency).collect()),
            inbox: Stats::of(inbox),
            late,
            rate_before,
            rate_after,
            recovery,
            longest_gap,
            killed_after: o.killed_at.saturating_duration_since(o.measure_from),
            killed: o.killed,
            leader_before: o.leader_before,
            leader_after: o.leader_after,
            online_after: o.online_after,
            timeline,
            errors: o.errors,
            cpu: o.cpu,
            moved: Vec::new(),
            ports: Vec::new(),
            overrides: Vec::new(),
            machine: None,
            latchkey_stop: Vec::new(),
            rabbit_stop: String::new(),
            failures,
        }
    }

    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{MARK_START}\n{INTRO}");
        let _ = writeln!(s, "### Cluster results\n");
        if let Some(m) = &self.machine {
            s.push_str(&m.markdown());
            s.push('\n');
        }
        write_failures(&mut s, &self.failures);
        if self.cpu.disturbed() {
            write_disturbed(&mut s, &["the measured window".to_string()]);
        }
        let _ = writeln!(
            s,
            "{} clients ({} per web process), {:.0} s measured after {:.0} s of warm-up; \
             `{}` killed {:.1} s into the window. RabbitMQ nodes (AMQP, clustering ports): {}.\n",
            self.settings.clients,
            self.settings.clients.div_ceil(WEB_NODES),
            self.settings.env.seconds.as_secs_f64(),
            self.settings.env.warmup.as_secs_f64(),
            self.killed,
            self.killed_after.as_secs_f64(),
            self.ports
                .iter()
                .map(|(name, amqp, dist)| format!("`{name}` {amqp}, {dist}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "| {k} | {v} |");
        };
        row(
            &mut s,
            "sign-in emails requested (measured + warm-up)",
            format!("{} + {}", self.requested, self.warmup_requested),
        );
        row(
            &mut s,
            "received",
            format!("{} + {}", self.received, self.warmup_received),
        );
        row(
            &mut s,
            "never arrived",
            format!(
                "{}",
                (self.requested - self.received) + (self.warmup_requested - self.warmup_received)
            ),
        );
        row(
            &mut s,
            "duplicates (recipients with more than one email / extra emails)",
            format!("{} / {}", self.duplicated_recipients, self.extra_emails),
        );
        row(
            &mut s,
            "emails to addresses nobody asked for",
            self.strays.to_string(),
        );
        row(
            &mut s,
            "links/s end to end",
            format!("{:.0}", self.links_per_second),
        );
        row(&mut s, "POST/s", format!("{:.0}", self.posts_per_second));
        row(
            &mut s,
            "POST p50 / p99",
            format!("{} / {}", ms(self.post.p50), ms(self.post.p99)),
        );
        row(
            &mut s,
            "to inbox p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms(self.inbox.p50),
                ms(self.inbox.p99),
                ms(self.inbox.max)
            ),
        );
        row(
            &mut s,
            &format!(
                "emails slower than {} s (waited for the relay)",
                LATE.as_secs()
            ),
            self.late.to_string(),
        );
        row(
            &mut s,
            "emails/s arriving before the kill / after the recovery",
            format!("{:.0} / {:.0}", self.rate_before, self.rate_after),
        );
        row(
            &mut s,
            "recovery: kill → emails flowing again (end of the longest pause, and an email of a link requested after the kill)",
            self.recovery.map_or("never".into(), ms),
        );
        row(
            &mut s,
            "longest pause between two emails from the kill to the end of the window",
            ms(self.longest_gap),
        );
        row(
            &mut s,
            "work queue leader before / after",
            format!(
                "`{}` / `{}` (online: {})",
                self.leader_before,
                self.leader_after,
                self.online_after
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        row(
            &mut s,
            "processes that lost node 1 and moved on (times)",
            self.moved
                .iter()
                .map(|(name, n)| format!("{name}: {n}"))
                .collect::<Vec<_>>()
                .join("; "),
        );
        row(&mut s, "errors", self.errors.describe());
        s.push('\n');
        let _ = writeln!(
            s,
            "Around the kill, second by second (POSTs answered, emails arrived; 0 = the second \
             that starts with the kill):\n"
        );
        let _ = writeln!(
            s,
            "| second | {} |",
            self.timeline
                .iter()
                .map(|t| format!("{:+}", t.offset))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(s, "|---|{}", "---:|".repeat(self.timeline.len()));
        let _ = writeln!(
            s,
            "| POSTs | {} |",
            self.timeline
                .iter()
                .map(|t| t.posts.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(
            s,
            "| emails | {} |\n",
            self.timeline
                .iter()
                .map(|t| t.emails.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let c = &self.cpu;
        let per_link = |t: f64| {
            if self.requested == 0 {
                "?".to_string()
            } else {
                format!("{:.2} ms", 1000.0 * t / self.requested as f64)
            }
        };
        let _ = writeln!(
            s,
            "CPU over the measured window (percent of one core; this machine has {} cores), and per link requested:\n",
            self.machine.as_ref().map_or(0, |m| m.cores)
        );
        let _ = writeln!(
            s,
            "| web (2 processes) | workers (2) | PostgreSQL | RabbitMQ (every node) | bench | whole machine | other busy processes |\n|---:|---:|---:|---:|---:|---:|---|"
        );
        let _ = writeln!(
            s,
            "| {} ({}) | {} ({}) | {} ({}) | {} ({}) | {} ({}) | {} | {} |\n",
            c.pct(c.server),
            per_link(c.server),
            c.pct(c.workers),
            per_link(c.workers),
            c.pct(c.postgres),
            per_link(c.postgres),
            c.pct(c.rabbitmq),
            per_link(c.rabbitmq),
            c.pct(c.bench),
            per_link(c.bench),
            c.pct(c.machine),
            c.describe_others()
        );
        write_settings(
            &mut s,
            &[(RAISED_LIMITS, ""), (CLUSTER_SETTINGS, "")],
            &self.overrides,
        );
        let _ = writeln!(
            s,
            "- `LATCHKEY_QUEUE_URL` lists the three nodes' `amqp://` URLs, node 1 first\n"
        );
        let _ = writeln!(
            s,
            "Stopping: {}; RabbitMQ: {}.\n",
            self.latchkey_stop.join("; "),
            self.rabbit_stop
        );
        let _ = writeln!(s, "{MARK_END}");
        s
    }
}

/// What the section says before its figures (kept with the code that makes them).
const INTRO: &str = r#"## Cluster benchmark

```sh
cargo bench --bench cluster
```

Latchkey beyond one machine, on one machine: two `latchkey serve --no-workers` and two
`latchkey worker` processes against one PostgreSQL (a fresh database, dropped at the end) and a
RabbitMQ cluster of three nodes the bench starts itself from Debian's `rabbitmq-server` package
(loopback ports away from 5672/25672, state under a temporary directory, management plugin off;
the machine's RabbitMQ is left alone). Every process is configured only through `LATCHKEY_*`
variables: quorum queues on, `LATCHKEY_QUEUE_URL` listing the three nodes, SMTP to the bench's
own server. Browsers, half on each web process, request sign-in links (GET the form, POST it,
each link for a different account) while node 1, the first in every process's list and so the
node every connection is on and the work queue's leader, is killed with SIGKILL in the middle of
the measured window. The bench then waits until every requested email has arrived and counts
duplicates and strays; it fails if one is missing. About two minutes besides building; it stops
every process it started, the RabbitMQ nodes included, also when it fails. It writes only this
section, between the `cluster-bench` marker lines; `BENCH_WRITE=0` prints only.

| variable | default | meaning |
|---|---|---|
| `BENCH_CLIENTS` | `16` | concurrent browsers, spread over the two web processes |
| `BENCH_SECONDS` / `BENCH_WARMUP_SECONDS` | `30` / `2` | measured / warm-up seconds |
| `BENCH_KILL_AT_SECONDS` | half of `BENCH_SECONDS` | when node 1 is killed, into the measured window |
| `BENCH_DRAIN_TIMEOUT_SECONDS` | `300` | longest wait for the emails after the window |
| `BENCH_MAX_RATE` | `2500` | links/s the account pool is sized for |
| `LATCHKEY_*` | | passed on to every `latchkey` process |

*Links/s end to end*, *POST/s* and *to inbox* mean what they mean in the results below. The
*recovery* is the time from the kill until emails flow again: the end of the longest pause in
arrivals after the kill, once an email of a link requested after the kill has arrived (the whole
path, web process → broker → worker → SMTP, works again). Emails whose
publish was under way when the node died reach the broker through the relay, which
republishes a delivery still `queued` after `mail.relay_after_seconds` (60 s by default): they
arrive, late, and are counted as such. Everything shares one machine of two cores, three
RabbitMQ nodes included: the figures show that nothing is lost and how long a node's loss
interrupts the flow, not the capacity of a real cluster (see the README's scaling section).
"#;
