//! What a customer does to their own account (SPEC §2 and §8), read side: the address change
//! waiting for confirmation, and the change a confirmation link is for.

use crate::domain::OpaqueToken;
use crate::error::AppError;
use crate::services::Services;
use crate::store::PendingEmailChange;

/// The address change of the account waiting for confirmation, if any.
pub async fn pending_email_change(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
) -> Result<Option<PendingEmailChange>, AppError> {
    Ok(svc
        .store
        .pending_email_change(storefront_id, account_id, svc.now())
        .await?)
}

/// The change a live confirmation link is for (`None`: used, expired or unknown).
pub async fn email_change_of_link(
    svc: &Services,
    storefront_id: i64,
    token: &OpaqueToken,
) -> Result<Option<PendingEmailChange>, AppError> {
    Ok(svc
        .store
        .live_email_change(storefront_id, &token.hash(), svc.now())
        .await?)
}
