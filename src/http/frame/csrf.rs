//! The double-submit CSRF defence of every form of the portal and the console: a random cookie
//! (path `/`, HttpOnly) and, in every form, a `csrf_token` that is the server key's HMAC of it.

use super::RequestInfo;
use crate::crypto::Keys;
use crate::domain::OpaqueToken;

pub const CSRF_COOKIE: &str = "lk_csrf";

/// This request's CSRF cookie, created when a page needs a token and the browser has none.
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
    pub fn token(&mut self, keys: &Keys) -> String {
        if self.cookie.is_none() {
            self.cookie = Some(OpaqueToken::generate().encode());
            self.fresh = true;
        }
        keys.csrf_token(self.cookie.as_deref().expect("just set"))
    }

    /// Whether a submitted form's token matches the browser's cookie.
    pub fn ok(info: &RequestInfo, keys: &Keys, submitted: Option<&str>) -> bool {
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
