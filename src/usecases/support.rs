//! What support staff do on a customer's record: link an unlinked contact to the account and
//! merge another account into it (each written to the audit log in its own transaction), and
//! read the audit log.

use crate::error::AppError;
use crate::services::Services;
use crate::store::{Account, AuditEntry, ContactView, MergeReport, StaffUser};

/// Links a contact of the storefront to one of its accounts; `None` when either is not of
/// the storefront.
pub async fn link_contact(
    svc: &Services,
    storefront_id: i64,
    contact_id: i64,
    account_id: i64,
    by: &StaffUser,
) -> Result<Option<ContactView>, AppError> {
    Ok(svc
        .store
        .link_contact(storefront_id, contact_id, account_id, by, svc.now())
        .await?)
}

/// Merges account `merged` into `survivor`; `None` when either is not of the storefront (or
/// they are the same account).
pub async fn merge_accounts(
    svc: &Services,
    storefront_id: i64,
    survivor: i64,
    merged: i64,
    by: &StaffUser,
) -> Result<Option<(Account, MergeReport)>, AppError> {
    Ok(svc
        .store
        .merge_accounts(storefront_id, survivor, merged, by, svc.now())
        .await?)
}

/// The newest entries of the audit log: one storefront's, or every storefront's (`None`).
pub async fn audit_log(
    svc: &Services,
    storefront_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, AppError> {
    Ok(svc.store.audit_entries(storefront_id, limit).await?)
}
