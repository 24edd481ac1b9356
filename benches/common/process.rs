//! The `latchkey` processes a bench starts: the release binary, configured only through
//! environment variables (the compiled-in defaults, the bench's settings and the invoker's
//! `LATCHKEY_*` overrides), each with its output in a log file.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rand::Rng as _;
use tokio::task::JoinHandle;

use super::{free_port, passed_through_settings};

/// A setting a bench gives its processes: (variable, value, why).
pub type BenchSetting = (&'static str, &'static str, &'static str);

/// What the benches give every `latchkey` process (besides URLs, ports, secret and queue
/// prefix): the policy limits raised, since every client is 127.0.0.1 and every bench email goes
/// to one domain and one storefront; capacity settings keep their defaults. Each may be
/// overridden by the invoking environment.
pub const RAISED_LIMITS: &[BenchSetting] = &[
    (
        "LATCHKEY_RATE_LIMIT__IP_PER_SECOND",
        "1000000",
        "every client is 127.0.0.1",
    ),
    (
        "LATCHKEY_RATE_LIMIT__IP_BURST",
        "1000000",
        "every client is 127.0.0.1",
    ),
    (
        "LATCHKEY_MAIL__GLOBAL_PER_SECOND",
        "1000000",
        "measure capacity, not the sending policy",
    ),
    (
        "LATCHKEY_MAIL__PER_DOMAIN_PER_SECOND",
        "1000000",
        "every bench address is @bench.example",
    ),
    (
        "LATCHKEY_MAIL__PER_STOREFRONT_PER_SECOND",
        "1000000",
        "every bench email is on one storefront",
    ),
    ("LATCHKEY_LOG_LEVEL", "warn", "no per-request logging"),
    (
        "LATCHKEY_DEMO_ON_FIRST_START",
        "false",
        "the bench loads the demo itself",
    ),
];

/// How long `latchkey serve` may take to answer `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `latchkey` processes, all configured alike (database, queue, SMTP, secret, limits).
pub struct Launcher {
    db_url: String,
    amqp_url: String,
    prefix: String,
    smtp_port: u16,
    port: u16,
    pub base_url: String,
    secret: String,
    /// `LATCHKEY_*` settings from the invoking environment, passed on to every process.
    pub overrides: Vec<(String, String)>,
    dir: tempfile::TempDir,
    config_dir: PathBuf,
    spawned: AtomicUsize,
}

impl Launcher {
    pub fn new(db_url: &str, amqp_url: &str, prefix: &str, smtp_port: u16) -> Result<Self> {
        let dir = tempfile::tempdir().context("create a temp dir for the processes")?;
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).context("create the empty config dir")?;
        let port = free_port()?;
        Ok(Self {
            db_url: db_url.to_string(),
            amqp_url: amqp_url.to_string(),
            prefix: prefix.to_string(),
            smtp_port,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            secret: rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(48)
                .map(char::from)
                .collect(),
            overrides: passed_through_settings(),
            dir,
            config_dir,
            spawned: AtomicUsize::new(0),
        })
    }

    /// A `latchkey` command with only the compiled-in defaults, the bench's settings (those of
    /// `extra` last) and the invoker's overrides; output to a log file.
    pub fn command(
        &self,
        args: &[&str],
        extra: &[BenchSetting],
    ) -> Result<(tokio::process::Command, PathBuf)> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let log_path = self.dir.path().join(format!("{}-{n}.log", args[0]));
        let log = std::fs::File::create(&log_path).context("create a log file")?;
        let log_err = log.try_clone().context("clone a log file")?;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        for (key, _) in std::env::vars() {
            if key.starts_with("LATCHKEY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LATCHKEY_CONFIG_DIR", &self.config_dir)
            .env("LATCHKEY_OPS_LISTEN", "127.0.0.1:0") // metrics are not read; any free port
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("LATCHKEY_PUBLIC_URL", &self.base_url)
            .env("LATCHKEY_DATABASE_URL", &self.db_url)
            .env("LATCHKEY_QUEUE_URL", &self.amqp_url)
            .env("LATCHKEY_QUEUE__PREFIX", &self.prefix)
            .env(
                "LATCHKEY_MAIL_URL",
                format!("smtp://127.0.0.1:{}?tls=none", self.smtp_port),
            )
            .env("LATCHKEY_SECRET_KEY", &self.secret);
        for (key, value, _) in RAISED_LIMITS.iter().chain(extra) {
            cmd.env(key, value);
        }
        for (key, value) in &self.overrides {
            cmd.env(key, value);
        }
        Ok((cmd, log_path))
    }

    pub fn spawn(&self, name: &str, args: &[&str], extra: &[BenchSetting]) -> Result<Proc> {
        self.spawn_with(name, args, extra, &[])
    }

    /// [`spawn`](Self::spawn) with `own` settings over all the others: what differs from one
    /// process to the next (its ports).
    pub fn spawn_with(
        &self,
        name: &str,
        args: &[&str],
        extra: &[BenchSetting],
        own: &[(&str, String)],
    ) -> Result<Proc> {
        let (mut cmd, log_path) = self.command(args, extra)?;
        for (key, value) in own {
            cmd.env(key, value);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start `latchkey {}`", args.join(" ")))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            pid,
            log_path,
        })
    }

    /// `latchkey serve` with `extra` settings, once `/healthz` answers 200.
    pub async fn serve(&self, extra: &[BenchSetting]) -> Result<Proc> {
        let mut server = self.spawn("latchkey serve", &["serve"], extra)?;
        // The public port has only /healthz; it listens once start-up (database, migrations) is done.
        wait_until_ok(&mut server, &format!("{}/healthz", self.base_url)).await?;
        println!(
            "latchkey serve is ready at {} (pid {})",
            self.base_url, server.pid
        );
        Ok(server)
    }

    /// A web node of a pool, `latchkey serve --no-workers`, on a port of its own (the public
    /// URL is the pool's, as behind a load balancer), once `/healthz` answers 200; and the
    /// base URL it answers on.
    #[allow(dead_code, reason = "only the cluster bench runs a web pool")]
    pub async fn web_node(&self, name: &str, extra: &[BenchSetting]) -> Result<(Proc, String)> {
        let port = free_port()?;
        let mut node = self.spawn_with(
            name,
            &["serve", "--no-workers"],
            extra,
            &[("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))],
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_until_ok(&mut node, &format!("{base}/healthz")).await?;
        println!("{name} is ready at {base} (pid {})", node.pid);
        Ok((node, base))
    }
}

/// Waits until `url` answers 200 (at most [`READY_TIMEOUT`]), failing at once if `process`
/// exits meanwhile.
pub async fn wait_until_ok(process: &mut Proc, url: &str) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("build an HTTP client")?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        process.check()?;
        match http.get(url).send().await {
            Ok(resp) if resp.status() == 200 => return Ok(()),
            Ok(resp) => {
                last = format!(
                    "HTTP {}: {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                )
            }
            Err(e) => last = e.without_url().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} did not become ready within {READY_TIMEOUT:?} (last {url}: {last})\n{}",
        process.name,
        process.log_tail()
    )
}

/// A running `latchkey` process.
pub struct Proc {
    pub name: String,
    pub child: tokio::process::Child,
    pub pid: u32,
    pub log_path: PathBuf,
}

impl Proc {
    /// `Err` when the process has exited.
    pub fn check(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} (pid {}) died: {status}\n{}",
                self.name,
                self.pid,
                self.log_tail()
            ),
            Err(e) => bail!("cannot check on {}: {e}", self.name),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- last lines of the output of {} ---\n{tail}", self.name)
    }

    /// SIGTERM, then SIGKILL after `grace`; says how it went.
    pub async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if matches!(term, Ok(s) if s.success()) {
            let started = Instant::now();
            if let Ok(Ok(status)) = tokio::time::timeout(grace, self.child.wait()).await {
                return format!(
                    "stopped on SIGTERM in {:.2} s ({status})",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let _ = self.child.kill().await;
        format!(
            "did not stop within {} s of SIGTERM; killed",
            grace.as_secs()
        )
    }
}

/// Waits for the client tasks while watching the server; if it dies, raises `abort` (the
/// clients stop at once), waits for them and fails.
pub async fn drive<T: Send + 'static>(
    server: &mut Proc,
    abort: &AtomicBool,
    tasks: Vec<JoinHandle<T>>,
) -> Result<Vec<T>> {
    drive_all(std::slice::from_mut(server), abort, tasks).await
}

/// [`drive`], watching every one of `procs`.
pub async fn drive_all<T: Send + 'static>(
    procs: &mut [Proc],
    abort: &AtomicBool,
    tasks: Vec<JoinHandle<T>>,
) -> Result<Vec<T>> {
    let mut all = std::pin::pin!(futures::future::join_all(tasks));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            results = &mut all => {
                return results
                    .into_iter()
                    .map(|r| r.context("a client task panicked"))
                    .collect();
            }
            _ = tick.tick() => {
                if let Some(e) = procs.iter_mut().find_map(|p| p.check().err()) {
                    abort.store(true, Ordering::Relaxed);
                    let _ = (&mut all).await;
                    return Err(e);
                }
            }
        }
    }
}
