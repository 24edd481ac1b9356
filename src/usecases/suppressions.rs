//! A storefront's suppression list as staff and the operator's systems see it: the addresses
//! that get no more email (after a hard bounce or a spam complaint), and lifting one (owner,
//! manager or support in the console, or an API key), written to the audit log with the change.

use crate::domain::EmailAddress;
use crate::error::AppError;
use crate::services::Services;
use crate::store::{Page, StaffUser, Suppression};

use super::support::Actor;

/// The storefront's suppressions in force, newest first, a page at a time (the console's
/// Suppressions page and the API's list).
pub async fn page(
    svc: &Services,
    storefront_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<Suppression>, AppError> {
    Ok(svc
        .store
        .suppressions_page(storefront_id, before, limit)
        .await?)
}

/// The suppression in force for an address (a customer's record shows it).
pub async fn for_address(
    svc: &Services,
    storefront_id: i64,
    email: &EmailAddress,
) -> Result<Option<Suppression>, AppError> {
    Ok(svc.store.suppression_for(storefront_id, email).await?)
}

/// One suppression of the storefront, in force or lifted (the API's single read).
pub async fn one(
    svc: &Services,
    storefront_id: i64,
    id: i64,
) -> Result<Option<Suppression>, AppError> {
    Ok(svc.store.suppression(storefront_id, id).await?)
}

/// Lifts a suppression in force: the address gets email again. `None` when the storefront
/// has no such suppression in force.
pub async fn lift(
    svc: &Services,
    storefront_id: i64,
    id: i64,
    actor: Actor<'_>,
) -> Result<Option<Suppression>, AppError> {
    let (by, staff): (String, Option<&StaffUser>) = match &actor {
        Actor::Staff(s) => (s.email.to_string(), Some(s)),
        Actor::ApiKey { name, .. } => (format!("API key {name}"), None),
    };
    let lifted = svc
        .store
        .lift_suppression(storefront_id, id, &by, staff, svc.now())
        .await?;
    if lifted.is_some() {
        // Its `suppression.lifted` event, if an endpoint wants it.
        svc.events_written();
    }
    Ok(lifted)
}
