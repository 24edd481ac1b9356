//! SMTP delivery: a pool of lettre connections over sockets with `TCP_NODELAY` set, sending
//! with command pipelining where the server offers it.
//!
//! lettre 0.11.23 never sets `TCP_NODELAY`, so against a Linux server every message waits
//! ~40 ms for a delayed ACK. We connect the socket ourselves (nodelay on) and hand it to
//! lettre's `AsyncSmtpConnection::connect_with_transport`; STARTTLS upgrades that same socket,
//! and implicit TLS (SMTPS) wraps it in tokio-rustls first.
//!
//! lettre's `send` also waits for each reply before the next command: MAIL, RCPT, DATA and
//! the content are four round trips per email. When the server's EHLO reply lists
//! `PIPELINING` (RFC 2920), [`send_pipelined`] writes MAIL, RCPT and DATA together and reads
//! their three replies, then sends the content: two round trips. lettre does not keep that
//! keyword, so the pool asks with an EHLO of its own once per connection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::transport::{SendFailure, SentReply, Transport};
use crate::config::{SmtpSettings, SmtpTls};

/// Connections idle longer than this are closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(30);

pub struct SmtpPool {
    settings: SmtpSettings,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<(Connection, Instant)>>,
    permits: Semaphore,
}

/// A pooled connection, and whether its server takes pipelined commands.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

impl SmtpPool {
    pub fn new(
        settings: SmtpSettings,
        hello_name: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Self {
        Self {
            settings,
            hello: ClientId::Domain(hello_name.to_string()),
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections as usize),
        }
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !conn.smtp.has_broken() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: Connection) {
        if !conn.smtp.has_broken() {
            self.idle
                .lock()
                .expect("pool lock")
                .push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Connection, SendFailure> {
        let s = &self.settings;
        let io_failure = |e: std::io::Error| {
            SendFailure::temporary(format!("could not connect to {}:{}: {e}", s.host, s.port))
        };
        let tcp = TcpStream::connect((s.host.as_str(), s.port))
            .await
            .map_err(io_failure)?;
        tcp.set_nodelay(true).map_err(io_failure)?;
        let mut conn = match s.tls {
            SmtpTls::None | SmtpTls::StartTls => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await
            }
            SmtpTls::Implicit => {
                let tls = implicit_tls(tcp, &s.host).await.map_err(io_failure)?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tls), &self.hello).await
            }
        }
        .map_err(|e| failure(&e))?;
        if s.tls == SmtpTls::StartTls {
            let params = TlsParameters::new_rustls(s.host.clone()).map_err(|e| failure(&e))?;
            conn.starttls(params, &self.hello)
                .await
                .map_err(|e| failure(&e))?;
        }
        // lettre read the EHLO reply but keeps only the extensions it uses itself.
        let ehlo = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| failure(&e))?;
        let pipelining = offers(&ehlo, "PIPELINING");
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), password.expose().clone()),
            )
            .await
            .map_err(|e| failure(&e))?;
        }
        Ok(Connection {
            smtp: conn,
            pipelining,
        })
    }

    async fn try_send(
        &self,
        conn: &mut Connection,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<Response, lettre::transport::smtp::Error> {
        match pipelined_parameters(&conn.smtp, envelope, raw) {
            Some(parameters) if conn.pipelining => {
                send_pipelined(&mut conn.smtp, envelope, parameters, raw).await
            }
            // lettre's one command at a time, and its errors for what the server cannot take.
            _ => conn.smtp.send(envelope, raw).await,
        }
    }
}

/// Whether an EHLO reply lists `keyword` (its lines after the first are the extensions).
fn offers(ehlo: &Response, keyword: &str) -> bool {
    ehlo.message().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
    })
}

/// The MAIL parameters lettre's `send` would use, or `None` where it would refuse the
/// message (non-ASCII addresses or content the server did not say it takes).
fn pipelined_parameters(
    smtp: &AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Option<Vec<MailParameter>> {
    let info = smtp.server_info();
    let mut parameters = Vec::new();
    let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
    let ascii_addresses = envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii);
    if !ascii_addresses {
        info.supports_feature(Extension::SmtpUtfEight)
            .then_some(())?;
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        info.supports_feature(Extension::EightBitMime)
            .then_some(())?;
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Some(parameters)
}

/// MAIL, RCPT and DATA in one write, their replies read in order, then the content.
///
/// The first refusal is the answer (a refused MAIL makes the server refuse the RCPT and DATA
/// behind it too). After any error the connection is closed, as lettre's `send` does, so no
/// reply still in flight can be read as the next email's.
async fn send_pipelined(
    smtp: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    parameters: Vec<MailParameter>,
    raw: &[u8],
) -> Result<Response, lettre::transport::smtp::Error> {
    let mut commands = Mail::new(envelope.from().cloned(), parameters).to_string();
    for to in envelope.to() {
        commands.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
    }
    commands.push_str(&Data.to_string());
    let result = async {
        smtp.command(commands).await?; // MAIL's reply
        for _ in envelope.to() {
            smtp.read_response().await?;
        }
        smtp.read_response().await?; // 354 to DATA
        smtp.message(raw).await
    }
    .await;
    if result.is_err() {
        smtp.abort().await;
    }
    result
}

fn failure(e: &lettre::transport::smtp::Error) -> SendFailure {
    let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
    SendFailure {
        permanent: e.is_permanent(),
        code,
        detail: e.to_string(),
    }
}

#[async_trait]
impl Transport for SmtpPool {
    async fn send(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        _delivery_id: i64,
    ) -> Result<SentReply, SendFailure> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SendFailure::temporary("SMTP pool closed"))?;
        let work = async {
            // A pooled connection may have been closed by the server while idle: if it fails
            // before any reply, try once more on a fresh connection.
            if let Some(mut conn) = self.take_idle() {
                match self.try_send(&mut conn, envelope, raw).await {
                    Ok(resp) => {
                        self.put_idle(conn);
                        return Ok(resp);
                    }
                    Err(e) if e.is_response() => {
                        self.put_idle(conn);
                        return Err(failure(&e));
                    }
                    Err(_) => {}
                }
            }
            let mut conn = self.connect().await?;
            let result = self.try_send(&mut conn, envelope, raw).await;
            self.put_idle(conn);
            result.map_err(|e| failure(&e))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(resp)) => Ok(SentReply {
                code: resp.code().to_string().parse().ok(),
                detail: format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                ),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendFailure::temporary(format!(
                "timed out after {:?} talking to {}:{}",
                self.timeout, self.settings.host, self.settings.port
            ))),
        }
    }
}

async fn implicit_tls(tcp: TcpStream, host: &str) -> std::io::Result<TlsStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let peer = tcp.peer_addr()?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(TlsStream {
        inner: stream,
        peer,
    })
}

/// A TLS stream lettre can drive (it wants `Debug` and the peer address).
struct TlsStream {
    inner: tokio_rustls::client::TlsStream<TcpStream>,
    peer: SocketAddr,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsStream({})", self.peer)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
