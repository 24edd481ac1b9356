//! `PUT /rentals/{ref}/agreement`: a rental's signed agreement, the raw PDF, which customers
//! download from the portal.

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use warp::reply::Response;

use super::upserted;
use crate::http::HttpState;
use crate::http::api::body::{PDF_LIMIT, RawBody};
use crate::http::api::error_doc::{self, Internal, TooLarge, Unauthorized, Unavailable};
use crate::http::api::fields::{ExternalRef, FileName, is_ref};
use crate::http::api::input::parse_query;
use crate::http::api::{ApiError, Caller, no_rental};
use crate::store::AgreementRecord;
use crate::usecases::records;

/// The body: a PDF document.
pub struct Pdf;

impl PartialSchema for Pdf {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/pdf")
            .into()
    }
}

impl ToSchema for Pdf {}

/// A rental's agreement as stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Agreement)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// The rental's reference.
    #[schema(value_type = ExternalRef)]
    rental: String,
    rental_id: i64,
    /// The name customers download it as.
    file_name: String,
    /// Bytes.
    #[schema(minimum = 0)]
    size: i64,
}

impl From<&AgreementRecord> for View {
    fn from(a: &AgreementRecord) -> Self {
        Self {
            rental: a.rental_ref.clone(),
            rental_id: a.rental_id,
            file_name: a.file_name.clone(),
            size: a.size,
        }
    }
}

/// The file name in the query, or the default one.
fn file_name(query: &str, rental_ref: &str) -> Result<FileName, ApiError> {
    let q = parse_query(query, &["file_name"])?;
    match q.get("file_name") {
        None => Ok(FileName::default_for(rental_ref)),
        Some(name) => {
            FileName::parse(name).ok_or_else(|| ApiError::field("file_name", FileName::RULE))
        }
    }
}

/// The operation's description, with the limit the body reading uses.
fn description() -> String {
    format!(
        "The raw PDF as the body (`Content-Type: application/pdf`, starting with `%PDF-`, at most {} MiB). Replaces an earlier agreement of the rental. Customers download it from the portal.",
        PDF_LIMIT / (1024 * 1024)
    )
}

/// Store a rental's signed agreement
#[utoipa::path(
    put,
    description = description(),
    path = "/rentals/{ref}/agreement",
    operation_id = "putRentalAgreement",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path, description = "The rental's reference.", example = "RNT-MR-C22"),
        ("file_name" = inline(Option<FileName>), Query,
            description = "The name customers download it as: letters, digits, `-`, `_`, `.`, ending in `.pdf`. Default `agreement-{ref}.pdf`.",
            example = "agreement-C22.pdf"),
    ),
    request_body(
        content = inline(Pdf),
        content_type = "application/pdf",
        example = json!("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"),
    ),
    responses(
        (status = 200, description = "Replaced the rental's agreement.", body = View),
        (status = 201, description = "Stored the rental's first agreement.", body = View),
        (status = 400, description = "The body was not sent as `Content-Type: application/pdf`.", body = inline(error_doc::BadContentType)),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no rental with this reference.", body = inline(error_doc::NotFound)),
        (status = 413, response = TooLarge),
        (status = 422, description = "The body is not a PDF (`fields.body`) or the file name breaks the rule (`fields.file_name`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn put(
    state: &HttpState,
    caller: &Caller,
    rental_ref: &str,
    query: &str,
    body: RawBody,
) -> Result<Response, ApiError> {
    let name = match file_name(query, rental_ref) {
        Ok(name) if is_ref(rental_ref) => name,
        Ok(_) => {
            body.discard().await;
            return Err(no_rental(rental_ref));
        }
        Err(e) => {
            body.discard().await;
            return Err(e);
        }
    };
    let pdf = body.pdf().await?;
    let stored = records::put_agreement(
        &state.svc,
        caller.storefront.id,
        rental_ref,
        name.as_str(),
        &pdf,
    )
    .await?
    .ok_or_else(|| no_rental(rental_ref))?;
    Ok(upserted::<_, View>(stored))
}
