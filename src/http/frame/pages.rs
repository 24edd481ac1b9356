//! Responses: an askama template rendered with a status, HTML that is never cached, redirects,
//! cookies, and the plain page for what has no site around it (no route, no storefront).

use askama::Template;
use http::{HeaderValue, StatusCode, header};
use warp::Reply;
use warp::reply::Response;

use crate::error::AppError;
use crate::http::ASSET_VERSION;

/// Renders a template into a response with the given status.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Result<Response, AppError> {
    let body = template.render().map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "rendering {}: {e}",
            std::any::type_name::<T>()
        ))
    })?;
    Ok(html(status, body))
}

pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = warp::reply::with_status(warp::reply::html(body), status).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The portal's "try again in a minute" page, outside any layout and in the visitor's language,
/// for when not even the storefront could be looked up (its language is then unknown too).
pub fn plain_unavailable(lang: &crate::i18n::Lang) -> Response {
    let escape = |s: String| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let heading = escape(lang.msg("portal-unavailable-heading"));
    let message = escape(lang.msg("portal-unavailable"));
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{heading}</title><link rel=\"stylesheet\" href=\"/static/app.css?v={}\"></head><body><main class=\"wrap\"><section class=\"card narrow\"><h1>{heading}</h1><p>{message}</p></section></main></body></html>",
            lang.tag(),
            ASSET_VERSION.as_str(),
        ),
    )
}

/// A page with the status's name and a message, outside any site's layout.
pub fn plain_error(status: StatusCode, message: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"stylesheet\" href=\"/static/app.css?v={}\"></head><body><main class=\"wrap\"><section class=\"card narrow\"><h1>{}</h1><p>{}</p></section></main></body></html>",
            status.canonical_reason().unwrap_or("Error"),
            ASSET_VERSION.as_str(),
            status.canonical_reason().unwrap_or("Error"),
            message
        ),
    )
}

pub fn not_found_page() -> Response {
    plain_error(
        StatusCode::NOT_FOUND,
        "There is no page here. Check the address, or use the Customer portal link on your rental company's website.",
    )
}
