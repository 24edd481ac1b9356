//! The portal's routing: the warp filter that turns a request under a storefront into a
//! [`PortalRoute`], and the dispatch that resolves the storefront once and runs the route's
//! page (`portal`, `rentals`, `billing`, `account`). It sits above those pages, so they can
//! share [`Portal`] and [`PageCommon`](super::portal::PageCommon) without an import circle.

use std::sync::Arc;

use warp::Filter;
use warp::reply::Response;

use super::frame::{
    FORM_LIMIT, Frame, RequestInfo, body, landing, not_found_page, plain_unavailable, raw_query,
};
use super::portal::{PortalRoute, PortalSite, home, switch_language};
use super::{HttpState, account, billing, rentals};
use crate::links;

pub fn route() -> impl Filter<Extract = (PortalRoute,), Error = warp::Rejection> + Clone {
    use warp::path::end;
    let home = end().and(warp::get()).map(|| PortalRoute::Home);
    let sign_in_page = warp::path(links::SIGN_IN)
        .and(end())
        .and(warp::get())
        .and(raw_query())
        .map(PortalRoute::SignInPage);
    let sign_in = warp::path(links::SIGN_IN)
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SignIn);
    let link_sent = warp::path(links::SIGN_IN)
        .and(warp::path(landing::SENT_PATH))
        .and(end())
        .and(warp::get())
        .map(|| PortalRoute::LinkSent);
    let sign_in_code = warp::path(links::SIGN_IN)
        .and(warp::path(landing::CODE_PATH))
        .and(end())
        .and(warp::post())
        .and(body(FORM_LIMIT))
        .map(PortalRoute::SignInCode);
    let auth_page = warp::path(links::AUTH)
        .and(warp::path::param::<String>())
        .and(end())
        .and(warp::get())
        .map(PortalRoute::AuthPage);
    let auth = warp::path(links::AUTH)
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
    let billing = warp::path(links::BILLING)
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
    let language = warp::path!("language" / String)
        .and(warp::get())
        .and(raw_query())
        .map(PortalRoute::Language);
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
        .or(language)
        .unify()
        .boxed();
    home.or(sign_in_page)
        .unify()
        .or(sign_in)
        .unify()
        .or(link_sent)
        .unify()
        .or(sign_in_code)
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
        .or(warp::path::tail()
            .and_then(|_| async { Ok::<_, warp::Rejection>(PortalRoute::NotFound) }))
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
        Ok(None) => return not_found_page(),
        Err(e) => {
            tracing::warn!(error = %e, "storefront lookup failed");
            let lang = state.svc.languages.for_visitor(
                info.cookie(crate::i18n::COOKIE),
                info.accept_language.as_deref(),
                crate::i18n::DEFAULT,
            );
            return plain_unavailable(&lang);
        }
    };
    let base = if info.at_root {
        String::new()
    } else {
        format!("/{}/{}", links::STOREFRONT, storefront.slug)
    };
    let lang = state.svc.languages.for_visitor(
        info.cookie(crate::i18n::COOKIE),
        info.accept_language.as_deref(),
        &storefront.language,
    );
    let mut portal = Frame::new(state, info, base, PortalSite { storefront, lang });
    let resp = match route {
        PortalRoute::Home => home(&mut portal).await,
        PortalRoute::SignInPage(query) => landing::sign_in_page(&mut portal, &query),
        PortalRoute::SignIn(body) => landing::request_link(&mut portal, body).await,
        PortalRoute::LinkSent => landing::link_sent(&mut portal),
        PortalRoute::SignInCode(body) => landing::redeem_code(&mut portal, body).await,
        PortalRoute::AuthPage(token) => landing::landing(&mut portal, &token).await,
        PortalRoute::Auth(token, body) => landing::redeem(&mut portal, &token, body).await,
        PortalRoute::Dashboard => rentals::dashboard(&mut portal).await,
        PortalRoute::SignOut(body) => landing::sign_out(&mut portal, body).await,
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
        PortalRoute::Language(tag, query) => switch_language(&mut portal, &tag, &query),
        PortalRoute::NotFound => portal.not_found(),
    };
    portal.finish(resp)
}
