//! Builds and runs the application: storage, queue, transport, actors, workers and the web
//! front, inside one actix system on a tokio runtime: by default a single thread for all of
//! them (`threads = 1`), or a multi-threaded one (`threads = 0` or more than 1).
//!
//! [`App::run`] blocks the calling thread (the binary); [`App::start`] runs the same thing on
//! a thread of its own and returns a handle with the real address (tests bind port 0).
//!
//! Every process (`serve` and `worker`) has an operations listener (`ops_listen`). On the
//! shutdown signal the listeners stop accepting and answer the requests already received, the
//! workers stop taking messages and finish the sends in flight (up to the grace period), and
//! only then do the actors stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, System};
use tokio::sync::watch;

use crate::actors::mailer::run_worker;
use crate::actors::webhooks::{
    DeliverWebhook, RelayWebhooks, WebhookOutcome, WebhookSender, run_webhook_worker,
};
use crate::actors::{Actors, DeliverOutcome, Mailer, RelayReport, SessionKeeper, TokenIssuer};
use crate::config::{Config, DatabaseKind, MailKind, QueueKind};
use crate::crypto::Keys;
use crate::domain::clock::{SharedClock, SystemClock};
use crate::error::AppError;
use crate::http::{HttpState, frame::IpLimiter};
use crate::mail::smtp::SmtpPool;
use crate::mail::{Outbox, Transport};
use crate::metrics::Metrics;
use crate::queue::MailQueue;
use crate::queue::local::LocalQueue;
use crate::queue::rabbit::RabbitQueue;
use crate::services::{Services, StorefrontCache};
use crate::store::Store;

/// What to run besides the configuration.
pub struct AppOptions {
    /// Serve HTTP (`latchkey serve`); false for `latchkey worker`.
    pub web: bool,
    /// Run mail workers and the relay; defaults to `config.run_workers`.
    pub workers: Option<bool>,
    /// Run the bounce listener (when `bounces.listen` is set); defaults to whether the workers
    /// run. `latchkey bounces` runs it alone (and requires `bounces.listen`).
    pub bounces: Option<bool>,
    /// The clock (tests pass a [`crate::domain::ManualClock`]).
    pub clock: SharedClock,
    /// A listener to serve on instead of binding `config.listen`.
    pub listener: Option<std::net::TcpListener>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            web: true,
            workers: None,
            bounces: None,
            clock: Arc::new(SystemClock),
            listener: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database: {0}")]
    Database(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// A running application.
pub struct AppHandle {
    pub addr: Option<SocketAddr>,
    /// Where the bounce listener listens (`bounces.listen`, bound), when it runs.
    pub bounce_addr: Option<SocketAddr>,
    /// Where `/metrics` and `/readyz` are served (`ops_listen`, bound).
    pub ops_addr: SocketAddr,
    pub services: Arc<Services>,
    pub actors: Actors,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct App;

struct Running {
    /// Whether this process runs the mail workers.
    workers: bool,
    addr: Option<SocketAddr>,
    bounce_addr: Option<SocketAddr>,
    ops_addr: SocketAddr,
    services: Arc<Services>,
    actors: Actors,
    /// The listeners and the mail workers: each ends by itself after the shutdown signal, once
    /// its open requests or sends in flight are done (bounded by the grace period).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// After the shutdown signal: waits for the servers to answer what they received and the
    /// workers to finish their sends, then stops the actors (which those needed), so
    /// everything (pools included) is dropped while the runtime still runs.
    async fn wind_down(self) {
        let grace = self.services.config.shutdown_grace();
        // Each task bounds itself by the grace period; the margin covers the last writes.
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace + Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("shutdown: work still running after the grace period; stopping");
        }
        self.actors.stop().await;
        drop(self.services);
    }
}

impl App {
    /// Starts the application on its own thread and returns once it serves.
    pub fn start(config: Config, options: AppOptions) -> Result<AppHandle, StartError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("latchkey-app".into())
            .spawn(move || {
                let threads = config.threads;
                let sys = System::with_tokio_rt(move || runtime(threads));
                sys.block_on(async move {
                    match build(config, options, shutdown_rx.clone()).await {
                        Ok(running) => {
                            let _ = ready_tx.send(Ok((
                                running.addr,
                                running.bounce_addr,
                                running.ops_addr,
                                running.services.clone(),
                                running.actors.clone(),
                            )));
                            wait_for(shutdown_rx).await;
                            running.wind_down().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                System::current().stop();
            })
            .map_err(|e| StartError::Other(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok((addr, bounce_addr, ops_addr, services, actors))) => Ok(AppHandle {
                addr,
                bounce_addr,
                ops_addr,
                services,
                actors,
                shutdown: shutdown_tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Other(
                    "the application thread ended during start-up".into(),
                ))
            }
        }
    }

    /// Runs on the calling thread until Ctrl-C or SIGTERM.
    pub fn run(config: Config, options: AppOptions) -> Result<(), StartError> {
        let threads = config.threads;
        let sys = System::with_tokio_rt(move || runtime(threads));
        let result = sys.block_on(async move {
            let (shutdown_tx, shutdown_rx) = watch::channel(false);
            let running = build(config, options, shutdown_rx).await?;
            announce(&running);
            shutdown_signal().await;
            tracing::info!(
                grace_seconds = running.services.config.shutdown_grace_seconds,
                "shutting down: finishing open requests and sends in flight"
            );
            let _ = shutdown_tx.send(true);
            tokio::select! {
                _ = running.wind_down() => {}
                _ = shutdown_signal() => tracing::warn!("second signal: exiting now"),
            }
            Ok(())
        });
        System::current().stop();
        result
    }
}

/// The runtime: with `threads` 1 (the default) everything runs on one thread, so handing a
/// request to an actor and a message to the Mailer wakes no other thread (on a 2-core machine
/// shared with the database and the broker that took a quarter of the CPU per sign-in link off
/// the server; BENCHMARKS.md, issue 10 step 9); otherwise that many worker threads (0: one per
/// CPU core). Blocking work runs on tokio's blocking threads either way.
fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    builder
        .enable_all()
        .thread_name("latchkey-worker")
        .build()
        .expect("a tokio runtime")
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn announce(running: &Running) {
    let cfg = &running.services.config;
    tracing::info!(addr = %running.ops_addr, "operations port (/metrics, /readyz)");
    if let Some(addr) = running.bounce_addr {
        tracing::info!(%addr, "bounce listener (SMTP) accepting reports for VERP addresses");
    }
    if let Some(addr) = running.addr {
        tracing::info!(%addr, "listening");
        let public = cfg.public_url();
        let base = public.as_str().trim_end_matches('/');
        if let (Ok(MailKind::Outbox(dir)), Ok(DatabaseKind::Sqlite(_))) =
            (cfg.mail_kind(), cfg.database_kind())
        {
            println!();
            println!("  Latchkey is running.");
            println!("  Open the demo portal:  {base}/s/demo/");
            println!(
                "  Sign in as alex@example.com (or sam@example.com). No email is really sent:"
            );
            println!(
                "  the sign-in link is printed here and saved under {}.",
                dir.display()
            );
            println!();
        } else {
            println!("Latchkey is serving {base}/s/<storefront>/");
        }
    } else if running.workers {
        tracing::info!("mail worker running");
    }
}

async fn build(
    config: Config,
    options: AppOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, StartError> {
    config.validate()?;
    let config = Arc::new(config);
    let workers = options.workers.unwrap_or(config.run_workers);
    let bounce_listen = match (options.bounces.unwrap_or(workers), config.bounces.listen) {
        (false, _) => None,
        (true, Some(addr)) => Some(addr),
        (true, None) if options.bounces == Some(true) => {
            return Err(crate::config::ConfigError::new(
                "bounces.listen",
                "must be set to run the bounce listener (`latchkey bounces`)",
            )
            .into());
        }
        (true, None) => None,
    };
    if config.bounces.max_message_bytes > crate::mail::bounce::MAX_REPORT_BYTES {
        return Err(crate::config::ConfigError::new(
            "bounces.max_message_bytes",
            format!(
                "must be at most {} (the largest report read)",
                crate::mail::bounce::MAX_REPORT_BYTES
            ),
        )
        .into());
    }
    // Listeners first: a port in use stops start-up before anything else is built.
    let ops_listener = tokio::net::TcpListener::bind(config.ops_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.ops_listen,
            source,
        })?;
    let public_listener = match (options.web, options.listener) {
        (false, _) => None,
        (true, Some(l)) => {
            l.set_nonblocking(true)
                .map_err(|e| StartError::Other(e.to_string()))?;
            Some(
                tokio::net::TcpListener::from_std(l)
                    .map_err(|e| StartError::Other(e.to_string()))?,
            )
        }
        (true, None) => Some(tokio::net::TcpListener::bind(config.listen).await.map_err(
            |source| StartError::Listen {
                addr: config.listen,
                source,
            },
        )?),
    };
    let db_kind = config.database_kind()?;
    let store = Store::open(&db_kind, config.database.pool_size)
        .map_err(|e| StartError::Database(e.to_string()))?;
    if config.migrate_on_start {
        let applied = store
            .migrate()
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied migrations");
        }
    } else {
        store
            .ping()
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
    }
    let keys = keys(&config)?;
    // DKIM keys an earlier version stored in plaintext are sealed now (SQL cannot: it has no
    // secret key). Refused loudly if it cannot be done, rather than running with them.
    crate::usecases::sender::seal_plaintext_keys(&store, &keys, options.clock.now())
        .await
        .map_err(|e| StartError::Database(format!("cannot seal the plaintext DKIM keys: {e}")))?;
    if matches!(db_kind, DatabaseKind::Sqlite(_))
        && config.demo_on_first_start
        && options.web
        && !store
            .has_storefronts()
            .await
            .map_err(|e| StartError::Database(e.to_string()))?
    {
        store
            .load_demo(options.clock.now())
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        tracing::info!("loaded the demo storefront (first start)");
    }
    let queue_named = |prefix: &str| -> Result<Arc<dyn MailQueue>, StartError> {
        Ok(match config.queue_kind()? {
            QueueKind::Local => Arc::new(LocalQueue::new()),
            QueueKind::Amqp(nodes) => Arc::new(
                RabbitQueue::with_nodes(
                    nodes,
                    prefix,
                    config.queue.quorum,
                    Duration::from_secs(config.queue.connect_timeout_seconds),
                )
                .with_heartbeat(Duration::from_secs(config.queue.heartbeat_seconds)),
            ),
        })
    };
    let queue = queue_named(&config.queue.prefix)?;
    // Event webhooks travel on a queue of their own beside the mail queue (same broker).
    let webhook_queue = queue_named(&webhook_queue_prefix(&config))?;
    let transport: Arc<dyn Transport> = match config.mail_kind()? {
        MailKind::Outbox(dir) => Arc::new(Outbox::new(dir.clone()).map_err(|e| {
            StartError::Other(format!("cannot create the outbox {}: {e}", dir.display()))
        })?),
        MailKind::Smtp(smtp) => Arc::new(SmtpPool::new(
            smtp,
            &config.mail.hello_name,
            config.mail.smtp_pool_size,
            Duration::from_secs(config.mail.smtp_timeout_seconds),
        )),
    };
    if !workers && matches!(config.queue_kind()?, QueueKind::Local) && options.web {
        tracing::warn!(
            "workers are off with the in-process queue: no email will be sent by this process"
        );
    }
    let services = Arc::new(Services {
        storefronts: StorefrontCache::new(
            store.clone(),
            Duration::from_secs(30),
            options.clock.clone(),
        ),
        config: config.clone(),
        store,
        clock: options.clock.clone(),
        keys,
        queue: queue.clone(),
        publisher: crate::queue::Publisher::new(queue.clone()),
        metrics: Arc::new(Metrics::new()),
        worker_name: format!("{}:{}", hostname(), std::process::id()),
        webhook_nudge: Arc::default(),
        languages: Arc::new(
            crate::i18n::Catalog::load().map_err(|e| StartError::Other(e.to_string()))?,
        ),
    });
    let mailer = Mailer::new(services.clone(), transport, workers).start();
    let payments = Arc::new(
        crate::actors::billing_sync::Payments::new(services.clone())
            .map_err(|e| StartError::Other(format!("cannot set up Stripe: {e}")))?,
    );
    let billing_sync = crate::actors::billing_sync::BillingSync::new(payments.clone()).start();
    let webhooks = WebhookSender::new(services.clone(), webhook_queue.clone(), workers).start();
    let actors = Actors {
        token_issuer: TokenIssuer::new(services.clone()).start(),
        session_keeper: SessionKeeper::new(services.clone()).start(),
        mailer: mailer.clone(),
        billing_sync,
        webhooks: webhooks.clone(),
    };
    let mut tasks = Vec::new();
    let ops_addr = ops_listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    tasks.push(tokio::spawn(crate::http::server::serve_ops(
        ops_listener,
        Arc::new(crate::http::ops::OpsState {
            svc: services.clone(),
            // A worker needs the broker; `latchkey bounces` alone only the database.
            broker_required: !options.web && workers,
        }),
        shutdown.clone(),
    )));
    if workers {
        tasks.push(tokio::spawn(run_webhook_worker(
            webhook_queue,
            webhooks,
            config.webhooks.concurrency,
            config.shutdown_grace(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(run_worker(
            queue,
            mailer,
            config.mail.concurrency,
            config.shutdown_grace(),
            shutdown.clone(),
        )));
    }
    let mut bounce_addr = None;
    if let Some(listen) = bounce_listen {
        let b = &config.bounces;
        let verp = crate::mail::bounce::VerpCheck::new(services.keys.clone(), b.domains());
        let settings = crate::mail::bounce::ListenerSettings {
            hostname: b
                .domain
                .clone()
                .unwrap_or_else(|| config.mail.hello_name.clone()),
            max_message_bytes: b.max_message_bytes,
            max_connections: b.max_connections,
            idle_timeout: Duration::from_secs(b.idle_timeout_seconds),
            session_timeout: Duration::from_secs(b.session_timeout_seconds),
            ..Default::default()
        };
        let sink = Arc::new(crate::usecases::bounces::StoreSink::new(services.clone()));
        let listener = crate::mail::bounce::BounceListener::bind(listen, verp, sink, settings)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen,
                source,
            })?;
        bounce_addr = Some(
            listener
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?,
        );
        tasks.push(tokio::spawn(listener.serve(shutdown.clone())));
    }
    let mut addr = None;
    if let Some(listener) = public_listener {
        addr = Some(
            listener
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?,
        );
        let state = Arc::new(HttpState {
            svc: services.clone(),
            actors: actors.clone(),
            payments,
            ip_limiter: IpLimiter::new(config.rate_limit.ip_per_second, config.rate_limit.ip_burst),
        });
        let routes = crate::http::routes(state.clone());
        let limiter_state = state.clone();
        let mut limiter_shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => limiter_state.ip_limiter.retain_recent(),
                    _ = limiter_shutdown.changed() => return,
                }
            }
        });
        tasks.push(tokio::spawn(crate::http::server::serve(
            listener, state, routes, shutdown,
        )));
    }
    Ok(Running {
        workers,
        addr,
        bounce_addr,
        ops_addr,
        services,
        actors,
        tasks,
    })
}

/// The webhook queue's name (RabbitMQ): the mail queue's prefix and `.webhooks`.
pub fn webhook_queue_prefix(config: &Config) -> String {
    format!("{}.webhooks", config.queue.prefix)
}

/// The application's keys: from `secret_key`, or (the embedded default) `data_dir/secret.key`.
pub fn keys(config: &Config) -> Result<Keys, StartError> {
    match &config.secret_key {
        Some(secret) => Ok(Keys::from_secret(secret)),
        None => {
            Keys::load_or_create(&config.data_dir).map_err(|e| StartError::Other(e.to_string()))
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl AppHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr.expect("the web front runs"))
    }

    /// `http://127.0.0.1:PORT` of the operations listener.
    pub fn ops_url(&self) -> String {
        format!("http://{}", self.ops_addr)
    }

    pub fn store(&self) -> &Store {
        &self.services.store
    }

    pub fn mailer(&self) -> &Addr<Mailer> {
        &self.actors.mailer
    }

    /// One delivery step, as a worker would take it off the queue.
    pub async fn deliver(&self, delivery_id: i64) -> Result<DeliverOutcome, AppError> {
        crate::actors::ask(
            &self.actors.mailer,
            crate::actors::Deliver {
                delivery_id,
                redelivered: false,
            },
        )
        .await
    }

    /// One relay pass.
    pub async fn relay_once(&self) -> Result<RelayReport, AppError> {
        crate::actors::ask(&self.actors.mailer, crate::actors::RelayOnce).await
    }

    /// One webhook delivery step, as a worker would take it off the webhook queue.
    pub async fn deliver_webhook(&self, delivery_id: i64) -> Result<WebhookOutcome, AppError> {
        crate::actors::ask(&self.actors.webhooks, DeliverWebhook { delivery_id }).await
    }

    /// One webhook relay pass; answers how many deliveries it published.
    pub async fn relay_webhooks_once(&self) -> Result<usize, AppError> {
        crate::actors::ask(&self.actors.webhooks, RelayWebhooks).await
    }

    /// Stops the application and waits for its thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
