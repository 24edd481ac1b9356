//! A link never silently switches accounts (SPEC §8). When the browser is signed in to one
//! account of the storefront and opens a sign-in link for another, the landing page does not
//! submit itself: it says who is signed in and who the link is for, and offers "Continue as"
//! (a POST carrying `switch=1`, which ends the first session in this browser) or "Stay signed
//! in as" (back to the dashboard, the link untouched). A POST without `switch=1` asks again.

use http::StatusCode;
use warp::reply::Response;

use super::context::{Portal, SESSION_COOKIE};
use super::form::Form;
use super::pages::*;
use crate::domain::OpaqueToken;
use crate::domain::email::mask;
use crate::error::AppError;
use crate::store::{Account, SessionInfo};

#[derive(askama::Template)]
#[template(path = "switch_account.html")]
struct SwitchAccountPage {
    page: PageCommon,
    action: String,
    current_name: String,
    current_first: String,
    current_email: String,
    link_name: String,
    link_first: String,
    link_email: String,
}

/// The form field that confirms the switch.
pub const CONFIRM_FIELD: &str = "switch";

/// The browser's session and the link's account, when they are different accounts of this
/// storefront; `None` when the link may be used without asking.
pub async fn other_account(
    portal: &Portal,
    token: &OpaqueToken,
) -> Result<Option<(SessionInfo, Account)>, AppError> {
    let Some(current) = portal.session().await? else {
        return Ok(None);
    };
    let svc = &portal.state.svc;
    let Some(live) = svc
        .store
        .live_token(
            crate::store::Audience::Customer(portal.storefront.id),
            &token.hash(),
            svc.now(),
        )
        .await?
    else {
        return Ok(None);
    };
    if live.subject_id == current.account.id {
        return Ok(None);
    }
    Ok(svc
        .store
        .account(portal.storefront.id, live.subject_id)
        .await?
        .map(|link| (current, link)))
}

/// The question, with no script: nothing submits by itself.
pub fn question(
    portal: &mut Portal,
    status: StatusCode,
    action: String,
    current: &SessionInfo,
    link: &Account,
) -> Response {
    let name = |a: &Account| {
        if a.full_name.trim().is_empty() {
            a.first_name()
        } else {
            a.full_name.clone()
        }
    };
    let page = SwitchAccountPage {
        page: PageCommon::new(portal, false, ""),
        action,
        current_name: name(&current.account),
        current_first: current.account.first_name(),
        current_email: current.account.email.clone(),
        link_name: name(link),
        link_first: link.first_name(),
        link_email: mask(&link.email),
    };
    render(status, &page).unwrap_or_else(|e| app_error_page(portal, &e))
}

/// For `POST /auth/{token}`: `Err(question)` when another account is signed in and the form
/// does not confirm the switch; otherwise the cookie of the session this browser had, to end
/// once the link has signed in.
pub async fn guard(
    portal: &mut Portal,
    token: &OpaqueToken,
    form: &Form,
    action: String,
) -> Result<Option<String>, Response> {
    let previous = portal.info.cookie(SESSION_COOKIE).map(str::to_string);
    match other_account(portal, token).await {
        Ok(Some((current, link))) if form.get(CONFIRM_FIELD) != Some("1") => Err(question(
            portal,
            StatusCode::CONFLICT,
            action,
            &current,
            &link,
        )),
        Ok(_) => Ok(previous),
        Err(e) => Err(app_error_page(portal, &e)),
    }
}
