//! The delivery log (every email the storefront sent), with the Emails tab's filters and
//! keyset paging, and one delivery with its attempts.

use http::StatusCode;
use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use warp::reply::Response;

use super::error_doc::{self, Internal, Unauthorized, Unavailable};
use super::fields::{
    Cursor, ExternalRef, Id, PageLimit, REF_RULE, Recipient, Timestamp, enum_schema, parse_id,
};
use super::input::{Problems, parse_query};
use super::paging;
use super::{Caller, json_response};
use crate::http::HttpState;
use crate::http::api::error::ApiError;
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryKind, DeliveryStatus};
use crate::usecases::deliveries::{self, ListScope};

/// The filters and the page of a list of deliveries.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<EmailStatus>, example = "sent")]
    status: Option<DeliveryStatus>,
    /// The whole address, without regard to case.
    #[param(value_type = Option<Recipient>, inline, example = "alex@example.com")]
    recipient: Option<String>,
    /// A facility's reference: only that facility's Emails tab. One that names no facility of your storefront is a 422 `unknown_facility`.
    #[param(example = "FAC-DT")]
    facility: Option<ExternalRef>,
    /// The `next` cursor of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    before: Option<i64>,
    /// Page size.
    #[param(value_type = Option<PageLimit>, inline, example = 20)]
    limit: i64,
}

impl ListQuery {
    /// The parameters, in the order the document lists them.
    const NAMES: [&str; 5] = ["status", "recipient", "facility", "before", "limit"];

    fn parse(query: &str) -> Result<Self, ApiError> {
        let q = parse_query(query, &Self::NAMES)?;
        let mut p = Problems::default();
        let status = q.get("status").and_then(|s| {
            let parsed = DeliveryStatus::parse(s);
            if parsed.is_none() {
                let all: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
                p.add("status", format!("Must be one of: {}.", all.join(", ")));
            }
            parsed
        });
        let recipient = match q.get("recipient").map(Recipient::parse) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(r))) => Some(r.to_string()),
            Some(Err(rule)) => {
                p.add("recipient", rule);
                None
            }
        };
        let facility = q.get("facility").and_then(|f| {
            let parsed = ExternalRef::parse(f);
            if parsed.is_none() {
                p.add("facility", REF_RULE);
            }
            parsed
        });
        let before = paging::before(&q, &mut p);
        let limit = paging::limit(&q, &mut p);
        if !p.is_empty() {
            return Err(p.into_error());
        }
        Ok(Self {
            status,
            recipient,
            facility,
            before,
            limit,
        })
    }
}

/// Where an email stands.
pub struct EmailStatus;

impl PartialSchema for EmailStatus {
    fn schema() -> RefOr<Schema> {
        let mut schema = enum_schema(DeliveryStatus::ALL.iter().map(|s| s.as_str()));
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            o.description = Some(
                "queued → sending → sent; deferred (retried later), failed (with last_error), suppressed (not sent: over the customer's link limit, or the address is on the suppression list, see GET /suppressions). After sent: bounced (the recipient's server answered 5.x.x; last_error is its diagnostic) or complained (reported as spam); both put the address on the suppression list.".into(),
            );
        }
        schema
    }
}

impl ToSchema for EmailStatus {}

/// What an email is.
pub struct EmailKind;

impl EmailKind {
    /// Every kind (the match makes a new kind a compile error here, so the document lists it).
    fn all() -> Vec<&'static str> {
        use DeliveryKind::*;
        [
            SignIn,
            BookingConfirmation,
            StaffSignIn,
            EmailChanged,
            PaymentReceipt,
            PaymentFailed,
            ConfirmEmail,
            WebhookDisabled,
        ]
        .into_iter()
        .map(|kind| match kind {
            SignIn | BookingConfirmation | StaffSignIn | EmailChanged | PaymentReceipt
            | PaymentFailed | ConfirmEmail | WebhookDisabled => kind.as_str(),
        })
        .collect()
    }
}

impl PartialSchema for EmailKind {
    fn schema() -> RefOr<Schema> {
        enum_schema(Self::all())
    }
}

impl ToSchema for EmailKind {}

/// How one try at sending ended.
pub struct AttemptOutcome;

impl PartialSchema for AttemptOutcome {
    fn schema() -> RefOr<Schema> {
        enum_schema(["sent", "deferred", "failed"])
    }
}

impl ToSchema for AttemptOutcome {}

/// One email.
#[derive(Serialize, ToSchema)]
#[schema(as = Delivery)]
#[serde(deny_unknown_fields)]
pub struct DeliveryView {
    id: i64,
    #[schema(value_type = EmailKind)]
    kind: String,
    recipient: String,
    subject: String,
    #[schema(value_type = EmailStatus)]
    status: &'static str,
    /// How many times sending was tried.
    #[schema(minimum = 0)]
    attempts: i64,
    #[schema(required = true)]
    last_error: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[schema(required = true)]
    sent_at: Option<Timestamp>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            kind: d.kind.clone(),
            recipient: d.recipient.to_string(),
            subject: d.subject.clone(),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            created_at: d.created_at.into(),
            updated_at: d.updated_at.into(),
            sent_at: d.sent_at.map(Timestamp::from),
        }
    }
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryPage)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Newest first.
    data: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; null at the end. A page may hold fewer than `limit` deliveries and still have a `next`.
    #[schema(required = true)]
    next: Option<String>,
}

/// One try at sending an email.
#[derive(Serialize, ToSchema)]
#[schema(as = Attempt)]
#[serde(deny_unknown_fields)]
pub struct AttemptView {
    #[schema(minimum = 1)]
    attempt: i64,
    started_at: Timestamp,
    finished_at: Timestamp,
    #[schema(value_type = AttemptOutcome)]
    outcome: String,
    /// The SMTP server's reply code.
    #[schema(required = true)]
    smtp_code: Option<i64>,
    /// The SMTP server's reply or the error.
    detail: String,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at.into(),
            finished_at: a.finished_at.into(),
            outcome: a.outcome.clone(),
            smtp_code: a.smtp_code,
            detail: a.detail.clone(),
        }
    }
}

/// One email with every try at sending it.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryDetail)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    delivery: DeliveryView,
    /// Every try at sending it, in order.
    attempts: Vec<AttemptView>,
}

/// List emails sent (the Emails tab)
///
/// Every email of your storefront, newest first, with the console Emails tab's filters and keyset paging: pass `next` as `before` for the next page. Unknown parameters are refused (422), so a typo never widens a filter.
#[utoipa::path(
    get,
    path = "/deliveries",
    operation_id = "listDeliveries",
    tag = "Deliveries",
    security(("apiKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (`validation`, see `fields`), or `unknown_facility`.", body = inline(error_doc::InvalidOrUnknownFacility)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = ListQuery::parse(query)?;
    let scope = match &q.facility {
        None => ListScope::Storefront,
        Some(facility_ref) => ListScope::FacilityRef(facility_ref.as_str()),
    };
    let filter = DeliveryFilter {
        status: q.status,
        recipient: q.recipient,
        recipient_contains: None,
    };
    let sf = caller.storefront.id;
    let page = deliveries::storefront_page(&state.svc, sf, scope, &filter, q.before, q.limit)
        .await?
        .ok_or_else(|| {
            ApiError::UnknownFacility(
                q.facility
                    .as_ref()
                    .map(|f| f.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })?;
    let page = Page {
        data: page.deliveries.iter().map(DeliveryView::from).collect(),
        next: page.next.map(|n| n.to_string()),
    };
    Ok(json_response(StatusCode::OK, &page))
}

/// One email with every attempt
#[utoipa::path(
    get,
    path = "/deliveries/{id}",
    operation_id = "getDelivery",
    tag = "Deliveries",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The delivery's id.", example = 1),
    ),
    responses(
        (status = 200, description = "The delivery and its attempts.", body = Detail),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no delivery with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn detail(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("Your storefront has no delivery with this id.".into());
    let id = parse_id(id).ok_or_else(not_found)?;
    let (delivery, attempts) = deliveries::detail(&state.svc, caller.storefront.id, id)
        .await?
        .ok_or_else(not_found)?;
    let detail = Detail {
        delivery: DeliveryView::from(&delivery),
        attempts: attempts.iter().map(AttemptView::from).collect(),
    };
    Ok(json_response(StatusCode::OK, &detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::ParameterIn;

    #[test]
    fn the_parameters_read_are_the_parameters_documented() {
        let documented: Vec<String> = ListQuery::into_params(|| Some(ParameterIn::Query))
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, ListQuery::NAMES);
    }
}
