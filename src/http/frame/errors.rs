//! The error pages of the portal and the console, in one place: what each refusal answers
//! (404, 410, 413, 400, 403, 429 with `Retry-After`, and an [`AppError`] as 503 or 500), in
//! the site's layout and its [`Wording`]. The details of an unexpected error go to the log;
//! the page says only that nothing was changed.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::form::FormRefused;
use super::pages::{html, not_found_page, render};
use super::{Frame, Site};
use crate::error::AppError;

/// The texts of the frame's pages that a site words its own way.
pub struct Wording {
    /// 429, after "Too many requests".
    pub too_many: &'static str,
    /// 413, after "That was too much".
    pub form_too_large: &'static str,
    /// 400 for a body that did not arrive whole, after "We could not read that form".
    pub form_broken: &'static str,
    /// Follows the reason of a 400 for a form that could not be parsed.
    pub form_unreadable_after: &'static str,
    /// 403, after "This form has expired".
    pub form_expired: &'static str,
    /// The label of the 403's link to the sign-in page, if it has one.
    pub form_expired_back: Option<&'static str>,
    /// 503, after "Please try again in a minute".
    pub unavailable: &'static str,
    /// 500, after "Something went wrong".
    pub internal: &'static str,
    /// 404: heading, message and the label of a link to the site's home; `None` for the plain
    /// page the router answers with too.
    pub not_found: Option<(&'static str, &'static str, &'static str)>,
}

impl<S: Site> Frame<S> {
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
                self.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Please try again in a minute",
                    S::WORDING.unavailable,
                    None,
                )
            }
            AppError::Internal(err) => {
                tracing::error!(site = S::NAME, error = ?err, "request failed");
                self.message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    S::WORDING.internal,
                    None,
                )
            }
        }
    }

    /// 404.
    pub fn not_found(&mut self) -> Response {
        match S::WORDING.not_found {
            Some((heading, message, back)) => {
                // On a storefront's own host the base is empty: its home is `/`.
                let home = if self.base.is_empty() {
                    "/".to_string()
                } else {
                    self.base.clone()
                };
                self.message(
                    StatusCode::NOT_FOUND,
                    heading,
                    message,
                    Some((home, back.to_string())),
                )
            }
            None => not_found_page(),
        }
    }

    /// 410: the sign-in link is expired or used.
    pub fn link_expired(&mut self) -> Response {
        let page = S::link_expired_page(self);
        self.page(StatusCode::GONE, &page)
    }

    /// 429, with the seconds to wait in `Retry-After`.
    pub fn too_many(&mut self, wait: Duration) -> Response {
        let mut resp = self.message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            S::WORDING.too_many,
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
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
        let w = &S::WORDING;
        match why {
            FormRefused::TooLarge => self.message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "That was too much",
                w.form_too_large,
                None,
            ),
            FormRefused::Broken => self.message(
                StatusCode::BAD_REQUEST,
                "We could not read that form",
                w.form_broken,
                None,
            ),
            FormRefused::Unreadable(e) => self.message(
                StatusCode::BAD_REQUEST,
                "We could not read that form",
                &format!("{e}{}", w.form_unreadable_after),
                None,
            ),
            FormRefused::Expired => {
                let back = w
                    .form_expired_back
                    .map(|label| (format!("{}/sign-in", self.base), label.to_string()));
                self.message(
                    StatusCode::FORBIDDEN,
                    "This form has expired",
                    w.form_expired,
                    back,
                )
            }
        }
    }
}
