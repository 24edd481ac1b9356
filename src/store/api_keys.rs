//! Integration API keys: only the SHA-256 of a key is stored; a key opens one storefront until
//! it is revoked.

use chrono::{DateTime, Utc};

use super::Store;
use super::db::DbResult;
use crate::domain::TokenHash;
use crate::params;

#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub storefront_id: i64,
    pub name: String,
}

/// An API key as stored, live or revoked.
#[derive(Debug, Clone)]
pub struct ApiKeyLookup {
    pub key: ApiKeyInfo,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new API key's hash; the key itself is shown once by the caller.
    pub async fn create_api_key(
        &self,
        storefront_id: i64,
        name: &str,
        key_hash: &TokenHash,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> DbResult<i64> {
        Ok(self
            .db()
            .query_one(
                "INSERT INTO api_keys (storefront_id, name, key_hash, prefix, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &params![storefront_id, name, &key_hash.0, prefix, now],
            )
            .await?
            .i64(0))
    }

    /// An API key by its hash, whether live or revoked (`None`: never issued).
    pub async fn api_key_lookup(&self, key_hash: &TokenHash) -> DbResult<Option<ApiKeyLookup>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT id, storefront_id, name, revoked_at, last_used_at FROM api_keys WHERE key_hash = $1",
                &params![&key_hash.0],
            )
            .await?
            .map(|r| ApiKeyLookup {
                key: ApiKeyInfo {
                    id: r.i64(0),
                    storefront_id: r.i64(1),
                    name: r.string(2),
                },
                revoked: r.opt_ts(3).is_some(),
                last_used_at: r.opt_ts(4),
            }))
    }

    /// Records that a key was used (callers skip it while `last_used_at` is recent).
    pub async fn touch_api_key(&self, id: i64, now: DateTime<Utc>) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE api_keys SET last_used_at = $2
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
                &params![id, now, now - chrono::Duration::minutes(1)],
            )
            .await?;
        Ok(())
    }

    pub async fn revoke_api_key(
        &self,
        storefront_id: i64,
        id: i64,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        Ok(self
            .db()
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE storefront_id = $1 AND id = $2 AND revoked_at IS NULL",
                &params![storefront_id, id, now],
            )
            .await?
            == 1)
    }
}
