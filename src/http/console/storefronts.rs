//! The console's home (the storefronts a staff member sees, or straight to their own) and a
//! storefront's page: its facilities, each with its Emails tab, the customer search, and an
//! alert when its DKIM key cannot sign.

use askama::Template;
use http::StatusCode;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::http::frame::{Form, see_other};
use crate::store::Role;
use crate::usecases::{records, sender};

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
    /// The link to the next (older) page of customers, with the query kept.
    older: Option<String>,
    show_audit: bool,
    show_webhooks: bool,
    /// Why the storefront's DKIM key cannot sign (its emails fail until it is set again).
    dkim_problem: Option<String>,
}

/// `GET /console`: the storefronts this staff member sees (a storefront's own staff go straight
/// to theirs).
pub(super) async fn home(c: &mut Console) -> Response {
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
    let storefronts = match records::storefronts(&c.state.svc).await {
        Ok(list) => list.into_iter().map(|s| (s.slug, s.name)).collect(),
        Err(e) => return c.failed(&e),
    };
    let page = HomePage {
        c: c.common(),
        storefronts,
        show_audit: staff.role == Role::Support,
    };
    c.page(StatusCode::OK, &page)
}

/// Customers a page of the storefront's page lists.
const CUSTOMERS_PAGE: i64 = 50;

/// `GET /console/s/{slug}` (and `/customers`): the facilities, and the customers, newest first,
/// 50 to a page (`?before=`), only those whose name or address contains `?q=` when given.
pub(super) async fn storefront(c: &mut Console, slug: &str, query: &str) -> Response {
    let (staff, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let form = Form::parse(query.as_bytes()).unwrap_or_default();
    let q = form.get("q").unwrap_or("").trim().to_string();
    let before = form.get("before").and_then(|b| b.parse::<i64>().ok());
    let loaded = records::storefront_page(&c.state.svc, sf.id, &q, before, CUSTOMERS_PAGE).await;
    let (facilities, customers) = match loaded {
        Ok(x) => x,
        Err(e) => return c.failed(&e),
    };
    let older = customers.next.map(|cursor| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            query.append_pair("q", &q);
        }
        query.append_pair("before", &cursor.to_string());
        format!("/console/s/{}/customers?{}", sf.slug, query.finish())
    });
    let page = StorefrontPage {
        c: c.common(),
        slug: sf.slug.clone(),
        name: sf.name.clone(),
        facilities: facilities.into_iter().map(|f| (f.id, f.name)).collect(),
        searched: !q.is_empty(),
        q,
        customers: customers
            .items
            .into_iter()
            .map(|a| (a.id, a.full_name, a.email.to_string()))
            .collect(),
        older,
        show_audit: matches!(staff.role, Role::Support | Role::Owner),
        show_webhooks: staff.role.can_see_webhooks(),
        dkim_problem: sender::view(&c.state.svc.keys, &sf)
            .dkim
            .and_then(|d| d.problem),
    };
    c.page(StatusCode::OK, &page)
}
