//! The integration API's `Idempotency-Key`s, per storefront: the first request with a key
//! claims it by inserting its row (the unique constraint on (storefront, key) lets exactly one
//! claim through, on both databases and across web nodes), runs, and leaves its answer on the
//! row until the row expires; a repeat finds the answer, a concurrent one finds the claim.
//!
//! Expired rows are swept lazily: each claim first deletes its own key's expired row and a
//! bounded batch of others, so the table holds about a day of keys without a timer.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::DbResult;
use crate::params;

/// How many expired keys (of any storefront) one claim deletes at most.
const SWEEP_BATCH: i64 = 100;

/// An answer kept for a key's repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key (the row's id): run it, then keep its answer or release it.
    Claimed(i64),
    /// The key's first request has not answered yet.
    InProgress,
    /// The key was used for another request.
    OtherRequest,
    /// The first request's answer.
    Answered(KeptAnswer),
}

/// A claim to make: whose key, the request it is for, and how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct NewClaim<'a> {
    pub storefront_id: i64,
    pub key: &'a str,
    /// A hash of the request, to tell a repeat from another request with the same key.
    pub fingerprint: &'a [u8],
    pub now: DateTime<Utc>,
    /// How long the answer is kept.
    pub kept_for: Duration,
    /// A claim this old without an answer was left by a process that stopped: it is taken
    /// over.
    pub abandoned_after: Duration,
}

impl Store {
    /// Claims an idempotency key for a request, or finds what its first request left.
    pub async fn claim_idempotency_key(&self, c: NewClaim<'_>) -> DbResult<Claim> {
        let db = self.db();
        db.execute(
            "DELETE FROM idempotency_keys WHERE id IN (
                 SELECT id FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
            &params![c.now, SWEEP_BATCH],
        )
        .await?;
        db.execute(
            "DELETE FROM idempotency_keys
             WHERE storefront_id = $1 AND idempotency_key = $2 AND expires_at <= $3",
            &params![c.storefront_id, c.key, c.now],
        )
        .await?;
        // A row released or expired between the insert and the read is claimed again (twice
        // is enough for any interleaving that makes progress; a third miss is an error).
        for _ in 0..3 {
            let inserted = db
                .query_opt(
                    "INSERT INTO idempotency_keys (storefront_id, idempotency_key, fingerprint, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (storefront_id, idempotency_key) DO NOTHING RETURNING id",
                    &params![
                        c.storefront_id,
                        c.key,
                        c.fingerprint,
                        c.now,
                        c.now + c.kept_for
                    ],
                )
                .await?;
            if let Some(row) = inserted {
                return Ok(Claim::Claimed(row.i64(0)));
            }
            let Some(row) = db
                .query_opt(
                    "SELECT id, fingerprint, status, content_type, body, created_at
                     FROM idempotency_keys WHERE storefront_id = $1 AND idempotency_key = $2",
                    &params![c.storefront_id, c.key],
                )
                .await?
            else {
                continue;
            };
            let (id, created_at) = (row.i64(0), row.ts(5));
            let Some(status) = row.opt_i64(2) else {
                if created_at > c.now - c.abandoned_after {
                    return Ok(Claim::InProgress);
                }
                // Taken over only by the one request that moves its time on.
                let taken = db
                    .execute(
                        "UPDATE idempotency_keys SET created_at = $3, expires_at = $4, fingerprint = $5
                         WHERE id = $1 AND status IS NULL AND created_at = $2",
                        &params![id, created_at, c.now, c.now + c.kept_for, c.fingerprint],
                    )
                    .await?;
                if taken == 1 {
                    return Ok(Claim::Claimed(id));
                }
                continue;
            };
            if row.bytes(1) != c.fingerprint {
                return Ok(Claim::OtherRequest);
            }
            return Ok(Claim::Answered(KeptAnswer {
                status: u16::try_from(status).unwrap_or(500),
                content_type: row.opt_string(3).unwrap_or_default(),
                body: row.opt_bytes(4).unwrap_or_default(),
            }));
        }
        Err(super::DbError::Query(
            "an idempotency key kept changing while it was claimed".into(),
        ))
    }

    /// Keeps the answer of the request that claimed the key, for its repeats.
    pub async fn keep_idempotent_answer(&self, claim_id: i64, answer: &KeptAnswer) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE idempotency_keys SET status = $2, content_type = $3, body = $4
                 WHERE id = $1 AND status IS NULL",
                &params![
                    claim_id,
                    i64::from(answer.status),
                    answer.content_type.as_str(),
                    answer.body.as_slice()
                ],
            )
            .await?;
        Ok(())
    }

    /// Gives a claimed key up without an answer: the next request with it runs.
    pub async fn release_idempotency_key(&self, claim_id: i64) -> DbResult<()> {
        self.db()
            .execute(
                "DELETE FROM idempotency_keys WHERE id = $1 AND status IS NULL",
                &params![claim_id],
            )
            .await?;
        Ok(())
    }
}
