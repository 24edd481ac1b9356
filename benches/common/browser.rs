//! The benches' browsers: each its own connection pool and cookie jar, reading the CSRF token
//! from the form as a person's browser sends it, and the names of what went wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use latchkey_testkit::SmtpSink;
use std::time::Instant;

/// What went wrong with a request, as shown in the error columns.
pub type ErrorKind = String;

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What precedes the CSRF token in a form.
const CSRF_MARKER: &str = r#"name="csrf_token" value=""#;

/// One simulated browser: its own connection pool and cookie jar, redirects not followed.
/// Clones share both.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    /// What paths are relative to (`http://127.0.0.1:PORT`, or a storefront below it).
    pub root: String,
}

impl Browser {
    pub fn new(root: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("build an HTTP client")?;
        Ok(Self {
            http,
            root: root.to_string(),
        })
    }

    /// `path` below the root; a whole URL as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.root)
        }
    }

    pub async fn get(&self, path: &str, what: &str) -> Result<(u16, String), ErrorKind> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| request_error(what, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| request_error(&format!("{what} (body)"), e))?;
        Ok((status, body))
    }

    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<(u16, String), ErrorKind> {
        let resp = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .map_err(|e| request_error(what, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| request_error(&format!("{what} (body)"), e))?;
        Ok((status, body))
    }

    /// GET a sign-in form; returns its CSRF token.
    pub async fn sign_in_form(&self, form_path: &str) -> Result<String, ErrorKind> {
        let (status, page) = self.get(form_path, "GET sign-in").await?;
        if status != 200 {
            return Err(format!("GET sign-in: HTTP {status}"));
        }
        csrf_token(&page)
            .map(str::to_string)
            .ok_or_else(|| "GET sign-in: no csrf_token in the page".to_string())
    }

    /// POST a sign-in form; `Ok` when the answer is the redirect to "Check your email"
    /// (POST-redirect-GET). The page itself is not fetched: its GET sends nothing.
    pub async fn post_sign_in(
        &self,
        form_path: &str,
        csrf: &str,
        email: &str,
    ) -> Result<(), ErrorKind> {
        let what = "POST sign-in";
        let resp = self
            .http
            .post(self.url(form_path))
            .form(&[("csrf_token", csrf), ("email", email)])
            .send()
            .await
            .map_err(|e| request_error(what, e))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        resp.bytes()
            .await
            .map_err(|e| request_error(&format!("{what} (body)"), e))?;
        if status != 303 {
            return Err(format!("{what}: HTTP {status}"));
        }
        if !location.ends_with("/sign-in/sent") {
            return Err(format!(
                "{what}: 303 to {location:?}, not to Check your email"
            ));
        }
        Ok(())
    }

    /// GET a sign-in form and POST it for `email` with the page's CSRF token.
    pub async fn request_link(&self, form_path: &str, email: &str) -> Result<(), ErrorKind> {
        let csrf = self.sign_in_form(form_path).await?;
        self.post_sign_in(form_path, &csrf, email).await
    }
}

impl Browser {
    /// Signs in by the emailed magic link, as a person does: requests a link with the form at
    /// `form_path`, waits (30 s at most) for the new email to `email` in `sink`, opens its link
    /// and posts the landing page's form; the session cookie is then in this browser's jar.
    /// `alive` is asked between looks at the inbox, so that a process that died fails the
    /// sign-in at once.
    pub async fn sign_in_by_link(
        &self,
        sink: &SmtpSink,
        form_path: &str,
        email: &str,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let before = sink.messages_to(email).len();
        self.request_link(form_path, email)
            .await
            .map_err(|e| anyhow!("{email}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let message = loop {
            let mut messages = sink.messages_to(email);
            if messages.len() > before {
                break messages.pop().expect("not empty");
            }
            alive()?;
            ensure!(
                Instant::now() < deadline,
                "no sign-in email to {email} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let link = message
            .links()
            .into_iter()
            .find(|l| l.contains("/auth/"))
            .ok_or_else(|| anyhow!("no sign-in link in the email to {email}"))?;
        let (status, landing) = self.get(&link, "GET link").await.map_err(|e| anyhow!(e))?;
        ensure!(status == 200, "GET {link}: HTTP {status}");
        let csrf =
            csrf_token(&landing).ok_or_else(|| anyhow!("no csrf_token on the landing page"))?;
        let (status, _) = self
            .post(&link, &[("csrf_token", csrf)], "POST link")
            .await
            .map_err(|e| anyhow!(e))?;
        ensure!(status == 303, "POST {link}: HTTP {status} (wanted 303)");
        Ok(())
    }
}

pub fn request_error(what: &str, e: reqwest::Error) -> ErrorKind {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{what}: {kind}")
}

/// The value of the first `csrf_token` hidden field, by plain string search (cheap: the
/// client shares two cores with the server).
pub fn csrf_token(html: &str) -> Option<&str> {
    let start = html.find(CSRF_MARKER)? + CSRF_MARKER.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len]).filter(|t| !t.is_empty())
}

/// Error counts by kind.
#[derive(Debug, Default, Clone)]
pub struct ErrorTally(BTreeMap<ErrorKind, u64>);

impl ErrorTally {
    pub fn add(&mut self, kind: ErrorKind) {
        *self.0.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: ErrorTally) {
        for (kind, n) in other.0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
