//! Integration API keys: minting one (shown once, only its hash is stored), recognising the
//! key a request carries, and revoking one.

use std::sync::Arc;

use crate::domain::{OpaqueToken, TokenHash};
use crate::error::AppError;
use crate::services::Services;
use crate::store::{ApiKeyInfo, DbResult, Store, Storefront};

/// What the key a request carries opens.
pub enum KeyCheck {
    /// A live key, and the storefront it opens.
    Live {
        key: ApiKeyInfo,
        storefront: Arc<Storefront>,
    },
    /// Never issued (or its storefront is gone).
    Unknown,
    Revoked,
}

/// Recognises an API key and records its use (at most once a minute; a failure to record is
/// logged, not answered).
pub async fn check(svc: &Services, key: &str) -> Result<KeyCheck, AppError> {
    let Some(found) = svc.store.api_key_lookup(&api_key_hash(key)).await? else {
        return Ok(KeyCheck::Unknown);
    };
    if found.revoked {
        return Ok(KeyCheck::Revoked);
    }
    let Some(storefront) = svc.storefronts.by_id(found.key.storefront_id).await? else {
        return Ok(KeyCheck::Unknown);
    };
    let now = svc.now();
    if found
        .last_used_at
        .is_none_or(|t| now - t >= chrono::Duration::minutes(1))
        && let Err(e) = svc.store.touch_api_key(found.key.id, now).await
    {
        tracing::warn!(error = %e, "could not record an API key's use");
    }
    Ok(KeyCheck::Live {
        key: found.key,
        storefront,
    })
}

/// A new API key: the key itself (shown once), its stored hash and its shown prefix.
pub fn new_api_key() -> (String, TokenHash, String) {
    let token = OpaqueToken::generate();
    let key = format!("lk_{}", token.encode());
    let hash = api_key_hash(&key);
    let prefix = key[..10].to_string();
    (key, hash, prefix)
}

/// The stored form of an API key.
pub fn api_key_hash(key: &str) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    TokenHash(out)
}

/// Mints a key for the storefront (`latchkey admin api-key`): its id and the key, which is
/// shown once and never stored.
pub async fn create(store: &Store, storefront_id: i64, name: &str) -> DbResult<(i64, String)> {
    let (key, hash, prefix) = new_api_key();
    let id = store
        .create_api_key(storefront_id, name, &hash, &prefix, chrono::Utc::now())
        .await?;
    Ok((id, key))
}

/// Revokes a live key of the storefront; `false` when it has none with this id.
pub async fn revoke(store: &Store, storefront_id: i64, id: i64) -> DbResult<bool> {
    store
        .revoke_api_key(storefront_id, id, chrono::Utc::now())
        .await
}
