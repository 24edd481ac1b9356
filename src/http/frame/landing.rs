//! Magic-link sign-in for both sites: the sign-in form and its request for a link, the landing
//! of the link, and sign-out.
//!
//! Asking for a link answers with a redirect to the "Check your email" page (POST-redirect-GET:
//! reloading it sends nothing), which reads the address from a short-lived cookie set with the
//! request. On the portal that cookie also holds a random value that binds the email's sign-in
//! code to this browser (SPEC §11): `POST /sign-in/code` signs in with the code only here.
//!
//! Opening a link never uses it up (mail scanners open links): `GET /auth/{token}` shows a page
//! that posts itself, and `POST /auth/{token}` redeems it once, sets the session and device
//! cookies and redirects. A link never silently switches identities either (SPEC §8): when the
//! browser is signed in as someone else than the link's owner, the landing page does not submit
//! itself but asks "Continue as" (a POST carrying `switch=1`, which ends the first session in
//! this browser) or "Stay signed in as" (the link untouched); a POST without `switch=1` asks
//! again, with 409.

use http::StatusCode;
use warp::reply::Response;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::form::{Body, Form};
use super::pages::{see_other, with_cookie};
use super::{Frame, Site};
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::usecases::sign_in::{LinkAsked, RedeemedSession};

/// Below the sign-in page: the "Check your email" page, and where its code form posts.
pub const SENT_PATH: &str = "sent";
pub const CODE_PATH: &str = "code";

/// What the "Check your email" page shows.
pub struct LinkSent {
    /// The address the link was asked for.
    pub email: String,
    /// Why the code typed did not sign in.
    pub code_error: Option<String>,
}

/// The request a "Check your email" page is about, read from its cookie: the address, and
/// the random value its sign-in code is bound to.
struct Pending {
    binding: OpaqueToken,
    email: EmailAddress,
}

impl Pending {
    fn cookie_value(&self) -> String {
        format!(
            "{}.{}",
            self.binding.encode(),
            URL_SAFE_NO_PAD.encode(self.email.as_str())
        )
    }

    fn read<S: Site>(frame: &Frame<S>) -> Option<Self> {
        let (binding, email) = frame.info.cookie(S::LINK_COOKIE)?.split_once('.')?;
        let email = String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()?;
        Some(Self {
            binding: OpaqueToken::parse(binding).ok()?,
            email: EmailAddress::parse(&email).ok()?,
        })
    }
}

/// The form field that confirms the switch.
pub const CONFIRM_FIELD: &str = "switch";

/// What the sign-in form shows.
pub struct SignInForm {
    /// What was typed (printable characters only).
    pub email: String,
    pub error: Option<String>,
    /// The page to land on after signing in, already checked.
    pub next: Option<String>,
    pub notice: Option<String>,
}

/// What a typed address is shown back as: no control characters, no longer than an address.
fn printable(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(254).collect()
}

/// `GET /sign-in` (`?signed_out=1` after signing out, `?next=` a page to land on).
pub fn sign_in_page<S: Site>(frame: &mut Frame<S>, query: &str) -> Response {
    let query = Form::parse(query.as_bytes()).unwrap_or_default();
    let form = SignInForm {
        email: String::new(),
        error: None,
        next: query.get("next").and_then(S::safe_next),
        notice: query
            .get("signed_out")
            .map(|_| S::lang(frame).msg("signed-out")),
    };
    let page = S::sign_in_page(frame, form);
    frame.page(StatusCode::OK, &page)
}

/// `POST /sign-in`: asks for a link; the form again, with its error, for a bad address.
pub async fn request_link<S: Site>(frame: &mut Frame<S>, body: Body) -> Response {
    if let Some(resp) = frame.rate_limited() {
        return resp;
    }
    let form = match frame.read_form(body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let raw = form.get("email").unwrap_or("");
    let next = form.get("next").and_then(S::safe_next);
    let email = match EmailAddress::parse(raw) {
        Ok(e) => e,
        Err(e) => {
            let form = SignInForm {
                email: printable(raw),
                error: Some(S::lang(frame).msg(e.message_id())),
                next,
                notice: None,
            };
            let page = S::sign_in_page(frame, form);
            return frame.page(StatusCode::BAD_REQUEST, &page);
        }
    };
    // One binding per browser: a second request here keeps the first one's, so the codes
    // of both emails work in this browser.
    let binding = Pending::read(frame)
        .map(|p| p.binding)
        .unwrap_or_else(OpaqueToken::generate);
    let pending = Pending {
        binding,
        email: email.clone(),
    };
    let request = LinkAsked {
        email,
        next,
        client_ip: frame.client_ip(),
        device: frame.device_claim(),
        binding: S::SIGN_IN_CODE.then(|| pending.binding.as_bytes().to_vec()),
    };
    match S::request_link(frame, request).await {
        Ok(()) => {
            let max_age = frame.state.svc.config.sign_in.link_ttl_minutes as i64 * 60;
            let cookie = frame.cookie(S::LINK_COOKIE, &pending.cookie_value(), max_age);
            let sent = format!("{}/sign-in/{SENT_PATH}", frame.base);
            with_cookie(see_other(&sent), &cookie)
        }
        Err(e) => frame.failed(&e),
    }
}

/// `GET /sign-in/sent`: "Check your email" for the link this browser asked for last (sends
/// nothing); without one, the sign-in page.
pub fn link_sent<S: Site>(frame: &mut Frame<S>) -> Response {
    let Some(pending) = Pending::read(frame) else {
        return see_other(&format!("{}/sign-in", frame.base));
    };
    let sent = LinkSent {
        email: pending.email.to_string(),
        code_error: None,
    };
    let page = S::link_sent_page(frame, sent);
    frame.page(StatusCode::OK, &page)
}

/// `POST /sign-in/code`: the email's sign-in code, typed in the browser that asked for the
/// link. The address and the binding come from this browser's sign-in cookie (the form's
/// `email` is only shown back). Signs in as the link would (and uses it up); otherwise "Check
/// your email" again with the reason, the same for a wrong code, a used or expired link,
/// another browser and an unknown address.
pub async fn redeem_code<S: Site>(frame: &mut Frame<S>, body: Body) -> Response {
    if let Some(resp) = frame.rate_limited() {
        return resp;
    }
    let form = match frame.read_form(body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let pending = Pending::read(frame);
    let shown = pending
        .as_ref()
        .map(|p| p.email.to_string())
        .or_else(|| form.get("email").map(printable))
        .unwrap_or_default();
    let code: String = form
        .get("code")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    // `word`: `code-malformed` or `code-wrong`, in the page's language.
    let retry = |frame: &mut Frame<S>, word: &str| {
        let sent = LinkSent {
            email: shown.clone(),
            code_error: Some(frame.word(word)),
        };
        let page = S::link_sent_page(frame, sent);
        frame.page(StatusCode::BAD_REQUEST, &page)
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return retry(frame, "code-malformed");
    }
    // Without the cookie of a request made here, nothing is tried (nor counted).
    let Some(pending) = pending else {
        return retry(frame, CODE_WRONG);
    };
    let binding = pending.binding.as_bytes().to_vec();
    match S::redeem_code(frame, &pending.email, Some(&binding), &code).await {
        Ok(Some(session)) => {
            let cleared = frame.cookie(S::LINK_COOKIE, "", 0);
            with_cookie(signed_in(frame, session).await, &cleared)
        }
        Ok(None) => retry(frame, CODE_WRONG),
        Err(e) => frame.failed(&e),
    }
}

/// Why a code of the right shape did not sign in (the same words for every reason).
const CODE_WRONG: &str = "code-wrong";

/// A link or code was used: ends the session this browser had, sets the session and device
/// cookies and goes where the link says.
async fn signed_in<S: Site>(frame: &mut Frame<S>, session: RedeemedSession) -> Response {
    let previous = frame.info.cookie(S::SESSION_COOKIE).map(str::to_string);
    let target = format!(
        "{}{}",
        frame.base,
        session
            .redirect
            .as_deref()
            .and_then(S::safe_next)
            .unwrap_or_else(|| S::HOME.to_string())
    );
    let cookie = frame.session_cookie(&session.session, session.expires_at);
    if let Some(previous) = previous
        && let Err(e) = S::end_session(frame, previous).await
    {
        let site = S::NAME;
        tracing::warn!(site, error = %e, "could not end the session the link replaced");
    }
    let device = frame.device_cookie(session.account_id);
    with_cookie(with_cookie(see_other(&target), &cookie), &device)
}

/// Who is signed in here and whom the link is for, when they are not the same; `None` when the
/// link may be used without asking.
async fn other_owner<S: Site>(
    frame: &Frame<S>,
    token: &OpaqueToken,
) -> Result<Option<(S::Identity, S::LinkOwner)>, AppError> {
    let Some(current) = frame.session().await? else {
        return Ok(None);
    };
    Ok(S::other_owner(frame, &current, token)
        .await?
        .map(|owner| (current, owner)))
}

fn switch_question<S: Site>(
    frame: &mut Frame<S>,
    status: StatusCode,
    action: String,
    current: &S::Identity,
    owner: &S::LinkOwner,
) -> Response {
    let page = S::switch_page(frame, action, current, owner);
    frame.page(status, &page)
}

/// `GET /auth/{token}`: the page that posts the link, or the switch question.
pub async fn landing<S: Site>(frame: &mut Frame<S>, raw_token: &str) -> Response {
    if let Some(resp) = frame.rate_limited() {
        return resp;
    }
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return frame.link_expired();
    };
    match S::check_link(frame, token.clone()).await {
        Ok(true) => {}
        Ok(false) => return frame.link_expired(),
        Err(e) => return frame.failed(&e),
    }
    let action = format!("{}/auth/{raw_token}", frame.base);
    match other_owner(frame, &token).await {
        Ok(Some((current, owner))) => {
            switch_question(frame, StatusCode::OK, action, &current, &owner)
        }
        Ok(None) => {
            let page = S::landing_page(frame, action);
            frame.page(StatusCode::OK, &page)
        }
        Err(e) => frame.failed(&e),
    }
}

/// `POST /auth/{token}`: uses the link once, ends the session this browser had (another
/// identity's only after "Continue as"), sets the cookies and goes where the link says.
pub async fn redeem<S: Site>(frame: &mut Frame<S>, raw_token: &str, body: Body) -> Response {
    if let Some(resp) = frame.rate_limited() {
        return resp;
    }
    let form = match frame.read_form(body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return frame.link_expired();
    };
    match other_owner(frame, &token).await {
        Ok(Some((current, owner))) if form.get(CONFIRM_FIELD) != Some("1") => {
            let action = format!("{}/auth/{raw_token}", frame.base);
            return switch_question(frame, StatusCode::CONFLICT, action, &current, &owner);
        }
        Ok(_) => {}
        Err(e) => return frame.failed(&e),
    }
    match S::redeem_link(frame, token).await {
        Ok(Some(session)) => signed_in(frame, session).await,
        Ok(None) => frame.link_expired(),
        Err(e) => frame.failed(&e),
    }
}

/// `POST /sign-out`: ends this browser's session and clears its cookie.
pub async fn sign_out<S: Site>(frame: &mut Frame<S>, body: Body) -> Response {
    if let Err(resp) = frame.read_form(body) {
        return *resp;
    }
    if let Some(cookie) = frame.info.cookie(S::SESSION_COOKIE).map(str::to_string)
        && let Err(e) = S::end_session(frame, cookie).await
    {
        return frame.failed(&e);
    }
    let cleared = frame.clear_session_cookie();
    with_cookie(
        see_other(&format!("{}/sign-in?signed_out=1", frame.base)),
        &cleared,
    )
}
