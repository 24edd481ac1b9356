//! [`SmtpSink`]: a real ESMTP server over TCP for integration tests and the
//! throughput benchmark.
//!
//! The sink speaks enough ESMTP for lettre's SMTP client (EHLO/HELO, MAIL, RCPT,
//! DATA, RSET, NOOP, VRFY, QUIT, with pipelining unless built
//! [`without_pipelining`](SmtpSinkBuilder::without_pipelining)), stores every accepted
//! message as a [`ReceivedEmail`], and lets a test wait for messages without
//! polling. Faults are switched at run time with [`SmtpSink::set_mode`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use latchkey_testkit::SmtpSink;
//!
//! let sink = SmtpSink::start().await?;
//! // ... point the application at 127.0.0.1:{sink.port()} and send ...
//! let email = sink.wait_for_to("alice@example.com", Duration::from_secs(2)).await.unwrap();
//! assert!(email.text_body().contains("Sign in"));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mail_parser::{HeaderValue, MessageParser, PartType};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// Host name announced in the greeting and the EHLO reply.
const HOSTNAME: &str = "latchkey-testkit";
/// Largest message accepted (also advertised as `SIZE`).
const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// How long to keep retrying to re-bind the port when coming back from `Down`.
const REBIND_FOR: Duration = Duration::from_secs(5);
/// Pause between two re-bind attempts.
const REBIND_EVERY: Duration = Duration::from_millis(50);
/// Listen backlog: the benchmark opens many connections at once.
const BACKLOG: u32 = 1024;

/// How the sink answers; switch at run time with [`SmtpSink::set_mode`].
///
/// A new mode applies to commands that arrive after the switch (for DATA: to
/// messages whose content ends after the switch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SmtpMode {
    /// Accept and store every message (the default).
    #[default]
    Accept,
    /// Answer every `RCPT TO` with `{code} {message}`, verbatim, e.g.
    /// `550` / `5.1.1 <x@y>: Recipient address rejected: User unknown`.
    RejectRcpt { code: u16, message: String },
    /// Read the DATA content to the end, then answer `{code} {message}`
    /// (e.g. `451` for a transient or `554` for a permanent failure).
    /// The message is not stored.
    RejectData { code: u16, message: String },
    /// Read the DATA content, then never answer: the connection is held open
    /// until the client closes it (or the sink goes [`Down`](Self::Down) or shuts
    /// down). Such messages are counted by [`SmtpSink::stalled_count`], not stored.
    /// Switching the mode back does not release connections already stalled.
    StallData,
    /// Close the listening socket (new connections get "connection refused")
    /// and close every open connection. Switching to any other mode re-binds the
    /// same address.
    Down,
}

/// One message accepted by the sink.
///
/// The helpers parse `data` with mail-parser on each call; they are meant for
/// test assertions, not hot paths.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    /// Envelope sender (`MAIL FROM`), without angle brackets; empty for `<>`.
    pub mail_from: String,
    /// The `MAIL FROM` parameters as sent, e.g. `BODY=8BITMIME`, in order.
    pub mail_parameters: Vec<String>,
    /// Envelope recipients (`RCPT TO`), without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// The raw message as received, dot-stuffing undone.
    pub data: Vec<u8>,
    /// When the end of the DATA content was received.
    pub received_at: Instant,
}

/// Returned by the `wait_for*` methods when the awaited state is not reached in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}")]
pub struct Timeout {
    /// What was awaited, and what the sink had at the deadline.
    pub what: String,
    /// The timeout that expired.
    pub waited: Duration,
}

/// A real ESMTP server on a local TCP port, receiving what the application sends.
///
/// Cloning gives another handle to the same server. The server stops when the
/// last handle is dropped or on [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct SmtpSink {
    shared: Arc<Shared>,
    /// Dropping the last sender stops the accept loop and every connection.
    control: Arc<watch::Sender<ServerState>>,
}

/// Options for starting an [`SmtpSink`]; see [`SmtpSink::builder`].
#[derive(Debug, Clone)]
pub struct SmtpSinkBuilder {
    addr: SocketAddr,
    store_messages: bool,
    delay: Duration,
    pipelining: bool,
}

/// State broadcast to the accept loop and to every connection.
#[derive(Debug, Clone, Default)]
struct ServerState {
    mode: SmtpMode,
    shutdown: bool,
}

impl ServerState {
    fn closes_connections(&self) -> bool {
        self.shutdown || self.mode == SmtpMode::Down
    }
}

/// Everything the server tasks and the handles share.
struct Shared {
    addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    /// `None` while down or after shutdown.
    listener: Mutex<Option<TcpListener>>,
    /// Mirrors of the mode, checked under the `listener` lock when binding.
    down: AtomicBool,
    shutdown: AtomicBool,
    store_messages: bool,
    /// Whether EHLO offers `PIPELINING`; without it, commands sent ahead are refused.
    pipelining: bool,
    delay_nanos: AtomicU64,
    next_id: AtomicU64,
    received_total: AtomicU64,
    stalled: AtomicU64,
    connections: AtomicU64,
    /// Writes of queued replies, each one the end of a round trip for the client.
    reply_writes: AtomicU64,
    /// Commands refused because they came before the reply to the one ahead of them.
    improper_pipelining: AtomicU64,
    store: Mutex<Store>,
    /// Bumped on every received or stalled message; waiters subscribe to it.
    events: watch::Sender<()>,
}

#[derive(Default)]
struct Store {
    /// Empty in counting-only mode.
    messages: Vec<ReceivedEmail>,
    /// Messages accepted since start or the last `clear()`.
    count: usize,
    /// Lowercase recipient -> arrival of its first message.
    first_seen: HashMap<String, Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SmtpSinkBuilder {
    /// Address to bind (default `127.0.0.1:0`, i.e. any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Keep only counts and the per-recipient first-arrival times, not the
    /// messages (for the benchmark). [`SmtpSink::messages`] is then always empty.
    pub fn counting_only(mut self) -> Self {
        self.store_messages = false;
        self
    }

    /// Wait this long before answering each DATA content (default none).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Do not offer `PIPELINING` (RFC 2920), and refuse a command that arrives before the
    /// reply to the one ahead of it, as Postfix's `reject_unauth_pipelining` does (counted by
    /// [`SmtpSink::improper_pipelining`]).
    pub fn without_pipelining(mut self) -> Self {
        self.pipelining = false;
        self
    }

    /// Binds the address and starts serving.
    pub async fn start(self) -> io::Result<SmtpSink> {
        let listener = bind_listener(self.addr)?;
        let addr = listener.local_addr()?;
        let (control, control_rx) = watch::channel(ServerState::default());
        let shared = Arc::new(Shared {
            addr,
            runtime: tokio::runtime::Handle::current(),
            listener: Mutex::new(Some(listener)),
            down: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            store_messages: self.store_messages,
            pipelining: self.pipelining,
            delay_nanos: AtomicU64::new(duration_nanos(self.delay)),
            next_id: AtomicU64::new(1),
            received_total: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            reply_writes: AtomicU64::new(0),
            improper_pipelining: AtomicU64::new(0),
            store: Mutex::new(Store::default()),
            events: watch::Sender::new(()),
        });
        tokio::spawn(accept_loop(shared.clone(), control_rx));
        Ok(SmtpSink {
            shared,
            control: Arc::new(control),
        })
    }
}

impl SmtpSink {
    /// Options: bind address, counting-only storage, DATA reply delay.
    pub fn builder() -> SmtpSinkBuilder {
        SmtpSinkBuilder {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store_messages: true,
            delay: Duration::ZERO,
            pipelining: true,
        }
    }

    /// Starts a sink on `127.0.0.1` on a free port, storing every message.
    pub async fn start() -> io::Result<SmtpSink> {
        Self::builder().start().await
    }

    /// Starts a sink on the given address, storing every message.
    pub async fn start_on(addr: SocketAddr) -> io::Result<SmtpSink> {
        Self::builder().bind(addr).start().await
    }

    /// Starts a sink on `127.0.0.1` on a free port that keeps only counts and
    /// first-arrival times (for the benchmark).
    pub async fn start_counting_only() -> io::Result<SmtpSink> {
        Self::builder().counting_only().start().await
    }

    /// Sets the delay before each DATA reply (builder style).
    pub fn with_delay(self, delay: Duration) -> Self {
        self.set_delay(delay);
        self
    }

    /// Sets the delay before each DATA reply; `Duration::ZERO` for none.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_nanos
            .store(duration_nanos(delay), Ordering::Relaxed);
    }

    /// The address the sink listens on (kept across `Down` and back).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The current mode.
    pub fn mode(&self) -> SmtpMode {
        self.control.borrow().mode.clone()
    }

    /// Switches the fault mode.
    ///
    /// Switching to [`SmtpMode::Down`] closes the listening socket before this
    /// returns (so a connection attempted afterwards is refused); open
    /// connections are closed asynchronously, promptly. Switching away from
    /// `Down` re-binds the same address, immediately if possible, otherwise in
    /// the background for up to 5 s.
    pub fn set_mode(&self, mode: SmtpMode) {
        let down = mode == SmtpMode::Down;
        self.shared.down.store(down, Ordering::SeqCst);
        self.control.send_modify(|state| state.mode = mode);
        if down {
            self.shared.close_listener();
        } else if let Err(error) = self.shared.listen_now() {
            tracing::debug!(addr = %self.shared.addr, %error, "SMTP sink re-bind failed; retrying");
        }
    }

    /// Stops the server: closes the listening socket and every connection.
    /// The sink cannot be restarted; stored messages stay readable.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.control.send_modify(|state| state.shutdown = true);
        self.shared.close_listener();
    }

    /// A copy of every stored message, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedEmail> {
        lock(&self.shared.store).messages.clone()
    }

    /// Number of messages accepted since start or the last [`clear`](Self::clear)
    /// (also counted in counting-only mode).
    pub fn count(&self) -> usize {
        lock(&self.shared.store).count
    }

    /// Stored messages with `addr` among their recipients (case-insensitive).
    pub fn messages_to(&self, addr: &str) -> Vec<ReceivedEmail> {
        let addr = addr.to_lowercase();
        lock(&self.shared.store)
            .messages
            .iter()
            .filter(|m| m.is_to(&addr))
            .cloned()
            .collect()
    }

    /// Forgets stored messages, the count and the first-arrival times.
    /// [`received_total`](Self::received_total) and
    /// [`stalled_count`](Self::stalled_count) are not reset.
    pub fn clear(&self) {
        *lock(&self.shared.store) = Store::default();
    }

    /// Messages accepted since start (never reset; a cheap atomic read).
    pub fn received_total(&self) -> u64 {
        self.shared.received_total.load(Ordering::Relaxed)
    }

    /// When the first message to `addr` (case-insensitive) was received.
    pub fn first_received_at(&self, addr: &str) -> Option<Instant> {
        lock(&self.shared.store)
            .first_seen
            .get(&addr.to_lowercase())
            .copied()
    }

    /// A copy of the whole first-arrival map (lowercase recipient -> instant).
    pub fn first_arrivals(&self) -> HashMap<String, Instant> {
        lock(&self.shared.store).first_seen.clone()
    }

    /// Connections accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// How many times the sink wrote out its replies since start: each write ends a round trip
    /// of the client's (the greeting, one per command without pipelining, one per pipelined
    /// group of commands, one per message content).
    pub fn reply_writes(&self) -> u64 {
        self.shared.reply_writes.load(Ordering::Relaxed)
    }

    /// Commands refused by a sink built [`without_pipelining`](SmtpSinkBuilder::without_pipelining)
    /// because the client sent them before reading the reply to the one ahead.
    pub fn improper_pipelining(&self) -> u64 {
        self.shared.improper_pipelining.load(Ordering::Relaxed)
    }

    /// How many messages reached the stall point in [`SmtpMode::StallData`].
    pub fn stalled_count(&self) -> u64 {
        self.shared.stalled.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` messages were accepted (see [`count`](Self::count)),
    /// then returns the stored messages.
    pub async fn wait_for_count(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEmail>, Timeout> {
        self.wait_until(
            timeout,
            || {
                let store = lock(&self.shared.store);
                (store.count >= n).then(|| store.messages.clone())
            },
            || format!("{n} messages (received {})", self.count()),
        )
        .await
    }

    /// Waits for the first stored message with `addr` among its recipients
    /// (case-insensitive); returns at once if one is already there.
    pub async fn wait_for_to(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<ReceivedEmail, Timeout> {
        let lower = addr.to_lowercase();
        self.wait_for(move |m| m.is_to(&lower), timeout)
            .await
            .map_err(|mut e| {
                e.what = format!("a message to {addr} ({})", self.summary());
                e
            })
    }

    /// Waits for the first stored message matching `predicate`; returns at
    /// once if one is already there.
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&ReceivedEmail) -> bool,
        timeout: Duration,
    ) -> Result<ReceivedEmail, Timeout> {
        self.wait_until(
            timeout,
            || {
                lock(&self.shared.store)
                    .messages
                    .iter()
                    .find(|m| predicate(m))
                    .cloned()
            },
            || format!("a matching message ({})", self.summary()),
        )
        .await
    }

    /// Waits until at least `n` messages reached the stall point.
    pub async fn wait_for_stalled(&self, n: u64, timeout: Duration) -> Result<(), Timeout> {
        self.wait_until(
            timeout,
            || (self.stalled_count() >= n).then_some(()),
            || format!("{n} stalled messages (stalled {})", self.stalled_count()),
        )
        .await
    }

    /// Re-checks `check` after every received or stalled message until it
    /// yields a value or `timeout` expires.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
        describe: impl FnOnce() -> String,
    ) -> Result<T, Timeout> {
        // Subscribe before the first check so no event is missed.
        let mut events = self.shared.events.subscribe();
        let wait = async {
            loop {
                if let Some(value) = check() {
                    return value;
                }
                if events.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Timeout {
                what: describe(),
                waited: timeout,
            })
    }

    fn summary(&self) -> String {
        let store = lock(&self.shared.store);
        let rcpts: Vec<&str> = store
            .messages
            .iter()
            .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
            .collect();
        format!("received {} messages, to {rcpts:?}", store.count)
    }
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.shared.addr)
            .field("mode", &self.control.borrow().mode)
            .field("count", &self.count())
            .field("stalled", &self.stalled_count())
            .finish()
    }
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed))
    }

    fn close_listener(&self) {
        lock(&self.listener).take();
    }

    fn is_listening(&self) -> bool {
        lock(&self.listener).is_some()
    }

    /// Binds the address again unless already listening, down or shut down.
    fn listen_now(&self) -> io::Result<()> {
        let _runtime = self.runtime.enter();
        let mut listener = lock(&self.listener);
        if listener.is_some()
            || self.down.load(Ordering::SeqCst)
            || self.shutdown.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        *listener = Some(bind_listener(self.addr)?);
        Ok(())
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        match &*lock(&self.listener) {
            Some(listener) => listener.poll_accept(cx).map_ok(|(stream, _)| stream),
            // Woken by the state change that re-binds.
            None => Poll::Pending,
        }
    }

    /// Stores (or just counts) an accepted message; returns its queue id.
    fn deliver(
        &self,
        mail_from: &str,
        mail_parameters: &[String],
        rcpt_to: &[String],
        data: &mut Vec<u8>,
    ) -> u64 {
        let now = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut store = lock(&self.store);
            for rcpt in rcpt_to {
                store.first_seen.entry(rcpt.to_lowercase()).or_insert(now);
            }
            store.count += 1;
            if self.store_messages {
                store.messages.push(ReceivedEmail {
                    mail_from: mail_from.to_owned(),
                    mail_parameters: mail_parameters.to_vec(),
                    rcpt_to: rcpt_to.to_vec(),
                    data: std::mem::take(data),
                    received_at: now,
                });
            }
        }
        self.received_total.fetch_add(1, Ordering::Relaxed);
        self.events.send_modify(|_| ());
        id
    }

    fn record_stall(&self) {
        self.stalled.fetch_add(1, Ordering::Relaxed);
        self.events.send_modify(|_| ());
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Binds with `SO_REUSEADDR`, so the port can be re-bound right after `Down`
/// even with connections in TIME_WAIT.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections; re-binds after `Down`; ends on shutdown or when the
/// last handle is dropped.
async fn accept_loop(shared: Arc<Shared>, mut control: watch::Receiver<ServerState>) {
    let mut may_rebind = true;
    loop {
        if control.has_changed().is_err() {
            break; // every handle dropped
        }
        let (shutdown, down) = {
            let state = control.borrow_and_update();
            (state.shutdown, state.mode == SmtpMode::Down)
        };
        if shutdown {
            break;
        }
        if !down && may_rebind && !shared.is_listening() {
            match rebind(&shared, &mut control).await {
                Rebind::Bound => {}
                Rebind::StateChanged => continue,
                Rebind::GaveUp => may_rebind = false,
            }
        }
        tokio::select! {
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => match accepted {
                Ok(stream) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve_connection(shared.clone(), stream, control.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::debug!(%error, "SMTP sink accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            changed = control.changed() => {
                if changed.is_err() {
                    break;
                }
                may_rebind = true;
            }
        }
    }
    shared.close_listener();
}

enum Rebind {
    Bound,
    StateChanged,
    GaveUp,
}

/// Retries binding the sink's address for up to [`REBIND_FOR`].
async fn rebind(shared: &Shared, control: &mut watch::Receiver<ServerState>) -> Rebind {
    let deadline = tokio::time::Instant::now() + REBIND_FOR;
    loop {
        match shared.listen_now() {
            Ok(()) => return Rebind::Bound,
            Err(error) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(addr = %shared.addr, %error, "SMTP sink could not re-bind its address");
                return Rebind::GaveUp;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(REBIND_EVERY) => {}
            _ = control.changed() => return Rebind::StateChanged,
        }
    }
}

/// Runs one SMTP session until it ends, or until the sink goes down or shuts down.
async fn serve_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    control: watch::Receiver<ServerState>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "SMTP sink: TCP_NODELAY failed");
    }
    let mut closer = control.clone();
    let session = Session {
        shared: &shared,
        control,
        greeted: false,
        mail_from: None,
        mail_parameters: Vec::new(),
        rcpt_to: Vec::new(),
        out: Vec::with_capacity(256),
    };
    tokio::select! {
        result = session.run(&mut stream) => {
            if let Err(error) = result {
                tracing::trace!(%error, "SMTP sink connection ended with an error");
            }
        }
        _ = closer.wait_for(ServerState::closes_connections) => {}
    }
    // Dropping the stream closes the connection.
}

/// What the command loop must do after a command.
enum Next {
    Continue,
    Data,
    Quit,
}

/// One SMTP conversation.
struct Session<'a> {
    shared: &'a Shared,
    control: watch::Receiver<ServerState>,
    greeted: bool,
    mail_from: Option<String>,
    mail_parameters: Vec<String>,
    rcpt_to: Vec<String>,
    /// Replies not yet written; flushed before waiting for more input.
    out: Vec<u8>,
}

impl Session<'_> {
    async fn run(mut self, stream: &mut TcpStream) -> io::Result<()> {
        let (read, mut write) = stream.split();
        let mut reader = BufReader::with_capacity(16 * 1024, read);
        let mut line = Vec::with_capacity(512);
        let mut data = Vec::new();
        self.reply(220, &format!("{HOSTNAME} ESMTP ready"));
        loop {
            // Replies to pipelined commands go out together, but never wait
            // while the client waits for them.
            if !self.out.is_empty() && !reader.buffer().contains(&b'\n') {
                self.write_out(&mut write).await?;
            }
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            // Sent before the reply to the command ahead of it, or with another behind it.
            let sent_ahead = !self.out.is_empty() || !reader.buffer().is_empty();
            if !self.shared.pipelining && sent_ahead {
                self.shared
                    .improper_pipelining
                    .fetch_add(1, Ordering::Relaxed);
                self.reply(503, "5.5.0 Error: improper use of SMTP command pipelining");
                continue;
            }
            match self.command(&line) {
                Next::Continue => {}
                Next::Quit => {
                    self.write_out(&mut write).await?;
                    return write.shutdown().await;
                }
                Next::Data => {
                    self.write_out(&mut write).await?;
                    let Some(too_big) = read_data(&mut reader, &mut data).await? else {
                        return Ok(()); // closed in the middle of the content
                    };
                    if !self.finish_data(&mut data, too_big).await {
                        // Stalled: never answer; wait for the client to go away.
                        return drain(&mut reader).await;
                    }
                }
            }
        }
    }

    /// Writes the queued replies.
    async fn write_out<W: AsyncWrite + Unpin>(&mut self, write: &mut W) -> io::Result<()> {
        write.write_all(&self.out).await?;
        self.out.clear();
        self.shared.reply_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Handles one command line; replies are queued in `self.out`.
    fn command(&mut self, line: &[u8]) -> Next {
        let line = trim_eol(line);
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], trim_start(&line[i + 1..])),
            None => (line, &[][..]),
        };
        let verb = verb.to_ascii_uppercase();
        match verb.as_slice() {
            b"EHLO" | b"HELO" if arg.is_empty() => {
                self.reply(501, "5.5.4 Syntax: EHLO hostname");
            }
            b"EHLO" => {
                self.reset();
                self.greeted = true;
                self.reply(
                    250,
                    &format!(
                        "{HOSTNAME}\n{}SIZE {MAX_MESSAGE_SIZE}\n8BITMIME\nSMTPUTF8",
                        if self.shared.pipelining {
                            "PIPELINING\n"
                        } else {
                            ""
                        }
                    ),
                );
            }
            b"HELO" => {
                self.reset();
                self.greeted = true;
                self.reply(250, HOSTNAME);
            }
            b"MAIL" => self.mail(arg),
            b"RCPT" => self.rcpt(arg),
            b"DATA" => {
                if self.mail_from.is_none() {
                    self.reply(503, "5.5.1 Error: need MAIL command");
                } else if self.rcpt_to.is_empty() {
                    self.reply(503, "5.5.1 Error: need RCPT command");
                } else {
                    self.reply(354, "End data with <CR><LF>.<CR><LF>");
                    return Next::Data;
                }
            }
            b"RSET" => {
                self.reset();
                self.reply(250, "2.0.0 Ok");
            }
            b"NOOP" => self.reply(250, "2.0.0 Ok"),
            b"VRFY" => self.reply(
                252,
                "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            b"QUIT" => {
                self.reply(221, "2.0.0 Bye");
                return Next::Quit;
            }
            _ => self.reply(502, "5.5.2 Error: command not recognized"),
        }
        Next::Continue
    }

    fn mail(&mut self, arg: &[u8]) {
        if !self.greeted {
            return self.reply(503, "5.5.1 Error: send HELO/EHLO first");
        }
        if self.mail_from.is_some() {
            return self.reply(503, "5.5.1 Error: nested MAIL command");
        }
        let Some((from, params)) = strip_prefix_ci(arg, b"FROM:").and_then(parse_path) else {
            return self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>");
        };
        // Parameters (BODY=8BITMIME, SMTPUTF8, ...) are kept with the message; only SIZE
        // changes the answer.
        let declared_size = params
            .split(|&b| b == b' ')
            .find_map(|p| strip_prefix_ci(p, b"SIZE="))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
        if declared_size.is_some_and(|n| n > MAX_MESSAGE_SIZE) {
            return self.reply(552, "5.3.4 Message size exceeds fixed limit");
        }
        self.mail_parameters = params
            .split(|&b| b == b' ')
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        self.mail_from = Some(from);
        self.reply(250, "2.1.0 Ok");
    }

    fn rcpt(&mut self, arg: &[u8]) {
        if self.mail_from.is_none() {
            return self.reply(503, "5.5.1 Error: need MAIL command");
        }
        let Some((to, _params)) = strip_prefix_ci(arg, b"TO:").and_then(parse_path) else {
            return self.reply(501, "5.5.4 Syntax: RCPT TO:<address>");
        };
        if to.is_empty() {
            return self.reply(501, "5.1.3 Bad recipient address syntax");
        }
        let rejection = match &self.control.borrow().mode {
            SmtpMode::RejectRcpt { code, message } => Some((*code, message.clone())),
            _ => None,
        };
        match rejection {
            Some((code, message)) => self.reply(code, &message),
            None => {
                self.rcpt_to.push(to);
                self.reply(250, "2.1.5 Ok");
            }
        }
    }

    /// Answers the end of the DATA content according to the mode; returns
    /// `false` when the message stalls (no answer must ever be sent).
    async fn finish_data(&mut self, data: &mut Vec<u8>, too_big: bool) -> bool {
        let mode = self.control.borrow().mode.clone();
        if mode == SmtpMode::StallData {
            self.shared.record_stall();
            return false;
        }
        let delay = self.shared.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match mode {
            _ if too_big => self.reply(552, "5.3.4 Message size exceeds fixed limit"),
            SmtpMode::RejectData { code, message } => self.reply(code, &message),
            _ => {
                let from = self.mail_from.as_deref().unwrap_or_default();
                let id = self
                    .shared
                    .deliver(from, &self.mail_parameters, &self.rcpt_to, data);
                self.reply(250, &format!("2.0.0 Ok: queued as {id:010X}"));
            }
        }
        self.reset();
        true
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.mail_parameters.clear();
        self.rcpt_to.clear();
    }

    /// Queues a reply; a multi-line `text` becomes a multi-line reply.
    fn reply(&mut self, code: u16, text: &str) {
        let mut lines = text.lines().peekable();
        if lines.peek().is_none() {
            let _ = write!(self.out, "{code} \r\n");
        }
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let _ = write!(self.out, "{code}{sep}{line}\r\n");
        }
    }
}

/// Reads DATA content up to the `.` line into `data`, undoing dot-stuffing.
/// Returns `None` on end of stream, else whether the content exceeded the limit
/// (then `data` holds only a prefix).
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    data: &mut Vec<u8>,
) -> io::Result<Option<bool>> {
    data.clear();
    let mut too_big = false;
    loop {
        let start = data.len();
        if reader.read_until(b'\n', data).await? == 0 {
            return Ok(None);
        }
        let line = &data[start..];
        if line == b".\r\n" || line == b".\n" {
            data.truncate(start);
            return Ok(Some(too_big));
        }
        if line[0] == b'.' {
            data.remove(start);
        }
        if data.len() > MAX_MESSAGE_SIZE {
            too_big = true;
            data.truncate(start);
        }
    }
}

/// Discards input until the peer closes the connection.
async fn drain<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<()> {
    loop {
        let n = reader.fill_buf().await?.len();
        if n == 0 {
            return Ok(());
        }
        reader.consume(n);
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Parses `<address> params` (or a bare address); returns the address and
/// the rest of the line.
fn parse_path(s: &[u8]) -> Option<(String, &[u8])> {
    let s = trim_start(s);
    let (addr, rest) = if let Some(inner) = s.strip_prefix(b"<") {
        let end = inner.iter().position(|&b| b == b'>')?;
        (&inner[..end], &inner[end + 1..])
    } else {
        let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        (&s[..end], &s[end..])
    };
    Some((String::from_utf8_lossy(addr).into_owned(), trim_start(rest)))
}

impl ReceivedEmail {
    /// Parses the message with mail-parser.
    pub fn parse(&self) -> Option<mail_parser::Message<'_>> {
        MessageParser::default().parse(&self.data)
    }

    /// Whether `lower_addr` (already lowercase) is one of the recipients.
    fn is_to(&self, lower_addr: &str) -> bool {
        self.rcpt_to.iter().any(|r| r.to_lowercase() == lower_addr)
    }

    /// The first header called `name` (case-insensitive), decoded (RFC 2047
    /// words, address lists as `Name <addr>, ...`, folding undone).
    pub fn header(&self, name: &str) -> Option<String> {
        let message = self.parse()?;
        let header = message
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))?;
        Some(match header.value() {
            HeaderValue::Text(text) => text.to_string(),
            HeaderValue::TextList(list) => list.join(", "),
            HeaderValue::Address(address) => address
                .iter()
                .map(|a| match (a.name(), a.address()) {
                    (Some(name), Some(addr)) => format!("{name} <{addr}>"),
                    (None, Some(addr)) => addr.to_owned(),
                    (Some(name), None) => name.to_owned(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            HeaderValue::DateTime(date) => date.to_rfc822(),
            _ => {
                let raw = &self.data[header.offset_start() as usize..header.offset_end() as usize];
                String::from_utf8_lossy(raw)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        })
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        self.parse()?.subject().map(str::to_owned)
    }

    /// The address (only) of the first `From` mailbox.
    pub fn from(&self) -> Option<String> {
        let message = self.parse()?;
        let addr = message.from()?.first()?.address()?.to_owned();
        Some(addr)
    }

    /// The addresses (only) in the `To` header; see `rcpt_to` for the envelope.
    pub fn to(&self) -> Vec<String> {
        let Some(message) = self.parse() else {
            return Vec::new();
        };
        message
            .to()
            .map(|to| {
                to.iter()
                    .filter_map(|a| a.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first text/plain body part, transfer-decoded; empty if there is none.
    pub fn text_body(&self) -> String {
        self.parse()
            .and_then(|m| {
                m.text_bodies().find_map(|part| match &part.body {
                    PartType::Text(text) => Some(text.to_string()),
                    _ => None,
                })
            })
            .unwrap_or_default()
    }

    /// The first text/html body part, transfer-decoded.
    pub fn html_body(&self) -> Option<String> {
        self.parse()?
            .html_bodies()
            .find_map(|part| match &part.body {
                PartType::Html(html) => Some(html.to_string()),
                _ => None,
            })
    }

    /// Every http(s) URL in the text body, then every http(s) `href` in the
    /// HTML body (entities decoded), de-duplicated, in order of appearance.
    pub fn links(&self) -> Vec<String> {
        let mut links = Vec::new();
        text_urls(&self.text_body(), &mut links);
        if let Some(html) = self.html_body() {
            html_hrefs(&html, &mut links);
        }
        links
    }
}

fn push_unique(links: &mut Vec<String>, url: String) {
    if !links.contains(&url) {
        links.push(url);
    }
}

fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("http://") && s.len() > 7) || (lower.starts_with("https://") && s.len() > 8)
}

/// Finds bare http(s) URLs in plain text.
fn text_urls(text: &str, links: &mut Vec<String>) {
    // ASCII lowercasing keeps byte offsets.
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("http") {
        let start = from + pos;
        let candidate = &text[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`'))
            .unwrap_or(candidate.len());
        let url = trim_url_end(&candidate[..end]);
        if is_http_url(url) {
            push_unique(links, url.to_owned());
        }
        from = start + end.max(4);
    }
}

/// Drops sentence punctuation and unbalanced closing brackets after a URL.
fn trim_url_end(mut url: &str) -> &str {
    loop {
        let Some(last) = url.chars().last() else {
            return url;
        };
        let unbalanced =
            |open: char, close: char| url.matches(close).count() > url.matches(open).count();
        let strip = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' => true,
            ')' => unbalanced('(', ')'),
            ']' => unbalanced('[', ']'),
            _ => false,
        };
        if !strip {
            return url;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
}

/// Finds http(s) `href` attribute values in HTML.
fn html_hrefs(html: &str, links: &mut Vec<String>) {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("href") {
        let start = from + pos;
        from = start + 4;
        if start > 0 && !bytes[start - 1].is_ascii_whitespace() {
            continue;
        }
        let mut i = from;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value, end) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let Some(len) = html[i + 1..].find(q as char) else {
                    break;
                };
                (&html[i + 1..i + 1 + len], i + 2 + len)
            }
            Some(_) => {
                let len = html[i..]
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(html.len() - i);
                (&html[i..i + len], i + len)
            }
            None => break,
        };
        from = end;
        let url = decode_entities(value.trim());
        if is_http_url(&url) {
            push_unique(links, url);
        }
    }
}

/// Decodes the HTML character references that appear in attribute values.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let code = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        entity.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_text_urls() {
        let mut links = Vec::new();
        text_urls(
            "Go to https://a.test/x?y=1&z=2. Or (http://b.test/p_(q)), HTTPS://A.TEST/U; https://a.test/x?y=1&z=2",
            &mut links,
        );
        assert_eq!(
            links,
            [
                "https://a.test/x?y=1&z=2",
                "http://b.test/p_(q)",
                "HTTPS://A.TEST/U"
            ]
        );
    }

    #[test]
    fn finds_hrefs() {
        let mut links = Vec::new();
        html_hrefs(
            r#"<a href="https://a.test/?a=1&amp;b=2">x</a> <a class=x HREF='http://b.test'>y</a>
               <a href=https://c.test/z>z</a> <a href="mailto:x@y">m</a> <link data-href="https://no.test">"#,
            &mut links,
        );
        assert_eq!(
            links,
            [
                "https://a.test/?a=1&b=2",
                "http://b.test",
                "https://c.test/z"
            ]
        );
    }

    #[test]
    fn decodes_entities() {
        assert_eq!(
            decode_entities("a&amp;b&#38;c&#x26;d&bogus;e&"),
            "a&b&c&d&bogus;e&"
        );
    }

    #[test]
    fn parses_paths() {
        let (addr, rest) = parse_path(b"<a@b.test> BODY=8BITMIME SMTPUTF8").unwrap();
        assert_eq!(addr, "a@b.test");
        assert_eq!(rest, b"BODY=8BITMIME SMTPUTF8");
        assert_eq!(parse_path(b" <>").unwrap().0, "");
        assert_eq!(parse_path(b"bare@b.test").unwrap().0, "bare@b.test");
        assert!(parse_path(b"<unterminated").is_none());
    }

    #[tokio::test]
    async fn undoes_dot_stuffing() {
        let input: &[u8] = b"Subject: x\r\n\r\n..leading dot\r\nplain\nbare lf\r\n.\r\nNEXT";
        let mut reader = BufReader::new(input);
        let mut data = Vec::new();
        assert_eq!(
            read_data(&mut reader, &mut data).await.unwrap(),
            Some(false)
        );
        assert_eq!(
            data,
            b"Subject: x\r\n\r\n.leading dot\r\nplain\nbare lf\r\n"
        );
    }
}
