//! The operator console under `/console`: staff sign in by magic link (their own links,
//! sessions and cookie), the facility Emails tab with every attempt, customer records with
//! **Resend the portal link**, and the support tools (link a contact, merge accounts, the
//! audit log). Another storefront's pages answer 404; a role without the right answers 403.

use std::sync::Arc;

use askama::Template;
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::HttpState;
use super::context::{Csrf, RequestInfo};
use super::form::{Body, FORM_LIMIT, Form, body};
use super::pages::{html, render, see_other, with_cookie};
use crate::actors::{
    CheckStaffSession, CheckStaffToken, EndStaffSession, RedeemStaffToken, RequestStaffLink, ask,
};
use crate::crypto::{DeviceScope, DeviceSubject};
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::operations::{Actor, ResendOutcome, resend_portal_link};
use crate::store::{
    Delivery, DeliveryFilter, DeliveryScope, DeliveryStatus, Role, StaffUser, Storefront,
};

pub const CONSOLE_COOKIE: &str = "lk_console";
/// The console's device cookie of a browser a staff member signed in with before.
pub const CONSOLE_DEVICE_COOKIE: &str = "lk_console_device";
const PAGE_SIZE: i64 = 50;

/// The console's routes, matched before anything is looked up.
pub enum ConsoleRoute {
    Home,
    SignInPage(String),
    SignIn(Body),
    AuthPage(String),
    Auth(String, Body),
    SignOut(Body),
    Storefront(String, String),
    Emails(String, i64, String),
    Delivery(String, i64),
    Statuses(String, String),
    Customer(String, i64, String),
    Resend(String, i64, Body),
    Link(String, i64, Body),
    Merge(String, i64, Body),
    Audit(Option<String>),
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

pub fn route() -> impl Filter<Extract = (ConsoleRoute,), Error = warp::Rejection> + Clone {
    use warp::path::end;
    let get = warp::get;
    let post = || warp::post().and(body(FORM_LIMIT));
    let home = end().and(get()).map(|| ConsoleRoute::Home);
    let sign_in_page = warp::path!("sign-in")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::SignInPage);
    let sign_in = warp::path!("sign-in").and(post()).map(ConsoleRoute::SignIn);
    let auth_page = warp::path!("auth" / String)
        .and(get())
        .map(ConsoleRoute::AuthPage);
    let auth = warp::path!("auth" / String)
        .and(post())
        .map(ConsoleRoute::Auth);
    let sign_out = warp::path!("sign-out")
        .and(post())
        .map(ConsoleRoute::SignOut);
    let audit = warp::path!("audit")
        .and(get())
        .map(|| ConsoleRoute::Audit(None));
    let storefront = warp::path!("s" / String)
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Storefront);
    let customers = warp::path!("s" / String / "customers")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Storefront);
    let emails = warp::path!("s" / String / "facilities" / i64 / "emails")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Emails);
    let statuses = warp::path!("s" / String / "deliveries" / "status")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Statuses);
    let delivery = warp::path!("s" / String / "deliveries" / i64)
        .and(get())
        .map(ConsoleRoute::Delivery);
    let customer = warp::path!("s" / String / "customers" / i64)
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Customer);
    let resend = warp::path!("s" / String / "customers" / i64 / "resend")
        .and(post())
        .map(ConsoleRoute::Resend);
    let link = warp::path!("s" / String / "customers" / i64 / "link")
        .and(post())
        .map(ConsoleRoute::Link);
    let merge = warp::path!("s" / String / "customers" / i64 / "merge")
        .and(post())
        .map(ConsoleRoute::Merge);
    let storefront_audit = warp::path!("s" / String / "audit")
        .and(get())
        .map(|slug| ConsoleRoute::Audit(Some(slug)));
    let signing = home
        .or(sign_in_page)
        .unify()
        .or(sign_in)
        .unify()
        .or(auth_page)
        .unify()
        .or(auth)
        .unify()
        .or(sign_out)
        .unify()
        .or(audit)
        .unify()
        .boxed();
    let pages = storefront
        .or(customers)
        .unify()
        .or(emails)
        .unify()
        .or(statuses)
        .unify()
        .or(delivery)
        .unify()
        .or(customer)
        .unify()
        .or(resend)
        .unify()
        .or(link)
        .unify()
        .or(merge)
        .unify()
        .or(storefront_audit)
        .unify()
        .boxed();
    signing.or(pages).unify()
}

/// One console request.
pub struct Console {
    state: Arc<HttpState>,
    info: RequestInfo,
    csrf: Csrf,
    staff: Option<StaffUser>,
    storefront: Option<Arc<Storefront>>,
}

/// What every console page's layout needs.
pub struct ConsoleCommon {
    pub console_name: String,
    pub asset_version: &'static str,
    pub csrf: String,
    pub staff: Option<String>,
    pub storefront: Option<(String, String)>,
}

impl Console {
    fn common(&mut self) -> ConsoleCommon {
        ConsoleCommon {
            console_name: self.state.svc.config.console_from_name.clone(),
            asset_version: super::ASSET_VERSION.as_str(),
            csrf: self.csrf.token(&self.state.svc.keys),
            staff: self
                .staff
                .as_ref()
                .map(|s| format!("{} ({})", s.full_name, s.role.as_str())),
            storefront: self
                .storefront
                .as_ref()
                .map(|sf| (sf.slug.clone(), sf.name.clone())),
        }
    }

    fn secure(&self) -> bool {
        self.state.svc.config.secure_cookies()
    }

    fn cookie(&self, value: &str, max_age: i64) -> String {
        format!(
            "{CONSOLE_COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
            if self.secure() { "; Secure" } else { "" }
        )
    }

    /// A new console device cookie for a staff member who just signed in (SPEC §8: their
    /// sign-in requests are not held back by strangers').
    fn device_cookie(&self, staff_id: i64) -> String {
        let value = self.state.svc.keys.device_cookie(DeviceSubject {
            scope: DeviceScope::Console,
            id: staff_id,
        });
        format!(
            "{CONSOLE_DEVICE_COOKIE}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.state.svc.config.sign_in.device_cookie_days as i64 * 86_400,
            if self.secure() { "; Secure" } else { "" }
        )
    }

    fn message(
        &mut self,
        status: StatusCode,
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
    ) -> Response {
        let page = MessagePage {
            c: self.common(),
            heading: heading.to_string(),
            message: message.to_string(),
            link,
        };
        render(status, &page).unwrap_or_else(|_| html(status, message.to_string()))
    }

    fn failed(&mut self, e: &AppError) -> Response {
        match e {
            AppError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "console: dependency unavailable");
                self.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Please try again in a minute",
                    "We could not complete that just now. Nothing was changed.",
                    None,
                )
            }
            AppError::Internal(err) => {
                tracing::error!(error = ?err, "console request failed");
                self.message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Nothing was changed.",
                    None,
                )
            }
        }
    }

    fn forbidden(&mut self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role does not allow this. Ask an owner, a manager or platform support.",
            None,
        )
    }

    fn not_found(&mut self) -> Response {
        self.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here, or it is not yours to see.",
            Some(("/console".into(), "Back to the console".into())),
        )
    }

    /// Reads a posted form and checks its CSRF token. The error is the page
    /// to send back; it is built once per rejected request, so its size does
    /// not matter.
    #[allow(clippy::result_large_err)]
    fn form(&mut self, body: Body) -> Result<Form, Response> {
        let bytes = match body {
            Body::Read(b) => b,
            Body::TooLarge => {
                return Err(self.message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "That was too much",
                    "The form is far larger than any of ours. Nothing was changed.",
                    None,
                ));
            }
            Body::Broken => {
                return Err(self.message(
                    StatusCode::BAD_REQUEST,
                    "We could not read that form",
                    "Nothing was changed.",
                    None,
                ));
            }
        };
        let form = Form::parse(&bytes).map_err(|e| {
            self.message(
                StatusCode::BAD_REQUEST,
                "We could not read that form",
                &e.to_string(),
                None,
            )
        })?;
        if !Csrf::ok(&self.info, &self.state.svc.keys, form.get("csrf_token")) {
            return Err(self.message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this page or has expired. Nothing was changed. Reload the page and try again.",
                None,
            ));
        }
        Ok(form)
    }

    /// The signed-in staff member, or the redirect to the console's sign-in.
    async fn staff(&mut self) -> Result<StaffUser, Response> {
        let Some(cookie) = self.info.cookie(CONSOLE_COOKIE).map(str::to_string) else {
            return Err(see_other("/console/sign-in"));
        };
        match ask(
            &self.state.actors.session_keeper,
            CheckStaffSession { cookie },
        )
        .await
        {
            Ok(Some(session)) => {
                self.staff = Some(session.staff.clone());
                Ok(session.staff)
            }
            Ok(None) => Err(see_other("/console/sign-in")),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// A storefront the signed-in staff member may see (404 otherwise).
    async fn storefront(&mut self, slug: &str) -> Result<(StaffUser, Arc<Storefront>), Response> {
        let staff = self.staff().await?;
        match self.state.svc.storefronts.by_slug(slug).await {
            Ok(Some(sf)) if staff.sees(sf.id) => {
                self.storefront = Some(sf.clone());
                Ok((staff, sf))
            }
            Ok(_) => Err(self.not_found()),
            Err(e) => Err(self.failed(&e.into())),
        }
    }

    /// A posted form on a storefront's page, by a staff member whose role passes `allowed`:
    /// the form (CSRF checked), who posted it and the storefront; 403 for any other role.
    async fn action(
        &mut self,
        slug: &str,
        body: Body,
        allowed: fn(Role) -> bool,
    ) -> Result<(Form, StaffUser, Arc<Storefront>), Response> {
        let form = self.form(body)?;
        let (staff, sf) = self.storefront(slug).await?;
        if !allowed(staff.role) {
            return Err(self.forbidden());
        }
        Ok((form, staff, sf))
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    c: ConsoleCommon,
    heading: String,
    message: String,
    link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    c: ConsoleCommon,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
    expired: bool,
}

#[derive(Template)]
#[template(path = "console/landing.html")]
struct LandingPage {
    c: ConsoleCommon,
    action: String,
}

/// A console link opened in a browser signed in as another staff member: asked, never
/// submitted by itself (SPEC §8, as on the portal).
#[derive(Template)]
#[template(path = "console/switch.html")]
struct SwitchPage {
    c: ConsoleCommon,
    action: String,
    current: String,
    link_for: String,
}

impl Console {
    /// The signed-in staff member and the link's, when they differ; `None` when the link may
    /// be used without asking. Reads only.
    async fn other_staff(
        &mut self,
        token: &OpaqueToken,
    ) -> Result<Option<(StaffUser, StaffUser)>, AppError> {
        let Some(cookie) = self.info.cookie(CONSOLE_COOKIE).map(str::to_string) else {
            return Ok(None);
        };
        let Some(current) = ask(
            &self.state.actors.session_keeper,
            CheckStaffSession { cookie },
        )
        .await?
        else {
            return Ok(None);
        };
        let svc = &self.state.svc;
        let Some(link) = svc
            .store
            .staff_token_owner(&token.hash(), svc.now())
            .await?
        else {
            return Ok(None);
        };
        Ok((link.id != current.staff.id).then_some((current.staff, link)))
    }

    fn switch_question(
        &mut self,
        status: StatusCode,
        action: String,
        current: &StaffUser,
        link: &StaffUser,
    ) -> Response {
        let page = SwitchPage {
            c: self.common(),
            action,
            current: current.full_name.clone(),
            link_for: link.full_name.clone(),
        };
        render(status, &page).unwrap_or_else(|e| self.failed(&e))
    }
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage {
    c: ConsoleCommon,
    storefronts: Vec<(String, String)>,
    show_audit: bool,
}

#[derive(Template)]
#[template(path = "console/storefront.html")]
struct StorefrontPage {
    c: ConsoleCommon,
    slug: String,
    name: String,
    facilities: Vec<(i64, String)>,
    q: String,
    searched: bool,
    customers: Vec<(i64, String, String)>,
    show_audit: bool,
}

/// A delivery as the console shows it.
struct Row {
    id: i64,
    time: String,
    recipient: String,
    kind: String,
    subject: String,
    status: &'static str,
    attempts: i64,
    last_error: String,
    sent: String,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn row(d: &Delivery) -> Row {
    Row {
        id: d.id,
        time: when(d.created_at),
        recipient: d.recipient.clone(),
        kind: d.kind.replace('_', " "),
        subject: d.subject.clone(),
        status: d.status.as_str(),
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        sent: d.sent_at.map(when).unwrap_or_else(|| "not yet".into()),
    }
}

#[derive(Template)]
#[template(path = "console/emails.html")]
struct EmailsPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    facility: String,
    statuses: Vec<String>,
    status: String,
    recipient: String,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    d: Row,
    attempts: Vec<(i64, String, String, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    id: i64,
    name: String,
    email: String,
    phone: String,
    since: String,
    notice: Option<String>,
    can_resend: bool,
    can_support: bool,
    contacts: Vec<(i64, String, String, String)>,
    unlinked: Vec<(i64, String, String, String)>,
    rentals: Vec<(String, String, String)>,
    /// (number, amount, status, status label).
    invoices: Vec<(String, String, String, String)>,
    emails: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: ConsoleCommon,
    entries: Vec<(String, String, String, String)>,
}

/// Runs a console route.
pub async fn dispatch(route: ConsoleRoute, state: Arc<HttpState>, info: RequestInfo) -> Response {
    let mut console = Console {
        csrf: Csrf::from_request(&info),
        state,
        info,
        staff: None,
        storefront: None,
    };
    let resp = match route {
        ConsoleRoute::Home => home(&mut console).await,
        ConsoleRoute::SignInPage(q) => sign_in_page(&mut console, &q),
        ConsoleRoute::SignIn(body) => sign_in(&mut console, body).await,
        ConsoleRoute::AuthPage(token) => auth_page(&mut console, &token).await,
        ConsoleRoute::Auth(token, body) => auth(&mut console, &token, body).await,
        ConsoleRoute::SignOut(body) => sign_out(&mut console, body).await,
        ConsoleRoute::Storefront(slug, q) => storefront(&mut console, &slug, &q).await,
        ConsoleRoute::Emails(slug, facility, q) => emails(&mut console, &slug, facility, &q).await,
        ConsoleRoute::Delivery(slug, id) => delivery(&mut console, &slug, id).await,
        ConsoleRoute::Statuses(slug, q) => statuses(&mut console, &slug, &q).await,
        ConsoleRoute::Customer(slug, id, q) => customer(&mut console, &slug, id, &q).await,
        ConsoleRoute::Resend(slug, id, body) => resend(&mut console, &slug, id, body).await,
        ConsoleRoute::Link(slug, id, body) => link(&mut console, &slug, id, body).await,
        ConsoleRoute::Merge(slug, id, body) => merge(&mut console, &slug, id, body).await,
        ConsoleRoute::Audit(slug) => audit(&mut console, slug.as_deref()).await,
    };
    let mut resp = console.csrf.finish(resp, console.secure());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn home(c: &mut Console) -> Response {
    let staff = match c.staff().await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if let Some(sf) = staff.storefront_id {
        return match c.state.svc.storefronts.by_id(sf).await {
            Ok(Some(sf)) => see_other(&format!("/console/s/{}", sf.slug)),
            Ok(None) => c.not_found(),
            Err(e) => c.failed(&e.into()),
        };
    }
    let storefronts = match c.state.svc.store.storefronts().await {
        Ok(list) => list.into_iter().map(|s| (s.slug, s.name)).collect(),
        Err(e) => return c.failed(&e.into()),
    };
    let page = HomePage {
        c: c.common(),
        storefronts,
        show_audit: staff.role == Role::Support,
    };
    render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
}

fn sign_in_page(c: &mut Console, query: &str) -> Response {
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let page = SignInPage {
        c: c.common(),
        email: String::new(),
        error: None,
        notice: q.get("signed_out").map(|_| "You are signed out."),
        expired: false,
    };
    render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
}

fn rate_limited(c: &mut Console) -> Option<Response> {
    let ip = c.info.client_ip(&c.state.svc.config.trusted_proxies)?;
    let wait = c.state.ip_limiter.check(ip).err()?;
    let mut resp = c.message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "Wait a minute, then try again.",
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(resp)
}

async fn sign_in(c: &mut Console, body: Body) -> Response {
    if let Some(resp) = rate_limited(c) {
        return resp;
    }
    let form = match c.form(body) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let raw = form.get("email").unwrap_or("");
    let email = match EmailAddress::parse(raw) {
        Ok(e) => e,
        Err(e) => {
            let page = SignInPage {
                c: c.common(),
                email: raw.chars().filter(|ch| !ch.is_control()).collect(),
                error: Some(e.to_string()),
                notice: None,
                expired: false,
            };
            return render(StatusCode::BAD_REQUEST, &page).unwrap_or_else(|e| c.failed(&e));
        }
    };
    let request = RequestStaffLink {
        email,
        client_ip: c.info.client_ip(&c.state.svc.config.trusted_proxies),
        device: c
            .info
            .cookie(CONSOLE_DEVICE_COOKIE)
            .and_then(|v| c.state.svc.keys.device_claim(DeviceScope::Console, v)),
    };
    match ask(&c.state.actors.token_issuer, request).await {
        Ok(()) => c.message(
            StatusCode::OK,
            "Check your email",
            "If this address belongs to a staff member, a sign-in link is on its way. It works once and expires soon.",
            None,
        ),
        Err(e) => c.failed(&e),
    }
}

fn expired(c: &mut Console) -> Response {
    let page = SignInPage {
        c: c.common(),
        email: String::new(),
        error: None,
        notice: None,
        expired: true,
    };
    render(StatusCode::GONE, &page).unwrap_or_else(|e| c.failed(&e))
}

async fn auth_page(c: &mut Console, raw: &str) -> Response {
    if let Some(resp) = rate_limited(c) {
        return resp;
    }
    let Ok(token) = OpaqueToken::parse(raw) else {
        return expired(c);
    };
    match ask(
        &c.state.actors.token_issuer,
        CheckStaffToken {
            token: token.clone(),
        },
    )
    .await
    {
        Ok(true) => {
            match c.other_staff(&token).await {
                Ok(Some((current, link))) => {
                    let action = format!("/console/auth/{raw}");
                    return c.switch_question(StatusCode::OK, action, &current, &link);
                }
                Ok(None) => {}
                Err(e) => return c.failed(&e),
            }
            let page = LandingPage {
                c: c.common(),
                action: format!("/console/auth/{raw}"),
            };
            render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
        }
        Ok(false) => expired(c),
        Err(e) => c.failed(&e),
    }
}

async fn auth(c: &mut Console, raw: &str, body: Body) -> Response {
    if let Some(resp) = rate_limited(c) {
        return resp;
    }
    let form = match c.form(body) {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let Ok(token) = OpaqueToken::parse(raw) else {
        return expired(c);
    };
    // Another staff member signed in here: only an explicit "Continue as" switches.
    let previous = c.info.cookie(CONSOLE_COOKIE).map(str::to_string);
    match c.other_staff(&token).await {
        Ok(Some((current, link))) if form.get("switch") != Some("1") => {
            let action = format!("/console/auth/{raw}");
            return c.switch_question(StatusCode::CONFLICT, action, &current, &link);
        }
        Ok(_) => {}
        Err(e) => return c.failed(&e),
    }
    match ask(&c.state.actors.token_issuer, RedeemStaffToken { token }).await {
        Ok(Some(session)) => {
            if let Some(cookie) = previous
                && let Err(e) =
                    ask(&c.state.actors.session_keeper, EndStaffSession { cookie }).await
            {
                tracing::warn!(error = %e, "could not end the console session the link replaced");
            }
            let remaining = (session.expires_at - c.state.svc.now()).num_milliseconds();
            let cookie = c.cookie(&session.session.encode(), ((remaining + 999) / 1000).max(0));
            let device = c.device_cookie(session.account_id);
            with_cookie(with_cookie(see_other("/console"), &cookie), &device)
        }
        Ok(None) => expired(c),
        Err(e) => c.failed(&e),
    }
}

async fn sign_out(c: &mut Console, body: Body) -> Response {
    if let Err(resp) = c.form(body) {
        return resp;
    }
    if let Some(cookie) = c.info.cookie(CONSOLE_COOKIE).map(str::to_string)
        && let Err(e) = ask(&c.state.actors.session_keeper, EndStaffSession { cookie }).await
    {
        return c.failed(&e);
    }
    let cleared = c.cookie("", 0);
    with_cookie(see_other("/console/sign-in?signed_out=1"), &cleared)
}

async fn storefront(c: &mut Console, slug: &str, query: &str) -> Response {
    let (staff, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let form = Form::parse(query.as_bytes()).unwrap_or_default();
    let q = form.get("q").unwrap_or("").trim().to_string();
    let store = &c.state.svc.store;
    let loaded = async {
        let facilities = store.facilities(sf.id).await?;
        let customers = if q.is_empty() {
            Vec::new()
        } else {
            store.search_customers(sf.id, &q).await?
        };
        Ok::<_, crate::store::DbError>((facilities, customers))
    }
    .await;
    let (facilities, customers) = match loaded {
        Ok(x) => x,
        Err(e) => return c.failed(&e.into()),
    };
    let page = StorefrontPage {
        c: c.common(),
        slug: sf.slug.clone(),
        name: sf.name.clone(),
        facilities: facilities.into_iter().map(|f| (f.id, f.name)).collect(),
        searched: !q.is_empty(),
        q,
        customers: customers
            .into_iter()
            .map(|a| (a.id, a.full_name, a.email))
            .collect(),
        show_audit: matches!(staff.role, Role::Support | Role::Owner),
    };
    render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
}

async fn emails(c: &mut Console, slug: &str, facility_id: i64, query: &str) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let store = c.state.svc.store.clone();
    let facility = match store.storefront_facility(sf.id, facility_id).await {
        Ok(Some(f)) => f,
        Ok(None) => return c.not_found(),
        Err(e) => return c.failed(&e.into()),
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let status = q.get("status").unwrap_or("").to_string();
    let recipient = q.get("recipient").unwrap_or("").trim().to_string();
    let filter = DeliveryFilter {
        status: DeliveryStatus::parse(&status),
        recipient: (!recipient.is_empty()).then(|| recipient.clone()),
    };
    let before = q.get("before").and_then(|b| b.parse::<i64>().ok());
    let page = match store
        .deliveries_page(
            DeliveryScope::Facility(facility.id),
            &filter,
            before,
            PAGE_SIZE,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return c.failed(&e.into()),
    };
    let next = page.next.map(|cursor| {
        let mut url = url::Url::parse("http://x/").expect("a URL");
        {
            let mut pairs = url.query_pairs_mut();
            if filter.status.is_some() {
                pairs.append_pair("status", &status);
            }
            if !recipient.is_empty() {
                pairs.append_pair("recipient", &recipient);
            }
            pairs.append_pair("before", &cursor.to_string());
        }
        format!("?{}", url.query().unwrap_or_default())
    });
    let view = EmailsPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        facility: facility.name,
        statuses: DeliveryStatus::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        status: filter
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        recipient,
        rows: page.deliveries.iter().map(row).collect(),
        next,
    };
    render(StatusCode::OK, &view).unwrap_or_else(|e| c.failed(&e))
}

async fn delivery(c: &mut Console, slug: &str, id: i64) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let store = c.state.svc.store.clone();
    let loaded = async {
        let Some(d) = store.storefront_delivery(sf.id, id).await? else {
            return Ok(None);
        };
        let attempts = store.delivery_attempts(id).await?;
        Ok::<_, crate::store::DbError>(Some((d, attempts)))
    }
    .await;
    match loaded {
        Ok(Some((d, attempts))) => {
            let page = DeliveryPage {
                c: c.common(),
                slug: sf.slug.clone(),
                storefront: sf.name.clone(),
                d: row(&d),
                attempts: attempts
                    .into_iter()
                    .map(|a| {
                        (
                            a.attempt,
                            when(a.started_at),
                            when(a.finished_at),
                            a.outcome,
                            a.smtp_code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "none".into()),
                            a.detail,
                            a.worker,
                        )
                    })
                    .collect(),
            };
            render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
        }
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e.into()),
    }
}

/// JSON for the Emails tab's live updates: `?ids=1,2,3` (of this storefront only).
async fn statuses(c: &mut Console, slug: &str, query: &str) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let ids: Vec<i64> = q
        .get("ids")
        .unwrap_or("")
        .split(',')
        .filter_map(|i| i.trim().parse().ok())
        .take(100)
        .collect();
    match c.state.svc.store.delivery_statuses(sf.id, &ids).await {
        Ok(list) => warp::reply::json(
            &list
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "id": d.id,
                        "status": d.status.as_str(),
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => c.failed(&e.into()),
    }
}

async fn customer(c: &mut Console, slug: &str, id: i64, query: &str) -> Response {
    let (staff, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let store = c.state.svc.store.clone();
    let support = staff.role.can_support();
    let loaded = async {
        let record = store.customer_record(sf.id, id).await?;
        let unlinked = if support {
            store.unlinked_contacts(sf.id, "").await?
        } else {
            Vec::new()
        };
        Ok::<_, crate::store::DbError>((record, unlinked))
    }
    .await;
    let (record, unlinked) = match loaded {
        Ok((Some(r), u)) => (r, u),
        Ok((None, _)) => return c.not_found(),
        Err(e) => return c.failed(&e.into()),
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = match q.get("done") {
        Some("resent") => Some("A new portal link is on its way to the customer.".to_string()),
        Some("linked") => Some(
            "The contact is linked: its rentals now show in the customer's portal.".to_string(),
        ),
        Some("merged") => Some(format!(
            "Account #{} was merged into this one.",
            q.get("merged").unwrap_or("?")
        )),
        _ => None,
    };
    let contact = |k: &crate::store::ContactView| {
        (
            k.id,
            k.full_name.clone(),
            k.facility_name.clone(),
            k.external_ref.clone(),
        )
    };
    let page = CustomerPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        id: record.account.id,
        name: record.account.full_name.clone(),
        email: record.account.email.clone(),
        phone: record.account.phone.clone(),
        since: record.account.created_at.format("%Y-%m-%d").to_string(),
        notice,
        can_resend: staff.role.can_resend(),
        can_support: support,
        contacts: record.contacts.iter().map(contact).collect(),
        unlinked: unlinked.iter().map(contact).collect(),
        rentals: record
            .rentals
            .iter()
            .map(|r| (r.label.clone(), r.facility_name.clone(), r.status.clone()))
            .collect(),
        invoices: record
            .invoices
            .iter()
            .map(|i| {
                let view = super::rentals::invoice_view(i);
                (view.number, view.amount, view.status, view.status_label)
            })
            .collect(),
        emails: record.deliveries.iter().map(row).collect(),
    };
    render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
}

async fn resend(c: &mut Console, slug: &str, id: i64, body: Body) -> Response {
    let (_, staff, sf) = match c.action(slug, body, Role::can_resend).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let state = c.state.clone();
    match resend_portal_link(&state.svc, &state.actors, &sf, id, Actor::Staff(&staff)).await {
        Ok(ResendOutcome::Sent { .. }) => see_other(&format!(
            "/console/s/{}/customers/{id}?done=resent",
            sf.slug
        )),
        Ok(ResendOutcome::Cooldown {
            retry_after_seconds,
        }) => {
            let mut resp = c.message(
                StatusCode::TOO_MANY_REQUESTS,
                "A link was just sent",
                &format!(
                    "A portal link was resent less than {} minutes ago. Ask the customer to check their inbox and spam folder, or try again in {} seconds.",
                    (state.svc.config.resend_cooldown_seconds / 60).max(1),
                    retry_after_seconds
                ),
                Some((format!("/console/s/{}/customers/{id}", sf.slug), "Back to the customer".into())),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Ok(ResendOutcome::NoSuchAccount) => c.not_found(),
        Err(e) => c.failed(&e),
    }
}

async fn link(c: &mut Console, slug: &str, account_id: i64, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_support).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(contact_id) = form
        .get("contact_id")
        .and_then(|v| v.trim().parse::<i64>().ok())
    else {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Choose a contact",
            "Pick the contact to link.",
            None,
        );
    };
    let svc = c.state.svc.clone();
    let now = svc.now();
    match svc
        .store
        .link_contact(sf.id, contact_id, account_id, &staff, now)
        .await
    {
        Ok(Some(_)) => see_other(&format!(
            "/console/s/{}/customers/{account_id}?done=linked",
            sf.slug
        )),
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e.into()),
    }
}

async fn merge(c: &mut Console, slug: &str, survivor: i64, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_support).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(merged) = form
        .get("other_account_id")
        .map(|v| v.trim().trim_start_matches('#'))
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Which account?",
            "Enter the number of the account to merge into this one.",
            None,
        );
    };
    if merged == survivor {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Same account",
            "An account cannot be merged into itself.",
            None,
        );
    }
    let svc = c.state.svc.clone();
    let now = svc.now();
    match svc
        .store
        .merge_accounts(sf.id, survivor, merged, &staff, now)
        .await
    {
        Ok(Some(_)) => see_other(&format!(
            "/console/s/{}/customers/{survivor}?done=merged&merged={merged}",
            sf.slug
        )),
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e.into()),
    }
}

async fn audit(c: &mut Console, slug: Option<&str>) -> Response {
    let (staff, scope) = match slug {
        Some(slug) => match c.storefront(slug).await {
            Ok((staff, sf)) => (staff, Some(sf.id)),
            Err(resp) => return resp,
        },
        None => match c.staff().await {
            Ok(staff) => (staff, None),
            Err(resp) => return resp,
        },
    };
    let allowed = match scope {
        None => staff.role == Role::Support,
        Some(_) => matches!(staff.role, Role::Support | Role::Owner),
    };
    if !allowed {
        return c.forbidden();
    }
    match c.state.svc.store.audit_entries(scope, 200).await {
        Ok(entries) => {
            let page = AuditPage {
                c: c.common(),
                entries: entries
                    .into_iter()
                    .map(|e| {
                        (
                            when(e.created_at),
                            e.actor,
                            e.action.replace('_', " "),
                            e.details.to_string(),
                        )
                    })
                    .collect(),
            };
            render(StatusCode::OK, &page).unwrap_or_else(|e| c.failed(&e))
        }
        Err(e) => c.failed(&e.into()),
    }
}
