//! The web front: warp filters, one file per page group, served by [`server::serve`]. The
//! portal and the console are built on one [`frame`] (request context, forms and CSRF, rate
//! limits, error pages, magic-link sign-in); what no route takes becomes a page here. A request
//! never sees internal details.

pub mod account;
pub mod api;
pub mod billing;
pub mod console;
pub mod frame;
pub mod ops;
pub mod portal;
pub mod portal_routes;
pub mod rentals;
pub mod server;
pub mod webhooks;

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};

use frame::{not_found_page, plain_error};
use http::StatusCode;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::actors::Actors;
use crate::actors::billing_sync::Payments;
use crate::links;
use crate::services::Services;

/// What the handlers share.
pub struct HttpState {
    pub svc: Arc<Services>,
    pub actors: Actors,
    /// The Stripe side of billing, shared with the BillingSync actor's timers.
    pub payments: Arc<Payments>,
    pub ip_limiter: frame::IpLimiter,
}

/// A short hash of the stylesheet and script, so browsers cache them until they change.
pub static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{}{}{}", ops::APP_CSS, ops::APP_JS, ops::CONSOLE_JS).as_bytes(),
    );
    hex::encode(&digest.as_ref()[..6])
});

/// All routes.
pub fn routes(state: Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(ops::healthz);
    let assets = warp::path("static")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .map(|name: String| ops::asset(&name));
    let index = warp::path::end()
        .and(warp::get())
        .and(with_state.clone())
        .and(frame::request_info())
        .map(|state: Arc<HttpState>, info: frame::RequestInfo| ops::index(&state.svc, &info));
    let signature_checks = webhooks::SignatureChecks::default();
    let stripe_webhook = warp::path!("webhooks" / "stripe")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::any().map(move || signature_checks.clone()))
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(frame::body(webhooks::WEBHOOK_LIMIT))
        .then(webhooks::stripe);
    let console = warp::path(links::CONSOLE)
        .and(console::route())
        .and(with_state.clone())
        .and(frame::request_info())
        .then(console::dispatch);
    let portal = warp::path(links::STOREFRONT)
        .and(warp::path::param::<String>())
        .and(portal_routes::route())
        .and(with_state.clone())
        .and(frame::request_info())
        .then(portal_routes::dispatch);
    // `/metrics` and `/readyz` are on the operations port only (`ops_listen`): the sign-in
    // counters would tell a stranger which addresses have accounts.
    healthz
        .or(assets)
        .unify()
        .or(index)
        .unify()
        .or(stripe_webhook)
        .unify()
        .or(console)
        .unify()
        .or(portal)
        .unify()
        .or(api::routes(state.clone()))
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

/// Turns what no route took into a page: 404, 405, bad headers.
async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let resp = if rejection.is_not_found() {
        not_found_page()
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        plain_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "That page does not accept this kind of request.",
        )
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some()
        || rejection.find::<warp::reject::InvalidQuery>().is_some()
    {
        plain_error(StatusCode::BAD_REQUEST, "The request could not be read.")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        plain_error(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.")
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        not_found_page()
    };
    Ok(resp.into_response())
}
