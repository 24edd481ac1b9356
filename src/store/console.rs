//! What the operator console and the integration API read and change: the delivery log (the
//! facility Emails tab), customers, linking contacts, merging accounts.

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{DbResult, Value};
use super::deliveries::{DELIVERY_COLUMNS, Delivery, DeliveryStatus, delivery_from};
use super::portal::Rental;
use super::staff::{AUDIT_INSERT, StaffUser, audit_params};
use super::storefronts::{ACCOUNT_COLUMNS, Account, account_from};
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

/// Filters of the Emails tab (and the API's delivery list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// The recipient, matched whole and without regard to case.
    pub recipient: Option<String>,
}

/// Where the delivery list is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryScope {
    Facility(i64),
    Storefront(i64),
}

/// One page of deliveries, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Pass as `before` for the next (older) page; `None` at the end.
    pub next: Option<i64>,
}

/// A page reads at most this many rows of the scope before it answers with what it found (and
/// a cursor to go on): a filter that matches little never makes a page slow, however many
/// deliveries there are.
const SCAN_LIMIT: i64 = 5_000;

#[derive(Debug, Clone)]
pub struct ContactView {
    pub id: i64,
    pub facility_id: i64,
    pub facility_name: String,
    pub external_ref: String,
    pub full_name: String,
    pub email: String,
    pub phone: String,
    pub account_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CustomerRecord {
    pub account: Account,
    pub contacts: Vec<ContactView>,
    pub rentals: Vec<Rental>,
    pub deliveries: Vec<Delivery>,
    pub last_link_resent_at: Option<DateTime<Utc>>,
    /// Newest first, with their status (pending, processing, paid, void).
    pub invoices: Vec<super::billing::Invoice>,
}

/// What a merge moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MergeReport {
    pub contacts: u64,
    pub deliveries: u64,
    pub payment_methods: u64,
    pub sessions_ended: u64,
    pub links_ended: u64,
    pub stripe_customer_moved: bool,
}

impl Store {
    /// A page of deliveries, newest first, keyset-paged by id (`before`: the cursor of the
    /// previous page).
    pub async fn deliveries_page(
        &self,
        scope: DeliveryScope,
        filter: &DeliveryFilter,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<DeliveryPage> {
        let recipient = filter
            .recipient
            .as_deref()
            .map(|r| r.trim().to_lowercase())
            .unwrap_or_default();
        if !recipient.is_empty() {
            return self
                .recipient_page(scope, filter, &recipient, before, limit)
                .await;
        }
        let cols = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // The scope's next SCAN_LIMIT ids (an index range), then the filters on those rows.
        // The rows are read again from the scope's own index between the scan's lowest id and
        // the cursor, newest first, so the page stops after `limit` matches and never reads
        // beyond the scan's range. (Joining the scan's ids to `deliveries` instead lets the
        // planner walk `deliveries_pkey` down from the newest delivery of every storefront
        // until it finds them: a cost that grows with the depth of the page, and with the whole
        // table when a filter matches little.)
        let (scope_ids, scope_rows, scope_id) = match scope {
            DeliveryScope::Facility(id) => (
                "SELECT delivery_id AS id FROM delivery_facilities WHERE facility_id = $1 AND delivery_id < $2
                 ORDER BY delivery_id DESC LIMIT $3",
                "SELECT d.* FROM delivery_facilities f JOIN deliveries d ON d.id = f.delivery_id
                 WHERE f.facility_id = $1 AND f.delivery_id < $2 AND f.delivery_id >= (SELECT MIN(id) FROM scan)",
                id,
            ),
            DeliveryScope::Storefront(id) => (
                "SELECT id FROM deliveries WHERE storefront_id = $1 AND id < $2
                 ORDER BY id DESC LIMIT $3",
                "SELECT d.* FROM deliveries d
                 WHERE d.storefront_id = $1 AND d.id < $2 AND d.id >= (SELECT MIN(id) FROM scan)",
                id,
            ),
        };
        // One row even when nothing matches, carrying how far the scan went.
        let sql = format!(
            "WITH scan AS ({scope_ids}),
             picked AS (
                 {scope_rows}
                 AND ($4 = '' OR d.status = $4)
                 ORDER BY d.id DESC LIMIT $5)
             SELECT {cols}, s.low, s.n
             FROM (SELECT MIN(id) AS low, COUNT(*) AS n FROM scan) AS s
             LEFT JOIN picked p ON TRUE
             ORDER BY p.id DESC"
        );
        let rows = self
            .db()
            .query(
                &sql,
                &[
                    Value::from(scope_id),
                    Value::from(before.unwrap_or(i64::MAX)),
                    Value::from(SCAN_LIMIT),
                    Value::from(filter.status.map(|s| s.as_str()).unwrap_or("")),
                    Value::from(limit + 1),
                ],
            )
            .await?;
        let (low, scanned) = rows
            .first()
            .map(|r| (r.opt_i64(14), r.i64(15)))
            .unwrap_or((None, 0));
        let mut deliveries: Vec<Delivery> = rows
            .iter()
            .filter(|r| r.opt_i64(0).is_some())
            .map(delivery_from)
            .collect();
        let next = if deliveries.len() as i64 > limit {
            deliveries.truncate(limit as usize);
            deliveries.last().map(|d| d.id)
        } else if scanned >= SCAN_LIMIT {
            // The scan stopped before the end of the scope: go on from where it stopped.
            low
        } else {
            None
        };
        Ok(DeliveryPage { deliveries, next })
    }

    /// A page of one recipient's deliveries in the scope, read through the recipient index:
    /// an address has few deliveries, so the page needs no scan window and holds every match.
    async fn recipient_page(
        &self,
        scope: DeliveryScope,
        filter: &DeliveryFilter,
        recipient: &str,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<DeliveryPage> {
        let cols = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (join, scope_id) = match scope {
            DeliveryScope::Facility(id) => (
                "JOIN delivery_facilities f ON f.delivery_id = d.id AND f.facility_id = $1 WHERE TRUE",
                id,
            ),
            DeliveryScope::Storefront(id) => ("WHERE d.storefront_id = $1", id),
        };
        let sql = format!(
            "SELECT {cols} FROM deliveries d {join}
               AND lower(d.recipient) = $2 AND d.id < $3 AND ($4 = '' OR d.status = $4)
             ORDER BY d.id DESC LIMIT $5"
        );
        let mut deliveries: Vec<Delivery> = self
            .db()
            .query(
                &sql,
                &params![
                    scope_id,
                    recipient,
                    before.unwrap_or(i64::MAX),
                    filter.status.map(|s| s.as_str()).unwrap_or(""),
                    limit + 1
                ],
            )
            .await?
            .iter()
            .map(delivery_from)
            .collect();
        let next = if deliveries.len() as i64 > limit {
            deliveries.truncate(limit as usize);
            deliveries.last().map(|d| d.id)
        } else {
            None
        };
        Ok(DeliveryPage { deliveries, next })
    }

    /// One delivery of the storefront (`None` for another storefront's).
    pub async fn storefront_delivery(
        &self,
        storefront_id: i64,
        id: i64,
    ) -> DbResult<Option<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE storefront_id = $1 AND id = $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, id])
            .await?
            .as_ref()
            .map(delivery_from))
    }

    /// Whether a delivery shows in a facility's Emails tab.
    pub async fn delivery_in_facility(&self, facility_id: i64, delivery_id: i64) -> DbResult<bool> {
        Ok(self
            .db()
            .query_opt(
                "SELECT 1 FROM delivery_facilities WHERE facility_id = $1 AND delivery_id = $2",
                &params![facility_id, delivery_id],
            )
            .await?
            .is_some())
    }

    /// The statuses of some deliveries of a storefront (the Emails tab refreshes in-flight rows).
    pub async fn delivery_statuses(
        &self,
        storefront_id: i64,
        ids: &[i64],
    ) -> DbResult<Vec<Delivery>> {
        let mut out = Vec::new();
        for id in ids.iter().take(100) {
            if let Some(d) = self.storefront_delivery(storefront_id, *id).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// A facility of the storefront.
    pub async fn storefront_facility(
        &self,
        storefront_id: i64,
        facility_id: i64,
    ) -> DbResult<Option<super::portal::Facility>> {
        Ok(self
            .facilities(storefront_id)
            .await?
            .into_iter()
            .find(|f| f.id == facility_id))
    }

    /// Customers whose email or name contains `q` (case-insensitive), at most 50.
    pub async fn search_customers(&self, storefront_id: i64, q: &str) -> DbResult<Vec<Account>> {
        let pattern = format!(
            "%{}%",
            q.trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1
             AND (email_key LIKE $2 ESCAPE '\\' OR lower(full_name) LIKE $2 ESCAPE '\\')
             ORDER BY full_name, id LIMIT 50"
        );
        Ok(self
            .db()
            .query(&sql, &params![storefront_id, pattern])
            .await?
            .iter()
            .map(account_from)
            .collect())
    }

    /// Everything the customer record shows.
    pub async fn customer_record(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Option<CustomerRecord>> {
        let Some(account) = self.account(storefront_id, account_id).await? else {
            return Ok(None);
        };
        let contacts = self.account_contacts(storefront_id, account_id).await?;
        let mut rentals = self.current_rentals(storefront_id, account_id).await?;
        rentals.extend(self.past_rentals(storefront_id, account_id).await?);
        let deliveries = self.account_deliveries(account_id, 20).await?;
        let invoices = self
            .account_invoices(storefront_id, account_id, super::InvoiceFilter::All)
            .await?;
        let last = self
            .db()
            .query_one(
                "SELECT last_link_resent_at FROM accounts WHERE id = $1",
                &params![account_id],
            )
            .await?
            .opt_ts(0);
        Ok(Some(CustomerRecord {
            account,
            contacts,
            rentals,
            deliveries,
            last_link_resent_at: last,
            invoices,
        }))
    }

    async fn account_contacts(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Vec<ContactView>> {
        Ok(self
            .db()
            .query(
                "SELECT c.id, c.facility_id, f.name, c.external_ref, c.full_name, c.email, c.phone, c.account_id
                 FROM contacts c JOIN facilities f ON f.id = c.facility_id
                 WHERE c.storefront_id = $1 AND c.account_id = $2 ORDER BY f.name, c.id",
                &params![storefront_id, account_id],
            )
            .await?
            .iter()
            .map(contact_from)
            .collect())
    }

    /// Contacts of the storefront not linked to any account, matching `q` (for linking).
    pub async fn unlinked_contacts(
        &self,
        storefront_id: i64,
        q: &str,
    ) -> DbResult<Vec<ContactView>> {
        let pattern = format!("%{}%", q.trim().to_lowercase().replace('%', ""));
        Ok(self
            .db()
            .query(
                "SELECT c.id, c.facility_id, f.name, c.external_ref, c.full_name, c.email, c.phone, c.account_id
                 FROM contacts c JOIN facilities f ON f.id = c.facility_id
                 WHERE c.storefront_id = $1 AND c.account_id IS NULL
                   AND (lower(c.email) LIKE $2 OR lower(c.full_name) LIKE $2 OR lower(c.external_ref) LIKE $2)
                 ORDER BY c.full_name, c.id LIMIT 50",
                &params![storefront_id, pattern],
            )
            .await?
            .iter()
            .map(contact_from)
            .collect())
    }

    /// Links a contact of the storefront to an account of the same storefront, recording it
    /// in the audit log in the same transaction. Returns the contact as it was, or `None` when
    /// either is not of the storefront.
    pub async fn link_contact(
        &self,
        storefront_id: i64,
        contact_id: i64,
        account_id: i64,
        by: &StaffUser,
        now: DateTime<Utc>,
    ) -> DbResult<Option<ContactView>> {
        let mut tx = self.db().begin().await?;
        let contact = tx
            .query_opt(
                "SELECT c.id, c.facility_id, f.name, c.external_ref, c.full_name, c.email, c.phone, c.account_id
                 FROM contacts c JOIN facilities f ON f.id = c.facility_id
                 WHERE c.storefront_id = $1 AND c.id = $2",
                &params![storefront_id, contact_id],
            )
            .await?
            .as_ref()
            .map(contact_from);
        let account = tx
            .query_opt(
                "SELECT id FROM accounts WHERE storefront_id = $1 AND id = $2",
                &params![storefront_id, account_id],
            )
            .await?;
        let (Some(contact), Some(_)) = (contact, account) else {
            tx.commit().await?;
            return Ok(None);
        };
        tx.execute(
            "UPDATE contacts SET account_id = $2, updated_at = $3 WHERE id = $1",
            &params![contact_id, account_id, now],
        )
        .await?;
        let details = serde_json::json!({
            "contact_id": contact_id,
            "contact_ref": contact.external_ref,
            "facility": contact.facility_name,
            "account_id": account_id,
            "previous_account_id": contact.account_id,
        });
        tx.execute(
            AUDIT_INSERT,
            &audit_params(Some(storefront_id), Some(by), "link_contact", &details, now),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(contact))
    }

    /// Merges `merged` into `survivor` (both of the storefront): contacts, deliveries and payment
    /// methods move, the Stripe customer moves when the survivor has none, the merged account's
    /// sessions and links end, and the merged account is removed. One transaction, which also
    /// writes the audit entry.
    pub async fn merge_accounts(
        &self,
        storefront_id: i64,
        survivor: i64,
        merged: i64,
        by: &StaffUser,
        now: DateTime<Utc>,
    ) -> DbResult<Option<(Account, MergeReport)>> {
        if survivor == merged {
            return Ok(None);
        }
        let mut tx = self.db().begin().await?;
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2");
        let keep = tx
            .query_opt(&sql, &params![storefront_id, survivor])
            .await?;
        let gone = tx
            .query_opt(&sql, &params![storefront_id, merged])
            .await?
            .as_ref()
            .map(account_from);
        let (Some(keep), Some(gone)) = (keep.as_ref().map(account_from), gone) else {
            tx.commit().await?;
            return Ok(None);
        };
        let mut report = MergeReport {
            contacts: tx
                .execute(
                    "UPDATE contacts SET account_id = $1, updated_at = $3 WHERE account_id = $2",
                    &params![survivor, merged, now],
                )
                .await?,
            deliveries: tx
                .execute(
                    "UPDATE deliveries SET account_id = $1 WHERE account_id = $2",
                    &params![survivor, merged],
                )
                .await?,
            payment_methods: tx
                .execute(
                    "UPDATE payment_methods SET account_id = $1 WHERE account_id = $2",
                    &params![survivor, merged],
                )
                .await?,
            sessions_ended: tx
                .execute(
                    "DELETE FROM sessions WHERE account_id = $1",
                    &params![merged],
                )
                .await?,
            links_ended: tx
                .execute(
                    "DELETE FROM sign_in_tokens WHERE account_id = $1",
                    &params![merged],
                )
                .await?,
            stripe_customer_moved: false,
        };
        if keep.stripe_customer_id.is_none()
            && let Some(customer) = &gone.stripe_customer_id
        {
            tx.execute(
                "UPDATE accounts SET stripe_customer_id = NULL WHERE id = $1",
                &params![merged],
            )
            .await?;
            tx.execute(
                "UPDATE accounts SET stripe_customer_id = $2, updated_at = $3 WHERE id = $1",
                &params![survivor, customer.as_str(), now],
            )
            .await?;
            report.stripe_customer_moved = true;
        }
        tx.execute("DELETE FROM accounts WHERE id = $1", &params![merged])
            .await?;
        let details = serde_json::json!({
            "into_account_id": survivor,
            "merged_account_id": gone.id,
            "merged_email": gone.email,
            "merged_name": gone.full_name,
            "moved": report,
        });
        tx.execute(
            AUDIT_INSERT,
            &audit_params(
                Some(storefront_id),
                Some(by),
                "merge_accounts",
                &details,
                now,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some((gone, report)))
    }

    /// A rental of the storefront with the account its contact is linked to (if any).
    pub async fn rental_with_account(
        &self,
        storefront_id: i64,
        rental_id: i64,
    ) -> DbResult<Option<(Rental, Option<i64>)>> {
        let row = self
            .db()
            .query_opt(
                "SELECT c.account_id FROM rentals r JOIN contacts c ON c.id = r.contact_id
                 WHERE r.storefront_id = $1 AND r.id = $2",
                &params![storefront_id, rental_id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let account_id = row.opt_i64(0);
        let rental = self
            .db()
            .query_opt(
                &format!(
                    "SELECT {} FROM rentals r JOIN facilities f ON f.id = r.facility_id WHERE r.id = $1",
                    super::portal::RENTAL_COLUMNS
                ),
                &params![rental_id],
            )
            .await?
            .as_ref()
            .map(super::portal::rental_from);
        Ok(rental.map(|r| (r, account_id)))
    }

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

    /// One rental of the account (its booking page); `None` for anyone else's.
    pub async fn account_rental(
        &self,
        storefront_id: i64,
        account_id: i64,
        rental_id: i64,
    ) -> DbResult<Option<Rental>> {
        let mut all = self.current_rentals(storefront_id, account_id).await?;
        all.extend(self.past_rentals(storefront_id, account_id).await?);
        Ok(all.into_iter().find(|r| r.id == rental_id))
    }
}

fn contact_from(r: &super::db::Row) -> ContactView {
    ContactView {
        id: r.i64(0),
        facility_id: r.i64(1),
        facility_name: r.string(2),
        external_ref: r.string(3),
        full_name: r.string(4),
        email: r.string(5),
        phone: r.string(6),
        account_id: r.opt_i64(7),
    }
}
