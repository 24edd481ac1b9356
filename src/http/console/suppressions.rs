//! A storefront's Suppressions page: the addresses that get no more email after a hard bounce
//! or a spam complaint, with **Lift** for owners, managers and support (audited). A customer's
//! record shows its address's suppression with the same button.

use askama::Template;
use http::StatusCode;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::http::frame::{Body, Form, see_other};
use crate::store::{Role, Suppression};
use crate::usecases::support::Actor;
use crate::usecases::suppressions;

const PAGE: i64 = 50;

/// A suppression as the console lists it.
pub(super) struct SuppressionRow {
    pub id: i64,
    pub email: String,
    pub reason: &'static str,
    pub detail: String,
    pub since: String,
    pub delivery_id: Option<i64>,
}

pub(super) fn suppression_row(s: &Suppression) -> SuppressionRow {
    SuppressionRow {
        id: s.id,
        email: s.email.to_string(),
        reason: s.reason.describe(),
        detail: s.detail.clone(),
        since: crate::display::day(s.created_at),
        delivery_id: s.delivery_id,
    }
}

#[derive(Template)]
#[template(path = "console/suppressions.html")]
struct SuppressionsPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    rows: Vec<SuppressionRow>,
    can_lift: bool,
    notice: Option<String>,
    next: Option<i64>,
}

/// `GET /console/s/{slug}/suppressions` (`?before=` pages on, `?lifted=` names what was lifted).
pub(super) async fn page(c: &mut Console, slug: &str, query: &str) -> Response {
    let (staff, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let before = q.get("before").and_then(|v| v.parse::<i64>().ok());
    let list = match suppressions::page(&c.state.svc, sf.id, before, PAGE).await {
        Ok(list) => list,
        Err(e) => return c.failed(&e),
    };
    let page = SuppressionsPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        rows: list.items.iter().map(suppression_row).collect(),
        can_lift: staff.role.can_resend(),
        notice: q
            .get("lifted")
            .map(|email| format!("{email} gets email again.")),
        next: list.next,
    };
    c.page(StatusCode::OK, &page)
}

/// `POST /console/s/{slug}/suppressions/{id}/lift`: back to the customer's record when the form
/// came from there (`account_id`), else to the Suppressions page.
pub(super) async fn lift(c: &mut Console, slug: &str, id: i64, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_resend).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let account = form
        .get("account_id")
        .and_then(|v| v.trim().parse::<i64>().ok());
    match suppressions::lift(&c.state.svc, sf.id, id, Actor::Staff(&staff)).await {
        Ok(Some(lifted)) => match account {
            Some(account) => see_other(&format!(
                "/console/s/{}/customers/{account}?done=lifted",
                sf.slug
            )),
            None => see_other(&format!(
                "/console/s/{}/suppressions?lifted={}",
                sf.slug,
                percent_encoding::utf8_percent_encode(
                    lifted.email.as_str(),
                    percent_encoding::NON_ALPHANUMERIC
                )
            )),
        },
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e),
    }
}
