//! Upserts of the operator's records by their external reference: facilities, contacts,
//! rentals, invoices, and rental agreements. The first PUT of a reference creates (201), the
//! next ones replace (200) and keep the id; a PUT replaces every field, so an optional field
//! left out is cleared. Each file holds one record's request and answer types, and its handler
//! with the operation's documentation.

pub mod agreement;
pub mod contact;
pub mod facility;
pub mod invoice;
pub mod rental;

use http::StatusCode;
use serde::Serialize;
use warp::reply::Response;

use super::error::ApiError;
use super::fields::{REF_MAX, REF_RULE, is_ref};
use super::input::Problems;
use super::json_response;
use crate::store::{Unresolved, Upserted};
use crate::usecases::records::Upsert;

/// The description of the reference in an upsert's path.
fn ref_param(record: &str) -> String {
    format!(
        "Your reference for the {record}. 1 to {REF_MAX} letters, digits, `-`, `_` or `.`; a ref that breaks the rule is a 422 (`fields.ref`) on upserts and a 404 elsewhere."
    )
}

/// The reference in the path, checked with the body's fields.
fn path_ref(ext_ref: &str, p: &mut Problems) {
    if !is_ref(ext_ref) {
        p.add("ref", REF_RULE);
    }
}

/// 201 for a created record, 200 for a replaced one, with the record as `V` shows it.
fn upserted<T, V>(up: Upserted<T>) -> Response
where
    V: for<'a> From<&'a T> + Serialize,
{
    let status = if up.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &V::from(&up.record))
}

/// The references a body gave, to name the one that names nothing.
#[derive(Default)]
struct Named<'a> {
    facility: &'a str,
    contact: &'a str,
    rental: Option<&'a str>,
}

/// Runs the upsert and answers with the record as `V` shows it, or with the reference that
/// names nothing.
async fn finish<T, V>(
    upsert: impl Future<Output = Upsert<T>>,
    named: Named<'_>,
) -> Result<Response, ApiError>
where
    V: for<'a> From<&'a T> + Serialize,
{
    let up = upsert.await?.map_err(|missing| match missing {
        Unresolved::Facility => ApiError::UnknownFacility(named.facility.to_string()),
        Unresolved::Contact => ApiError::UnknownContact(named.contact.to_string()),
        Unresolved::Rental => ApiError::UnknownRental(named.rental.unwrap_or_default().to_string()),
        Unresolved::RentalOfAnotherContact => {
            ApiError::field("rental", "This rental belongs to another contact.")
        }
    })?;
    Ok(upserted::<T, V>(up))
}
