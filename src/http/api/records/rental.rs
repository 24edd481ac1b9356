//! `PUT /rentals/{ref}`: what a contact rents, at what rate, and its delivery if it has one;
//! `GET` of it and of `/rentals`: read back.

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
    AmountMinor, Currency, Date, ExternalRef, RatePeriod, RentalDeliveryStatus, RentalStatus,
    StoredCurrency, Timestamp, Title, WebUrl,
};
use crate::http::api::input::{FromJson, Object, Problems, Request};
use crate::http::api::paging::{PageQuery, api_page};
use crate::http::api::{ApiError, Caller, json_response};
use crate::store::{RentalFields, RentalRecord};
use crate::usecases::records;

/// A rental.
#[derive(ToSchema)]
#[schema(as = RentalInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The renting contact's reference; the rental's facility is the contact's.
    contact: ExternalRef,
    /// What is rented, as customers see it.
    label: Title,
    status: RentalStatus,
    starts_on: Date,
    /// Not before starts_on.
    ends_on: Option<Date>,
    rate: RateInput,
    delivery: Option<DeliveryInput>,
}

impl Request for Input {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let contact = o.required("contact", p);
        let label = o.required("label", p);
        let status = o.required("status", p);
        let starts_on: Option<Date> = o.required("starts_on", p);
        let ends_on: Option<Date> = o.optional("ends_on", p);
        if let (Some(start), Some(end)) = (starts_on, ends_on)
            && end < start
        {
            p.add("ends_on", "May not be before starts_on.");
        }
        let rate = o.required("rate", p);
        let delivery = o.optional("delivery", p);
        Some(Self {
            contact: contact?,
            label: label?,
            status: status?,
            starts_on: starts_on?,
            ends_on,
            rate: rate?,
            delivery,
        })
    }
}

/// What the rental costs, per period.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    amount_minor: AmountMinor,
    currency: Currency,
    period: RatePeriod,
}

impl Request for RateInput {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let amount_minor = o.required("amount_minor", p);
        let currency = o.required("currency", p);
        let period = o.required("period", p);
        Some(Self {
            amount_minor: amount_minor?,
            currency: currency?,
            period: period?,
        })
    }
}

impl FromJson for RateInput {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        Self::nested(value, name, p)
    }
}

impl RateInput {
    fn money(&self) -> Money {
        Money::new(self.amount_minor.get(), self.currency.as_str())
            .expect("an amount and a currency that were read are money")
    }
}

/// A delivered rental (a cart, equipment): where the delivery stands.
#[derive(ToSchema)]
#[schema(as = RentalDeliveryInput)]
#[serde(deny_unknown_fields)]
pub struct DeliveryInput {
    status: RentalDeliveryStatus,
    /// The portal links to it while the delivery is under way.
    tracking_url: Option<WebUrl>,
}

impl Request for DeliveryInput {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        let status = o.required("status", p);
        let tracking_url = o.optional("tracking_url", p);
        Some(Self {
            status: status?,
            tracking_url,
        })
    }
}

impl FromJson for DeliveryInput {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        Self::nested(value, name, p)
    }
}

/// A rental as stored.
#[derive(Serialize, ToSchema)]
#[schema(as = Rental)]
#[serde(deny_unknown_fields)]
pub struct View {
    id: i64,
    /// Your reference.
    #[schema(value_type = ExternalRef)]
    r#ref: String,
    /// The contact's reference.
    #[schema(value_type = ExternalRef)]
    contact: String,
    /// The facility's reference.
    #[schema(value_type = ExternalRef)]
    facility: String,
    label: String,
    #[schema(value_type = RentalStatus)]
    status: String,
    starts_on: Date,
    #[schema(required = true)]
    ends_on: Option<Date>,
    rate: Rate,
    #[schema(required = true)]
    delivery: Option<Delivery>,
    has_agreement: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// What the rental costs, per period.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[schema(value_type = AmountMinor)]
    amount_minor: i64,
    #[schema(value_type = StoredCurrency)]
    currency: String,
    #[schema(value_type = RatePeriod)]
    period: String,
}

/// Where the rental's delivery stands.
#[derive(Serialize, ToSchema)]
#[schema(as = RentalDelivery)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[schema(value_type = RentalDeliveryStatus)]
    status: String,
    #[schema(value_type = Option<WebUrl>, required = true)]
    tracking_url: Option<String>,
}

impl From<&RentalRecord> for View {
    fn from(r: &RentalRecord) -> Self {
        let f = &r.fields;
        Self {
            id: r.id,
            r#ref: r.external_ref.clone(),
            contact: f.contact_ref.clone(),
            facility: r.facility_ref.clone(),
            label: f.label.clone(),
            status: f.status.clone(),
            starts_on: f.starts_on.into(),
            ends_on: f.ends_on.map(Date::from),
            rate: Rate {
                amount_minor: f.rate_minor,
                currency: f.currency.clone(),
                period: f.rate_period.clone(),
            },
            delivery: f.delivery_status.as_ref().map(|status| Delivery {
                status: status.clone(),
                tracking_url: f.tracking_url.clone(),
            }),
            has_agreement: r.has_agreement,
            created_at: r.created_at.into(),
            updated_at: r.updated_at.into(),
        }
    }
}

/// Create or replace a rental
///
/// Idempotent by your reference. The rental's facility is its contact's. `unknown_contact` when `contact` names no contact of your storefront.
#[utoipa::path(
    put,
    path = "/rentals/{ref}",
    operation_id = "putRental",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("rental"),
            example = "RNT-MR-C22"),
    ),
    request_body(
        content = Input,
        content_type = "application/json",
        example = json!({
            "contact": "CON-MR-2001",
            "label": "6-seat cart #22",
            "status": "upcoming",
            "starts_on": "2025-07-04",
            "ends_on": "2025-07-06",
            "rate": { "amount_minor": 8900, "currency": "USD", "period": "day" },
            "delivery": {
                "status": "scheduled",
                "tracking_url": "https://track.harborview.example/deliveries/C22-9001"
            }
        }),
    ),
    responses(
        (status = 200, description = "Replaced: the rental existed; same id as before.", body = View),
        (status = 201, description = "Created: the first PUT of this reference.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 422, description = "Invalid fields (see `fields`), or a reference in the body that names nothing of your storefront.", body = inline(error_doc::InvalidOrUnknownContact)),
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
    let rate = input.rate.money();
    let (delivery_status, tracking_url) = match input.delivery {
        Some(d) => (
            Some(d.status.as_str().to_string()),
            d.tracking_url.map(WebUrl::into_string),
        ),
        None => (None, None),
    };
    let fields = RentalFields {
        contact_ref: input.contact.into_string(),
        label: input.label.into_string(),
        status: input.status.as_str().to_string(),
        starts_on: input.starts_on.get(),
        ends_on: input.ends_on.map(Date::get),
        rate_minor: rate.minor(),
        currency: rate.currency().to_string(),
        rate_period: input.rate.period.as_str().to_string(),
        delivery_status,
        tracking_url,
    };
    let named = Named {
        contact: &fields.contact_ref,
        ..Named::default()
    };
    let upsert = records::put_rental(&state.svc, caller.storefront.id, ext_ref, &fields);
    finish::<_, View>(upsert, named).await
}

api_page! {
    /// A page of rentals.
    Page = RentalPage of View from RentalRecord
}

/// List rentals
///
/// Every rental of your storefront, newest first, a page at a time: pass `next` as `before` for the next page. Unknown parameters are refused (422).
#[utoipa::path(
    get,
    path = "/rentals",
    operation_id = "listRentals",
    tag = "Records",
    security(("apiKey" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of rentals.", body = Page),
        (status = 401, response = Unauthorized),
        (status = 422, description = "A parameter is invalid or unknown (see `fields`).", body = inline(error_doc::InvalidFields)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller, query: &str) -> Result<Response, ApiError> {
    let q = PageQuery::parse(query)?;
    let page = records::rentals_page(&state.svc, caller.storefront.id, q.before, q.limit).await?;
    Ok(json_response(StatusCode::OK, &Page::from(page)))
}

/// Read a rental
///
/// As the last PUT left it, with `has_agreement` once its signed agreement is stored.
#[utoipa::path(
    get,
    path = "/rentals/{ref}",
    operation_id = "getRental",
    tag = "Records",
    security(("apiKey" = [])),
    params(
        ("ref" = ExternalRef, Path,
            description = super::ref_param("rental"),
            example = "RNT-DT-B112"),
    ),
    responses(
        (status = 200, description = "The rental.", body = View),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no rental with this reference.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller, ext_ref: &str) -> Result<Response, ApiError> {
    let record = match super::read_ref(ext_ref) {
        Some(r) => records::rental_record(&state.svc, caller.storefront.id, r).await?,
        None => None,
    };
    super::found::<_, View>(record, "rental", ext_ref)
}
