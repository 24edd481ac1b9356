//! Per-request context: the client, its cookies, and for portal pages the storefront, the
//! base path of its links, and the CSRF token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::Filter;

use super::HttpState;
use crate::actors::CheckSession;
use crate::domain::OpaqueToken;
use crate::error::AppError;
use crate::store::{SessionInfo, Storefront};

/// The TCP peer, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket(pub SocketAddr);

/// Set when the request came in on a storefront's custom host (links start at `/`).
#[derive(Debug, Clone, Copy)]
pub struct MountedAtRoot;

pub const SESSION_COOKIE: &str = "lk_session";
pub const CSRF_COOKIE: &str = "lk_csrf";
/// The signed cookie of a browser that signed in to the storefront before (SPEC §8).
pub const DEVICE_COOKIE: &str = "lk_device";

#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub peer: Option<IpAddr>,
    pub forwarded_for: Option<String>,
    pub cookies: Vec<(String, String)>,
    pub at_root: bool,
}

impl RequestInfo {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The client's IP: the socket peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, trusted: &[IpAddr]) -> Option<IpAddr> {
        let peer = self.peer?;
        if !trusted.contains(&peer) {
            return Some(peer);
        }
        let Some(xff) = &self.forwarded_for else {
            return Some(peer);
        };
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted.contains(&ip) => continue,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(peer),
            }
        }
        Some(peer)
    }
}

fn parse_cookies(header: Option<String>) -> Vec<(String, String)> {
    header
        .map(|h| {
            h.split(';')
                .filter_map(|part| {
                    let (n, v) = part.split_once('=')?;
                    Some((n.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn request_info()
-> impl Filter<Extract = (RequestInfo,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<ClientSocket>()
        .and(warp::ext::optional::<MountedAtRoot>())
        .and(
            warp::header::optional::<String>("cookie")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(
            warp::header::optional::<String>("x-forwarded-for")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .map(
            |sock: Option<ClientSocket>,
             root: Option<MountedAtRoot>,
             cookie: Option<String>,
             xff: Option<String>| RequestInfo {
                peer: sock.map(|s| s.0.ip()),
                forwarded_for: xff,
                cookies: parse_cookies(cookie),
                at_root: root.is_some(),
            },
        )
}

/// The double-submit CSRF defence: a random cookie (path `/`, HttpOnly) and, in every form, a
/// `csrf_token` that is the server key's HMAC of it.
#[derive(Debug, Default)]
pub struct Csrf {
    cookie: Option<String>,
    fresh: bool,
}

impl Csrf {
    pub fn from_request(info: &RequestInfo) -> Self {
        Self {
            cookie: info
                .cookie(CSRF_COOKIE)
                .filter(|v| OpaqueToken::parse(v).is_ok())
                .map(str::to_string),
            fresh: false,
        }
    }

    /// The token for this page's forms; creates the cookie when there is none.
    pub fn token(&mut self, keys: &crate::crypto::Keys) -> String {
        if self.cookie.is_none() {
            self.cookie = Some(OpaqueToken::generate().encode());
            self.fresh = true;
        }
        keys.csrf_token(self.cookie.as_deref().expect("just set"))
    }

    /// Whether a submitted form's token matches the browser's cookie.
    pub fn ok(info: &RequestInfo, keys: &crate::crypto::Keys, submitted: Option<&str>) -> bool {
        match (info.cookie(CSRF_COOKIE), submitted) {
            (Some(cookie), Some(token)) => keys.csrf_valid(cookie, token),
            _ => false,
        }
    }

    /// Adds the cookie to the response when this request created it.
    pub fn finish(&self, mut resp: warp::reply::Response, secure: bool) -> warp::reply::Response {
        if self.fresh
            && let Some(cookie) = &self.cookie
        {
            let value = format!(
                "{CSRF_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Lax{}",
                if secure { "; Secure" } else { "" }
            );
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                resp.headers_mut().append(http::header::SET_COOKIE, v);
            }
        }
        resp
    }
}

/// A request to one storefront's portal.
pub struct Portal {
    pub state: Arc<HttpState>,
    pub storefront: Arc<Storefront>,
    pub info: RequestInfo,
    /// Prefix of the portal's links: `/s/{slug}`, or empty on a custom host.
    pub base: String,
    csrf: Csrf,
}

impl Portal {
    pub fn new(state: Arc<HttpState>, storefront: Arc<Storefront>, info: RequestInfo) -> Self {
        let base = if info.at_root {
            String::new()
        } else {
            format!("/s/{}", storefront.slug)
        };
        let csrf = Csrf::from_request(&info);
        Self {
            state,
            storefront,
            info,
            base,
            csrf,
        }
    }

    pub fn client_ip(&self) -> Option<IpAddr> {
        self.info.client_ip(&self.state.svc.config.trusted_proxies)
    }

    /// The CSRF token for this page's forms; creates the CSRF cookie when there is none.
    pub fn csrf_token(&mut self) -> String {
        self.csrf.token(&self.state.svc.keys)
    }

    /// Whether a submitted form's `csrf_token` matches this browser's CSRF cookie.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        Csrf::ok(&self.info, &self.state.svc.keys, submitted)
    }

    /// Path the session cookie is scoped to.
    pub fn cookie_path(&self) -> String {
        format!("{}/", self.base)
    }

    fn secure(&self) -> &'static str {
        if self.state.svc.config.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    }

    pub fn session_cookie(&self, value: &str, max_age_seconds: i64) -> String {
        format!(
            "{SESSION_COOKIE}={value}; Path={}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{}",
            self.cookie_path(),
            self.secure()
        )
    }

    pub fn clear_session_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
            self.cookie_path(),
            self.secure()
        )
    }

    fn device_scope(&self) -> crate::crypto::DeviceScope {
        crate::crypto::DeviceScope::Portal {
            storefront_id: self.storefront.id,
        }
    }

    /// The device cookie this browser carries for this storefront (checked against the account
    /// when the account is known).
    pub fn device_claim(&self) -> Option<crate::crypto::DeviceClaim> {
        let cookie = self.info.cookie(DEVICE_COOKIE)?;
        self.state
            .svc
            .keys
            .device_claim(self.device_scope(), cookie)
    }

    /// The `Set-Cookie` value of a new device cookie for a browser that just signed in.
    pub fn device_cookie(&self, account_id: i64) -> String {
        let svc = &self.state.svc;
        let value = svc.keys.device_cookie(crate::crypto::DeviceSubject {
            scope: self.device_scope(),
            id: account_id,
        });
        format!(
            "{DEVICE_COOKIE}={value}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.cookie_path(),
            svc.config.sign_in.device_cookie_days as i64 * 86_400,
            self.secure()
        )
    }

    /// The signed-in customer, if the session cookie is valid on this storefront.
    pub async fn session(&self) -> Result<Option<SessionInfo>, AppError> {
        let Some(cookie) = self.info.cookie(SESSION_COOKIE) else {
            return Ok(None);
        };
        crate::actors::send(
            &self.state.actors.session_keeper,
            CheckSession {
                storefront_id: self.storefront.id,
                cookie: cookie.to_string(),
            },
        )
        .await?
    }

    /// Adds the cookies this request created to its response.
    pub fn finish(&self, resp: warp::reply::Response) -> warp::reply::Response {
        self.csrf
            .finish(resp, self.state.svc.config.secure_cookies())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let info = RequestInfo {
            peer: Some(proxy),
            forwarded_for: Some("203.0.113.9, 198.51.100.7, 10.0.0.1".into()),
            ..Default::default()
        };
        assert_eq!(
            info.client_ip(&[proxy]),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(info.client_ip(&[]), Some(proxy));
        let direct = RequestInfo {
            peer: Some("192.0.2.1".parse().unwrap()),
            forwarded_for: Some("1.2.3.4".into()),
            ..Default::default()
        };
        assert_eq!(
            direct.client_ip(&[proxy]),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn cookies_parse() {
        let c = parse_cookies(Some("a=1; lk_session=abc ;b=\"q\"".into()));
        assert_eq!(
            c,
            vec![
                ("a".into(), "1".into()),
                ("lk_session".into(), "abc".into()),
                ("b".into(), "q".into())
            ]
        );
    }
}
