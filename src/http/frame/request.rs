//! What the frame reads from every request before a page runs: the client's address (through
//! trusted proxies) and its cookies.

use std::net::{IpAddr, SocketAddr};

use warp::Filter;

/// The TCP peer, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket(pub SocketAddr);

/// Set when the request came in on a storefront's custom host (links start at `/`).
#[derive(Debug, Clone, Copy)]
pub struct MountedAtRoot;

#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub peer: Option<IpAddr>,
    pub forwarded_for: Option<String>,
    pub cookies: Vec<(String, String)>,
    pub at_root: bool,
    /// The browser's `Accept-Language` (a signed-out page's language when no cookie says).
    pub accept_language: Option<String>,
    /// The request's path (the language switcher comes back to it).
    pub path: String,
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
        .and(
            warp::header::optional::<String>("accept-language")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::path::full())
        .map(
            |sock: Option<ClientSocket>,
             root: Option<MountedAtRoot>,
             cookie: Option<String>,
             xff: Option<String>,
             accept_language: Option<String>,
             path: warp::path::FullPath| RequestInfo {
                peer: sock.map(|s| s.0.ip()),
                forwarded_for: xff,
                cookies: parse_cookies(cookie),
                at_root: root.is_some(),
                accept_language,
                path: path.as_str().to_string(),
            },
        )
}

/// The raw query string of a page, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
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
