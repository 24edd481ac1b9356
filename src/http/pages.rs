//! Server-rendered pages (askama) and the response helpers around them.

use askama::Template;
use http::{HeaderValue, StatusCode, header};
use warp::Reply;
use warp::reply::Response;

use super::context::Portal;
use crate::error::AppError;

/// What every portal page's layout needs.
pub struct PageCommon {
    pub storefront_name: String,
    pub base: String,
    pub signed_in: bool,
    pub csrf: String,
    pub asset_version: &'static str,
    /// Which nav item is current.
    pub section: &'static str,
    /// (section, path, label) of the signed-in navigation after Dashboard.
    pub extra_nav: Vec<(&'static str, &'static str, &'static str)>,
}

impl PageCommon {
    pub fn new(portal: &mut Portal, signed_in: bool, section: &'static str) -> Self {
        Self {
            storefront_name: portal.storefront.name.clone(),
            base: portal.base.clone(),
            signed_in,
            csrf: portal.csrf_token(),
            asset_version: super::ASSET_VERSION.as_str(),
            section,
            extra_nav: super::SIGNED_IN_NAV.to_vec(),
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub page: PageCommon,
    pub email: String,
    pub error: Option<String>,
    pub next: Option<String>,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "check_email.html")]
pub struct CheckEmailPage {
    pub page: PageCommon,
    pub email: String,
    pub minutes: u32,
}

#[derive(Template)]
#[template(path = "auth_landing.html")]
pub struct AuthLandingPage {
    pub page: PageCommon,
    pub action: String,
}

#[derive(Template)]
#[template(path = "link_expired.html")]
pub struct LinkExpiredPage {
    pub page: PageCommon,
    pub minutes: u32,
    pub email: String,
    pub error: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub page: PageCommon,
    pub heading: String,
    pub message: String,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub asset_version: &'static str,
}

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

/// A branded error page for the storefront.
pub fn error_page(
    portal: &mut Portal,
    status: StatusCode,
    heading: &str,
    message: &str,
    link: Option<(String, String)>,
) -> Response {
    let page = ErrorPage {
        page: PageCommon::new(portal, false, ""),
        heading: heading.to_string(),
        message: message.to_string(),
        link,
    };
    let resp = render(status, &page).unwrap_or_else(|_| html(status, message.to_string()));
    portal.finish(resp)
}

/// What the customer sees when something unexpected happened; the details go to the log.
pub fn app_error_page(portal: &mut Portal, e: &AppError) -> Response {
    match e {
        AppError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "dependency unavailable");
            error_page(
                portal,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a minute",
                "We could not complete that just now. Nothing was changed. Please try again in a minute.",
                None,
            )
        }
        AppError::Internal(err) => {
            tracing::error!(error = ?err, "request failed");
            error_page(
                portal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. Nothing was changed. Please try again.",
                None,
            )
        }
    }
}
