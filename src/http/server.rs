//! The HTTP server: accepts connections (with `TCP_NODELAY`), maps a storefront's custom host
//! onto its `/s/{slug}` routes, adds security headers, counts requests, and shuts down
//! gracefully.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::HttpState;
use super::context::{ClientSocket, MountedAtRoot};
use crate::metrics::{RequestLabels, RouteLabel};

/// Serves until `shutdown` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    routes: BoxedFilter<(Response,)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let public_host = state
        .svc
        .config
        .public_url()
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let public_host: Arc<str> = Arc::from(public_host);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let routes = routes.clone();
        let public_host = public_host.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let state = state.clone();
            let mut warp_service = warp::service(routes.clone());
            let public_host = public_host.clone();
            async move {
                let started = Instant::now();
                req.extensions_mut().insert(ClientSocket(peer));
                let route = route_label(req.uri().path());
                let method = method_label(req.method());
                mount_custom_host(&state, &public_host, &mut req).await;
                let mut resp: Response = match warp_service.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                secure_headers(&mut resp);
                let m = &state.svc.metrics;
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
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(20))
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("open connections did not finish within 10 s");
        }
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
    if path.starts_with("/static/") || matches!(path, "/healthz" | "/readyz" | "/metrics") {
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

fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
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
