//! The inbound SMTP listener for bounces: enough of RFC 5321 for MTAs to hand it their
//! delivery status notifications and complaint reports. It accepts mail only for VERP
//! addresses this installation issued (a forged or unknown one is refused at RCPT, before any
//! data is sent), reads the message within a size cap, and hands the parsed report to a
//! [`BounceSink`] once per accepted recipient; when the sink fails the sender is told to
//! retry (451).
//!
//! Every connection is bounded: a line length, a number of commands, an idle timeout and a
//! session deadline, and the number of connections open at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::report::{MAX_REPORT_BYTES, ParsedReport, ReportError, parse_report};
use super::verp::VerpCheck;

/// Where the listener hands what it received. Implementations record the report on the
/// delivery (and suppress the address). A report may arrive more than once: when one call
/// fails the sender retries the whole message, recipients already recorded included.
#[async_trait::async_trait]
pub trait BounceSink: Send + Sync + 'static {
    /// A message was received for `delivery_id`'s VERP address: the report read from it, or
    /// why it is not one (not a report, malformed). Messages refused for their size or shape
    /// never reach the sink. An `Err` makes the listener answer 451 so the sender retries.
    async fn report(
        &self,
        delivery_id: i64,
        parsed: Result<ParsedReport, ReportError>,
    ) -> Result<(), String>;
}

/// The listener's limits and name.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The largest message accepted (advertised as SIZE); bigger ones get 552.
    pub max_message_bytes: usize,
    /// Connections served at once; more are answered 421 and closed.
    pub max_connections: usize,
    /// Commands per connection (DATA's content not counted) before 421.
    pub max_commands: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// How long the listener waits for the client's next line.
    pub idle_timeout: Duration,
    /// How long one connection may last in all.
    pub session_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_string(),
            max_message_bytes: MAX_REPORT_BYTES,
            max_connections: 64,
            max_commands: 100,
            max_recipients: 20,
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(600),
        }
    }
}

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
const MAX_COMMAND_LINE: usize = 512;
/// A command line longer than this closes the connection rather than being skipped.
const MAX_DISCARDED_COMMAND: usize = 64 * 1024;
/// DATA beyond the size cap is read and thrown away up to this many times the cap (so the
/// client hears 552 in step), then the connection is closed.
const DATA_DISCARD_FACTOR: usize = 4;

/// A bound listening socket, ready to [`serve`](Self::serve).
pub struct BounceListener {
    listener: TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    verp: VerpCheck,
    sink: Arc<dyn BounceSink>,
    settings: ListenerSettings,
}

impl BounceListener {
    /// Binds `addr` (port 0 for any free port; see [`local_addr`](Self::local_addr)).
    pub async fn bind(
        addr: SocketAddr,
        verp: VerpCheck,
        sink: Arc<dyn BounceSink>,
        settings: ListenerSettings,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                verp,
                sink,
                settings,
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` turns true (or its sender is dropped): then it
    /// stops accepting, each connection finishes the command or message in hand and is
    /// closed with 421, and this returns once all are closed.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.shared.settings.max_connections));
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let permit = permits.clone().try_acquire_owned();
                        let shared = self.shared.clone();
                        let shutdown = shutdown.clone();
                        sessions.spawn(async move {
                            match permit {
                                Ok(_permit) => {
                                    let deadline = shared.settings.session_timeout;
                                    let session = Session::new(stream, shared, shutdown);
                                    let _ = tokio::time::timeout(deadline, session.run(peer)).await;
                                }
                                Err(_) => busy(stream).await,
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::warn!(error = %e, "bounce listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        while sessions.join_next().await.is_some() {}
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Answers a connection over the limit and closes it.
async fn busy(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.write_all(b"421 4.7.0 Too many connections, try again later\r\n"),
    )
    .await;
}

/// One line as read: its bytes with the line break, or too long (skipped to its end), or
/// the end of the connection.
enum Line {
    Text,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (cleared first), keeping at most `keep` bytes; a longer line is
/// read to its end and thrown away (`Line::TooLong`), and one longer than `hard` is an error.
/// Returns the line and the bytes it took from the connection.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    keep: usize,
    hard: usize,
) -> std::io::Result<(Line, usize)> {
    buf.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((Line::Eof, consumed));
        }
        let (n, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if buf.len() + n > keep {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&available[..n]);
            }
        }
        reader.consume(n);
        consumed += n;
        if done {
            return Ok((if too_long { Line::TooLong } else { Line::Text }, consumed));
        }
        if consumed > hard {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
    }
}

/// The envelope of the message in hand.
#[derive(Default)]
struct Transaction {
    mail_from: bool,
    deliveries: Vec<i64>,
}

/// What the session does after a command.
enum Next {
    Continue,
    Close,
}

struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    greeted: bool,
    transaction: Transaction,
    line: Vec<u8>,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
            shared,
            shutdown,
            greeted: false,
            transaction: Transaction::default(),
            line: Vec::new(),
        }
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await
    }

    #[tracing::instrument(name = "bounce_session", skip_all, fields(%peer))]
    async fn run(mut self, peer: SocketAddr) {
        if let Err(e) = self.converse().await {
            tracing::debug!(error = %e, "bounce session ended");
        }
        let _ = self.writer.shutdown().await;
    }

    async fn converse(&mut self) -> std::io::Result<()> {
        let greeting = format!(
            "220 {} ESMTP Latchkey bounce listener",
            self.shared.settings.hostname
        );
        self.reply(&greeting).await?;
        let idle = self.shared.settings.idle_timeout;
        let mut commands = 0usize;
        loop {
            if *self.shutdown.borrow() {
                return self.reply("421 4.3.2 Shutting down, try again later").await;
            }
            let read = tokio::select! {
                _ = stopped(&mut self.shutdown) => None,
                read = tokio::time::timeout(
                    idle,
                    read_line(&mut self.reader, &mut self.line, MAX_COMMAND_LINE, MAX_DISCARDED_COMMAND),
                ) => Some(read),
            };
            let Some(read) = read else {
                return self.reply("421 4.3.2 Shutting down, try again later").await;
            };
            let Ok(read) = read else {
                return self.reply("421 4.4.2 Idle too long, closing").await;
            };
            commands += 1;
            if commands > self.shared.settings.max_commands {
                return self.reply("421 4.7.0 Too many commands, closing").await;
            }
            match read?.0 {
                Line::Eof => return Ok(()),
                Line::TooLong => self.reply("500 5.5.2 Line too long").await?,
                Line::Text => {
                    let line = String::from_utf8_lossy(&self.line).trim().to_string();
                    if let Next::Close = self.command(&line).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                self.reply("501 5.5.4 Say who you are").await?;
            }
            "EHLO" => {
                self.greeted = true;
                self.transaction = Transaction::default();
                let s = &self.shared.settings;
                let text = format!(
                    "250-{}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES",
                    s.hostname, s.max_message_bytes
                );
                self.reply(&text).await?;
            }
            "HELO" => {
                self.greeted = true;
                self.transaction = Transaction::default();
                let text = format!("250 {}", self.shared.settings.hostname);
                self.reply(&text).await?;
            }
            "MAIL" => self.mail(arg).await?,
            "RCPT" => self.rcpt(arg).await?,
            "DATA" => return self.data(arg).await,
            "RSET" => {
                self.transaction = Transaction::default();
                self.reply("250 2.0.0 OK").await?;
            }
            "NOOP" => self.reply("250 2.0.0 OK").await?,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Next::Close);
            }
            "" => self.reply("500 5.5.2 Empty command").await?,
            _ => self.reply("502 5.5.1 Command not implemented").await?,
        }
        Ok(Next::Continue)
    }

    async fn mail(&mut self, arg: &str) -> std::io::Result<()> {
        if !self.greeted {
            return self.reply("503 5.5.1 Say EHLO first").await;
        }
        if self.transaction.mail_from {
            return self.reply("503 5.5.1 Sender already given").await;
        }
        let Some((_, params)) = strip_keyword(arg, "FROM:").and_then(path) else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        for param in params.split_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.shared.settings.max_message_bytes as u64 => {
                        return self
                            .reply("552 5.3.4 Message size exceeds fixed maximum message size")
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.reply("501 5.5.4 Bad SIZE").await,
                },
                "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
                _ => return self.reply("555 5.5.4 Unsupported parameter").await,
            }
        }
        // Any sender, the null one included: bounces come from <>.
        self.transaction.mail_from = true;
        self.reply("250 2.1.0 OK").await
    }

    async fn rcpt(&mut self, arg: &str) -> std::io::Result<()> {
        if !self.transaction.mail_from {
            return self.reply("503 5.5.1 Need MAIL first").await;
        }
        let Some((address, params)) = strip_keyword(arg, "TO:").and_then(path) else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>").await;
        };
        if !params.trim().is_empty() {
            return self.reply("555 5.5.4 Unsupported parameter").await;
        }
        if self.transaction.deliveries.len() >= self.shared.settings.max_recipients {
            return self.reply("452 4.5.3 Too many recipients").await;
        }
        match self.shared.verp.delivery_id(address) {
            Some(id) => {
                if !self.transaction.deliveries.contains(&id) {
                    self.transaction.deliveries.push(id);
                }
                self.reply("250 2.1.5 OK").await
            }
            None => self.reply("550 5.1.1 No such mailbox").await,
        }
    }

    async fn data(&mut self, arg: &str) -> std::io::Result<Next> {
        if !arg.is_empty() {
            self.reply("501 5.5.4 DATA takes no argument").await?;
            return Ok(Next::Continue);
        }
        if !self.transaction.mail_from {
            self.reply("503 5.5.1 Need MAIL first").await?;
            return Ok(Next::Continue);
        }
        if self.transaction.deliveries.is_empty() {
            self.reply("554 5.5.1 No valid recipients").await?;
            return Ok(Next::Continue);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let max = self.shared.settings.max_message_bytes;
        let idle = self.shared.settings.idle_timeout;
        let data = read_data(&mut self.reader, &mut self.line, max, idle).await?;
        let too_big = "552 5.3.4 Message size exceeds fixed maximum message size";
        let message = match data {
            Data::Message(message) => message,
            Data::TooBig => {
                self.transaction = Transaction::default();
                self.reply(too_big).await?;
                return Ok(Next::Continue);
            }
            Data::Flood => {
                self.reply(too_big).await?;
                return Ok(Next::Close);
            }
            Data::Idle => {
                self.reply("421 4.4.2 Idle too long, closing").await?;
                return Ok(Next::Close);
            }
        };
        let deliveries = std::mem::take(&mut self.transaction).deliveries;
        let parsed = tokio::task::spawn_blocking(move || parse_report(&message))
            .await
            .unwrap_or_else(|_| Err(ReportError::Malformed("the parser stopped".into())));
        if let Err(e) = &parsed
            && e.is_refusal()
        {
            tracing::info!(error = %e, "bounce listener: message refused");
            let text = format!("554 5.6.0 Refused: {e}");
            self.reply(&text).await?;
            return Ok(Next::Continue);
        }
        for id in deliveries {
            if let Err(e) = self.shared.sink.report(id, parsed.clone()).await {
                tracing::warn!(delivery = id, error = %e, "bounce listener: could not record the report");
                self.reply("451 4.3.0 Could not record the report, try again later")
                    .await?;
                return Ok(Next::Continue);
            }
        }
        self.reply("250 2.0.0 OK").await?;
        Ok(Next::Continue)
    }
}

/// What DATA brought.
#[derive(Debug, PartialEq, Eq)]
enum Data {
    /// The message, dot-unstuffed.
    Message(Vec<u8>),
    /// Over the cap: read to its end and dropped.
    TooBig,
    /// Over [`DATA_DISCARD_FACTOR`] times the cap and still going: the connection is closed.
    Flood,
    /// The client went quiet for `idle`.
    Idle,
}

/// Reads DATA up to the lone `.` line, undoing dot-stuffing (RFC 5321 §4.5.2), keeping at
/// most `max` bytes. An end of the connection before the `.` is an error.
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    idle: Duration,
) -> std::io::Result<Data> {
    let discard_limit = max.saturating_mul(DATA_DISCARD_FACTOR);
    let mut message = Vec::new();
    let mut over = false;
    let mut total = 0usize;
    loop {
        let read = tokio::time::timeout(idle, read_line(reader, buf, max + 3, discard_limit)).await;
        let Ok(read) = read else {
            return Ok(Data::Idle);
        };
        let (line, consumed) = match read {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Ok(Data::Flood),
            Err(e) => return Err(e),
        };
        total += consumed;
        match line {
            Line::Eof => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Line::TooLong => over = true,
            Line::Text => {
                let content = buf.strip_suffix(b"\n").unwrap_or(buf);
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                if content == b"." {
                    return Ok(if over {
                        Data::TooBig
                    } else {
                        Data::Message(message)
                    });
                }
                let line = buf.strip_prefix(b".").unwrap_or(buf);
                if !over {
                    if message.len() + line.len() > max {
                        over = true;
                        message = Vec::new();
                    } else {
                        message.extend_from_slice(line);
                    }
                }
            }
        }
        if total > discard_limit {
            return Ok(Data::Flood);
        }
    }
}

/// `FROM:<…>` → `<…>` (the keyword case-insensitive, a space after the colon tolerated).
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| arg[keyword.len()..].trim_start())
}

/// `<address> params` → (`address`, `params`); a source route (`<@a,@b:user@c>`) is dropped.
fn path(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let end = inner.find('>')?;
    let address = &inner[..end];
    let address = match address.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => address,
    };
    Some((address, &inner[end + 1..]))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::crypto::Keys;
    use crate::domain::Secret;
    use crate::mail::bounce::report::ReportKind;
    use crate::mail::bounce::verp::verp_address;

    const DOMAIN: &str = "bounces.harborview.example";

    /// Records what it is given; fails while `failing` is set.
    #[derive(Default)]
    struct Recorder {
        reports: Mutex<Vec<(i64, Result<ParsedReport, ReportError>)>>,
        failing: AtomicBool,
    }

    #[async_trait::async_trait]
    impl BounceSink for Recorder {
        async fn report(
            &self,
            delivery_id: i64,
            parsed: Result<ParsedReport, ReportError>,
        ) -> Result<(), String> {
            if self.failing.load(Ordering::SeqCst) {
                return Err("database unavailable".into());
            }
            self.reports.lock().unwrap().push((delivery_id, parsed));
            Ok(())
        }
    }

    impl Recorder {
        fn taken(&self) -> Vec<(i64, Result<ParsedReport, ReportError>)> {
            std::mem::take(&mut *self.reports.lock().unwrap())
        }
    }

    struct Running {
        addr: SocketAddr,
        keys: Keys,
        sink: Arc<Recorder>,
        shutdown: watch::Sender<bool>,
        served: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn start(settings: ListenerSettings) -> Self {
            let keys = Keys::from_secret(&Secret::new(
                "a-secret-of-at-least-thirty-two-chars!!".to_string(),
            ));
            let sink = Arc::new(Recorder::default());
            let listener = BounceListener::bind(
                "127.0.0.1:0".parse().unwrap(),
                VerpCheck::new(keys.clone(), [DOMAIN]),
                sink.clone(),
                settings,
            )
            .await
            .unwrap();
            let addr = listener.local_addr().unwrap();
            let (shutdown, rx) = watch::channel(false);
            let served = tokio::spawn(listener.serve(rx));
            Self {
                addr,
                keys,
                sink,
                shutdown,
                served,
            }
        }

        fn verp(&self, id: i64) -> String {
            verp_address(&self.keys, id, DOMAIN)
        }

        /// A client past the greeting and EHLO.
        async fn client(&self) -> Client {
            let mut c = Client::connect(self.addr).await;
            assert!(c.reply().await.starts_with("220 "));
            let ehlo = c.cmd("EHLO mail.customer-isp.example").await;
            assert!(ehlo.starts_with("250"), "{ehlo}");
            c
        }

        async fn stop(self) {
            self.shutdown.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(5), self.served)
                .await
                .expect("serve returns after shutdown")
                .unwrap();
        }
    }

    struct Client {
        reader: BufReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(addr: SocketAddr) -> Self {
            let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
            Self {
                reader: BufReader::new(read),
                writer,
            }
        }

        /// One reply, all its lines; empty when the server closed the connection.
        async fn reply(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                        .await
                        .expect("a reply in time");
                if read.unwrap_or(0) == 0 {
                    return all;
                }
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.writer.write_all(bytes).await.unwrap();
        }

        async fn cmd(&mut self, line: &str) -> String {
            self.send(format!("{line}\r\n").as_bytes()).await;
            self.reply().await
        }

        /// Sends a message after DATA's 354, CRLF line breaks, dot-stuffed.
        async fn message(&mut self, raw: &[u8]) -> String {
            let go = self.cmd("DATA").await;
            assert!(go.starts_with("354 "), "{go}");
            let mut data = String::new();
            for line in String::from_utf8_lossy(raw).lines() {
                if line.starts_with('.') {
                    data.push('.');
                }
                data.push_str(line);
                data.push_str("\r\n");
            }
            data.push_str(".\r\n");
            self.send(data.as_bytes()).await;
            self.reply().await
        }

        async fn closed(&mut self) -> bool {
            let mut rest = Vec::new();
            matches!(
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_to_end(&mut rest))
                    .await,
                Ok(Ok(_)) | Ok(Err(_))
            )
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/bounces/{name}.eml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn small() -> ListenerSettings {
        ListenerSettings {
            hostname: "bounces.harborview.example".into(),
            max_message_bytes: 64 * 1024,
            ..ListenerSettings::default()
        }
    }

    #[tokio::test]
    async fn a_dsn_for_a_valid_verp_address_is_reported_and_forged_ones_are_refused_at_rcpt() {
        let l = Running::start(small()).await;
        let mut c = Client::connect(l.addr).await;
        assert_eq!(
            c.reply().await,
            "220 bounces.harborview.example ESMTP Latchkey bounce listener\r\n"
        );
        let ehlo = c.cmd("EHLO mail.customer-isp.example").await;
        assert!(ehlo.contains("250-SIZE 65536\r\n"), "{ehlo}");
        assert!(ehlo.contains("8BITMIME"), "{ehlo}");
        assert!(c.cmd("MAIL FROM:<>").await.starts_with("250 "));

        let good = l.verp(42);
        let forged = format!("bounces+43-{}@{DOMAIN}", l.keys.verp_mac(42));
        let elsewhere = verp_address(&l.keys, 42, "evil.example");
        for refused in [&forged, &elsewhere, &format!("postmaster@{DOMAIN}")] {
            assert!(
                c.cmd(&format!("RCPT TO:<{refused}>"))
                    .await
                    .starts_with("550 5.1.1 "),
                "{refused}"
            );
        }
        assert!(c.cmd("DATA").await.starts_with("554 "), "no recipient yet");
        assert!(
            c.cmd(&format!("RCPT TO:<{}>", good.to_uppercase()))
                .await
                .starts_with("250 ")
        );
        assert!(
            c.message(&fixture("postfix_hard_bounce"))
                .await
                .starts_with("250 ")
        );
        let reports = l.sink.taken();
        assert_eq!(reports.len(), 1);
        let (id, parsed) = &reports[0];
        assert_eq!(*id, 42);
        let parsed = parsed.as_ref().unwrap();
        assert_eq!(parsed.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(parsed.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            parsed.recipient.as_deref(),
            Some("alex@customer-isp.example")
        );

        // A second message on the same connection, for two deliveries: one report each.
        assert!(
            c.cmd("MAIL FROM:<> BODY=8BITMIME")
                .await
                .starts_with("250 ")
        );
        for id in [7, 8, 7] {
            let rcpt = format!("RCPT TO:<{}>", l.verp(id));
            assert!(c.cmd(&rcpt).await.starts_with("250 "));
        }
        assert!(c.message(&fixture("arf_abuse")).await.starts_with("250 "));
        let reports = l.sink.taken();
        assert_eq!(
            reports.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [7, 8]
        );
        assert!(
            reports
                .iter()
                .all(|(_, r)| r.as_ref().unwrap().kind == ReportKind::Complaint)
        );

        // Not a report: accepted, and the sink hears it is not one.
        assert!(
            c.cmd("MAIL FROM:<alex@example.com>")
                .await
                .starts_with("250 ")
        );
        assert!(
            c.cmd(&format!("RCPT TO:<{}>", l.verp(42)))
                .await
                .starts_with("250 ")
        );
        assert!(c.message(&fixture("auto_reply")).await.starts_with("250 "));
        assert_eq!(l.sink.taken(), [(42, Err(ReportError::NotAReport))]);

        assert!(c.cmd("QUIT").await.starts_with("221 "));
        assert!(c.closed().await);
        l.stop().await;
    }

    #[tokio::test]
    async fn a_failing_sink_answers_451_so_the_sender_retries() {
        let l = Running::start(small()).await;
        let mut c = l.client().await;
        l.sink.failing.store(true, Ordering::SeqCst);
        c.cmd("MAIL FROM:<>").await;
        c.cmd(&format!("RCPT TO:<{}>", l.verp(5))).await;
        assert!(
            c.message(&fixture("gmail_bounce"))
                .await
                .starts_with("451 4.3.0 ")
        );
        l.sink.failing.store(false, Ordering::SeqCst);
        c.cmd("MAIL FROM:<>").await;
        c.cmd(&format!("RCPT TO:<{}>", l.verp(5))).await;
        assert!(
            c.message(&fixture("gmail_bounce"))
                .await
                .starts_with("250 ")
        );
        assert_eq!(l.sink.taken().len(), 1);
        l.stop().await;
    }

    #[tokio::test]
    async fn a_huge_message_gets_552_and_the_listener_stays_sane() {
        let l = Running::start(small()).await;
        let mut c = l.client().await;
        // Announced too big: refused at MAIL.
        assert!(
            c.cmd("MAIL FROM:<> SIZE=10000000")
                .await
                .starts_with("552 5.3.4 ")
        );
        assert!(c.cmd("MAIL FROM:<> SIZE=1000").await.starts_with("250 "));
        c.cmd(&format!("RCPT TO:<{}>", l.verp(9))).await;
        let mut huge = fixture("postfix_hard_bounce");
        while huge.len() <= 64 * 1024 {
            huge.extend_from_slice(b"padding padding padding padding padding padding\n");
        }
        assert!(c.message(&huge).await.starts_with("552 5.3.4 "));
        assert!(l.sink.taken().is_empty());
        // The connection is in step: a new transaction works.
        assert!(c.cmd("NOOP").await.starts_with("250 "));
        assert!(c.cmd("RCPT TO:<x@y>").await.starts_with("503 "), "reset");
        c.cmd("MAIL FROM:<>").await;
        c.cmd(&format!("RCPT TO:<{}>", l.verp(9))).await;
        assert!(c.message(&fixture("exim_dsn")).await.starts_with("250 "));

        // A flood far past the cap closes the connection; the listener answers the next one.
        c.cmd("MAIL FROM:<>").await;
        c.cmd(&format!("RCPT TO:<{}>", l.verp(9))).await;
        assert!(c.cmd("DATA").await.starts_with("354 "));
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(DATA_DISCARD_FACTOR + 2) {
            if c.writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        assert!(c.reply().await.starts_with("552 "));
        assert!(c.closed().await);
        let mut again = l.client().await;
        again.cmd("MAIL FROM:<>").await;
        again.cmd(&format!("RCPT TO:<{}>", l.verp(10))).await;
        assert!(
            again
                .message(&fixture("exim_dsn"))
                .await
                .starts_with("250 ")
        );
        assert_eq!(
            l.sink.taken().iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [9, 10]
        );
        l.stop().await;
    }

    #[tokio::test]
    async fn mime_bombs_are_refused_and_the_listener_stays_healthy() {
        let l = Running::start(ListenerSettings::default()).await;
        let deep = {
            let mut s = String::from("From: MAILER-DAEMON@mx.example\n");
            for i in 0..5000 {
                s.push_str(&format!(
                    "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
                ));
            }
            s
        };
        let wide = {
            let mut s = String::from(
                "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n",
            );
            for _ in 0..5000 {
                s.push_str("--b\n\nx\n");
            }
            s
        };
        for bomb in [deep, wide] {
            let mut c = l.client().await;
            c.cmd("MAIL FROM:<>").await;
            c.cmd(&format!("RCPT TO:<{}>", l.verp(11))).await;
            let answer = c.message(bomb.as_bytes()).await;
            assert!(answer.starts_with("554 5.6.0 "), "{answer}");
            assert!(c.cmd("NOOP").await.starts_with("250 "));
        }
        assert!(l.sink.taken().is_empty(), "nothing reported");
        let mut c = l.client().await;
        c.cmd("MAIL FROM:<>").await;
        c.cmd(&format!("RCPT TO:<{}>", l.verp(12))).await;
        assert!(
            c.message(&fixture("exchange_ndr"))
                .await
                .starts_with("250 ")
        );
        assert_eq!(l.sink.taken().len(), 1);
        l.stop().await;
    }

    #[tokio::test]
    async fn protocol_errors_and_limits() {
        let l = Running::start(ListenerSettings {
            max_commands: 13,
            max_recipients: 2,
            ..small()
        })
        .await;
        let mut c = Client::connect(l.addr).await;
        c.reply().await;
        assert!(
            c.cmd("MAIL FROM:<>").await.starts_with("503 "),
            "EHLO first"
        );
        assert!(c.cmd("EHLO").await.starts_with("501 "));
        assert!(c.cmd("HELO mx.example").await.starts_with("250 "));
        assert!(c.cmd("VRFY postmaster").await.starts_with("502 "));
        assert!(c.cmd("STARTTLS").await.starts_with("502 "));
        let long = format!("NOOP {}", "x".repeat(2000));
        assert!(c.cmd(&long).await.starts_with("500 5.5.2 "));
        assert!(c.cmd("MAIL FROM:<> XFORWARD=1").await.starts_with("555 "));
        assert!(c.cmd("MAIL FROM:<>").await.starts_with("250 "));
        for id in [1, 2] {
            c.cmd(&format!("RCPT TO:<{}>", l.verp(id))).await;
        }
        assert!(
            c.cmd(&format!("RCPT TO:<{}>", l.verp(3)))
                .await
                .starts_with("452 ")
        );
        assert!(c.cmd("RSET").await.starts_with("250 "));
        // Command 13 is answered, the 14th closes the connection.
        assert!(c.cmd("NOOP").await.starts_with("250 "));
        assert!(c.cmd("NOOP").await.starts_with("421 4.7.0 "));
        assert!(c.closed().await);
        l.stop().await;
    }

    #[tokio::test]
    async fn idle_clients_are_dropped_and_connections_are_capped() {
        let l = Running::start(ListenerSettings {
            idle_timeout: Duration::from_millis(300),
            max_connections: 1,
            ..small()
        })
        .await;
        let mut first = l.client().await;
        let mut second = Client::connect(l.addr).await;
        assert!(second.reply().await.starts_with("421 4.7.0 "));
        assert!(second.closed().await);
        // The first one goes quiet.
        assert!(first.reply().await.starts_with("421 4.4.2 "));
        assert!(first.closed().await);
        // Its slot is free again.
        let mut third = l.client().await;
        assert!(third.cmd("NOOP").await.starts_with("250 "));
        l.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_with_421() {
        let l = Running::start(small()).await;
        let mut c = l.client().await;
        l.shutdown.send(true).unwrap();
        assert!(c.reply().await.starts_with("421 4.3.2 "));
        assert!(c.closed().await);
        tokio::time::timeout(Duration::from_secs(5), l.served)
            .await
            .unwrap()
            .unwrap();
        assert!(
            TcpStream::connect(l.addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn data_is_dot_unstuffed_and_capped() {
        let read = |input: &'static [u8], max: usize| async move {
            let mut reader = BufReader::new(input);
            let mut buf = Vec::new();
            read_data(&mut reader, &mut buf, max, Duration::from_secs(5)).await
        };
        assert_eq!(
            read(b"a\r\n..b\r\n.\r\nNOOP\r\n", 100).await.unwrap(),
            Data::Message(b"a\r\n.b\r\n".to_vec())
        );
        assert_eq!(
            read(b"a\n...\n.\n", 100).await.unwrap(),
            Data::Message(b"a\n..\n".to_vec())
        );
        assert_eq!(read(b"0123456789\r\n.\r\n", 8).await.unwrap(), Data::TooBig);
        assert_eq!(
            read(b"0123\r\n4567\r\n.\r\n", 8).await.unwrap(),
            Data::TooBig
        );
        assert!(read(b"no end\r\n", 100).await.is_err());
    }
}
