//! The customer portal under `/s/{storefront}/`: sign-in, the magic-link landing, the
//! dashboard, sign-out.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use warp::Filter;
use warp::reply::Response;

use super::context::{Portal, RequestInfo};
use super::form::{Body, FORM_LIMIT, Form, body};
use super::pages::*;
use super::{HttpState, account, billing, rentals};
use crate::actors::{CheckToken, EndSession, Redeem, RequestLink, ask};
use crate::domain::{EmailAddress, OpaqueToken};

/// The portal's routes, matched before the storefront is looked up.
pub enum PortalRoute {
    Home,
    SignInPage(String),
    SignIn(Body),
    AuthPage(String),
    Auth(String, Body),
    Dashboard,
    SignOut(Body),
    History,
    Rental(i64),
    Agreement(i64),
    Billing(String),
    Pay(i64, Body),
    AddPaymentMethod(Body),
    RemovePaymentMethod(i64, Body),
    Receipt(i64),
    Account(String),
    SaveAccount(Body),
    SignOutEverywhere(Body),
    ConfirmEmailPage(String),
    ConfirmEmail(String, Body),
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

pub fn route() -> impl Filter<Extract = (PortalRoute,), Error = warp::Rejection> + Clone {
    use warp::path::end;
    let home = end().and(warp::get()).map(|| PortalRoute::Home);
    let sign_in_page = warp::path("sign-in")
        .and(end())
        .and(warp::get())
        .and(raw_query())
        .map(PortalRoute::SignInPage);
    let sign_in = warp::path("sign-in")
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SignIn);
    let auth_page = warp::path("auth")
        .and(warp::path::param::<String>())
        .and(end())
        .and(warp::get())
        .map(PortalRoute::AuthPage);
    let auth = warp::path("auth")
        .and(warp::path::param::<String>())
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::Auth);
    let dashboard = warp::path("dashboard")
        .and(end())
        .and(warp::get())
        .map(|| PortalRoute::Dashboard);
    let sign_out = warp::path("sign-out")
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SignOut);
    let history = warp::path!("rentals" / "history")
        .and(warp::get())
        .map(|| PortalRoute::History);
    let rental = warp::path!("rentals" / i64)
        .and(warp::get())
        .map(PortalRoute::Rental);
    let agreement = warp::path!("rentals" / i64 / "agreement.pdf")
        .and(warp::get())
        .map(PortalRoute::Agreement);
    let billing = warp::path("billing")
        .and(end())
        .and(warp::get())
        .and(raw_query())
        .map(PortalRoute::Billing);
    let pay = warp::path!("billing" / "invoices" / i64 / "pay")
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::Pay);
    let receipt = warp::path!("billing" / "invoices" / i64 / "receipt")
        .and(warp::get())
        .map(PortalRoute::Receipt);
    let add_method = warp::path!("billing" / "payment-methods")
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::AddPaymentMethod);
    let remove_method = warp::path!("billing" / "payment-methods" / i64 / "remove")
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::RemovePaymentMethod);
    let account = warp::path("account")
        .and(end())
        .and(warp::get())
        .and(raw_query())
        .map(PortalRoute::Account);
    let save_account = warp::path("account")
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SaveAccount);
    let customer = history
        .or(rental)
        .unify()
        .or(agreement)
        .unify()
        .or(billing)
        .unify()
        .or(pay)
        .unify()
        .or(receipt)
        .unify()
        .or(add_method)
        .unify()
        .or(remove_method)
        .unify()
        .or(account)
        .unify()
        .or(save_account)
        .unify()
        .or(account::route())
        .unify()
        .boxed();
    home.or(sign_in_page)
        .unify()
        .or(sign_in)
        .unify()
        .or(auth_page)
        .unify()
        .or(auth)
        .unify()
        .or(dashboard)
        .unify()
        .or(sign_out)
        .unify()
        .or(customer)
        .unify()
}

/// Resolves the storefront once and runs the route's handler.
pub async fn dispatch(
    slug: String,
    route: PortalRoute,
    state: Arc<HttpState>,
    info: RequestInfo,
) -> Response {
    let storefront = match state.svc.storefronts.by_slug(&slug).await {
        Ok(Some(sf)) => sf,
        Ok(None) => return super::not_found_page(),
        Err(e) => {
            tracing::warn!(error = %e, "storefront lookup failed");
            return super::plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a minute.",
            );
        }
    };
    let mut portal = Portal::new(state, storefront, info);
    let resp = match route {
        PortalRoute::Home => home(&mut portal).await,
        PortalRoute::SignInPage(query) => sign_in_page(&mut portal, &query),
        PortalRoute::SignIn(body) => sign_in(&mut portal, body).await,
        PortalRoute::AuthPage(token) => auth_page(&mut portal, &token).await,
        PortalRoute::Auth(token, body) => auth(&mut portal, &token, body).await,
        PortalRoute::Dashboard => rentals::dashboard(&mut portal).await,
        PortalRoute::SignOut(body) => sign_out(&mut portal, body).await,
        PortalRoute::History => rentals::history(&mut portal).await,
        PortalRoute::Rental(id) => rentals::rental(&mut portal, id).await,
        PortalRoute::Agreement(id) => rentals::agreement(&mut portal, id).await,
        PortalRoute::Billing(query) => billing::page(&mut portal, &query).await,
        PortalRoute::Pay(id, body) => billing::pay(&mut portal, id, body).await,
        PortalRoute::AddPaymentMethod(body) => billing::add_method(&mut portal, body).await,
        PortalRoute::RemovePaymentMethod(id, body) => {
            billing::remove_method(&mut portal, id, body).await
        }
        PortalRoute::Receipt(id) => billing::receipt(&mut portal, id).await,
        PortalRoute::Account(query) => account::page(&mut portal, &query).await,
        PortalRoute::SaveAccount(body) => account::save(&mut portal, body).await,
        PortalRoute::SignOutEverywhere(body) => {
            account::sign_out_everywhere(&mut portal, body).await
        }
        PortalRoute::ConfirmEmailPage(token) => account::confirm_page(&mut portal, &token).await,
        PortalRoute::ConfirmEmail(token, body) => account::confirm(&mut portal, &token, body).await,
    };
    portal.finish(resp)
}

/// The portal pages a sign-in may land on (and everything below them).
const LANDING_PAGES: [&str; 4] = ["/dashboard", "/billing", "/account", "/rentals"];

/// A path inside the storefront to land on after signing in, or `None` if it is not one:
/// checked after percent-decoding and dot-segment removal, as a browser would resolve it
/// (see [`crate::domain::redirect::local_path`]); the answer is the normalised path.
pub fn safe_next(next: &str) -> Option<String> {
    crate::domain::redirect::local_path(next, &LANDING_PAGES)
}

async fn home(portal: &mut Portal) -> Response {
    match portal.session().await {
        Ok(Some(_)) => see_other(&format!("{}/dashboard", portal.base)),
        Ok(None) => see_other(&format!("{}/sign-in", portal.base)),
        Err(e) => app_error_page(portal, &e),
    }
}

fn sign_in_page(portal: &mut Portal, query: &str) -> Response {
    let form = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = form.get("signed_out").map(|_| "You are signed out.");
    let page = SignInPage {
        page: PageCommon::new(portal, false, ""),
        email: String::new(),
        error: None,
        next: form.get("next").and_then(safe_next),
        notice,
    };
    render(StatusCode::OK, &page).unwrap_or_else(|e| app_error_page(portal, &e))
}

fn too_many(portal: &mut Portal, wait: std::time::Duration) -> Response {
    let mut resp = error_page(
        portal,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "You have made too many requests in a short time. Wait a minute, then try again.",
        None,
    );
    let secs = wait.as_secs().max(1).to_string();
    if let Ok(v) = HeaderValue::from_str(&secs) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Checks the per-IP limit; `Some(response)` when over it.
pub(crate) fn rate_limited(portal: &mut Portal) -> Option<Response> {
    let ip = portal.client_ip()?;
    match portal.state.ip_limiter.check(ip) {
        Ok(()) => None,
        Err(wait) => Some(too_many(portal, wait)),
    }
}

/// Reads a posted form and checks its CSRF token; `Err(response)` for a 4xx.
pub(crate) fn read_form(portal: &mut Portal, body: Body) -> Result<Form, Box<Response>> {
    let bytes = match body {
        Body::Read(b) => b,
        Body::TooLarge => {
            return Err(Box::new(error_page(
                portal,
                StatusCode::PAYLOAD_TOO_LARGE,
                "That was too much",
                "The form you sent is far larger than any of ours. Nothing was changed.",
                None,
            )));
        }
        Body::Broken => {
            return Err(Box::new(error_page(
                portal,
                StatusCode::BAD_REQUEST,
                "We could not read that form",
                "The form did not arrive whole. Nothing was changed. Please try again.",
                None,
            )));
        }
    };
    let form = Form::parse(&bytes).map_err(|e| {
        Box::new(error_page(
            portal,
            StatusCode::BAD_REQUEST,
            "We could not read that form",
            &format!("{e} Nothing was changed."),
            None,
        ))
    })?;
    if !portal.csrf_ok(form.get("csrf_token")) {
        let back = (
            format!("{}/sign-in", portal.base),
            "Back to the portal".to_string(),
        );
        return Err(Box::new(error_page(
            portal,
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this page or has expired. Nothing was changed. Go back, reload the page and try again.",
            Some(back),
        )));
    }
    Ok(form)
}

fn printable(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(254).collect()
}

async fn sign_in(portal: &mut Portal, body: Body) -> Response {
    if let Some(resp) = rate_limited(portal) {
        return resp;
    }
    let form = match read_form(portal, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let raw = form.get("email").unwrap_or("");
    let next = form.get("next").and_then(safe_next);
    let email = match EmailAddress::parse(raw) {
        Ok(e) => e,
        Err(e) => {
            let page = SignInPage {
                page: PageCommon::new(portal, false, ""),
                email: printable(raw),
                error: Some(e.to_string()),
                next,
                notice: None,
            };
            return render(StatusCode::BAD_REQUEST, &page)
                .unwrap_or_else(|e| app_error_page(portal, &e));
        }
    };
    let requested = ask(
        &portal.state.actors.token_issuer,
        RequestLink {
            storefront: portal.storefront.clone(),
            email: email.clone(),
            redirect: next,
            client_ip: portal.client_ip(),
            device: portal.device_claim(),
        },
    )
    .await;
    match requested {
        Ok(()) => {
            let page = CheckEmailPage {
                page: PageCommon::new(portal, false, ""),
                email: email.to_string(),
                minutes: portal.state.svc.config.sign_in.link_ttl_minutes,
            };
            render(StatusCode::OK, &page).unwrap_or_else(|e| app_error_page(portal, &e))
        }
        Err(e) => app_error_page(portal, &e),
    }
}

pub(crate) fn link_expired(portal: &mut Portal) -> Response {
    let page = LinkExpiredPage {
        page: PageCommon::new(portal, false, ""),
        minutes: portal.state.svc.config.sign_in.link_ttl_minutes,
        email: String::new(),
        error: None,
        next: None,
    };
    render(StatusCode::GONE, &page).unwrap_or_else(|e| app_error_page(portal, &e))
}

async fn auth_page(portal: &mut Portal, raw_token: &str) -> Response {
    if let Some(resp) = rate_limited(portal) {
        return resp;
    }
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return link_expired(portal);
    };
    let live = ask(
        &portal.state.actors.token_issuer,
        CheckToken {
            storefront_id: portal.storefront.id,
            token: token.clone(),
        },
    )
    .await;
    match live {
        Ok(true) => {
            let action = format!("{}/auth/{raw_token}", portal.base);
            match super::switch::other_account(portal, &token).await {
                Ok(Some((current, link))) => {
                    return super::switch::question(
                        portal,
                        StatusCode::OK,
                        action,
                        &current,
                        &link,
                    );
                }
                Ok(None) => {}
                Err(e) => return app_error_page(portal, &e),
            }
            let page = AuthLandingPage {
                page: PageCommon::new(portal, false, ""),
                action: format!("{}/auth/{raw_token}", portal.base),
            };
            render(StatusCode::OK, &page).unwrap_or_else(|e| app_error_page(portal, &e))
        }
        Ok(false) => link_expired(portal),
        Err(e) => app_error_page(portal, &e),
    }
}

async fn auth(portal: &mut Portal, raw_token: &str, body: Body) -> Response {
    if let Some(resp) = rate_limited(portal) {
        return resp;
    }
    let form = match read_form(portal, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let Ok(token) = OpaqueToken::parse(raw_token) else {
        return link_expired(portal);
    };
    let action = format!("{}/auth/{raw_token}", portal.base);
    let previous = match super::switch::guard(portal, &token, &form, action).await {
        Ok(previous) => previous,
        Err(resp) => return resp,
    };
    let redeemed = ask(
        &portal.state.actors.token_issuer,
        Redeem {
            storefront_id: portal.storefront.id,
            token,
        },
    )
    .await;
    match redeemed {
        Ok(Some(session)) => {
            let target = format!(
                "{}{}",
                portal.base,
                session
                    .redirect
                    .as_deref()
                    .and_then(safe_next)
                    .unwrap_or_else(|| "/dashboard".to_string())
            );
            let remaining_ms = (session.expires_at - portal.state.svc.now()).num_milliseconds();
            let max_age = ((remaining_ms + 999) / 1000).max(0);
            let cookie = portal.session_cookie(&session.session.encode(), max_age);
            // The session this browser had ends (another account's only after "Continue as").
            if let Some(cookie) = previous {
                let end = EndSession {
                    storefront_id: portal.storefront.id,
                    cookie,
                };
                if let Err(e) = ask(&portal.state.actors.session_keeper, end).await {
                    tracing::warn!(error = %e, "could not end the session the link replaced");
                }
            }
            let device = portal.device_cookie(session.account_id);
            with_cookie(with_cookie(see_other(&target), &cookie), &device)
        }
        Ok(None) => link_expired(portal),
        Err(e) => app_error_page(portal, &e),
    }
}

/// The sign-in redirect for a page that needs a session.
pub(crate) fn to_sign_in(portal: &Portal, next: &str) -> Response {
    see_other(&format!(
        "{}/sign-in?next={}",
        portal.base,
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    ))
}

/// The signed-in customer, or the response to send instead (to sign-in, or an error page).
pub(crate) async fn signed_in(
    portal: &mut Portal,
    next: &str,
) -> Result<crate::store::SessionInfo, Response> {
    match portal.session().await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(to_sign_in(portal, next)),
        Err(e) => Err(app_error_page(portal, &e)),
    }
}

async fn sign_out(portal: &mut Portal, body: Body) -> Response {
    if let Err(resp) = read_form(portal, body) {
        return *resp;
    }
    if let Some(cookie) = portal.info.cookie(super::context::SESSION_COOKIE) {
        let ended = ask(
            &portal.state.actors.session_keeper,
            EndSession {
                storefront_id: portal.storefront.id,
                cookie: cookie.to_string(),
            },
        )
        .await;
        if let Err(e) = ended {
            return app_error_page(portal, &e);
        }
    }
    let cookie = portal.clear_session_cookie();
    with_cookie(
        see_other(&format!("{}/sign-in?signed_out=1", portal.base)),
        &cookie,
    )
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_a_page_of_the_storefront() {
        assert_eq!(safe_next("/billing"), Some("/billing".into()));
        assert_eq!(
            safe_next("/billing?status=pending"),
            Some("/billing?status=pending".into())
        );
        assert_eq!(
            safe_next("/rentals/12/agreement.pdf"),
            Some("/rentals/12/agreement.pdf".into())
        );
        assert_eq!(safe_next("/dashboard/./x/../"), Some("/dashboard/".into()));
        assert_eq!(safe_next("/rentals/%31%32"), Some("/rentals/12".into()));
        for bad in [
            "/dashboard/%252e%252e/%252e%252e/beta/dashboard",
            "/dashboard/%2e%2e/%2e%2e/beta/dashboard",
            "/dashboard/%2E%2E/%2E%2E/beta/dashboard",
            "/dashboard/..%2f..%2fbeta/dashboard",
            "/dashboard/%5c..%5c..%5cbeta",
            "/%2e%2e/beta/dashboard",
            "/%2f/evil.example",
            "/dashboard\\..\\..\\beta",
            "/dashboard/%0d%0aSet-Cookie:x",
            "/billing?next=%2f%2fevil",
            "/billing#x",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/dashboard/../../x",
            "javascript:alert(1)",
            "/sign-out",
            "/auth/abc",
            "dashboard",
            "/dashboardx",
            "/billing\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
