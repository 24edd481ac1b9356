//! A customer's record in the console (details, contacts, rentals, invoices, emails) and
//! **Resend the portal link**, with its cooldown.

use askama::Template;
use http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::emails::{Row, row};
use super::{Console, ConsoleCommon};
use crate::http::frame::{Body, Form, see_other};
use crate::store::Role;
use crate::usecases::records;
use crate::usecases::support::{Actor, ResendOutcome, resend_portal_link};

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    id: i64,
    name: String,
    email: String,
    phone: String,
    since: String,
    notice: Option<String>,
    can_resend: bool,
    can_support: bool,
    contacts: Vec<(i64, String, String, String)>,
    unlinked: Vec<(i64, String, String, String)>,
    rentals: Vec<(String, String, String)>,
    /// (number, amount, status, status label).
    invoices: Vec<(String, String, String, String)>,
    emails: Vec<Row>,
    /// The address's suppression in force (no email goes to it), with Lift for `can_resend`.
    suppression: Option<super::suppressions::SuppressionRow>,
}

/// `GET /console/s/{slug}/customers/{id}`, with the notice of what was just done (`?done=`).
pub(super) async fn customer(c: &mut Console, slug: &str, id: i64, query: &str) -> Response {
    let (staff, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let support = staff.role.can_support();
    let (record, unlinked) = match records::customer_record(&c.state.svc, sf.id, id, support).await
    {
        Ok(Some(x)) => x,
        Ok(None) => return c.not_found(),
        Err(e) => return c.failed(&e),
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = match q.get("done") {
        Some("resent") => Some("A new portal link is on its way to the customer.".to_string()),
        Some("linked") => Some(
            "The contact is linked: its rentals now show in the customer's portal.".to_string(),
        ),
        Some("lifted") => Some("The address gets email again.".to_string()),
        Some("merged") => Some(format!(
            "Account #{} was merged into this one.",
            q.get("merged").unwrap_or("?")
        )),
        _ => None,
    };
    let suppression = match crate::usecases::suppressions::for_address(
        &c.state.svc,
        sf.id,
        &record.account.email,
    )
    .await
    {
        Ok(s) => s.as_ref().map(super::suppressions::suppression_row),
        Err(e) => return c.failed(&e),
    };
    let contact = |k: &crate::store::ContactView| {
        (
            k.id,
            k.full_name.clone(),
            k.facility_name.clone(),
            k.external_ref.clone(),
        )
    };
    let page = CustomerPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        id: record.account.id,
        name: record.account.full_name.clone(),
        email: record.account.email.to_string(),
        phone: record.account.phone.clone(),
        since: crate::display::day(record.account.created_at),
        notice,
        can_resend: staff.role.can_resend(),
        can_support: support,
        contacts: record.contacts.iter().map(contact).collect(),
        unlinked: unlinked.iter().map(contact).collect(),
        rentals: record
            .rentals
            .iter()
            .map(|r| (r.label.clone(), r.facility_name.clone(), r.status.clone()))
            .collect(),
        invoices: record
            .invoices
            .iter()
            .map(|i| {
                let en = c.state.svc.languages.default_lang();
                let view = crate::http::rentals::invoice_view(en, i);
                (view.number, view.amount, view.status, view.status_label)
            })
            .collect(),
        emails: record.deliveries.iter().map(row).collect(),
        suppression,
    };
    c.page(StatusCode::OK, &page)
}

/// `POST /console/s/{slug}/customers/{id}/resend`: 429 with `Retry-After` within the cooldown.
pub(super) async fn resend(c: &mut Console, slug: &str, id: i64, body: Body) -> Response {
    let (_, staff, sf) = match c.action(slug, body, Role::can_resend).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let state = c.state.clone();
    match resend_portal_link(&state.svc, &state.actors, &sf, id, Actor::Staff(&staff)).await {
        Ok(ResendOutcome::Sent { .. }) => see_other(&format!(
            "/console/s/{}/customers/{id}?done=resent",
            sf.slug
        )),
        Ok(ResendOutcome::Cooldown {
            retry_after_seconds,
        }) => {
            let mut resp = c.message(
                StatusCode::TOO_MANY_REQUESTS,
                "A link was just sent",
                &format!(
                    "A portal link was resent less than {} minutes ago. Ask the customer to check their inbox and spam folder, or try again in {} seconds.",
                    (state.svc.config.resend_cooldown_seconds / 60).max(1),
                    retry_after_seconds
                ),
                Some((format!("/console/s/{}/customers/{id}", sf.slug), "Back to the customer".into())),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Ok(ResendOutcome::NoSuchAccount) => c.not_found(),
        Err(e) => c.failed(&e),
    }
}
