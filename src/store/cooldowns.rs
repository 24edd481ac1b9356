//! Cooldowns: what a staff member or an API caller may send only once per cooldown (a portal
//! link resent, a booking confirmation), claimed with one conditional UPDATE of the slot's
//! column. The table and column come from the fixed `match` in [`CooldownSlot::place`].

use chrono::{DateTime, Utc};

use super::Store;
use super::db::DbResult;
use crate::params;

/// What a staff member or an API caller may send only once per cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CooldownSlot {
    /// Resending an account's portal link.
    LinkResend { account_id: i64 },
    /// A rental's booking confirmation.
    BookingConfirmation { rental_id: i64 },
}

impl CooldownSlot {
    fn place(self) -> (&'static str, &'static str, i64) {
        match self {
            CooldownSlot::LinkResend { account_id } => {
                ("accounts", "last_link_resent_at", account_id)
            }
            CooldownSlot::BookingConfirmation { rental_id } => {
                ("rentals", "booking_confirmed_at", rental_id)
            }
        }
    }
}

impl Store {
    /// Claims a cooldown slot: `Ok(())` when the last send is older than `cooldown` (and now
    /// counts as the last), `Err(last)` while it holds. One conditional UPDATE, so of concurrent
    /// claims (on any node) one wins.
    pub async fn claim_cooldown(
        &self,
        storefront_id: i64,
        slot: CooldownSlot,
        cooldown: chrono::Duration,
        now: DateTime<Utc>,
    ) -> DbResult<Result<(), DateTime<Utc>>> {
        let (table, column, id) = slot.place();
        let claimed = self
            .db()
            .execute(
                &format!(
                    "UPDATE {table} SET {column} = $3
                     WHERE storefront_id = $1 AND id = $2 AND ({column} IS NULL OR {column} <= $4)"
                ),
                &params![storefront_id, id, now, now - cooldown],
            )
            .await?
            == 1;
        if claimed {
            return Ok(Ok(()));
        }
        let last = self
            .db()
            .query_opt(
                &format!("SELECT {column} FROM {table} WHERE storefront_id = $1 AND id = $2"),
                &params![storefront_id, id],
            )
            .await?
            .and_then(|r| r.opt_ts(0))
            .unwrap_or(now);
        Ok(Err(last))
    }

    /// Gives back a slot claimed at `claimed_at` whose send then failed, so that a retry is not
    /// refused for a message that never went out. A later claim is left alone.
    pub async fn release_cooldown(
        &self,
        storefront_id: i64,
        slot: CooldownSlot,
        claimed_at: DateTime<Utc>,
    ) -> DbResult<()> {
        let (table, column, id) = slot.place();
        self.db()
            .execute(
                &format!(
                    "UPDATE {table} SET {column} = NULL
                     WHERE storefront_id = $1 AND id = $2 AND {column} = $3"
                ),
                &params![storefront_id, id, claimed_at],
            )
            .await?;
        Ok(())
    }
}
