//! The HTTP servers: the public listener (with `TCP_NODELAY`, a cap on open connections, a
//! body read timeout, request ids) maps a storefront's custom host onto its `/s/{slug}` routes,
//! adds security headers and counts requests; the operations listener serves `/metrics` and
//! `/readyz`. Both shut down gracefully: on the signal they stop accepting and answer every
//! request already received, for up to the grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;
use tracing::Instrument;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::HttpState;
use super::frame::{ClientSocket, MountedAtRoot};
use super::ops::OpsState;
use crate::metrics::{RequestLabels, RouteLabel};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a listener allows, and how long it waits for open requests at shutdown.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub grace: Duration,
    /// Open connections, for the metrics (the public listener's only).
    pub open: Option<Gauge>,
}

/// Serves the public routes until `shutdown` turns true, then answers the open requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    routes: BoxedFilter<(Response,)>,
    shutdown: watch::Receiver<bool>,
) {
    let config = &state.svc.config;
    let limits = Limits {
        max_connections: config.max_connections,
        grace: config.shutdown_grace(),
        open: Some(state.svc.metrics.http_open_connections.clone()),
    };
    let body_timeout = Duration::from_secs(config.body_read_timeout_seconds);
    let public_host = config
        .public_url()
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let public_host: Arc<str> = Arc::from(public_host);
    accept_loop(listener, limits, shutdown, move |peer| {
        let state = state.clone();
        let routes = routes.clone();
        let public_host = public_host.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let state = state.clone();
            let mut warp_service = warp::service(routes.clone());
            let public_host = public_host.clone();
            let route = route_label(req.uri().path());
            let method = method_label(req.method());
            let id = request_id(&req, peer, &state.svc.config.trusted_proxies);
            // At ERROR level so the span exists whenever any line is logged (an INFO span would
            // be filtered out with `log_level = "warn"`, and its lines would lose the id).
            let span = tracing::error_span!("request", request_id = %id.to_str().unwrap_or_default(), method, route);
            async move {
                let started = Instant::now();
                let m = &state.svc.metrics;
                m.http_requests_in_flight.inc();
                req.extensions_mut().insert(ClientSocket(peer));
                req.headers_mut().insert(X_REQUEST_ID, id.clone());
                mount_custom_host(&state, &public_host, &mut req).await;
                let timed_out = Arc::new(AtomicBool::new(false));
                let req = req.map(|body| TimedBody::new(body, body_timeout, timed_out.clone()));
                let mut resp: Response = match warp_service.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                if timed_out.load(Ordering::Relaxed) {
                    tracing::info!("request body too slow: cut off");
                    resp = super::frame::plain_error(
                        StatusCode::REQUEST_TIMEOUT,
                        "The request took too long to arrive.",
                    );
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                secure_headers(&mut resp, state.svc.config.secure_cookies());
                resp.headers_mut().insert(X_REQUEST_ID, id);
                m.requests
                    .get_or_create(&RequestLabels {
                        route,
                        method,
                        status: resp.status().as_u16(),
                    })
                    .inc();
                m.request_seconds
                    .get_or_create(&RouteLabel { route })
                    .observe(started.elapsed().as_secs_f64());
                m.http_requests_in_flight.dec();
                Ok::<_, Infallible>(resp)
            }
            .instrument(span)
        })
    })
    .await;
}

/// Serves the operations routes (`/metrics`, `/readyz`, `/healthz`) until `shutdown`.
pub async fn serve_ops(
    listener: TcpListener,
    state: Arc<OpsState>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = Limits {
        max_connections: 64,
        grace: state.svc.config.shutdown_grace(),
        open: None,
    };
    let routes = super::ops::routes(state.clone());
    accept_loop(listener, limits, shutdown, move |peer| {
        let state = state.clone();
        let routes = routes.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut warp_service = warp::service(routes.clone());
            let id = request_id(&req, peer, &state.svc.config.trusted_proxies);
            let span =
                tracing::error_span!("ops_request", request_id = %id.to_str().unwrap_or_default());
            async move {
                let mut resp: Response = match warp_service.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                resp.headers_mut().insert(X_REQUEST_ID, id);
                Ok::<_, Infallible>(resp)
            }
            .instrument(span)
        })
    })
    .await;
}

/// Accepts connections while fewer than `max_connections` are open (the others wait in the
/// kernel's backlog), serves each with `make_service(peer)`, and on shutdown stops accepting,
/// lets every connection finish the request it has received, and closes idle ones; after the
/// grace period whatever is left is dropped.
async fn accept_loop<F, S>(
    listener: TcpListener,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    make_service: F,
) where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(20))
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), make_service(peer));
        let conn = graceful.watch(conn);
        let open = limits.open.clone();
        if let Some(g) = &open {
            g.inc();
        }
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            if let Some(g) = &open {
                g.dec();
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?limits.grace,
            "open requests did not finish within the grace period"
        );
    }
}

/// The request's id: the incoming `X-Request-Id` when a trusted proxy sent a sane one,
/// otherwise a new random one.
fn request_id<B>(req: &Request<B>, peer: SocketAddr, trusted: &[IpAddr]) -> HeaderValue {
    if trusted.contains(&peer.ip())
        && let Some(v) = req.headers().get(X_REQUEST_ID)
        && is_sane_request_id(v.as_bytes())
    {
        return v.clone();
    }
    let id = format!("{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).expect("hex is a valid header value")
}

/// 1 to 128 characters of letters, digits and `-_.:=+/` (UUIDs, hex, base64, trace ids).
fn is_sane_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:=+/".contains(c))
}

/// A request body that must arrive within a deadline (from the end of the headers). Past it
/// the read fails and `timed_out` is set, so the server answers 408 and closes the connection.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration, timed_out: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// When the Host is a storefront's custom host, that storefront's portal is all it serves, at
/// `/`: every request (but `/static/` and the health checks) is routed as `/s/{slug}{path}`
/// and its links are built without the prefix. So `/s/{other}/…` there is the path
/// `/s/{other}/…` of this portal, which does not exist (404), and so are `/console` and
/// `/api` (staff and integrations use the public host). `/s/{own-slug}/…` on its own host is
/// the same page as `/…`, so a link written with the prefix keeps working.
async fn mount_custom_host(state: &HttpState, public_host: &str, req: &mut Request<Incoming>) {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(h)
                .to_ascii_lowercase()
        })
    else {
        return;
    };
    if host == public_host
        || host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[')
    {
        return;
    }
    let path = req.uri().path();
    if path.starts_with("/static/") || path == "/healthz" {
        return;
    }
    let sf = match state.svc.storefronts.by_host(&host).await {
        Ok(Some(sf)) => sf,
        Ok(None) => return,
        Err(e) => {
            // Never let a custom host's request fall through to another storefront's routes.
            tracing::warn!(error = %e, "custom host lookup failed");
            *req.uri_mut() = http::Uri::from_static(NOWHERE);
            return;
        }
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let own_prefix = format!("/s/{}", sf.slug);
    let path_and_query = match path_and_query.strip_prefix(&own_prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with(['/', '?']) => rest,
        _ => path_and_query,
    };
    let rewritten = format!("{own_prefix}{path_and_query}");
    *req.uri_mut() = rewritten.parse().unwrap_or(http::Uri::from_static(NOWHERE));
    req.extensions_mut().insert(MountedAtRoot);
}

/// A path no route serves (404).
const NOWHERE: &str = "/.nowhere";

/// `https`: the portal is served over https (its public URL says so), so browsers are told to
/// come back only over https for a year (HSTS; not for subdomains, which may be other sites).
fn secure_headers(resp: &mut Response, https: bool) {
    let h = resp.headers_mut();
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Sign-in links carry a token in the path: never leak it in a Referer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ),
        );
    }
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// A bounded set of route names for the metrics (never the raw path: tokens live there).
pub fn route_label(path: &str) -> &'static str {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next() {
        None | Some("") => "index",
        Some("healthz") => "healthz",
        Some("readyz") => "readyz",
        Some("metrics") => "metrics",
        Some("static") => "static",
        Some("api") => "api",
        Some("console") => "console",
        Some("webhooks") => "webhooks",
        Some("s") => {
            let _slug = parts.next();
            match parts.next() {
                None | Some("") => "portal_home",
                Some("sign-in") => "sign_in",
                Some("auth") => "auth",
                Some("dashboard") => "dashboard",
                Some("sign-out") => "sign_out",
                Some("rentals") => "rentals",
                Some("billing") => "billing",
                Some("account") => "account",
                Some(_) => "portal_other",
            }
        }
        Some(_) => "other",
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
