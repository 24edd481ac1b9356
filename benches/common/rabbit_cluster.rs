//! A RabbitMQ cluster of the bench's own: nodes of the Debian `rabbitmq-server` package on
//! loopback ports, each named `bench{i}-{pid}@localhost`, their state, logs, pid files and the
//! shared Erlang cookie under a temporary directory (the cookie through `HOME`), no plugins
//! (the management plugin off), and none of the machine's own RabbitMQ settings
//! (`/etc/rabbitmq`): the machine's RabbitMQ on 5672/25672 keeps running undisturbed. Nodes 2..N
//! join node 1 (`stop_app`, `join_cluster`, `start_app`).
//!
//! Each node runs in a process group of its own, so that stopping it reaches the Erlang VM
//! (`beam.smp`) under the `rabbitmq-server` script; dropping the cluster kills every node that is
//! still running, so a bench that fails leaves none behind. The nodes register with the
//! machine's `epmd` (Erlang's port mapper, which the machine's RabbitMQ already runs), the one
//! thing they share with it.
#![allow(dead_code, reason = "only the cluster bench starts a cluster")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};

/// Where the Debian package puts the scripts (the `/usr/sbin` wrappers switch to the
/// `rabbitmq` user and its home, which the bench's nodes must not share).
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";
/// How long a node may take to boot.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one `rabbitmqctl` call may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of the cluster.
pub struct RabbitNode {
    /// `bench1-{pid}@localhost`, ...
    pub name: String,
    /// Its AMQP port on 127.0.0.1.
    pub amqp_port: u16,
    /// Its Erlang distribution (clustering) port on 127.0.0.1.
    pub dist_port: u16,
    dir: PathBuf,
    /// The `rabbitmq-server` script, leader of the node's process group.
    script: Option<tokio::process::Child>,
    /// The Erlang VM, once the node has booted.
    pub beam_pid: Option<u32>,
}

impl RabbitNode {
    /// `amqp://guest:guest@127.0.0.1:{port}/%2f` (guest may connect from loopback).
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- last lines of the output of {} ---\n{}",
            self.name,
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    /// Kills the node's whole process group (script, VM and its helpers) at once.
    fn kill_group(&mut self) {
        if let Some(script) = &mut self.script {
            if let Some(pgid) = script.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pgid}")])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = script.start_kill();
        }
    }
}

/// A running cluster; dropping it kills every node still running.
pub struct RabbitCluster {
    pub nodes: Vec<RabbitNode>,
    dir: tempfile::TempDir,
}

impl RabbitCluster {
    /// Starts `count` nodes and joins nodes 2..count to node 1; returns once every node runs
    /// in the cluster.
    pub async fn start(count: usize) -> Result<Self> {
        ensure!(count > 0, "a cluster needs a node");
        let server = Path::new(RABBITMQ_BIN).join("rabbitmq-server");
        ensure!(
            server.exists(),
            "{} not found: install Debian's rabbitmq-server package",
            server.display()
        );
        let dir = tempfile::tempdir().context("create the cluster's directory")?;
        // The cookie every node and every rabbitmqctl call shares, read from $HOME.
        let cookie = dir.path().join(".erlang.cookie");
        std::fs::write(&cookie, super::random_lower(32)).context("write the Erlang cookie")?;
        set_mode(&cookie, 0o400)?;
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "")
            .context("write an empty rabbitmq-env.conf")?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        let amqp_ports = free_ports(5700..5800, count)?;
        let dist_ports = free_ports(25700..25800, count)?;
        for i in 0..count {
            let node = cluster.spawn_node(i + 1, amqp_ports[i], dist_ports[i])?;
            cluster.nodes.push(node);
        }
        let started = Instant::now();
        for i in 0..count {
            cluster.await_boot(i).await?;
        }
        println!(
            "RabbitMQ: {count} nodes booted in {:.1} s (AMQP ports {})",
            started.elapsed().as_secs_f64(),
            amqp_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let first = cluster.nodes[0].name.clone();
        for i in 1..count {
            cluster.ctl(i, &["stop_app"]).await?;
            cluster.ctl(i, &["join_cluster", &first]).await?;
            cluster.ctl(i, &["start_app"]).await?;
        }
        let running = cluster.running_nodes(0).await?;
        ensure!(
            running.len() == count,
            "the cluster runs {} of {count} nodes: {running:?}",
            running.len()
        );
        println!(
            "RabbitMQ: cluster of {count} formed in {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            running.join(", ")
        );
        Ok(cluster)
    }

    /// Every node's AMQP URL, comma-separated: the queue URL of a client of the cluster.
    pub fn queue_url(&self) -> String {
        self.nodes
            .iter()
            .map(RabbitNode::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn_node(&self, n: usize, amqp_port: u16, dist_port: u16) -> Result<RabbitNode> {
        let name = format!("bench{n}-{}@localhost", std::process::id());
        let dir = self.dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&dir).context("create a node's directory")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{amqp_port}\n"),
        )
        .context("write a node's rabbitmq.conf")?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")
            .context("write a node's enabled_plugins")?;
        let out = std::fs::File::create(dir.join("server.out")).context("create a log file")?;
        let err = out.try_clone().context("clone a log file")?;
        let mut cmd = self.command("rabbitmq-server");
        cmd.env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("beam.pid"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let script = cmd
            .spawn()
            .with_context(|| format!("start the RabbitMQ node {name}"))?;
        Ok(RabbitNode {
            name,
            amqp_port,
            dist_port,
            dir,
            script: Some(script),
            beam_pid: None,
        })
    }

    /// A command of the package (`rabbitmq-server`, `rabbitmqctl`) with only the cluster's
    /// environment: its `HOME` (the cookie), no `rabbitmq-env.conf` of the machine's.
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(Path::new(RABBITMQ_BIN).join(program));
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.dir.path())
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.dir.path().join("rabbitmq-env.conf"),
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `rabbitmqctl -n {node i} args`; its output, or an error with it.
    pub async fn ctl(&self, i: usize, args: &[&str]) -> Result<String> {
        let node = &self.nodes[i].name;
        let mut cmd = self.command("rabbitmqctl");
        cmd.arg("-n").arg(node).args(args).kill_on_drop(true);
        let out = tokio::time::timeout(CTL_TIMEOUT, cmd.output())
            .await
            .map_err(|_| {
                anyhow!(
                    "rabbitmqctl -n {node} {} took over {CTL_TIMEOUT:?}",
                    args.join(" ")
                )
            })?
            .with_context(|| format!("run rabbitmqctl -n {node} {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "rabbitmqctl -n {node} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// Waits until node `i` has booted (it may not have registered yet when first asked), and
    /// reads the pid of its Erlang VM.
    async fn await_boot(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(script) = &mut self.nodes[i].script
                && let Ok(Some(status)) = script.try_wait()
            {
                bail!(
                    "the RabbitMQ node {} exited while booting ({status})\n{}",
                    self.nodes[i].name,
                    self.nodes[i].log_tail()
                );
            }
            match self.ctl(i, &["await_startup", "--timeout", "30"]).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "the RabbitMQ node {} did not boot within {START_TIMEOUT:?}: {e:#}\n{}",
                        self.nodes[i].name,
                        self.nodes[i].log_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let pid_file = self.nodes[i].dir.join("beam.pid");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("read {}", pid_file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("a pid in {}", pid_file.display()))?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        ensure!(
            comm.trim() == "beam.smp",
            "{} names pid {pid}, which is {:?}, not beam.smp",
            pid_file.display(),
            comm.trim()
        );
        self.nodes[i].beam_pid = Some(pid);
        Ok(())
    }

    /// The names of the nodes running in the cluster, as node `i` sees it.
    pub async fn running_nodes(&self, i: usize) -> Result<Vec<String>> {
        let json = self
            .ctl(i, &["cluster_status", "--formatter", "json"])
            .await?;
        let status: serde_json::Value = serde_json::from_str(json.trim())
            .with_context(|| format!("read cluster_status: {json}"))?;
        Ok(status["running_nodes"]
            .as_array()
            .ok_or_else(|| anyhow!("no running_nodes in cluster_status: {json}"))?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect())
    }

    /// The leader and the online members of quorum queue `queue`, as node `i` sees them.
    pub async fn quorum_queue(&self, i: usize, queue: &str) -> Result<(String, Vec<String>)> {
        let json = self
            .ctl(
                i,
                &[
                    "list_queues",
                    "name",
                    "type",
                    "leader",
                    "online",
                    "--formatter",
                    "json",
                ],
            )
            .await?;
        let queues: serde_json::Value = serde_json::from_str(json.trim())
            .with_context(|| format!("read list_queues: {json}"))?;
        let found = queues
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == queue))
            .ok_or_else(|| anyhow!("no queue {queue} on the cluster: {json}"))?;
        ensure!(
            found["type"] == "quorum",
            "{queue} is not a quorum queue: {found}"
        );
        let leader = found["leader"].as_str().unwrap_or("?").to_string();
        let online = found["online"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((leader, online))
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Kills node `i` the hard way: SIGKILL to its Erlang VM, no chance to say goodbye to
    /// its clients or to the other nodes. Returns when the signal was sent.
    pub fn kill_node(&mut self, i: usize) -> Result<Instant> {
        let node = &mut self.nodes[i];
        let pid = node
            .beam_pid
            .take()
            .ok_or_else(|| anyhow!("{} is not running", node.name))?;
        let at = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .context("run kill")?;
        ensure!(status.success(), "kill -KILL {pid} ({}) failed", node.name);
        Ok(at)
    }

    /// Stops every node still running (`rabbitmqctl stop`, then its process group is killed
    /// whatever happened) and says how it went.
    pub async fn stop(&mut self) -> String {
        let mut said = Vec::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].script.is_none() {
                continue;
            }
            let how = if self.nodes[i].beam_pid.is_some() {
                match self.ctl(i, &["stop"]).await {
                    Ok(_) => "stopped".to_string(),
                    Err(e) => format!("did not stop ({e:#}); killed"),
                }
            } else {
                "killed".to_string()
            };
            let node = &mut self.nodes[i];
            node.kill_group();
            if let Some(mut script) = node.script.take() {
                let _ = tokio::time::timeout(Duration::from_secs(10), script.wait()).await;
            }
            node.beam_pid = None;
            said.push(format!("{}: {how}", node.name));
        }
        said.join("; ")
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill_group();
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// `count` ports of `range` nobody listens on now (away from the machine's own RabbitMQ,
/// 5672 and 25672).
fn free_ports(range: std::ops::Range<u16>, count: usize) -> Result<Vec<u16>> {
    let ports: Vec<u16> = range
        .clone()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .take(count)
        .collect();
    ensure!(
        ports.len() == count,
        "fewer than {count} free ports in {range:?}"
    );
    Ok(ports)
}
