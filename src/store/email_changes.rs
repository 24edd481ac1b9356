//! Email changes confirmed at the new address (SPEC §8): the pending change's single-use link
//! (only its SHA-256 is stored), and the confirmation that switches the address, ends the
//! account's other sessions and unused sign-in links, and writes the notice to the old address,
//! all in one transaction.

use chrono::{DateTime, Utc};

use super::Store;
use super::accounts::{ACCOUNT_COLUMNS, Account, account_from};
use super::audience::{Audience, CUSTOMERS};
use super::db::{Conn, DbError, DbResult, Dialect};
use super::deliveries::{NewDelivery, insert_delivery};
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
    pub new_email: String,
    pub expires_at: DateTime<Utc>,
}

/// What using a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    /// The address switched.
    Confirmed {
        account_id: i64,
        old_email: String,
        new_email: String,
        /// The notice to the old address.
        notice_delivery: Option<i64>,
    },
    /// Expired, used, superseded or unknown (or its account is gone): nothing changed.
    Expired,
    /// Another account of the storefront took the address in the meantime: nothing changed,
    /// and the link stays as it was.
    Taken,
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
                new_email: r.string(1),
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
                new_email: r.string(1),
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
        F: FnOnce(&Account, &str) -> NewDelivery + Send,
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
        let (account_id, new_email, new_key) = (row.i64(0), row.string(1), row.string(2));
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2{lock}"
        );
        let Some(old) = tx
            .query_opt(&sql, &params![storefront_id, account_id])
            .await?
            .as_ref()
            .map(account_from)
        else {
            return Ok(EmailChangeOutcome::Expired);
        };
        let taken = tx
            .query_opt(
                "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2 AND id <> $3",
                &params![storefront_id, new_key.as_str(), account_id],
            )
            .await?;
        if taken.is_some() {
            return Ok(EmailChangeOutcome::Taken);
        }
        match tx
            .execute(
                "UPDATE accounts SET email = $3, email_key = $4, updated_at = $5
                 WHERE storefront_id = $1 AND id = $2",
                &params![
                    storefront_id,
                    account_id,
                    new_email.as_str(),
                    new_key.as_str(),
                    now
                ],
            )
            .await
        {
            Err(DbError::Unique(_)) => return Ok(EmailChangeOutcome::Taken),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        tx.execute(
            "UPDATE email_change_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL",
            &params![account_id, now],
        )
        .await?;
        end_links(&mut *tx, &CUSTOMERS, account_id, now).await?;
        end_sessions(&mut *tx, &CUSTOMERS, account_id).await?;
        if let Some(s) = session {
            let audience = Audience::Customer(storefront_id);
            start_session(&mut *tx, audience, account_id, &s, now).await?;
        }
        let notice_delivery = if old.email.to_lowercase() != new_key {
            Some(insert_delivery(&mut *tx, &notice(&old, &new_email), now).await?)
        } else {
            None
        };
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
    conn.execute(
        "UPDATE email_change_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL",
        &params![account_id, now],
    )
    .await?;
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
