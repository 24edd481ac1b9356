//! Upserts of the operator's records by their external reference (facilities, contacts,
//! rentals, invoices, agreements), the steps they share.
//!
//! An upsert tells a create from an update exactly, on both databases and under concurrent
//! calls: `INSERT … ON CONFLICT DO NOTHING RETURNING id` returns a row only when it inserted;
//! otherwise the `UPDATE` of the existing row follows in the same transaction.

use super::db::{DbResult, Transaction, Value};

/// The stored record and whether this call created it.
#[derive(Debug, Clone)]
pub struct Upserted<T> {
    pub record: T,
    pub created: bool,
}

/// A reference in an upsert's input that does not name a record of the storefront.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    Facility,
    Contact,
    Rental,
    /// The rental exists but belongs to another contact than the invoice's.
    RentalOfAnotherContact,
}

pub type UpsertResult<T> = DbResult<Result<Upserted<T>, Unresolved>>;

/// Inserts a row unless its reference exists (then `update` runs instead); returns the row's
/// id and whether it was created.
pub(super) async fn insert_or_update(
    tx: &mut dyn Transaction,
    (insert, insert_params): (&str, &[Value]),
    (update, update_params): (&str, &[Value]),
) -> DbResult<(i64, bool)> {
    if let Some(row) = tx.query_opt(insert, insert_params).await? {
        return Ok((row.i64(0), true));
    }
    let row = tx.query_one(update, update_params).await?;
    Ok((row.i64(0), false))
}
