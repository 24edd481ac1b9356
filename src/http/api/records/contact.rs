//! `PUT /contacts/{ref}`: the operator's customer record at one facility; `GET` of it and of
//! `/contacts`: read back, with the portal account it is linked to.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;

use http::StatusCode;

use super::{Named, finish, path_ref};
use crate::domain::EmailAddress;
use crate::http::HttpState;
use crate::http::api::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use crate::http::api::fields::{ExternalRef, PersonName, Phone, Timestamp};
use crate::http::api::input::{Object, Problems, Request};
use crate::http::api::paging::{PageQuery, api_page};
use crate::http::api::{ApiError, Caller, json_response, opt_text};
use crate::store::{ContactFields, ContactRecord};
use crate::usecases::records;

/// Your customer record at one facility. An upsert never links or unlinks the contact's portal account.
#[derive(ToSchema)]
#[schema(as = ContactInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The facility's reference.
    facility: ExternalRef,
    full_name: PersonName,
    email: Option<EmailAddress>,
    phone: Option<Phone>,
}

impl Request for Input {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let facility = o.required("facility", p);
        let full_name = o.required("full_name", p);
        let email = o.optional("email", p);
        let phone = o.optional("phone", p);
        Some(Self {
            facility: facility?,
            full_name: full_name?,
            email,
            phone,
        })
    }
}

/// A contact as stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Contact)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    /// Your reference.
    #[schema(value_type = ExternalRef)]
    r#ref: String,
    /// The facility's reference.
    #[schema(value_type = ExternalRef)]
    facility: String,
    full_name: String,
    #[schema(required = true)]
    email: Option<String>,
    #[schema(required = true)]
    phone: Option<String>,
    /// The portal account the contact is linked to.
    #[schema(required = true)]
    account_id: Option<i64>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<&ContactRecord> for View {
    fn from(c: &ContactRecord) -> Self {
        Self {
            id: c.id,
            r#ref: c.external_ref.clone(),
            facility: c.fields.facility_ref.clone(),
            full_name: c.fields.full_name.clone(),
            email: opt_text(&c.fields.email),
            phone: opt_text(&c.fields.phone),
            account_id: c.account_id,
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
        }
    }
}

/// Create or replace a contact
///
/// Idempotent by your reference. `unknown_facility` when `facility` names no facility of your storefront. The contact's link to a portal account (`account_id`) is never changed by an upsert.
#[utoipa::path(
    put,
    path = "/contacts/{ref}",
    operation_id = "putContact",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("contact"),
            example = "CON-DT-1003"),
    ),
    request_body(
        content = Input,
        content_type = "application/json",
        example = json!({
            "facility": "FAC-DT",
            "full_name": "Jordan Lee",
            "email": "jordan.lee@example.com",
            "phone": "+1 207-555-0199"
        }),
    ),
    responses(
        (status = 200, description = "Replaced: the contact existed; same id as before.", body = View),
        (status = 201, description = "Created: the first PUT of this reference.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 422, description = "Invalid fields (see `fields`), or a reference in the body that names nothing of your storefront.", body = inline(error_doc::InvalidOrUnknownFacility)),
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
    let fields = ContactFields {
        facility_ref: input.facility.into_string(),
        full_name: input.full_name.into_string(),
        email: input.email.map(|e| e.to_string()).unwrap_or_default(),
        phone: input.phone.map(Phone::into_string).unwrap_or_default(),
    };
    let named = Named {
        facility: &fields.facility_ref,
        ..Named::default()
    };
    let upsert = records::put_contact(&state.svc, caller.storefront.id, ext_ref, &fields);
    finish::<_, View>(upsert, named).await
}

api_page! {
    /// A page of contacts.
    Page = ContactPage of View from ContactRecord
}

/// List contacts
///
/// Every contact of your storefront, newest first, a page at a time: pass `next` as `before` for the next page. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/contacts",
    operation_id = "listContacts",
    tag = "Records",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of contacts.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page = records::contacts_page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read a contact
///
/// As the last PUT left it, with `account_id`: the portal account it is linked to (by sign-up or by support), or null.
#[utoipa::path(
    get,
    path = "/contacts/{ref}",
    operation_id = "getContact",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("contact"),
            example = "CON-DT-1001"),
    ),
    responses(
        (status = 200, description = "The contact.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no contact with this reference.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller, ext_ref: &str) -> Result<Response, ApiError> {
    let record = match super::read_ref(ext_ref) {
        Some(r) => records::contact_record(&state.svc, caller.storefront.id, r).await?,
        None => None,
    };
    super::found::<_, View>(record, "contact", ext_ref)
}
