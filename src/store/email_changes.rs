//! Email changes confirmed at the new address (SPEC §8): the pending change's single-use link
//! (only its SHA-256 is stored), and the confirmation that switches the address, ends the
//! account's other sessions and unused sign-in links, and writes the notice to the old address,
//! all in one transaction.

use chrono::{DateTime, Utc};

use super::Store;
use super::audience::{Audience, CUSTOMERS};
use super::db::{Conn, DbError, DbResult};
use super::deliveries::{NewDelivery, WrittenDelivery, insert_delivery};
use super::rows::{Account, address_taken, lock_account, set_address};
use super::sessions::{NewSession, end_sessions, start_session};
use super::tokens::end_links;
use crate::domain::{EmailAddress, TokenHash};
use crate::params;

/// A confirmation link to write with a profile change that names a new address.
#[derive(Debug, Clone)]
pub struct NewEmailChange {
    pub token_hash: TokenHash,
    pub expires_at: DateTime<Utc>,
}

/// An email change waiting for its link to be used.
#[derive(Debug, Clone)]
pub struct PendingEmailChange {
    pub account_id: i64,
    pub new_email: EmailAddress,
    pub expires_at: DateTime<Utc>,
}

/// What using a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    /// The address switched.
    Confirmed {
        account_id: i64,
        old_email: EmailAddress,
        new_email: EmailAddress,
        /// The notice to the old address.
        notice_delivery: Option<WrittenDelivery>,
    },
    /// Expired, used, superseded or unknown (or its account is gone): nothing changed.
    Expired,
    /// Another account of the storefront took the address in the meantime: nothing changed,
    /// and the link stays as it was.
    Taken,
}

impl super::deliveries::WroteDelivery for EmailChangeOutcome {
    fn written_delivery(&self) -> Option<i64> {
        match self {
            EmailChangeOutcome::Confirmed {
                notice_delivery, ..
            } => notice_delivery.written_delivery(),
            EmailChangeOutcome::Expired | EmailChangeOutcome::Taken => None,
        }
    }
}

impl Store {
    /// The live change behind a confirmation link, without using it up (mail scanners).
    pub async fn live_email_change(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<PendingEmailChange>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT account_id, new_email, expires_at FROM email_change_tokens
                 WHERE token_hash = $1 AND storefront_id = $2 AND used_at IS NULL AND expires_at > $3",
                &params![&hash.0, storefront_id, now],
            )
            .await?
            .map(|r| PendingEmailChange {
                account_id: r.i64(0),
                new_email: r.email(1),
                expires_at: r.ts(2),
            }))
    }

    /// The account's newest change still waiting for confirmation.
    pub async fn pending_email_change(
        &self,
        storefront_id: i64,
        account_id: i64,
        now: DateTime<Utc>,
    ) -> DbResult<Option<PendingEmailChange>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT account_id, new_email, expires_at FROM email_change_tokens
                 WHERE account_id = $1 AND storefront_id = $2 AND used_at IS NULL AND expires_at > $3
                 ORDER BY created_at DESC LIMIT 1",
                &params![account_id, storefront_id, now],
            )
            .await?
            .map(|r| PendingEmailChange {
                account_id: r.i64(0),
                new_email: r.email(1),
                expires_at: r.ts(2),
            }))
    }

    /// Uses a confirmation link once: re-checks that no other account of the storefront has
    /// the address, switches it, ends every session and every unused sign-in link of the
    /// account (and its other pending changes), starts `session` when given, and writes the
    /// notice that `notice` builds from the account as it was and the new address.
    pub async fn confirm_email_change<F>(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        session: Option<NewSession<'_>>,
        notice: F,
        now: DateTime<Utc>,
    ) -> DbResult<EmailChangeOutcome>
    where
        F: FnOnce(&Account, &EmailAddress) -> NewDelivery + Send,
    {
        let mut tx = self.db().begin().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE email_change_tokens SET used_at = $3
                 WHERE token_hash = $1 AND storefront_id = $2 AND used_at IS NULL AND expires_at > $3
                 RETURNING account_id, new_email, new_email_key",
                &params![&hash.0, storefront_id, now],
            )
            .await?
        else {
            return Ok(EmailChangeOutcome::Expired);
        };
        let (account_id, new_email, new_key) = (row.i64(0), row.email(1), row.string(2));
        let Some(old) = lock_account(&mut *tx, self.dialect(), storefront_id, account_id).await?
        else {
            return Ok(EmailChangeOutcome::Expired);
        };
        if address_taken(&mut *tx, storefront_id, &new_key, Some(account_id)).await? {
            return Ok(EmailChangeOutcome::Taken);
        }
        let address = (new_email.as_str(), new_key.as_str());
        match set_address(&mut *tx, storefront_id, account_id, address, now).await {
            Err(DbError::Unique(_)) => return Ok(EmailChangeOutcome::Taken),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        end_email_changes(&mut *tx, account_id, now).await?;
        end_links(&mut *tx, &CUSTOMERS, account_id, now).await?;
        end_sessions(&mut *tx, &CUSTOMERS, account_id).await?;
        if let Some(s) = session {
            let audience = Audience::Customer(storefront_id);
            start_session(&mut *tx, audience, account_id, &s, now).await?;
        }
        let notice_delivery = if old.email.key() != new_key {
            Some(insert_delivery(&mut *tx, &notice(&old, &new_email), now).await?)
        } else {
            None
        };
        let changed = serde_json::json!({"account_id": account_id, "old_email": old.email.as_str(), "new_email": new_email.as_str()});
        let event = super::events::NewEvent::new(
            storefront_id,
            crate::domain::events::EventType::AccountEmailChanged,
            changed,
        );
        super::events::emit_event(&mut *tx, event, now).await?;
        tx.commit().await?;
        Ok(EmailChangeOutcome::Confirmed {
            account_id,
            old_email: old.email,
            new_email,
            notice_delivery,
        })
    }

    /// Deletes confirmation links that expired more than a day ago. Returns how many.
    pub async fn sweep_email_changes(&self, now: DateTime<Utc>) -> DbResult<u64> {
        self.db()
            .execute(
                "DELETE FROM email_change_tokens WHERE expires_at <= $1",
                &params![now - chrono::Duration::days(1)],
            )
            .await
    }
}

/// Writes the pending change in the profile's transaction (see `Store::update_profile`):
/// earlier pending changes of the account end, so only the newest link works.
pub(crate) async fn insert_email_change(
    conn: &mut dyn Conn,
    storefront_id: i64,
    account_id: i64,
    new_email: &EmailAddress,
    change: &NewEmailChange,
    now: DateTime<Utc>,
) -> DbResult<()> {
    end_email_changes(conn, account_id, now).await?;
    conn.execute(
        "INSERT INTO email_change_tokens (token_hash, storefront_id, account_id, new_email, new_email_key, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &params![
            &change.token_hash.0,
            storefront_id,
            account_id,
            new_email.as_str(),
            new_email.key(),
            now,
            change.expires_at
        ],
    )
    .await?;
    Ok(())
}

/// Ends the account's pending changes (a newer one replaces them, or one was confirmed).
async fn end_email_changes(
    conn: &mut dyn Conn,
    account_id: i64,
    now: DateTime<Utc>,
) -> DbResult<()> {
    conn.execute(
        "UPDATE email_change_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL",
        &params![account_id, now],
    )
    .await?;
    Ok(())
}

/// How many changes the account asked for since `since` (the profile's limit on them).
pub(super) async fn recent_email_changes(
    conn: &mut dyn Conn,
    account_id: i64,
    since: DateTime<Utc>,
) -> DbResult<i64> {
    Ok(conn
        .query_one(
            "SELECT COUNT(*) FROM email_change_tokens WHERE account_id = $1 AND created_at > $2",
            &params![account_id, since],
        )
        .await?
        .i64(0))
}
