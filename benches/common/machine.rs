//! The machine a run measured, the versions of what runs on it, and the commit measured.

use super::admin_client;

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
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

impl MachineInfo {
    /// The report's "Machine: ..." line.
    pub fn markdown(&self) -> String {
        format!(
            "Machine: {} cores ({}), {} RAM, Linux {}. {}; {}; RabbitMQ {}. Commit {}.\n",
            self.cores,
            self.cpu_model,
            self.memory,
            self.kernel,
            self.rustc,
            self.postgres,
            self.rabbitmq,
            self.commit
        )
    }
}
