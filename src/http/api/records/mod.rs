//! Upserts of the operator's records by their external reference: facilities, contacts,
//! rentals, invoices, and rental agreements. The first PUT of a reference creates (201), the
//! next ones replace (200) and keep the id; a PUT replaces every field, so an optional field
//! left out is cleared. The same records read back: a GET of the reference, and a keyset-paged
//! list of the storefront's records of the kind (`paging.rs`). Each file holds one record's
//! request and answer types, and its handlers with the operations' documentation.

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
use super::{json_response, no_record};
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

/// The reference in a read's path, when it may name a record (one that breaks the rule names
/// nothing: a 404, as on every path but an upsert's).
fn read_ref(ext_ref: &str) -> Option<&str> {
    is_ref(ext_ref).then_some(ext_ref)
}

/// 200 with the record as `V` shows it, or the 404 of a `kind` that the reference does not
/// name.
fn found<T, V>(record: Option<T>, kind: &str, ext_ref: &str) -> Result<Response, ApiError>
where
    V: for<'a> From<&'a T> + Serialize,
{
    let record = record.ok_or_else(|| no_record(kind, ext_ref))?;
    Ok(json_response(StatusCode::OK, &V::from(&record)))
}
