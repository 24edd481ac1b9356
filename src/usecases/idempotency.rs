//! `Idempotency-Key` on the integration API's POSTs: a request with a key claims it for the
//! caller's storefront, runs once, and its answer is kept for 24 hours; a repeat within them
//! gets that answer without a second effect. The HTTP layer says which answers are kept (an
//! answer that asks the client to try again is not) and what a request's fingerprint is.

use chrono::Duration;

use crate::error::AppError;
use crate::services::Services;
use crate::store::{Claim, KeptAnswer, NewClaim};

/// How long an answer is kept for its repeats.
pub const KEPT_FOR_HOURS: i64 = 24;

/// A claim left this long without an answer was left by a process that stopped (a request
/// runs to its end once claimed, whether or not its client waits): the next repeat runs.
pub const ABANDONED_AFTER_SECONDS: i64 = 120;

/// Claims `key` of the storefront for the request whose fingerprint is given, or finds what
/// the key's first request left.
pub async fn claim(
    svc: &Services,
    storefront_id: i64,
    key: &str,
    fingerprint: &[u8],
) -> Result<Claim, AppError> {
    Ok(svc
        .store
        .claim_idempotency_key(NewClaim {
            storefront_id,
            key,
            fingerprint,
            now: svc.now(),
            kept_for: Duration::hours(KEPT_FOR_HOURS),
            abandoned_after: Duration::seconds(ABANDONED_AFTER_SECONDS),
        })
        .await?)
}

/// Keeps the answer of the request that claimed the key.
pub async fn keep(svc: &Services, claim_id: i64, answer: &KeptAnswer) -> Result<(), AppError> {
    Ok(svc.store.keep_idempotent_answer(claim_id, answer).await?)
}

/// Gives the key up: its next request runs as if it were the first.
pub async fn release(svc: &Services, claim_id: i64) -> Result<(), AppError> {
    Ok(svc.store.release_idempotency_key(claim_id).await?)
}
