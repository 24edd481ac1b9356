//! What a bench run is told by its environment: the knobs every bench has (`BENCH_SECONDS`,
//! `BENCH_WARMUP_SECONDS`, `BENCH_DRAIN_TIMEOUT_SECONDS`, `BENCH_WRITE`, the PostgreSQL and
//! RabbitMQ URLs), the parsers for the others, and the `LATCHKEY_*` variables passed on.

use std::time::Duration;

use anyhow::{Result, anyhow};
use rand::Rng as _;

/// The settings every bench reads, with each bench's own defaults for the durations.
#[derive(Debug, Clone)]
pub struct BenchEnv {
    /// Measured time of each phase (`BENCH_SECONDS`).
    pub seconds: Duration,
    /// Unmeasured warm-up before each phase (`BENCH_WARMUP_SECONDS`; `0` for none).
    pub warmup: Duration,
    /// How long to wait for a phase's emails (`BENCH_DRAIN_TIMEOUT_SECONDS`).
    pub drain_timeout: Duration,
    /// A PostgreSQL role that may create databases (`LATCHKEY_TEST_DATABASE_URL`, as for the tests).
    pub admin_url: String,
    /// The RabbitMQ the processes use (`LATCHKEY_TEST_AMQP_URL`, as for the tests).
    pub amqp_url: String,
    /// Whether to write `BENCHMARKS.md` (`BENCH_WRITE=0`: print only).
    pub write_file: bool,
}

impl BenchEnv {
    /// Reads the environment; the arguments are the bench's defaults in seconds.
    pub fn from_env(seconds: f64, warmup: f64, drain_timeout: f64) -> Result<Self> {
        Ok(Self {
            seconds: env_seconds("BENCH_SECONDS", seconds)?,
            warmup: match std::env::var("BENCH_WARMUP_SECONDS").as_deref() {
                Ok("0") => Duration::ZERO,
                _ => env_seconds("BENCH_WARMUP_SECONDS", warmup)?,
            },
            drain_timeout: env_seconds("BENCH_DRAIN_TIMEOUT_SECONDS", drain_timeout)?,
            admin_url: std::env::var("LATCHKEY_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            amqp_url: std::env::var("LATCHKEY_TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            write_file: std::env::var("BENCH_WRITE").map_or(true, |v| v != "0"),
        })
    }
}

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

/// A comma-separated list of counts (`BENCH_LEVELS=1,8,32`), each `valid`, else an error
/// saying the entry "is not {what}"; `default` when the variable is not set. It may be empty:
/// the bench says what an empty list lacks.
pub fn env_counts(
    name: &str,
    default: &[usize],
    valid: impl Fn(usize) -> bool,
    what: &str,
) -> Result<Vec<usize>> {
    Ok(match std::env::var(name) {
        Ok(raw) => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|n| valid(*n))
                    .ok_or_else(|| anyhow!("{name}: {s:?} is not {what}"))
            })
            .collect::<Result<Vec<_>>>()?,
        Err(_) => default.to_vec(),
    })
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

pub fn random_lower(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

pub fn free_port() -> Result<u16> {
    use anyhow::Context as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr().context("read the free port")?.port())
}
