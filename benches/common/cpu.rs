//! Who used the CPU, from `/proc`: the bench itself, the `latchkey` server and workers (by
//! pid), PostgreSQL, RabbitMQ, the whole machine, and any other process that was busy (a
//! build running alongside makes the figures low, and the reports say so); and the memory
//! of a process.

use std::collections::HashMap;
use std::time::Instant;

/// CPU used over a window, in seconds of one core.
#[derive(Debug, Clone, Default)]
pub struct CpuShares {
    pub wall: f64,
    pub bench: f64,
    pub server: f64,
    pub workers: f64,
    pub postgres: f64,
    pub rabbitmq: f64,
    /// Every process on the machine (from /proc/stat), kernel included.
    pub machine: f64,
    /// Other user-space processes that were busy (e.g. a build running alongside).
    pub busy_others: Vec<(String, f64)>,
}

impl CpuShares {
    /// The CPU used from the first sample to the last. Processes that started in between
    /// count from zero (the workers); other processes that were busy (3% of a core or more)
    /// are named. Nothing without two samples.
    pub fn between(samples: &[CpuSample]) -> Self {
        match (samples.first(), samples.last()) {
            (Some(a), Some(b)) if samples.len() > 1 => {
                let wall = (b.at - a.at).as_secs_f64();
                CpuShares {
                    wall,
                    bench: b.bench - a.bench,
                    server: b.server - a.server,
                    workers: b.workers - a.workers,
                    postgres: b.postgres - a.postgres,
                    rabbitmq: b.rabbitmq - a.rabbitmq,
                    machine: b.machine - a.machine,
                    busy_others: busy_others(samples, wall),
                }
            }
            _ => CpuShares::default(),
        }
    }

    pub fn describe_others(&self) -> String {
        if self.busy_others.is_empty() {
            return "none".into();
        }
        self.busy_others
            .iter()
            .map(|(comm, t)| format!("{comm} {}", self.pct(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether other processes took a noticeable share (10% of a core or more).
    pub fn disturbed(&self) -> bool {
        self.wall > 0.0 && self.busy_others.iter().map(|(_, t)| t).sum::<f64>() / self.wall >= 0.10
    }

    /// `x` as a percentage of one core over the window (200% = both cores of two).
    pub fn pct(&self, x: f64) -> String {
        if self.wall <= 0.0 {
            return "?".into();
        }
        format!("{:.0}%", 100.0 * x / self.wall)
    }
}

/// One reading of every process's CPU time, in seconds.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    bench: f64,
    server: f64,
    workers: f64,
    postgres: f64,
    rabbitmq: f64,
    machine: f64,
    /// Every other user-space process: pid -> (command, CPU seconds).
    others: HashMap<u32, (String, f64)>,
}

/// Reads every process's CPU time now: the server and the workers by pid, PostgreSQL and
/// RabbitMQ by command name. It reads all of /proc: call it from a blocking task.
pub fn cpu_sample(server_pid: u32, workers: &[u32]) -> CpuSample {
    cpu_sample_of(&[server_pid], workers)
}

/// [`cpu_sample`] with several server processes (web nodes), counted together.
pub fn cpu_sample_of(servers: &[u32], workers: &[u32]) -> CpuSample {
    let own = std::process::id();
    let mut sample = CpuSample {
        at: Instant::now(),
        bench: proc_cpu(&own.to_string()).map_or(0.0, |(_, _, t)| t),
        server: 0.0,
        workers: 0.0,
        postgres: 0.0,
        rabbitmq: 0.0,
        machine: machine_busy_seconds(),
        others: HashMap::new(),
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return sample;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(pid_n) = pid.parse::<u32>() else {
            continue;
        };
        if pid_n == own {
            continue;
        }
        match proc_cpu(pid) {
            Some((_, _, t)) if servers.contains(&pid_n) => sample.server += t,
            Some((_, _, t)) if workers.contains(&pid_n) => sample.workers += t,
            Some((comm, _, t)) if comm == "postgres" => sample.postgres += t,
            Some((comm, _, t))
                if matches!(comm.as_str(), "beam.smp" | "erl_child_setup" | "epmd") =>
            {
                sample.rabbitmq += t
            }
            // Kernel threads (children of kthreadd, pid 2) do the load's own kernel work.
            Some((_, ppid, _)) if ppid == 2 || pid_n == 2 => {}
            Some((comm, _, t)) => {
                sample.others.insert(pid_n, (comm, t));
            }
            None => {}
        }
    }
    sample
}

/// Other processes that used at least 3% of a core over the window, by command name, most
/// first. A process that started and ended between two samples is not seen here (it is in
/// the whole machine's figure).
fn busy_others(samples: &[CpuSample], wall: f64) -> Vec<(String, f64)> {
    let mut by_command: HashMap<String, f64> = HashMap::new();
    for pair in samples.windows(2) {
        for (pid, (comm, t)) in &pair[1].others {
            // A pid not in the previous sample started since (pid reuse aside).
            let before = pair[0].others.get(pid).map_or(0.0, |(_, t)| *t);
            *by_command.entry(comm.clone()).or_default() += (t - before).max(0.0);
        }
    }
    let mut busy: Vec<(String, f64)> = by_command
        .into_iter()
        .filter(|(_, t)| wall > 0.0 && *t / wall >= 0.03)
        .collect();
    busy.sort_by(|a, b| b.1.total_cmp(&a.1));
    busy
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

/// Resident memory of a process: (peak, current), in MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub peak_mib: f64,
    #[allow(dead_code, reason = "end_to_end reports it; operations only the peak")]
    pub current_mib: f64,
}

pub fn read_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Memory {
        peak_mib: kib("VmHWM:")? / 1024.0,
        current_mib: kib("VmRSS:")? / 1024.0,
    })
}
