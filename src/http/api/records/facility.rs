//! `PUT /facilities/{ref}`: a facility, as customers see it in the portal; `GET` of it and of
//! `/facilities`: read back.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;

use http::StatusCode;

use super::{path_ref, upserted};
use crate::domain::EmailAddress;
use crate::http::HttpState;
use crate::http::api::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use crate::http::api::fields::{Address, ExternalRef, Phone, Timestamp, Title};
use crate::http::api::input::{Object, Problems, Request};
use crate::http::api::paging::{PageQuery, api_page};
use crate::http::api::{ApiError, Caller, json_response, opt_text};
use crate::store::{FacilityFields, FacilityRecord};
use crate::usecases::records;

/// A facility. A PUT replaces every field: a field left out is cleared.
#[derive(ToSchema)]
#[schema(as = FacilityInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Shown to customers.
    name: Title,
    address: Option<Address>,
    phone: Option<Phone>,
    email: Option<EmailAddress>,
}

impl Request for Input {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let name = o.required("name", p);
        let address = o.optional("address", p);
        let phone = o.optional("phone", p);
        let email = o.optional("email", p);
        Some(Self {
            name: name?,
            address,
            phone,
            email,
        })
    }
}

/// A facility as stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Facility)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    /// Your reference.
    #[schema(value_type = ExternalRef)]
    r#ref: String,
    name: String,
    #[schema(required = true)]
    address: Option<String>,
    #[schema(required = true)]
    phone: Option<String>,
    #[schema(required = true)]
    email: Option<String>,
    /// When it was created.
    created_at: Timestamp,
    /// When it last changed.
    updated_at: Timestamp,
}

impl From<&FacilityRecord> for View {
    fn from(f: &FacilityRecord) -> Self {
        Self {
            id: f.id,
            r#ref: f.external_ref.clone(),
            name: f.fields.name.clone(),
            address: opt_text(&f.fields.address),
            phone: opt_text(&f.fields.phone),
            email: opt_text(&f.fields.email),
            created_at: f.created_at.into(),
            updated_at: f.updated_at.into(),
        }
    }
}

/// Create or replace a facility
///
/// Idempotent by your reference: the first PUT creates (201), the same PUT again replaces (200) and keeps the id.
#[utoipa::path(
    put,
    path = "/facilities/{ref}",
    operation_id = "putFacility",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("facility"),
            example = "FAC-NORTH"),
    ),
    request_body(
        content = Input,
        content_type = "application/json",
        example = json!({
            "name": "Harborview Self Storage, North",
            "address": "88 Forest Avenue, Portland, ME 04103",
            "phone": "+1 207-555-0190",
            "email": "north@harborview.example"
        }),
    ),
    responses(
        (status = 200, description = "Replaced: the facility existed; same id as before.", body = View),
        (status = 201, description = "Created: the first PUT of this reference.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 422, description = "Invalid fields (see `fields`), or a reference in the body that names nothing of your storefront.", body = inline(error_doc::Invalid)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn put(
    state: &HttpState,
    caller: &Caller,
    ext_ref: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let mut p = Problems::default();
    path_ref(ext_ref, &mut p);
    let input = Input::from_body(&body, &mut p)?;
    let (Some(input), true) = (input, p.is_empty()) else {
        return Err(p.into_error());
    };
    let fields = FacilityFields {
        name: input.name.into_string(),
        address: input.address.map(Address::into_string).unwrap_or_default(),
        phone: input.phone.map(Phone::into_string).unwrap_or_default(),
        email: input.email.map(|e| e.to_string()).unwrap_or_default(),
    };
    let up = records::put_facility(&state.svc, caller.storefront.id, ext_ref, &fields).await?;
    Ok(upserted::<_, View>(up))
}

api_page! {
    /// A page of facilities.
    Page = FacilityPage of View from FacilityRecord
}

/// List facilities
///
/// Every facility of your storefront, newest first, a page at a time: pass `next` as `before` for the next page. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/facilities",
    operation_id = "listFacilities",
    tag = "Records",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of facilities.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page =
        records::facilities_page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read a facility
///
/// As the last PUT left it.
#[utoipa::path(
    get,
    path = "/facilities/{ref}",
    operation_id = "getFacility",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("facility"),
            example = "FAC-DT"),
    ),
    responses(
        (status = 200, description = "The facility.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no facility with this reference.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller, ext_ref: &str) -> Result<Response, ApiError> {
    let record = match super::read_ref(ext_ref) {
        Some(r) => records::facility_record(&state.svc, caller.storefront.id, r).await?,
        None => None,
    };
    super::found::<_, View>(record, "facility", ext_ref)
}
