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
                secure_headers(&mut resp, state.svc.config.secure_cookies());
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

/// When the Host is a storefront's custom host, its pages are served at `/`: the request is
/// routed as `/s/{slug}{path}` and its links are built without the prefix.
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
    if path.starts_with("/static/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/s/")
    {
        return;
    }
    let Ok(Some(sf)) = state.svc.storefronts.by_host(&host).await else {
        return;
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let rewritten = format!("/s/{}{}", sf.slug, path_and_query);
    if let Ok(uri) = rewritten.parse() {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(MountedAtRoot);
    }
}

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
