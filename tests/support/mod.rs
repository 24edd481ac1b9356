//! The test harness: each test starts its own Latchkey on a random port, on either backend,
//! with its own database (a fresh PostgreSQL database or a temporary SQLite file), its own
//! queue names and its own mailbox (an SMTP server the test starts, or the file outbox).
//! A `Browser` acts as a browser does: cookies, forms with their hidden fields, redirects.
//!
//! Set `TEST_LOG=1` to see the application's logs.

#![allow(dead_code)]

pub mod browser;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use latchkey::app::{App, AppHandle, AppOptions};
use latchkey::config::Config;
use latchkey::domain::{ManualClock, Secret};
use latchkey::queue::rabbit::RabbitQueue;
use latchkey_testkit::{FakeStripe, ReceivedEmail, SmtpSink, TcpProxy};

pub use browser::{Browser, Page};

pub const WAIT: Duration = Duration::from_secs(15);

pub const STRIPE_KEY: &str = "sk_test_latchkey";
pub const WEBHOOK_SECRET: &str = "whsec_test_latchkey";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the in-process queue and the file outbox.
    Embedded,
    /// PostgreSQL, RabbitMQ and a real SMTP server started by the test.
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("LATCHKEY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn amqp_url() -> String {
    std::env::var("LATCHKEY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            latchkey::telemetry::init(latchkey::config::LogFormat::Pretty, "info,latchkey=debug");
        }
    });
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        latchkey::domain::OpaqueToken::generate().encode()[..10]
            .to_ascii_lowercase()
            .replace(['-', '_'], "x")
    )
}

/// A PostgreSQL database made for one test, dropped afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = unique("lk_test");
        let admin = pg_admin_url();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL must be running (see README: the test command starts it)");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Where a test reads the emails the application sent.
#[derive(Clone)]
pub enum Mailbox {
    Smtp(SmtpSink),
    Outbox(PathBuf),
}

impl Mailbox {
    pub fn all(&self) -> Vec<ReceivedEmail> {
        match self {
            Mailbox::Smtp(sink) => sink.messages(),
            Mailbox::Outbox(dir) => {
                let mut files: Vec<_> = std::fs::read_dir(dir)
                    .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                    .unwrap_or_default();
                files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
                files.sort();
                files
                    .into_iter()
                    .filter_map(|p| std::fs::read(p).ok())
                    .map(|data| {
                        let mut email = ReceivedEmail {
                            mail_from: String::new(),
                            mail_parameters: Vec::new(),
                            rcpt_to: Vec::new(),
                            data,
                            received_at: Instant::now(),
                        };
                        email.rcpt_to = email.to();
                        email
                    })
                    .collect()
            }
        }
    }

    pub fn to(&self, addr: &str) -> Vec<ReceivedEmail> {
        self.all()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(addr)))
            .collect()
    }

    /// Waits until `addr` has received `n` emails; returns them, oldest first.
    pub async fn wait_for_n(&self, addr: &str, n: usize) -> Vec<ReceivedEmail> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.to(addr);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {n} email(s) to {addr}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for(&self, addr: &str) -> ReceivedEmail {
        self.wait_for_n(addr, 1).await.remove(0)
    }

    /// The newest email to `addr` once `n` have arrived.
    pub async fn nth(&self, addr: &str, n: usize) -> ReceivedEmail {
        self.wait_for_n(addr, n).await.remove(n - 1)
    }
}

/// Finds the magic link in an email.
pub fn sign_in_link(email: &ReceivedEmail) -> String {
    email
        .links()
        .into_iter()
        .find(|l| l.contains("/auth/"))
        .unwrap_or_else(|| panic!("no sign-in link in:\n{}", email.text_body()))
}

/// How a test wants its application.
pub struct Setup {
    pub backend: Backend,
    pub workers: bool,
    /// Put a fault-injecting proxy between the application and RabbitMQ.
    pub broker_proxy: bool,
    /// Put a fault-injecting proxy between the application and PostgreSQL.
    pub db_proxy: bool,
    /// Send through an SMTP server the test starts, on the embedded backend too.
    pub smtp: bool,
    /// Configure Stripe against a fake Stripe server the test starts.
    pub stripe: bool,
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            workers: true,
            broker_proxy: false,
            db_proxy: false,
            smtp: false,
            stripe: false,
            tweak: Box::new(|_| {}),
        }
    }

    pub fn without_workers(mut self) -> Self {
        self.workers = false;
        self
    }

    pub fn with_broker_proxy(mut self) -> Self {
        self.broker_proxy = true;
        self
    }

    pub fn with_db_proxy(mut self) -> Self {
        self.db_proxy = true;
        self
    }

    pub fn with_smtp(mut self) -> Self {
        self.smtp = true;
        self
    }

    pub fn with_stripe(mut self) -> Self {
        self.stripe = true;
        self
    }

    pub fn config(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }

    pub async fn start(self) -> TestApp {
        TestApp::start_with(self).await
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub clock: ManualClock,
    pub mailbox: Mailbox,
    pub config: Config,
    pub broker_proxy: Option<TcpProxy>,
    pub db_proxy: Option<TcpProxy>,
    pub stripe: Option<FakeStripe>,
    /// Declared last-but-two: the app stops before its database and files go.
    pub app: Option<AppHandle>,
    pub db: Option<TestDatabase>,
    queue: Option<RabbitQueue>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// The `latchkey` binary with `args`, set up to share this application's database, queue,
    /// mailbox and secret key (a data directory of its own, an operations port of its own,
    /// quiet unless `TEST_LOG` is set).
    pub fn command(&self, args: &[&str]) -> Command {
        let c = &self.config;
        let dir = self.dir.path().join(format!("process-{}", unique("p")));
        std::fs::create_dir_all(&dir).unwrap();
        let quiet = std::env::var("TEST_LOG").is_err();
        let output = || {
            if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            }
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LATCHKEY_CONFIG_DIR", &dir)
            .env("LATCHKEY_DATA_DIR", &dir)
            .env("LATCHKEY_DATABASE_URL", c.database_url.expose())
            .env("LATCHKEY_QUEUE_URL", c.queue_url.expose())
            .env("LATCHKEY_QUEUE__PREFIX", &c.queue.prefix)
            .env("LATCHKEY_MAIL_URL", c.mail_url.expose())
            .env("LATCHKEY_PUBLIC_URL", &c.public_url)
            .env("LATCHKEY_OPS_LISTEN", "127.0.0.1:0")
            .env(
                "LATCHKEY_SECRET_KEY",
                c.secret_key.as_ref().unwrap().expose(),
            )
            .env("LATCHKEY_LOG_LEVEL", if quiet { "error" } else { "info" })
            .stdout(output())
            .stderr(output());
        cmd
    }

    pub async fn start(backend: Backend) -> Self {
        Setup::new(backend).start().await
    }

    pub async fn start_with(setup: Setup) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = Config::defaults();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        config.listen = listener.local_addr().unwrap();
        config.public_url = format!("http://{}", config.listen);
        // The operations port too: each test its own (the bound one is `AppHandle::ops_addr`).
        config.ops_listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.secret_key = Some(Secret::new(unique("test-secret-key-that-is-long-enough")));
        config.log_level = "warn".into();
        config.demo_on_first_start = false;
        config.rate_limit.ip_per_second = 10_000;
        config.rate_limit.ip_burst = 10_000;
        config.mail.retry_delays_seconds = vec![0.2, 0.4, 0.8];
        config.mail.smtp_timeout_seconds = 5;
        config.database.pool_size = 8;
        config.mail.concurrency = 8;
        let mut db = None;
        let mut queue = None;
        let mut broker_proxy = None;
        let mut db_proxy = None;
        let mut mailbox;
        match setup.backend {
            Backend::Embedded => {
                config.database_url =
                    format!("sqlite://{}", dir.path().join("latchkey.db").display()).into();
                config.queue_url = "local".into();
                let outbox = dir.path().join("outbox");
                config.mail_url = format!("file://{}", outbox.display()).into();
                config.mail.print_links = false;
                mailbox = Mailbox::Outbox(outbox);
            }
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                config.database_url = database.url.clone().into();
                if setup.db_proxy {
                    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap())
                        .await
                        .expect("a database proxy");
                    config.database_url = database
                        .url
                        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port()))
                        .into();
                    db_proxy = Some(proxy);
                }
                db = Some(database);
                let mut amqp = amqp_url();
                if setup.broker_proxy {
                    let target: std::net::SocketAddr = "127.0.0.1:5672".parse().unwrap();
                    let proxy = TcpProxy::start(target).await.expect("a broker proxy");
                    amqp = amqp.replace("127.0.0.1:5672", &format!("127.0.0.1:{}", proxy.port()));
                    broker_proxy = Some(proxy);
                }
                config.queue_url = amqp.into();
                config.queue.prefix = unique("lk.test").replace('_', ".");
                config.queue.connect_timeout_seconds = 2;
                queue = Some(RabbitQueue::new(
                    &amqp_url(),
                    &config.queue.prefix,
                    false,
                    Duration::from_secs(5),
                ));
                let sink = SmtpSink::start().await.expect("an SMTP server");
                config.mail_url = format!("smtp://127.0.0.1:{}?tls=none", sink.port()).into();
                mailbox = Mailbox::Smtp(sink);
            }
        }
        let mut stripe = None;
        if setup.stripe {
            let fake = FakeStripe::start(STRIPE_KEY).await.expect("a fake Stripe");
            config.stripe_secret_key = Some(Secret::new(STRIPE_KEY.to_string()));
            config.stripe_webhook_secret = Some(Secret::new(WEBHOOK_SECRET.to_string()));
            config.stripe_api_base = Some(fake.url().into());
            config.stripe_timeout_seconds = 1;
            stripe = Some(fake);
        }
        if setup.smtp && matches!(mailbox, Mailbox::Outbox(_)) {
            let sink = SmtpSink::start().await.expect("an SMTP server");
            config.mail_url = format!("smtp://127.0.0.1:{}?tls=none", sink.port()).into();
            mailbox = Mailbox::Smtp(sink);
        }
        (setup.tweak)(&mut config);
        let clock = ManualClock::new();
        let app = App::start(
            config.clone(),
            AppOptions {
                web: true,
                workers: Some(setup.workers),
                bounces: None,
                clock: std::sync::Arc::new(clock.clone()),
                listener: Some(listener),
            },
        )
        .expect("the application starts");
        app.store()
            .load_demo(chrono::Utc::now())
            .await
            .expect("demo data loads");
        if stripe.is_some() {
            // The demo's card on file does not exist at the fake Stripe.
            app.store()
                .db()
                .execute("DELETE FROM payment_methods", &[])
                .await
                .expect("clear the demo card");
        }
        TestApp {
            backend: setup.backend,
            clock,
            mailbox,
            config,
            broker_proxy,
            db_proxy,
            stripe,
            app: Some(app),
            db,
            queue,
            dir,
        }
    }

    pub fn app(&self) -> &AppHandle {
        self.app.as_ref().expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app().url())
    }

    /// A URL on the operations port (`/metrics`, `/readyz`).
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{path}", self.app().ops_url())
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.app().url())
    }

    pub fn store(&self) -> &latchkey::store::Store {
        self.app().store()
    }

    pub fn smtp(&self) -> &SmtpSink {
        match &self.mailbox {
            Mailbox::Smtp(s) => s,
            Mailbox::Outbox(_) => panic!("this test needs the SMTP backend"),
        }
    }

    /// Runs a query through the application's own database interface (both backends).
    pub async fn rows(
        &self,
        sql: &str,
        params: &[latchkey::store::Value],
    ) -> Vec<latchkey::store::Row> {
        self.store().db().query(sql, params).await.expect("query")
    }

    pub async fn count(&self, sql: &str, params: &[latchkey::store::Value]) -> i64 {
        self.rows(sql, params).await[0].i64(0)
    }

    /// Waits until a delivery reaches `status`.
    /// The delivery's status now (it must exist).
    pub async fn delivery_status(&self, delivery_id: i64) -> String {
        self.store()
            .delivery(delivery_id)
            .await
            .expect("the delivery query")
            .expect("the delivery")
            .status
            .as_str()
            .to_string()
    }

    pub async fn wait_for_status(
        &self,
        delivery_id: i64,
        status: &str,
    ) -> latchkey::store::Delivery {
        let deadline = Instant::now() + WAIT;
        loop {
            let d = self
                .store()
                .delivery(delivery_id)
                .await
                .expect("query")
                .expect("the delivery exists");
            if d.status.as_str() == status {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "delivery {delivery_id} stayed {:?} (wanted {status}); last error {:?}",
                d.status,
                d.last_error
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The newest delivery to an address.
    pub async fn latest_delivery_to(&self, recipient: &str) -> latchkey::store::Delivery {
        let id = self
            .rows(
                "SELECT id FROM deliveries WHERE recipient = $1 ORDER BY id DESC LIMIT 1",
                &[recipient.into()],
            )
            .await
            .first()
            .map(|r| r.i64(0))
            .unwrap_or_else(|| panic!("no delivery to {recipient}"));
        self.store().delivery(id).await.unwrap().unwrap()
    }

    pub fn fake_stripe(&self) -> &FakeStripe {
        self.stripe
            .as_ref()
            .expect("this test needs Setup::with_stripe")
    }

    /// Delivers a webhook event as Stripe does: the raw JSON, signed now.
    pub async fn send_webhook(&self, event: &serde_json::Value) -> reqwest::Response {
        let body = serde_json::to_vec(event).unwrap();
        let signature =
            latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, self.clock_now().timestamp());
        self.post_webhook(body, Some(signature)).await
    }

    pub async fn post_webhook(
        &self,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(self.url("/webhooks/stripe"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        req.send().await.expect("POST /webhooks/stripe")
    }

    /// The application's idea of now.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use latchkey::domain::Clock;
        self.clock.now()
    }

    /// The id of a demo invoice by its number.
    pub async fn invoice_id(&self, number: &str) -> i64 {
        self.rows(
            "SELECT id FROM invoices WHERE number = $1",
            &[number.into()],
        )
        .await[0]
            .i64(0)
    }

    /// Asks for a sign-in link on the sign-in page; returns the new delivery's id.
    pub async fn request_link(&self, browser: &Browser, email: &str) -> i64 {
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser
            .submit_followed(&page, "form[action$='/sign-in']", &[("email", email)])
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        self.latest_delivery_to(email).await.id
    }

    pub async fn attempts(&self, delivery_id: i64) -> Vec<latchkey::store::Attempt> {
        self.store()
            .delivery_attempts(delivery_id)
            .await
            .expect("attempts")
    }

    /// Signs `email` in through the browser, as a customer does, and returns the dashboard.
    pub async fn sign_in(&self, browser: &Browser, email: &str) -> Page {
        let before = self.mailbox.to(email).len();
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser
            .submit_followed(&page, "form[action$='/sign-in']", &[("email", email)])
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert!(sent.text().contains("Check your email"));
        let mail = self.mailbox.nth(email, before + 1).await;
        let link = sign_in_link(&mail);
        let landing = browser.get_url(&link).await;
        assert_eq!(landing.status, 200, "{}", landing.body);
        let redirected = browser.submit(&landing, "form", &[]).await;
        assert_eq!(redirected.status, 303, "{}", redirected.body);
        browser.follow(&redirected).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop();
        }
        if let Some(queue) = self.queue.take() {
            let delays = self.config.retry_delays();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let _ = queue.delete_all(&delays).await;
                });
            })
            .join();
        }
    }
}

/// Runs the same test body on both backends.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($backend:ident: Backend) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($backend: Backend) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    run(Backend::Embedded).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    run(Backend::Postgres).await
                }
            }
        )*
    };
}
