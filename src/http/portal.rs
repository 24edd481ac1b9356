//! The customer portal under `/s/{storefront}/` (or `/` on the storefront's custom host): the
//! [`PortalRoute`]s, the [`PortalSite`] that fits the frame to customers (their session and
//! device cookies scoped to the storefront, their links, the portal's pages and wording), the
//! common part of its pages, and the home page. The signed-in pages are `rentals`, `billing` and
//! `account`; `portal_routes` matches requests to routes and hands each to its page.

use std::sync::Arc;

use askama::Template;
use warp::reply::Response;

use super::frame::{Body, Frame, LinkSent, SignInForm, Site, see_other, with_cookie};
use crate::crypto::DeviceScope;
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::store::{Account, SessionInfo, Storefront};
use crate::usecases::sign_in::{self, LinkAsked, RedeemedSession};

/// A request to one storefront's portal.
pub type Portal = Frame<PortalSite>;

/// What the frame needs to know of the portal: the storefront, and the language of the
/// request's pages.
pub struct PortalSite {
    pub storefront: Arc<Storefront>,
    /// The visitor's language (SPEC §10: the switcher's cookie, else `Accept-Language`, else
    /// the storefront's), replaced by the account's once a session says whose it is.
    pub lang: Lang,
}

/// The portal's routes, matched before the storefront is looked up.
pub enum PortalRoute {
    Home,
    SignInPage(String),
    SignIn(Body),
    LinkSent,
    SignInCode(Body),
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
    /// The footer's language switcher: the language's tag and the query (`back=`).
    Language(String, String),
    /// A request no page took: 404 inside the storefront's layout, with a way back.
    NotFound,
}

/// The portal pages a sign-in may land on (and everything below them).
const LANDING_PAGES: [&str; 4] = ["/dashboard", "/billing", "/account", "/rentals"];

/// A path inside the storefront to land on after signing in, or `None` if it is not one:
/// checked after percent-decoding and dot-segment removal, as a browser would resolve it
/// (see [`crate::domain::redirect::local_path`]); the answer is the normalised path.
pub fn safe_next(next: &str) -> Option<String> {
    crate::domain::redirect::local_path(next, &LANDING_PAGES)
}

pub(super) async fn home(portal: &mut Portal) -> Response {
    match portal.session().await {
        Ok(Some(_)) => see_other(&format!("{}/dashboard", portal.base)),
        Ok(None) => see_other(&format!("{}/sign-in", portal.base)),
        Err(e) => portal.failed(&e),
    }
}

/// The signed-in navigation after Dashboard: (section, path, message id of its label).
pub const SIGNED_IN_NAV: &[(&str, &str, &str)] = &[
    ("billing", "/billing", "nav-billing"),
    ("account", "/account", "nav-account"),
];

/// A language of the footer's switcher.
pub struct LanguageLink {
    pub tag: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

/// The pages the switcher may come back to (besides those a sign-in lands on).
const SWITCH_BACK_PAGES: [&str; 2] = ["/sign-in", "/confirm-email"];

/// `GET /language/{tag}?back=/sign-in`: remembers the language in the `lk_lang` cookie and
/// goes back to the page (a page of this storefront, else its home). A GET, like any link:
/// it changes nothing but how this browser's signed-out pages read.
pub(super) fn switch_language(portal: &mut Portal, tag: &str, query: &str) -> Response {
    let Some(lang) = portal.state.svc.languages.get(tag).cloned() else {
        return portal.not_found();
    };
    let query = super::frame::Form::parse(query.as_bytes()).unwrap_or_default();
    let back = query
        .get("back")
        .and_then(|b| {
            let mut pages = LANDING_PAGES.to_vec();
            pages.extend(SWITCH_BACK_PAGES);
            crate::domain::redirect::local_path(b, &pages)
        })
        .unwrap_or_else(|| "/".to_string());
    let cookie = portal.language_cookie(lang.tag());
    with_cookie(see_other(&format!("{}{back}", portal.base)), &cookie)
}

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
    pub extra_nav: Vec<(&'static str, &'static str, String)>,
    /// The page's language: its words (`{{ page.t.msg("…") }}`), dates and amounts.
    pub t: Lang,
    /// The footer's switcher, on signed-out pages (signed in, the Account page chooses).
    pub languages: Vec<LanguageLink>,
}

impl PageCommon {
    pub fn new(portal: &mut Portal, signed_in: bool, section: &'static str) -> Self {
        let t = portal.site.lang.clone();
        let languages = if signed_in {
            vec![]
        } else {
            let here = portal
                .info
                .path
                .strip_prefix(portal.base.as_str())
                .unwrap_or("/")
                .to_string();
            let back =
                percent_encoding::utf8_percent_encode(&here, percent_encoding::NON_ALPHANUMERIC);
            let catalog = &portal.state.svc.languages;
            catalog
                .tags()
                .filter_map(|tag| catalog.get(tag))
                .map(|l| LanguageLink {
                    tag: l.tag().to_string(),
                    name: l.name(),
                    href: format!("{}/language/{}?back={back}", portal.base, l.tag()),
                    current: l.tag() == t.tag(),
                })
                .collect()
        };
        Self {
            storefront_name: portal.site.storefront.name.clone(),
            base: portal.base.clone(),
            signed_in,
            csrf: portal.csrf_token(),
            asset_version: super::ASSET_VERSION.as_str(),
            section,
            extra_nav: SIGNED_IN_NAV
                .iter()
                .map(|(section, path, id)| (*section, *path, t.msg(id)))
                .collect(),
            t,
            languages,
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    page: PageCommon,
    email: String,
    error: Option<String>,
    next: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "check_email.html")]
struct CheckEmailPage {
    page: PageCommon,
    email: String,
    minutes: u32,
    code_error: Option<String>,
}

#[derive(Template)]
#[template(path = "auth_landing.html")]
struct AuthLandingPage {
    page: PageCommon,
    action: String,
}

#[derive(Template)]
#[template(path = "link_expired.html")]
struct LinkExpiredPage {
    page: PageCommon,
    minutes: u32,
    email: String,
    error: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: PageCommon,
    heading: String,
    message: String,
    link: Option<(String, String)>,
}

#[derive(Template)]
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

impl Site for PortalSite {
    const NAME: &'static str = "portal";
    const SESSION_COOKIE: &'static str = "lk_session";
    const DEVICE_COOKIE: &'static str = "lk_device";
    const HOME: &'static str = "/dashboard";
    const LINK_COOKIE: &'static str = "lk_sign_in";
    const SIGN_IN_CODE: bool = true;
    const WORDS: &'static str = "portal";

    type Identity = SessionInfo;
    type LinkOwner = Account;

    fn lang(portal: &Portal) -> Lang {
        portal.site.lang.clone()
    }

    fn signed_in_as(portal: &mut Portal, session: &SessionInfo) {
        if let Some(tag) = &session.account.language {
            let catalog = &portal.state.svc.languages;
            portal.site.lang = catalog
                .for_account(Some(tag), &portal.site.storefront.language)
                .clone();
        }
    }

    fn cookie_path(base: &str) -> String {
        format!("{base}/")
    }

    fn device_scope(&self) -> DeviceScope {
        DeviceScope::Portal {
            storefront_id: self.storefront.id,
        }
    }

    fn safe_next(next: &str) -> Option<String> {
        safe_next(next)
    }

    fn sign_in_location(base: &str, next: &str) -> String {
        format!(
            "{base}/sign-in?next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    async fn check_session(
        portal: &Portal,
        cookie: String,
    ) -> Result<Option<SessionInfo>, AppError> {
        sign_in::session(&portal.state.svc, portal.site.storefront.id, &cookie).await
    }

    async fn end_session(portal: &Portal, cookie: String) -> Result<(), AppError> {
        sign_in::end_session(&portal.state.svc, portal.site.storefront.id, &cookie).await
    }

    async fn request_link(portal: &Portal, asked: LinkAsked) -> Result<(), AppError> {
        sign_in::request_link(&portal.state.actors, &portal.site.storefront, asked).await
    }

    async fn redeem_code(
        portal: &Portal,
        email: &EmailAddress,
        binding: Option<&[u8]>,
        code: &str,
    ) -> Result<Option<RedeemedSession>, AppError> {
        let sf = portal.site.storefront.id;
        sign_in::redeem_code(&portal.state.svc, sf, email, binding, code).await
    }

    async fn check_link(portal: &Portal, token: OpaqueToken) -> Result<bool, AppError> {
        sign_in::link_is_live(&portal.state.svc, portal.site.storefront.id, &token).await
    }

    async fn other_owner(
        portal: &Portal,
        current: &SessionInfo,
        token: &OpaqueToken,
    ) -> Result<Option<Account>, AppError> {
        let sf = portal.site.storefront.id;
        sign_in::other_link_owner(&portal.state.svc, sf, current.account.id, token).await
    }

    async fn redeem_link(
        portal: &Portal,
        token: OpaqueToken,
    ) -> Result<Option<RedeemedSession>, AppError> {
        sign_in::redeem(&portal.state.svc, portal.site.storefront.id, &token).await
    }

    fn message_page(
        portal: &mut Portal,
        heading: &str,
        message: &str,
        link: Option<(String, String)>,
    ) -> impl Template + use<> {
        ErrorPage {
            page: PageCommon::new(portal, false, ""),
            heading: heading.to_string(),
            message: message.to_string(),
            link,
        }
    }

    fn sign_in_page(portal: &mut Portal, form: SignInForm) -> impl Template + use<> {
        SignInPage {
            page: PageCommon::new(portal, false, ""),
            email: form.email,
            error: form.error,
            next: form.next,
            notice: form.notice,
        }
    }

    fn link_sent_page(portal: &mut Portal, sent: LinkSent) -> impl Template + use<> {
        CheckEmailPage {
            page: PageCommon::new(portal, false, ""),
            email: sent.email,
            minutes: portal.state.svc.config.sign_in.link_ttl_minutes,
            code_error: sent.code_error,
        }
    }

    fn landing_page(portal: &mut Portal, action: String) -> impl Template + use<> {
        AuthLandingPage {
            page: PageCommon::new(portal, false, ""),
            action,
        }
    }

    fn switch_page(
        portal: &mut Portal,
        action: String,
        current: &SessionInfo,
        owner: &Account,
    ) -> impl Template + use<> {
        let name = |a: &Account| {
            if a.full_name.trim().is_empty() {
                a.first_name()
            } else {
                a.full_name.clone()
            }
        };
        SwitchAccountPage {
            page: PageCommon::new(portal, false, ""),
            action,
            current_name: name(&current.account),
            current_first: current.account.first_name(),
            current_email: current.account.email.to_string(),
            link_name: name(owner),
            link_first: owner.first_name(),
            link_email: owner.email.masked(),
        }
    }

    fn link_expired_page(portal: &mut Portal) -> impl Template + use<> {
        LinkExpiredPage {
            page: PageCommon::new(portal, false, ""),
            minutes: portal.state.svc.config.sign_in.link_ttl_minutes,
            email: String::new(),
            error: None,
            next: None,
        }
    }
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
