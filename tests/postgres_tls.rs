//! PostgreSQL over TLS: a throw-away cluster with `ssl=on` and a certificate made for the test
//! (by its own CA, for `localhost` only) that refuses plain connections; the store connects
//! with each `sslmode` and the connection it gets is encrypted, or refused, as libpq would.
//!
//! Skips with a message when the PostgreSQL server binaries or openssl are not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::config::DatabaseKind;
use latchkey::store::Store;

/// A cluster of our own on a free port, stopped when dropped.
struct TlsCluster {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    port: u16,
    server: Child,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PostgreSQL refuses to run as root: run its commands as `postgres` then.
fn as_postgres(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsCluster {
    fn start() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            eprintln!("SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("SKIPPED: openssl is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(d).args(args));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Latchkey test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let root = unsafe { libc_geteuid() } == 0;
        if root {
            run(Command::new("chown").args(["-R", "postgres"]).arg(d));
        }
        run(Command::new("chmod").arg("0700").arg(d));
        run(Command::new("chmod").arg("0600").arg(d.join("server.key")));
        let data = d.join("data");
        run(as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data)
            .stdout(Stdio::null()));
        // TLS only: a plain connection is rejected by the server itself.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        if root {
            run(Command::new("chown")
                .args(["postgres"])
                .arg(data.join("pg_hba.conf")));
        }
        let port = free_port();
        let server = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", d.display()))
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", d.join("server.pem").display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", d.join("server.key").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let cluster = Self {
            ca: d.join("ca.pem"),
            port,
            server,
            _dir: dir,
        };
        // Accepting TCP is not enough: until recovery ends the server answers "the database
        // system is starting up". pg_isready says when it takes sessions (on a loaded machine
        // that can be seconds later).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "the TLS cluster did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(cluster)
    }

    fn url(&self, host: &str, options: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/postgres?{options}",
            self.port
        )
    }
}

/// Connects through the store; `Ok(true)` when the session is encrypted.
async fn encrypted(url: &str, ca_file: Option<&Path>) -> Result<bool, String> {
    let store = Store::open(
        &DatabaseKind::Postgres {
            url: url.into(),
            ca_file: ca_file.map(PathBuf::from),
        },
        1,
    )
    .map_err(|e| e.to_string())?;
    let row = store
        .db()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.bool(0))
}

#[tokio::test]
async fn the_store_connects_over_tls_as_sslmode_says() {
    let Some(pg) = TlsCluster::start() else {
        return;
    };
    let ca = pg.ca.to_string_lossy().into_owned();
    let ca_param = format!(
        "sslrootcert={}",
        percent_encoding::utf8_percent_encode(&ca, percent_encoding::NON_ALPHANUMERIC)
    );

    // verify-full against the test CA, by URL and by the ca_file setting.
    assert_eq!(
        encrypted(
            &pg.url("localhost", &format!("sslmode=verify-full&{ca_param}")),
            None
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        encrypted(&pg.url("localhost", "sslmode=verify-full"), Some(&pg.ca)).await,
        Ok(true)
    );
    // The migrations run over it too.
    let store = Store::open(
        &DatabaseKind::Postgres {
            url: pg.url("localhost", "sslmode=verify-full").into(),
            ca_file: Some(pg.ca.clone()),
        },
        2,
    )
    .unwrap();
    assert!(!store.migrate().await.unwrap().is_empty());

    // The certificate names `localhost`, not 127.0.0.1: verify-full refuses, verify-ca (chain
    // only) accepts.
    let wrong_name = encrypted(&pg.url("127.0.0.1", "sslmode=verify-full"), Some(&pg.ca)).await;
    assert!(wrong_name.is_err(), "{wrong_name:?}");
    assert_eq!(
        encrypted(&pg.url("127.0.0.1", "sslmode=verify-ca"), Some(&pg.ca)).await,
        Ok(true)
    );
    // Against the public roots the test CA is unknown.
    let unknown_ca = encrypted(&pg.url("localhost", "sslmode=verify-full"), None).await;
    assert!(unknown_ca.is_err(), "{unknown_ca:?}");
    // require without a CA: encrypted, not checked (libpq's meaning).
    assert_eq!(
        encrypted(&pg.url("127.0.0.1", "sslmode=require"), None).await,
        Ok(true)
    );
    // Plain connections are refused by this server.
    let plain = encrypted(&pg.url("127.0.0.1", "sslmode=disable"), None).await;
    assert!(plain.is_err(), "{plain:?}");
}
