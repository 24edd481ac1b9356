//! What `latchkey` does from the command line besides running: migrations, the demo
//! storefront, storefronts (their sender settings: `super::sender`) and staff users. These run on a bare [`Store`] (no actors, no
//! queue) and answer in the store's own errors, which the command line prints as they are.

use chrono::Utc;

use crate::crypto::Keys;
use crate::domain::EmailAddress;
use crate::store::{DbResult, DemoSummary, NewStorefront, Role, StaffUser, Store, Storefront};

/// Applies the migrations not applied yet, then seals the DKIM keys an earlier version stored
/// in plaintext ([`super::sender::seal_plaintext_keys`]); returns the migrations' names.
pub async fn migrate(store: &Store, keys: &Keys) -> DbResult<Vec<String>> {
    let applied = store.migrate().await?;
    super::sender::seal_plaintext_keys(store, keys, Utc::now()).await?;
    Ok(applied)
}

/// Loads the demo storefront (idempotent).
pub async fn load_demo(store: &Store) -> DbResult<DemoSummary> {
    store.load_demo(Utc::now()).await
}

pub async fn storefront_by_slug(store: &Store, slug: &str) -> DbResult<Option<Storefront>> {
    store.storefront_by_slug(slug).await
}

/// Creates the storefront, or updates the one with this slug; returns its id.
pub async fn put_storefront(store: &Store, storefront: &NewStorefront) -> DbResult<i64> {
    store.upsert_storefront(storefront, Utc::now()).await
}

/// Sets a storefront's default language (a tag the caller checked against the catalog).
pub async fn set_storefront_language(store: &Store, id: i64, language: &str) -> DbResult<()> {
    store
        .set_storefront_language(id, language, Utc::now())
        .await
}

pub async fn storefronts(store: &Store) -> DbResult<Vec<Storefront>> {
    store.storefronts().await
}

/// Disables (ending their console sessions and links) or enables a staff user; `None` when
/// there is no such staff user in the other state.
pub async fn set_staff_disabled(
    store: &Store,
    email: &EmailAddress,
    disabled: bool,
) -> DbResult<Option<StaffUser>> {
    store.set_staff_disabled(email, disabled, Utc::now()).await
}

/// Creates a staff user of a storefront (or of the platform, for support).
pub async fn create_staff(
    store: &Store,
    storefront_id: Option<i64>,
    email: &EmailAddress,
    full_name: &str,
    role: Role,
) -> DbResult<StaffUser> {
    store
        .create_staff(storefront_id, email, full_name, role, Utc::now())
        .await
}
