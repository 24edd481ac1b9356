//! The error pages of the portal and the console, in one place: what each refusal answers
//! (404, 410, 413, 400, 403, 429 with `Retry-After`, and an [`AppError`] as 503 or 500), in
//! the site's layout and words: the Fluent messages `{Site::WORDS}-…` (`locales/*/frame.ftl`)
//! in the site's language. The details of an unexpected error go to the log; the page says
//! only that nothing was changed.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::form::{FormError, FormRefused};
use super::pages::{html, render};
use super::{Frame, Site};
use crate::error::AppError;

impl<S: Site> Frame<S> {
    /// One of the site's frame messages (`{WORDS}-{key}`) in the request's language.
    pub fn word(&self, key: &str) -> String {
        S::lang(self).msg(&format!("{}-{key}", S::WORDS))
    }

    /// The site's message page with a status.
    pub fn message(
        &mut self,
        status: StatusCode,
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
    ) -> Response {
        let page = S::message_page(self, heading, message, link);
        render(status, &page).unwrap_or_else(|_| html(status, message.to_string()))
    }

    /// What the user sees when something unexpected happened; the details go to the log.
    pub fn failed(&mut self, e: &AppError) -> Response {
        match e {
            AppError::Unavailable(detail) => {
                tracing::warn!(site = S::NAME, error = %detail, "dependency unavailable");
                let (heading, text) = (self.word("unavailable-heading"), self.word("unavailable"));
                self.message(StatusCode::SERVICE_UNAVAILABLE, &heading, &text, None)
            }
            AppError::Internal(err) => {
                tracing::error!(site = S::NAME, error = ?err, "request failed");
                let (heading, text) = (self.word("internal-heading"), self.word("internal"));
                self.message(StatusCode::INTERNAL_SERVER_ERROR, &heading, &text, None)
            }
        }
    }

    /// 404, with a way back to the site's home.
    pub fn not_found(&mut self) -> Response {
        // On a storefront's own host the base is empty: its home is `/`.
        let home = if self.base.is_empty() {
            "/".to_string()
        } else {
            self.base.clone()
        };
        let (heading, text) = (self.word("not-found-heading"), self.word("not-found"));
        let back = Some((home, self.word("not-found-back")));
        self.message(StatusCode::NOT_FOUND, &heading, &text, back)
    }

    /// 410: the sign-in link is expired or used.
    pub fn link_expired(&mut self) -> Response {
        let page = S::link_expired_page(self);
        self.page(StatusCode::GONE, &page)
    }

    /// 429, with the seconds to wait in `Retry-After`, and the page saying the same wait.
    pub fn too_many(&mut self, wait: Duration) -> Response {
        let seconds = wait.as_secs().max(1);
        let lang = S::lang(self);
        let heading = self.word("too-many-heading");
        let text = lang.arg(&format!("{}-too-many", S::WORDS), "seconds", seconds);
        let mut resp = self.message(StatusCode::TOO_MANY_REQUESTS, &heading, &text, None);
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    /// Checks the per-IP limit on sign-in requests and link visits; `Some(429)` when over it.
    pub fn rate_limited(&mut self) -> Option<Response> {
        let ip = self.client_ip()?;
        let wait = self.state.ip_limiter.check(ip).err()?;
        Some(self.too_many(wait))
    }

    /// The page of a refused form: nothing was changed.
    pub(super) fn form_refused(&mut self, why: FormRefused) -> Response {
        let (status, heading, text) = match why {
            FormRefused::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                self.word("form-too-large-heading"),
                self.word("form-too-large"),
            ),
            FormRefused::Broken => (
                StatusCode::BAD_REQUEST,
                self.word("form-unreadable-heading"),
                self.word("form-broken"),
            ),
            FormRefused::Unreadable(e) => {
                let lang = S::lang(self);
                let reason = lang.msg(match e {
                    FormError::InvalidUtf8 => "form-not-utf8",
                    FormError::Malformed => "form-malformed",
                });
                let id = format!("{}-form-unreadable", S::WORDS);
                (
                    StatusCode::BAD_REQUEST,
                    self.word("form-unreadable-heading"),
                    lang.arg(&id, "reason", reason),
                )
            }
            FormRefused::Expired => {
                let lang = S::lang(self);
                let back_id = format!("{}-form-expired-back", S::WORDS);
                let back = lang
                    .has(&back_id)
                    .then(|| (format!("{}/sign-in", self.base), lang.msg(&back_id)));
                let (heading, text) =
                    (self.word("form-expired-heading"), self.word("form-expired"));
                return self.message(StatusCode::FORBIDDEN, &heading, &text, back);
            }
        };
        self.message(status, &heading, &text, None)
    }
}
