//! Posting events to the operator's webhook endpoints: the signature, the HTTP client, and the
//! guard that keeps the client off loopback and private networks.
//!
//! The guard runs twice: when an endpoint is created or its URL changed ([`check_target`]),
//! and at every send, inside the client's own name resolution ([`GuardedResolver`]), so the
//! address checked is the address connected to (a name that resolves somewhere public at
//! creation and to 127.0.0.1 later is refused then). URLs naming an address directly are
//! checked before the request, since the client does not resolve those.
//!
//! `Latchkey-Signature: t={unix time},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`: Stripe's
//! scheme, so [`crate::domain::webhook::sign`] makes it and receivers verify it the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use crate::domain::events::{TargetError, WebhookUrl, is_internal};

/// The header the signature travels in.
pub const SIGNATURE_HEADER: &str = "Latchkey-Signature";
/// How much of an endpoint's answer is kept with the try.
pub const EXCERPT_LEN: usize = 256;
/// At most this much of an answer is read.
const READ_LIMIT: usize = 16 * 1024;

/// The signature header's value for `body` signed at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    crate::domain::webhook::sign(body, secret, timestamp)
}

/// A new signing secret: `whsec_` and 43 characters of URL-safe base64 (256 random bits).
pub fn new_secret() -> String {
    format!("whsec_{}", crate::domain::OpaqueToken::generate().encode())
}

/// Checks a target as the client would reach it: an address named directly, or every
/// address the host resolves to, must not be internal (unless `allow_private`). A name that
/// does not resolve (yet) is accepted: the same check runs at every send.
pub async fn check_target(url: &WebhookUrl, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    if let Some(ip) = url.literal_ip() {
        return if is_internal(ip) {
            Err(TargetError::Private(ip))
        } else {
            Ok(())
        };
    }
    let (host, port) = url.host_and_port();
    let resolved = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    let Ok(Ok(addrs)) = resolved else {
        return Ok(());
    };
    for addr in addrs {
        if is_internal(addr.ip()) {
            return Err(TargetError::Private(addr.ip()));
        }
    }
    Ok(())
}

/// The system resolver, refusing a name with any internal address (see the module header).
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
                return Err(std::io::Error::other(
                    TargetError::Private(bad.ip()).to_string(),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// The client every event is posted with.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    allow_private: bool,
}

/// What an endpoint did with one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    pub status: Option<u16>,
    /// The connection error, timeout or refusal (no status then).
    pub error: Option<String>,
    /// The start of the answer's body.
    pub excerpt: String,
    pub duration: Duration,
}

impl WebhookClient {
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(https);
        Self {
            client,
            timeout,
            allow_private,
        }
    }

    /// Posts `body` with its signature; never fails: every problem is in the outcome.
    pub async fn post(&self, url: &str, body: String, signature: String) -> PostOutcome {
        let started = Instant::now();
        let failed = |error: String| PostOutcome {
            status: None,
            error: Some(error),
            excerpt: String::new(),
            duration: started.elapsed(),
        };
        let target = match WebhookUrl::parse(url) {
            Ok(t) => t,
            Err(e) => return failed(format!("refused: {e}")),
        };
        if !self.allow_private
            && let Some(ip) = target.literal_ip()
            && is_internal(ip)
        {
            return failed(format!("refused: {}", TargetError::Private(ip)));
        }
        let request = http::Request::post(target.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "Latchkey-Webhooks/1")
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(r) => r,
            Err(e) => return failed(format!("refused: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(describe)?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut read = Vec::new();
            while read.len() < READ_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read.extend_from_slice(data);
                        }
                    }
                    Some(Err(_)) | None => break,
                }
            }
            Ok::<_, String>((status, read))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => failed(format!("timed out after {:?}", self.timeout)),
            Ok(Err(e)) => failed(e),
            Ok(Ok((status, read))) => PostOutcome {
                status: Some(status),
                error: None,
                excerpt: excerpt(&read),
                duration: started.elapsed(),
            },
        }
    }
}

/// The error and what caused it, as one line (hyper's own message is only "client error").
fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "could not connect".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The first [`EXCERPT_LEN`] characters of an answer, as text.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(EXCERPT_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_documented_scheme() {
        let sig = signature("whsec_x", 1_700_000_000, b"{\"a\":1}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"whsec_x");
        let want = hex::encode(ring::hmac::sign(&key, b"1700000000.{\"a\":1}"));
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
    }

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let local = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        assert_eq!(
            check_target(&local, false).await,
            Err(TargetError::Private("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(check_target(&local, true).await, Ok(()));
        let named = WebhookUrl::parse("http://localhost:9/hook").unwrap();
        assert!(matches!(
            check_target(&named, false).await,
            Err(TargetError::Private(_))
        ));
        let metadata = WebhookUrl::parse("http://169.254.169.254/latest").unwrap();
        assert!(check_target(&metadata, false).await.is_err());
    }

    #[tokio::test]
    async fn the_client_refuses_a_name_that_resolves_to_loopback_at_send_time() {
        let client = WebhookClient::new(Duration::from_secs(2), false);
        let out = client
            .post("http://localhost:9/hook", "{}".into(), "t=1,v1=00".into())
            .await;
        assert_eq!(out.status, None);
        let error = out.error.unwrap();
        assert!(error.contains("internal address"), "{error}");
        let out = client
            .post("http://[::1]:9/hook", "{}".into(), "t=1,v1=00".into())
            .await;
        assert!(out.error.unwrap().starts_with("refused"));
    }
}
