//! Helpers the two benchmarks share: settings from the environment, a PostgreSQL admin
//! client, the HTTP client's error names, percentiles and formatting, and reading `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use rand::Rng as _;

/// What went wrong with a request, as shown in the error columns.
pub type ErrorKind = String;

/// What precedes the CSRF token in a form.
const CSRF_MARKER: &str = r#"name="csrf_token" value=""#;

pub fn env_number(name: &str, default: f64) -> Result<f64> {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| anyhow!("{name}: {raw:?} is not a positive number")),
        Err(_) => Ok(default),
    }
}

pub fn env_seconds(name: &str, default: f64) -> Result<Duration> {
    env_number(name, default).map(Duration::from_secs_f64)
}

pub fn random_lower(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

pub async fn admin_client(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL at {url} (is it running?)"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The invoker's `LATCHKEY_*` variables, except those meant for the bench itself or that
/// would bring back a configuration file.
pub fn passed_through_settings() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("LATCHKEY_")
                && !k.starts_with("LATCHKEY_TEST_")
                && k != "LATCHKEY_CONFIG_DIR"
                && k != "LATCHKEY_ENV"
        })
        .collect();
    vars.sort();
    vars
}

pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr().context("read the free port")?.port())
}

pub fn request_error(what: &str, e: reqwest::Error) -> ErrorKind {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{what}: {kind}")
}

/// The value of the first `csrf_token` hidden field, by plain string search (cheap: the
/// client shares two cores with the server).
pub fn csrf_token(html: &str) -> Option<&str> {
    let start = html.find(CSRF_MARKER)? + CSRF_MARKER.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len]).filter(|t| !t.is_empty())
}

pub fn rate(n: usize, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        n as f64 / over.as_secs_f64()
    }
}

/// Nearest-rank percentile of a sorted slice (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Error counts by kind.
#[derive(Debug, Default, Clone)]
pub struct ErrorTally(BTreeMap<ErrorKind, u64>);

impl ErrorTally {
    pub fn add(&mut self, kind: ErrorKind) {
        *self.0.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: ErrorTally) {
        for (kind, n) in other.0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// (command name, parent pid, utime + stime in seconds) of a process, from /proc/<pid>/stat.
pub fn proc_cpu(pid: &str) -> Option<(String, u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the command: state is field 3, ppid 4, utime 14, stime 15.
    let ppid: u32 = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, ppid, (utime + stime) / clock_ticks()))
}

/// Non-idle CPU seconds of the whole machine, from the first line of /proc/stat.
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy: f64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / clock_ticks()
}

/// The machine, the versions of what runs on it, and the commit measured.
pub struct MachineInfo {
    pub cores: usize,
    pub memory: String,
    pub cpu_model: String,
    pub kernel: String,
    pub rustc: String,
    pub postgres: String,
    pub rabbitmq: String,
    pub commit: String,
}

impl MachineInfo {
    pub async fn collect(admin_url: &str) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("?".into(), |(_, v)| v.trim().to_string());
        let postgres = match admin_client(admin_url).await {
            Ok(c) => c
                .query_one("SELECT version()", &[])
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|_| "?".into()),
            Err(_) => "?".into(),
        };
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let manifest = env!("CARGO_MANIFEST_DIR");
        let commit = command_output("git", &["-C", manifest, "rev-parse", "--short", "HEAD"])
            .map(|c| {
                // Only what goes into the server counts (not the benches or BENCHMARKS.md).
                let dirty = command_output(
                    "git",
                    &[
                        "-C",
                        manifest,
                        "status",
                        "--porcelain",
                        "--",
                        "src",
                        "migrations",
                        "templates",
                        "static",
                        "config",
                        "Cargo.toml",
                        "Cargo.lock",
                    ],
                )
                .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{c} (with uncommitted changes to the server's sources)")
                } else {
                    c
                }
            })
            .unwrap_or_else(|| "?".into());
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("?".into(), |s| s.trim().to_string()),
            rustc: command_output(&rustc, &["-V"]).unwrap_or_else(|| "?".into()),
            postgres,
            rabbitmq: command_output("dpkg-query", &["-W", "-f=${Version}", "rabbitmq-server"])
                .map_or("not found by dpkg-query".into(), |v| {
                    format!("{v} (Debian package)")
                }),
            commit,
        }
    }
}
