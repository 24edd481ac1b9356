//! `PUT /invoices/{ref}`: what a contact owes; the customer may pay it through the portal.
//! `GET` of it and of `/invoices`: read back with where its payment stands (status, paid time,
//! the Stripe Checkout Session and PaymentIntent).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::reply::Response;

use http::StatusCode;

use super::{Named, finish, path_ref};
use crate::domain::Money;
use crate::http::HttpState;
use crate::http::api::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use crate::http::api::fields::{
    AmountMinor, Currency, Date, Description, ExternalRef, InvoiceNumber, InvoiceStatus,
    StoredCurrency, StoredInvoiceStatus, Timestamp,
};
use crate::http::api::input::{Object, Problems, Request};
use crate::http::api::paging::{PageQuery, api_page};
use crate::http::api::{ApiError, Caller, json_response};
use crate::store::{InvoiceFields, InvoiceRecord};
use crate::usecases::records;

/// An invoice. One already paid stays paid when a PUT says `pending` (the customer paid it through the portal), and one whose payment is `processing` (a pre-authorized debit on its way) stays so: the answer shows the stored status and `paid_at`.
#[derive(ToSchema)]
#[schema(as = InvoiceInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The billed contact's reference.
    contact: ExternalRef,
    /// A rental of the same contact.
    rental: Option<ExternalRef>,
    number: InvoiceNumber,
    description: Description,
    amount_minor: AmountMinor,
    currency: Currency,
    issued_on: Date,
    /// Not before issued_on.
    due_on: Date,
    status: InvoiceStatus,
}

impl Request for Input {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let contact = o.required("contact", p);
        let rental = o.optional("rental", p);
        let number = o.required("number", p);
        let description = o.required("description", p);
        let amount_minor = o.required("amount_minor", p);
        let currency = o.required("currency", p);
        let issued_on: Option<Date> = o.required("issued_on", p);
        let due_on: Option<Date> = o.required("due_on", p);
        if let (Some(issued), Some(due)) = (issued_on, due_on)
            && due < issued
        {
            p.add("due_on", "May not be before issued_on.");
        }
        let status = o.required("status", p);
        Some(Self {
            contact: contact?,
            rental,
            number: number?,
            description: description?,
            amount_minor: amount_minor?,
            currency: currency?,
            issued_on: issued_on?,
            due_on: due_on?,
            status: status?,
        })
    }
}

impl Input {
    fn money(&self) -> Money {
        Money::new(self.amount_minor.get(), self.currency.as_str())
            .expect("an amount and a currency that were read are money")
    }
}

/// An invoice as stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Invoice)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    /// Your reference.
    #[schema(value_type = ExternalRef)]
    r#ref: String,
    /// The contact's reference.
    #[schema(value_type = ExternalRef)]
    contact: String,
    /// The rental's reference.
    #[schema(value_type = Option<ExternalRef>, required = true)]
    rental: Option<String>,
    /// The facility's reference (the contact's).
    #[schema(value_type = ExternalRef)]
    facility: String,
    number: String,
    description: String,
    #[schema(value_type = AmountMinor)]
    amount_minor: i64,
    #[schema(value_type = StoredCurrency)]
    currency: String,
    issued_on: Date,
    due_on: Date,
    #[schema(value_type = StoredInvoiceStatus)]
    status: String,
    /// When it was paid.
    #[schema(required = true)]
    paid_at: Option<Timestamp>,
    /// The Stripe Checkout Session the customer is paying (or paid) it through in the portal; null before Pay is pressed, and again after an expired Checkout or a failed debit.
    #[schema(required = true, example = "cs_test_a1B2c3")]
    checkout_session_id: Option<String>,
    /// The Stripe PaymentIntent of its payment, once Stripe has told of one.
    #[schema(required = true, example = "pi_3Nx1")]
    payment_intent_id: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<&InvoiceRecord> for View {
    fn from(i: &InvoiceRecord) -> Self {
        let f = &i.fields;
        Self {
            id: i.id,
            r#ref: i.external_ref.clone(),
            contact: f.contact_ref.clone(),
            rental: f.rental_ref.clone(),
            facility: i.facility_ref.clone(),
            number: f.number.clone(),
            description: f.description.clone(),
            amount_minor: f.amount_minor,
            currency: f.currency.clone(),
            issued_on: f.issued_on.into(),
            due_on: f.due_on.into(),
            status: f.status.clone(),
            paid_at: i.paid_at.map(Timestamp::from),
            checkout_session_id: i.checkout_session_id.clone(),
            payment_intent_id: i.payment_intent_id.clone(),
            created_at: i.created_at.into(),
            updated_at: i.updated_at.into(),
        }
    }
}

/// Create or replace an invoice
///
/// Idempotent by your reference. An invoice already paid stays paid when the PUT says `pending` (the customer paid it through the portal), and one whose payment is `processing` (a pre-authorized debit on its way, until Stripe says it succeeded or failed) stays processing; the answer shows the stored status. `unknown_contact` / `unknown_rental` when a reference names nothing of your storefront; a rental of another contact is a `validation` error on `rental`.
#[utoipa::path(
    put,
    path = "/invoices/{ref}",
    operation_id = "putInvoice",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("invoice"),
            example = "INV-1043"),
    ),
    request_body(
        content = Input,
        content_type = "application/json",
        example = json!({
            "contact": "CON-DT-1001",
            "rental": "RNT-DT-B112",
            "number": "INV-1043",
            "description": "Unit B-112, monthly rent",
            "amount_minor": 12900,
            "currency": "USD",
            "issued_on": "2025-07-01",
            "due_on": "2025-07-15",
            "status": "pending"
        }),
    ),
    responses(
        (status = 200, description = "Replaced: the invoice existed; same id as before.", body = View),
        (status = 201, description = "Created: the first PUT of this reference.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 422, description = "Invalid fields (see `fields`), or a reference in the body that names nothing of your storefront.", body = inline(error_doc::InvalidOrUnknownContactOrRental)),
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
    let amount = input.money();
    let fields = InvoiceFields {
        contact_ref: input.contact.into_string(),
        rental_ref: input.rental.map(ExternalRef::into_string),
        number: input.number.into_string(),
        description: input.description.into_string(),
        amount_minor: amount.minor(),
        currency: amount.currency().to_string(),
        issued_on: input.issued_on.get(),
        due_on: input.due_on.get(),
        status: input.status.as_str().to_string(),
    };
    let named = Named {
        contact: &fields.contact_ref,
        rental: fields.rental_ref.as_deref(),
        ..Named::default()
    };
    let upsert = records::put_invoice(&state.svc, caller.storefront.id, ext_ref, &fields);
    finish::<_, View>(upsert, named).await
}

api_page! {
    /// A page of invoices.
    Page = InvoicePage of View from InvoiceRecord
}

/// List invoices
///
/// Every invoice of your storefront, newest first, a page at a time: pass `next` as `before` for the next page. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/invoices",
    operation_id = "listInvoices",
    tag = "Records",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of invoices.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page = records::invoices_page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read an invoice
///
/// With where its payment stands: `status` (`processing` while a pre-authorized debit is on its way, `paid` once Stripe says so), `paid_at`, and the Stripe Checkout Session and PaymentIntent it is paid through.
#[utoipa::path(
    get,
    path = "/invoices/{ref}",
    operation_id = "getInvoice",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("invoice"),
            example = "INV-1042"),
    ),
    responses(
        (status = 200, description = "The invoice.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no invoice with this reference.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller, ext_ref: &str) -> Result<Response, ApiError> {
    let record = match super::read_ref(ext_ref) {
        Some(r) => records::invoice_record(&state.svc, caller.storefront.id, r).await?,
        None => None,
    };
    super::found::<_, View>(record, "invoice", ext_ref)
}
