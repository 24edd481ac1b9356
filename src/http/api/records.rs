//! Upserts of the operator's records by their external reference: facilities, contacts,
//! rentals, invoices, and rental agreements. The first PUT of a reference creates (201), the
//! next ones replace (200) and keep the id; a PUT replaces every field, so an optional field
//! left out is cleared.

use http::StatusCode;
use serde_json::{Value, json};
use warp::reply::Response;

use super::body::RawBody;
use super::error::ApiError;
use super::input::*;
use super::{Caller, json_response, opt_text, rfc3339};
use crate::http::HttpState;
use crate::store::{
    ContactFields, ContactRecord, FacilityFields, FacilityRecord, InvoiceFields, InvoiceRecord,
    RentalFields, RentalRecord, Unresolved, UpsertResult, Upserted,
};

pub const RENTAL_STATUSES: &[&str] = &["upcoming", "active", "ended", "cancelled"];
pub const RATE_PERIODS: &[&str] = &["day", "week", "month"];
/// Where a delivered rental (a cart, equipment) stands; the portal shows the tracking link
/// until it is delivered, returned or cancelled.
pub const DELIVERY_STATUSES: &[&str] = &[
    "scheduled",
    "out_for_delivery",
    "delivered",
    "pickup_scheduled",
    "returned",
    "cancelled",
];
pub const INVOICE_STATUSES: &[&str] = &["pending", "paid", "void"];

/// The reference in the path, checked with the body's fields.
fn path_ref(ext_ref: &str, p: &mut Problems) {
    if !is_ref(ext_ref) {
        p.add("ref", REF_RULE);
    }
}

/// 201 for a created record, 200 for a replaced one.
fn upserted<T>(up: Upserted<T>, view: impl FnOnce(&T) -> Value) -> Response {
    let status = if up.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &view(&up.record))
}

fn resolved<T>(
    result: Result<Upserted<T>, Unresolved>,
    input: &Value,
) -> Result<Upserted<T>, ApiError> {
    let named = |key: &str| input[key].as_str().unwrap_or_default().to_string();
    result.map_err(|missing| match missing {
        Unresolved::Facility => ApiError::UnknownFacility(named("facility")),
        Unresolved::Contact => ApiError::UnknownContact(named("contact")),
        Unresolved::Rental => ApiError::UnknownRental(named("rental")),
        Unresolved::RentalOfAnotherContact => {
            ApiError::field("rental", "This rental belongs to another contact.")
        }
    })
}

async fn finish<T>(
    upsert: impl Future<Output = UpsertResult<T>>,
    input: &Value,
    view: impl FnOnce(&T) -> Value,
) -> Result<Response, ApiError> {
    Ok(upserted(resolved(upsert.await?, input)?, view))
}

pub async fn facility(
    state: &HttpState,
    caller: &Caller,
    ext_ref: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let obj = Object::root(&body)?;
    let mut p = Problems::default();
    path_ref(ext_ref, &mut p);
    obj.only(&["name", "address", "phone", "email"], &mut p);
    let name = obj.text("name", TITLE_MAX, true, &mut p);
    let address = obj.text("address", ADDRESS_MAX, false, &mut p);
    let phone = obj.phone("phone", &mut p);
    let email = obj.email("email", false, &mut p);
    let (Some(name), true) = (name, p.is_empty()) else {
        return Err(p.into_error());
    };
    let fields = FacilityFields {
        name,
        address: address.unwrap_or_default(),
        phone: phone.unwrap_or_default(),
        email: email.map(|e| e.to_string()).unwrap_or_default(),
    };
    let up = state
        .svc
        .store
        .upsert_facility(caller.storefront.id, ext_ref, &fields, state.svc.now())
        .await?;
    Ok(upserted(up, facility_view))
}

fn facility_view(f: &FacilityRecord) -> Value {
    json!({
        "id": f.id,
        "ref": f.external_ref,
        "name": f.fields.name,
        "address": opt_text(&f.fields.address),
        "phone": opt_text(&f.fields.phone),
        "email": opt_text(&f.fields.email),
        "created_at": rfc3339(f.created_at),
        "updated_at": rfc3339(f.updated_at),
    })
}

pub async fn contact(
    state: &HttpState,
    caller: &Caller,
    ext_ref: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let obj = Object::root(&body)?;
    let mut p = Problems::default();
    path_ref(ext_ref, &mut p);
    obj.only(&["facility", "full_name", "email", "phone"], &mut p);
    let facility = obj.reference("facility", true, &mut p);
    let full_name = obj.text("full_name", NAME_MAX, true, &mut p);
    let email = obj.email("email", false, &mut p);
    let phone = obj.phone("phone", &mut p);
    let (Some(facility_ref), Some(full_name), true) = (facility, full_name, p.is_empty()) else {
        return Err(p.into_error());
    };
    let fields = ContactFields {
        facility_ref,
        full_name,
        email: email.map(|e| e.to_string()).unwrap_or_default(),
        phone: phone.unwrap_or_default(),
    };
    let upsert =
        state
            .svc
            .store
            .upsert_contact(caller.storefront.id, ext_ref, &fields, state.svc.now());
    finish(upsert, &body, contact_view).await
}

fn contact_view(c: &ContactRecord) -> Value {
    json!({
        "id": c.id,
        "ref": c.external_ref,
        "facility": c.fields.facility_ref,
        "full_name": c.fields.full_name,
        "email": opt_text(&c.fields.email),
        "phone": opt_text(&c.fields.phone),
        "account_id": c.account_id,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

pub async fn rental(
    state: &HttpState,
    caller: &Caller,
    ext_ref: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let obj = Object::root(&body)?;
    let mut p = Problems::default();
    path_ref(ext_ref, &mut p);
    obj.only(
        &[
            "contact",
            "label",
            "status",
            "starts_on",
            "ends_on",
            "rate",
            "delivery",
        ],
        &mut p,
    );
    let contact = obj.reference("contact", true, &mut p);
    let label = obj.text("label", TITLE_MAX, true, &mut p);
    let status = obj.choice("status", RENTAL_STATUSES, true, &mut p);
    let starts_on = obj.date("starts_on", true, &mut p);
    let ends_on = obj.date("ends_on", false, &mut p);
    if let (Some(start), Some(end)) = (starts_on, ends_on)
        && end < start
    {
        p.add("ends_on", "May not be before starts_on.");
    }
    let mut rate = (None, None, None);
    if let Some(r) = obj.object("rate", true, &mut p) {
        r.only(&["amount_minor", "currency", "period"], &mut p);
        rate = (
            r.amount("amount_minor", &mut p),
            r.currency("currency", &mut p),
            r.choice("period", RATE_PERIODS, true, &mut p),
        );
    }
    let (mut delivery_status, mut tracking_url) = (None, None);
    if let Some(d) = obj.object("delivery", false, &mut p) {
        d.only(&["status", "tracking_url"], &mut p);
        delivery_status = d.choice("status", DELIVERY_STATUSES, true, &mut p);
        tracking_url = d.url("tracking_url", &mut p);
    }
    let (
        Some(contact_ref),
        Some(label),
        Some(status),
        Some(starts_on),
        (Some(rate_minor), Some(currency), Some(period)),
        true,
    ) = (contact, label, status, starts_on, rate, p.is_empty())
    else {
        return Err(p.into_error());
    };
    let fields = RentalFields {
        contact_ref,
        label,
        status: status.to_string(),
        starts_on,
        ends_on,
        rate_minor,
        currency,
        rate_period: period.to_string(),
        delivery_status: delivery_status.map(str::to_string),
        tracking_url,
    };
    let upsert =
        state
            .svc
            .store
            .upsert_rental(caller.storefront.id, ext_ref, &fields, state.svc.now());
    finish(upsert, &body, rental_view).await
}

fn rental_view(r: &RentalRecord) -> Value {
    let f = &r.fields;
    let delivery = f
        .delivery_status
        .as_ref()
        .map(|status| json!({ "status": status, "tracking_url": f.tracking_url }));
    json!({
        "id": r.id,
        "ref": r.external_ref,
        "contact": f.contact_ref,
        "facility": r.facility_ref,
        "label": f.label,
        "status": f.status,
        "starts_on": f.starts_on.to_string(),
        "ends_on": f.ends_on.map(|d| d.to_string()),
        "rate": { "amount_minor": f.rate_minor, "currency": f.currency, "period": f.rate_period },
        "delivery": delivery,
        "has_agreement": r.has_agreement,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    })
}

pub async fn invoice(
    state: &HttpState,
    caller: &Caller,
    ext_ref: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let obj = Object::root(&body)?;
    let mut p = Problems::default();
    path_ref(ext_ref, &mut p);
    obj.only(
        &[
            "contact",
            "rental",
            "number",
            "description",
            "amount_minor",
            "currency",
            "issued_on",
            "due_on",
            "status",
        ],
        &mut p,
    );
    let contact = obj.reference("contact", true, &mut p);
    let rental = obj.reference("rental", false, &mut p);
    let number = obj.text("number", NUMBER_MAX, true, &mut p);
    let description = obj.text("description", DESCRIPTION_MAX, true, &mut p);
    let amount = obj.amount("amount_minor", &mut p);
    let currency = obj.currency("currency", &mut p);
    let issued_on = obj.date("issued_on", true, &mut p);
    let due_on = obj.date("due_on", true, &mut p);
    if let (Some(issued), Some(due)) = (issued_on, due_on)
        && due < issued
    {
        p.add("due_on", "May not be before issued_on.");
    }
    let status = obj.choice("status", INVOICE_STATUSES, true, &mut p);
    let (
        Some(contact_ref),
        Some(number),
        Some(description),
        Some(amount_minor),
        Some(currency),
        (Some(issued_on), Some(due_on)),
        Some(status),
        true,
    ) = (
        contact,
        number,
        description,
        amount,
        currency,
        (issued_on, due_on),
        status,
        p.is_empty(),
    )
    else {
        return Err(p.into_error());
    };
    let fields = InvoiceFields {
        contact_ref,
        rental_ref: rental,
        number,
        description,
        amount_minor,
        currency,
        issued_on,
        due_on,
        status: status.to_string(),
    };
    let upsert =
        state
            .svc
            .store
            .upsert_invoice(caller.storefront.id, ext_ref, &fields, state.svc.now());
    finish(upsert, &body, invoice_view).await
}

fn invoice_view(i: &InvoiceRecord) -> Value {
    let f = &i.fields;
    json!({
        "id": i.id,
        "ref": i.external_ref,
        "contact": f.contact_ref,
        "rental": f.rental_ref,
        "facility": i.facility_ref,
        "number": f.number,
        "description": f.description,
        "amount_minor": f.amount_minor,
        "currency": f.currency,
        "issued_on": f.issued_on.to_string(),
        "due_on": f.due_on.to_string(),
        "status": f.status,
        "paid_at": i.paid_at.map(rfc3339),
        "created_at": rfc3339(i.created_at),
        "updated_at": rfc3339(i.updated_at),
    })
}

/// A file name for the agreement download: plain characters, ending in `.pdf`.
fn file_name(raw: Option<&str>, rental_ref: &str) -> Result<String, ApiError> {
    let Some(name) = raw else {
        return Ok(format!("agreement-{rental_ref}.pdf"));
    };
    if is_ref(name) && name.to_ascii_lowercase().ends_with(".pdf") && name.len() > 4 {
        Ok(name.to_string())
    } else {
        Err(ApiError::field(
            "file_name",
            "Use up to 100 letters, digits, '-', '_' or '.', ending in .pdf.",
        ))
    }
}

pub async fn agreement(
    state: &HttpState,
    caller: &Caller,
    rental_ref: &str,
    query: &str,
    body: RawBody,
) -> Result<Response, ApiError> {
    let checked = match parse_query(query, &["file_name"]) {
        Ok(q) => file_name(q.get("file_name"), rental_ref),
        Err(e) => Err(e),
    };
    let name = match checked {
        Ok(name) if is_ref(rental_ref) => name,
        Ok(_) => {
            body.discard().await;
            return Err(super::no_rental(rental_ref));
        }
        Err(e) => {
            body.discard().await;
            return Err(e);
        }
    };
    let pdf = body.pdf().await?;
    let stored = state
        .svc
        .store
        .put_agreement(
            caller.storefront.id,
            rental_ref,
            &name,
            &pdf,
            state.svc.now(),
        )
        .await?
        .ok_or_else(|| super::no_rental(rental_ref))?;
    Ok(upserted(stored, |a| {
        json!({
            "rental": a.rental_ref,
            "rental_id": a.rental_id,
            "file_name": a.file_name,
            "size": a.size,
        })
    }))
}
