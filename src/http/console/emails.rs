//! A facility's Emails tab (every delivery with its status, filtered and paged), a delivery's
//! detail with every attempt, and the JSON of live statuses the tab polls.

use askama::Template;
use http::StatusCode;
use warp::Reply;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::display;
use crate::http::frame::Form;
use crate::store::{Delivery, DeliveryFilter, DeliveryStatus};
use crate::usecases::deliveries;

const PAGE_SIZE: i64 = 50;

/// A delivery as the console shows it.
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) time: String,
    pub(super) recipient: String,
    pub(super) kind: String,
    pub(super) subject: String,
    pub(super) status: &'static str,
    pub(super) attempts: i64,
    pub(super) last_error: String,
    pub(super) sent: String,
}

pub(super) fn row(d: &Delivery) -> Row {
    Row {
        id: d.id,
        time: display::timestamp(d.created_at),
        recipient: d.recipient.to_string(),
        kind: d.kind.replace('_', " "),
        subject: d.subject.clone(),
        status: d.status.as_str(),
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        sent: d
            .sent_at
            .map(display::timestamp)
            .unwrap_or_else(|| "not yet".into()),
    }
}

#[derive(Template)]
#[template(path = "console/emails.html")]
struct EmailsPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    facility: String,
    statuses: Vec<String>,
    status: String,
    recipient: String,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    d: Row,
    attempts: Vec<(i64, String, String, String, String, String, String)>,
}

/// `GET /console/s/{slug}/facilities/{id}/emails`: filtered by `?status=` and `?recipient=` (a
/// whole address, or part of one), paged by `?before=`.
pub(super) async fn emails(c: &mut Console, slug: &str, facility_id: i64, query: &str) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let status = q.get("status").unwrap_or("").to_string();
    let recipient = q.get("recipient").unwrap_or("").trim().to_string();
    // A whole address reads the recipient index (a page costs the same however many emails the
    // facility has); part of one is matched in the tab's scan windows, slower when it is rare.
    let whole = crate::domain::EmailAddress::parse(&recipient).is_ok();
    let filter = DeliveryFilter {
        status: DeliveryStatus::parse(&status),
        recipient: whole.then(|| recipient.clone()),
        recipient_contains: (!whole && !recipient.is_empty()).then(|| recipient.clone()),
    };
    let before = q.get("before").and_then(|b| b.parse::<i64>().ok());
    let loaded =
        deliveries::facility_page(&c.state.svc, sf.id, facility_id, &filter, before, PAGE_SIZE)
            .await;
    let (facility, page) = match loaded {
        Ok(Some(x)) => x,
        Ok(None) => return c.not_found(),
        Err(e) => return c.failed(&e),
    };
    let next = page.next.map(|cursor| {
        let mut url = url::Url::parse("http://x/").expect("a URL");
        {
            let mut pairs = url.query_pairs_mut();
            if filter.status.is_some() {
                pairs.append_pair("status", &status);
            }
            if !recipient.is_empty() {
                pairs.append_pair("recipient", &recipient);
            }
            pairs.append_pair("before", &cursor.to_string());
        }
        format!("?{}", url.query().unwrap_or_default())
    });
    let view = EmailsPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        facility: facility.name,
        statuses: DeliveryStatus::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        status: filter
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        recipient,
        rows: page.deliveries.iter().map(row).collect(),
        next,
    };
    c.page(StatusCode::OK, &view)
}

/// `GET /console/s/{slug}/deliveries/{id}`: one delivery and its attempts.
pub(super) async fn delivery(c: &mut Console, slug: &str, id: i64) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match deliveries::detail(&c.state.svc, sf.id, id).await {
        Ok(Some((d, attempts))) => {
            let page = DeliveryPage {
                c: c.common(),
                slug: sf.slug.clone(),
                storefront: sf.name.clone(),
                d: row(&d),
                attempts: attempts
                    .into_iter()
                    .map(|a| {
                        (
                            a.attempt,
                            display::timestamp(a.started_at),
                            display::timestamp(a.finished_at),
                            a.outcome,
                            a.smtp_code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "none".into()),
                            a.detail,
                            a.worker,
                        )
                    })
                    .collect(),
            };
            c.page(StatusCode::OK, &page)
        }
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e),
    }
}

/// JSON for the Emails tab's live updates: `?ids=1,2,3` (of this storefront only).
pub(super) async fn statuses(c: &mut Console, slug: &str, query: &str) -> Response {
    let (_, sf) = match c.storefront(slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let ids: Vec<i64> = q
        .get("ids")
        .unwrap_or("")
        .split(',')
        .filter_map(|i| i.trim().parse().ok())
        .take(100)
        .collect();
    match deliveries::statuses(&c.state.svc, sf.id, &ids).await {
        Ok(list) => warp::reply::json(
            &list
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "id": d.id,
                        "status": d.status.as_str(),
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => c.failed(&e),
    }
}
