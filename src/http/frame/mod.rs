//! The web frame: what every server-rendered request of the customer portal and the operator
//! console goes through, written once. A [`Frame`] is one request's context (the client's IP,
//! its cookies, the CSRF token, the signed-in identity); around it are the request bodies and
//! forms with their CSRF check ([`form`]), the per-IP rate limit ([`ratelimit`]), the error
//! pages ([`errors`]: every refusal's status, page and wording in one place) and the magic-link
//! sign-in: the request for a link, the landing that never switches identity silently, and
//! sign-out ([`landing`]).
//!
//! What differs between the two sites is a [`Site`]: cookie names and paths, the actor messages
//! that check and redeem links and sessions, the templates and wording, and where a sign-in
//! lands. `portal::PortalSite` and `console::ConsoleSite` are the two.

pub mod csrf;
pub mod errors;
pub mod form;
pub mod landing;
pub mod pages;
pub mod ratelimit;
pub mod request;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use chrono::{DateTime, Utc};
use warp::reply::Response;

pub use form::{Body, FORM_LIMIT, Form, body};
pub use landing::{LinkSent, SignInForm};
pub use pages::{not_found_page, plain_error, plain_unavailable, render, see_other, with_cookie};
pub use ratelimit::IpLimiter;
pub use request::{ClientSocket, MountedAtRoot, RequestInfo, raw_query, request_info};

use super::HttpState;
use crate::crypto::{DeviceClaim, DeviceScope, DeviceSubject};
use crate::domain::OpaqueToken;
use crate::error::AppError;
use crate::i18n::Lang;
use crate::usecases::sign_in::RedeemedSession;
use csrf::Csrf;

/// What the portal and the console do differently; the [`Frame`] does the rest. The functions
/// that reach the actors or the store take the frame (for the services and the request); the
/// page functions return a template, whose status and fallback are the frame's.
pub trait Site: Sized + Send + Sync {
    /// Names the site in the logs.
    const NAME: &'static str;
    /// The cookie that carries the session.
    const SESSION_COOKIE: &'static str;
    /// The signed cookie of a browser that signed in here before (SPEC §8).
    const DEVICE_COOKIE: &'static str;
    /// Where a sign-in lands, below the frame's base, when its link names no page.
    const HOME: &'static str;
    /// The short-lived cookie that carries a link request to its "Check your email" page.
    const LINK_COOKIE: &'static str;
    /// Whether a link asked for here also carries a sign-in code bound to the asking browser
    /// (the portal's, SPEC §11).
    const SIGN_IN_CODE: bool;
    /// The texts of the frame's pages.
    /// The prefix of the frame's messages for this site (`portal`: `portal-too-many`, …).
    const WORDS: &'static str;

    /// Who a session cookie signs in.
    type Identity: Send + Sync;
    /// Whom a sign-in link is for, as the switch question names them.
    type LinkOwner: Send + Sync;

    /// The language of this request's pages.
    fn lang(frame: &Frame<Self>) -> Lang;

    /// Called once the session is known to be `identity`'s (a signed-in customer's language
    /// wins over the browser's).
    fn signed_in_as(_frame: &mut Frame<Self>, _identity: &Self::Identity) {}

    /// The path the site's cookies are scoped to, given the frame's base.
    fn cookie_path(base: &str) -> String;
    /// What the device cookie is bound to.
    fn device_scope(&self) -> DeviceScope;
    /// A page of the site a sign-in may land on (`next`), normalised; `None` if it is not one.
    fn safe_next(next: &str) -> Option<String>;
    /// Where a page that needs a session sends a browser without one.
    fn sign_in_location(base: &str, next: &str) -> String;

    /// The identity behind a session cookie value.
    fn check_session(
        frame: &Frame<Self>,
        cookie: String,
    ) -> impl Future<Output = Result<Option<Self::Identity>, AppError>> + Send;
    /// Ends the session behind a cookie value.
    fn end_session(
        frame: &Frame<Self>,
        cookie: String,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Sends a sign-in link (the answer is the same whether or not the address is known).
    fn request_link(
        frame: &Frame<Self>,
        request: crate::usecases::sign_in::LinkAsked,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
    /// Whether a link is good for its landing page (never uses it up).
    fn check_link(
        frame: &Frame<Self>,
        token: OpaqueToken,
    ) -> impl Future<Output = Result<bool, AppError>> + Send;
    /// The link's owner when it is not `current`; `None` when the link may be used without
    /// asking. Reads only.
    fn other_owner(
        frame: &Frame<Self>,
        current: &Self::Identity,
        token: &OpaqueToken,
    ) -> impl Future<Output = Result<Option<Self::LinkOwner>, AppError>> + Send;
    /// Uses a link up and starts its session.
    fn redeem_link(
        frame: &Frame<Self>,
        token: OpaqueToken,
    ) -> impl Future<Output = Result<Option<RedeemedSession>, AppError>> + Send;
    /// Uses a link up by its sign-in code, typed in the browser whose link cookie holds
    /// `binding`, and starts its session (`None` where there are no codes).
    fn redeem_code(
        frame: &Frame<Self>,
        email: &crate::domain::EmailAddress,
        binding: Option<&[u8]>,
        code: &str,
    ) -> impl Future<Output = Result<Option<RedeemedSession>, AppError>> + Send;

    /// A heading, a message and perhaps a link: the site's error and notice page.
    fn message_page(
        frame: &mut Frame<Self>,
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
    ) -> impl Template + use<Self>;
    /// The sign-in form.
    fn sign_in_page(frame: &mut Frame<Self>, form: SignInForm) -> impl Template + use<Self>;
    /// "Check your email" after a link was asked for.
    fn link_sent_page(frame: &mut Frame<Self>, sent: LinkSent) -> impl Template + use<Self>;
    /// The landing page that posts the link (`action`) by itself.
    fn landing_page(frame: &mut Frame<Self>, action: String) -> impl Template + use<Self>;
    /// "Continue as / Stay signed in as": the link is for someone else than `current`.
    fn switch_page(
        frame: &mut Frame<Self>,
        action: String,
        current: &Self::Identity,
        owner: &Self::LinkOwner,
    ) -> impl Template + use<Self>;
    /// The link is expired or used.
    fn link_expired_page(frame: &mut Frame<Self>) -> impl Template + use<Self>;
}

/// One request to the portal or the console.
pub struct Frame<S> {
    pub state: Arc<HttpState>,
    pub info: RequestInfo,
    /// Prefix of the site's links: `/s/{slug}` (empty on a storefront's custom host), or
    /// `/console`.
    pub base: String,
    /// What belongs to the site (the portal's storefront, the console's staff member).
    pub site: S,
    csrf: Csrf,
}

impl<S: Site> Frame<S> {
    pub fn new(state: Arc<HttpState>, info: RequestInfo, base: String, site: S) -> Self {
        let csrf = Csrf::from_request(&info);
        Self {
            state,
            info,
            base,
            site,
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

    fn cookie(&self, name: &str, value: &str, max_age_seconds: i64) -> String {
        format!(
            "{name}={value}; Path={}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax{}",
            S::cookie_path(&self.base),
            if self.state.svc.config.secure_cookies() {
                "; Secure"
            } else {
                ""
            }
        )
    }

    /// The `Set-Cookie` value of a session that ends at `expires_at` (its age rounded up).
    pub fn session_cookie(&self, session: &OpaqueToken, expires_at: DateTime<Utc>) -> String {
        let remaining_ms = (expires_at - self.state.svc.now()).num_milliseconds();
        let max_age = ((remaining_ms + 999) / 1000).max(0);
        self.cookie(S::SESSION_COOKIE, &session.encode(), max_age)
    }

    /// The `Set-Cookie` value of the language switcher's cookie (a year).
    pub fn language_cookie(&self, tag: &str) -> String {
        self.cookie(crate::i18n::COOKIE, tag, 365 * 86_400)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        self.cookie(S::SESSION_COOKIE, "", 0)
    }

    /// The device cookie this browser carries for this site (checked against the identity
    /// when it is known).
    pub fn device_claim(&self) -> Option<DeviceClaim> {
        let cookie = self.info.cookie(S::DEVICE_COOKIE)?;
        self.state
            .svc
            .keys
            .device_claim(self.site.device_scope(), cookie)
    }

    /// The `Set-Cookie` value of a new device cookie for a browser that just signed in.
    pub fn device_cookie(&self, id: i64) -> String {
        let svc = &self.state.svc;
        let value = svc.keys.device_cookie(DeviceSubject {
            scope: self.site.device_scope(),
            id,
        });
        let max_age = svc.config.sign_in.device_cookie_days as i64 * 86_400;
        self.cookie(S::DEVICE_COOKIE, &value, max_age)
    }

    /// Who is signed in, if the session cookie is valid here.
    pub async fn session(&self) -> Result<Option<S::Identity>, AppError> {
        let Some(cookie) = self.info.cookie(S::SESSION_COOKIE) else {
            return Ok(None);
        };
        S::check_session(self, cookie.to_string()).await
    }

    /// Who is signed in, or the response to send instead: to sign-in (to come back to `next`),
    /// or an error page.
    pub async fn signed_in(&mut self, next: &str) -> Result<S::Identity, Response> {
        match self.session().await {
            Ok(Some(identity)) => {
                S::signed_in_as(self, &identity);
                Ok(identity)
            }
            Ok(None) => Err(self.to_sign_in(next)),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// The sign-in redirect for a page that needs a session.
    pub fn to_sign_in(&self, next: &str) -> Response {
        see_other(&S::sign_in_location(&self.base, next))
    }

    /// Renders a page; when the template fails, the error page instead.
    pub fn page<T: Template>(&mut self, status: http::StatusCode, page: &T) -> Response {
        render(status, page).unwrap_or_else(|e| self.failed(&e))
    }

    /// Adds the cookies this request created to its response.
    pub fn finish(&self, resp: Response) -> Response {
        self.csrf
            .finish(resp, self.state.svc.config.secure_cookies())
    }
}
