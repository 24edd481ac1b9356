//! The operator console under `/console`: its routes and their dispatch, and what every console
//! page shares (the layout, the signed-in staff member, the storefront a page is about, role
//! checks). Staff sign in by magic link through the frame ([`sign_in`]: their own links,
//! sessions and cookies); the pages are the storefronts ([`storefronts`]), the facility Emails
//! tab ([`emails`]), customer records with **Resend the portal link** ([`customers`]), the
//! support tools ([`support`]), the Suppressions page ([`suppressions`]), the Webhooks pages
//! ([`webhooks`]) and the audit log ([`audit`]). Another storefront's pages answer
//! 404; a role without the right answers 403.

mod audit;
mod customers;
mod emails;
mod sign_in;
mod storefronts;
mod support;
mod suppressions;
mod webhooks;

use std::sync::Arc;

use askama::Template;
use http::{HeaderValue, StatusCode, header};
use warp::Filter;
use warp::reply::Response;

use super::HttpState;
use super::frame::{Body, FORM_LIMIT, Form, Frame, RequestInfo, body, landing, raw_query};
use crate::links;
use crate::store::{Role, StaffUser, Storefront};

/// Where the console's links start.
const BASE: &str = "/console";

/// The console's routes, matched before anything is looked up.
pub enum ConsoleRoute {
    Home,
    SignInPage(String),
    SignIn(Body),
    LinkSent,
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
    Suppressions(String, String),
    Lift(String, i64, Body),
    Webhooks(String, String),
    AddWebhook(String, Body),
    Webhook(String, i64, String),
    WebhookAction(String, i64, webhooks::EndpointAction, Body),
    /// A request no page took: 404 inside the console's layout, with a way back.
    NotFound,
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
    let link_sent = warp::path!("sign-in" / "sent")
        .and(get())
        .map(|| ConsoleRoute::LinkSent);
    let auth_page = warp::path(links::AUTH)
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(get())
        .map(ConsoleRoute::AuthPage);
    let auth = warp::path(links::AUTH)
        .and(warp::path::param::<String>())
        .and(warp::path::end())
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
    let suppressions_page = warp::path!("s" / String / "suppressions")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Suppressions);
    let lift = warp::path!("s" / String / "suppressions" / i64 / "lift")
        .and(post())
        .map(ConsoleRoute::Lift);
    let webhooks_page = warp::path!("s" / String / "webhooks")
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Webhooks);
    let add_webhook = warp::path!("s" / String / "webhooks")
        .and(post())
        .map(ConsoleRoute::AddWebhook);
    let webhook = warp::path!("s" / String / "webhooks" / i64)
        .and(get())
        .and(raw_query())
        .map(ConsoleRoute::Webhook);
    let webhook_action = warp::path!("s" / String / "webhooks" / i64 / String)
        .and_then(|slug, id, action: String| async move {
            match webhooks::EndpointAction::parse(&action) {
                Some(action) => Ok((slug, id, action)),
                None => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
        .and(post())
        .map(ConsoleRoute::WebhookAction);
    let storefront_audit = warp::path!("s" / String / "audit")
        .and(get())
        .map(|slug| ConsoleRoute::Audit(Some(slug)));
    let signing = home
        .or(sign_in_page)
        .unify()
        .or(sign_in)
        .unify()
        .or(link_sent)
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
        .or(suppressions_page)
        .unify()
        .or(lift)
        .unify()
        .boxed();
    let webhook_pages = webhooks_page
        .or(add_webhook)
        .unify()
        .or(webhook)
        .unify()
        .or(webhook_action)
        .unify()
        .boxed();
    let unknown =
        warp::path::tail().and_then(|_| async { Ok::<_, warp::Rejection>(ConsoleRoute::NotFound) });
    signing
        .or(pages)
        .unify()
        .or(webhook_pages)
        .unify()
        .or(unknown)
        .unify()
}

/// Runs a console route. Nothing the console answers is cached.
pub async fn dispatch(route: ConsoleRoute, state: Arc<HttpState>, info: RequestInfo) -> Response {
    let mut console = Frame::new(state, info, BASE.to_string(), ConsoleSite::default());
    let c = &mut console;
    let resp = match route {
        ConsoleRoute::Home => storefronts::home(c).await,
        ConsoleRoute::SignInPage(q) => landing::sign_in_page(c, &q),
        ConsoleRoute::SignIn(body) => landing::request_link(c, body).await,
        ConsoleRoute::LinkSent => landing::link_sent(c),
        ConsoleRoute::AuthPage(token) => landing::landing(c, &token).await,
        ConsoleRoute::Auth(token, body) => landing::redeem(c, &token, body).await,
        ConsoleRoute::SignOut(body) => landing::sign_out(c, body).await,
        ConsoleRoute::Storefront(slug, q) => storefronts::storefront(c, &slug, &q).await,
        ConsoleRoute::Emails(slug, facility, q) => emails::emails(c, &slug, facility, &q).await,
        ConsoleRoute::Delivery(slug, id) => emails::delivery(c, &slug, id).await,
        ConsoleRoute::Statuses(slug, q) => emails::statuses(c, &slug, &q).await,
        ConsoleRoute::Customer(slug, id, q) => customers::customer(c, &slug, id, &q).await,
        ConsoleRoute::Resend(slug, id, body) => customers::resend(c, &slug, id, body).await,
        ConsoleRoute::Link(slug, id, body) => support::link(c, &slug, id, body).await,
        ConsoleRoute::Merge(slug, id, body) => support::merge(c, &slug, id, body).await,
        ConsoleRoute::Audit(slug) => audit::audit(c, slug.as_deref()).await,
        ConsoleRoute::Suppressions(slug, q) => suppressions::page(c, &slug, &q).await,
        ConsoleRoute::Lift(slug, id, body) => suppressions::lift(c, &slug, id, body).await,
        ConsoleRoute::Webhooks(slug, q) => webhooks::page(c, &slug, &q).await,
        ConsoleRoute::AddWebhook(slug, body) => webhooks::create(c, &slug, body).await,
        ConsoleRoute::Webhook(slug, id, q) => webhooks::endpoint(c, &slug, id, &q).await,
        ConsoleRoute::WebhookAction(slug, id, action, body) => {
            webhooks::act(c, &slug, id, action, body).await
        }
        ConsoleRoute::NotFound => c.not_found(),
    };
    let mut resp = console.finish(resp);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One console request.
pub type Console = Frame<ConsoleSite>;

/// What the console's layout shows once a page has looked it up.
#[derive(Default)]
pub struct ConsoleSite {
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

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    c: ConsoleCommon,
    heading: String,
    message: String,
    link: Option<(String, String)>,
}

impl Console {
    fn common(&mut self) -> ConsoleCommon {
        ConsoleCommon {
            console_name: self.state.svc.config.console_from_name.clone(),
            asset_version: super::ASSET_VERSION.as_str(),
            csrf: self.csrf_token(),
            staff: self
                .site
                .staff
                .as_ref()
                .map(|s| format!("{} ({})", s.full_name, s.role.as_str())),
            storefront: self
                .site
                .storefront
                .as_ref()
                .map(|sf| (sf.slug.clone(), sf.name.clone())),
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

    /// The signed-in staff member (shown in the layout from now on), or the redirect to the
    /// console's sign-in.
    async fn staff(&mut self) -> Result<StaffUser, Response> {
        let staff = self.signed_in("").await?;
        self.site.staff = Some(staff.clone());
        Ok(staff)
    }

    /// A storefront the signed-in staff member may see (404 otherwise).
    async fn storefront(&mut self, slug: &str) -> Result<(StaffUser, Arc<Storefront>), Response> {
        let staff = self.staff().await?;
        match self.state.svc.storefronts.by_slug(slug).await {
            Ok(Some(sf)) if staff.sees(sf.id) => {
                self.site.storefront = Some(sf.clone());
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
        let form = self.read_form(body).map_err(|resp| *resp)?;
        let (staff, sf) = self.storefront(slug).await?;
        if !allowed(staff.role) {
            return Err(self.forbidden());
        }
        Ok((form, staff, sf))
    }
}
