//! The storefront's suppression list read back (SPEC §9): the addresses that get no more email
//! after a hard bounce or a spam complaint, a keyset-paged list of those in force and one
//! suppression by id (in force or lifted).

use http::StatusCode;
use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use warp::reply::Response;

use super::error_doc::{self, Internal, Unauthorized, Unavailable};
use super::fields::{Id, Timestamp, enum_schema, parse_id};
use super::paging::{PageQuery, api_page};
use super::{Caller, json_response};
use crate::http::HttpState;
use crate::http::api::error::ApiError;
use crate::store::{Suppression, SuppressionReason};
use crate::usecases::suppressions;

/// Why an address is on the list.
pub struct Reason;

impl PartialSchema for Reason {
    fn schema() -> RefOr<Schema> {
        let mut schema = enum_schema(
            [SuppressionReason::HardBounce, SuppressionReason::Complaint]
                .iter()
                .map(|r| r.as_str()),
        );
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            o.description = Some(
                "hard_bounce: the recipient's server answered 5.x.x (the address does not exist or cannot receive). complaint: the recipient reported an email as spam.".into(),
            );
        }
        schema
    }
}

impl ToSchema for Reason {}

/// An address of the storefront that gets no more email.
#[derive(Serialize, ToSchema)]
#[schema(as = Suppression)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    #[schema(format = "email")]
    email: String,
    #[schema(value_type = Reason)]
    reason: &'static str,
    /// The remote server's diagnostic, or the complaint's feedback type.
    detail: String,
    /// The email whose bounce or complaint put the address on the list (GET /deliveries/{id}).
    #[schema(required = true)]
    delivery_id: Option<i64>,
    created_at: Timestamp,
    /// When it was lifted (the address gets email again); null while in force.
    #[schema(required = true)]
    lifted_at: Option<Timestamp>,
    /// Who lifted it: a staff member's email, or `API key {name}`.
    #[schema(required = true)]
    lifted_by: Option<String>,
}

impl From<&Suppression> for View {
    fn from(s: &Suppression) -> Self {
        Self {
            id: s.id,
            email: s.email.to_string(),
            reason: s.reason.as_str(),
            detail: s.detail.clone(),
            delivery_id: s.delivery_id,
            created_at: s.created_at.into(),
            lifted_at: s.lifted_at.map(Timestamp::from),
            lifted_by: s.lifted_by.clone(),
        }
    }
}

api_page! {
    /// A page of suppressions in force.
    Page = SuppressionPage of View from Suppression
}

/// List suppressed addresses
///
/// The addresses of your storefront on the suppression list (in force: not lifted), newest first, a page at a time: pass `next` as `before` for the next page. Emails to them are recorded `suppressed` and not sent. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/suppressions",
    operation_id = "listSuppressions",
    tag = "Deliveries",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of suppressions in force.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page = suppressions::page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read a suppression
///
/// One suppression of your storefront, in force or lifted (`lifted_at`, `lifted_by`).
#[utoipa::path(
    get,
    path = "/suppressions/{id}",
    operation_id = "getSuppression",
    tag = "Deliveries",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The suppression's id.", example = 1),
    ),
    responses(
        (status = 200, description = "The suppression.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no suppression with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn detail(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let found = match parse_id(id) {
        Some(id) => suppressions::one(&state.svc, caller.storefront.id, id).await?,
        None => None,
    };
    let found = found.ok_or_else(|| {
        ApiError::NotFound("Your storefront has no suppression with this id.".into())
    })?;
    Ok(json_response(StatusCode::OK, &View::from(&found)))
}
