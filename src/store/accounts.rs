//! Customer accounts: looking one up, creating one, the profile's Save (a new address waits
//! for its confirmation, see `email_changes`), sign-up through the integration API, and the
//! console's search, customer record and merge, and the API's read-back of accounts.

use chrono::{DateTime, Utc};

use super::Store;
use super::audience::CUSTOMERS;
use super::audit::insert_audit;
use super::contacts::{ContactView, contact_by_ref, link_unlinked_contact, move_contacts};
use super::db::{Conn, DbError, DbResult, qualified};
use super::deliveries::{Delivery, NewDelivery, WrittenDelivery, insert_delivery, move_deliveries};
use super::email_changes::{NewEmailChange, insert_email_change, recent_email_changes};
use super::invoices::{Invoice, InvoiceFilter};
use super::page::{Page, keyset, keyset_params, page_of};
use super::payments::move_payment_methods;
use super::rentals::Rental;
use super::rows::{ACCOUNT_COLUMNS, Account, StaffUser, account_from, address_taken, lock_account};
use super::sessions::end_sessions;
use super::tokens::delete_links;
use crate::domain::EmailAddress;
use crate::params;

/// What Account's Save changes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    Saved {
        /// When the email is new: the confirmation email to the new address (the account
        /// keeps its old address until the link is used).
        confirmation_delivery: Option<WrittenDelivery>,
    },
    /// Another account of the storefront has that address: nothing was saved.
    EmailTaken,
    /// The account asked for `max` address changes within the window already (each one
    /// emails an address of the customer's choosing): nothing was saved.
    TooManyChanges,
    NoSuchAccount,
}

impl super::deliveries::WroteDelivery for AccountUpdate {
    fn written_delivery(&self) -> Option<i64> {
        match self {
            AccountUpdate::Saved {
                confirmation_delivery,
            } => confirmation_delivery.written_delivery(),
            _ => None,
        }
    }
}

/// New values for an account's profile, already validated.
#[derive(Debug, Clone)]
pub struct ProfileChange {
    pub full_name: String,
    pub email: EmailAddress,
    pub phone: String,
}

/// What a storefront sign-up did.
#[derive(Debug, Clone)]
pub enum SignUp {
    Created {
        account: Account,
        contact_refs: Vec<String>,
    },
    /// Another account of the storefront has this address (compared without case).
    EmailTaken,
    UnknownContact(String),
    /// The contact is linked to an account already.
    ContactLinked(String),
}

#[derive(Debug, Clone)]
pub struct CustomerRecord {
    pub account: Account,
    pub contacts: Vec<ContactView>,
    pub rentals: Vec<Rental>,
    pub deliveries: Vec<Delivery>,
    pub last_link_resent_at: Option<DateTime<Utc>>,
    /// Newest first, with their status (pending, processing, paid, void).
    pub invoices: Vec<Invoice>,
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

/// What merging an account into another would move and end, read before asking to confirm
/// ([`Store::merge_preview`]): the merge itself moves the contacts (and with them their
/// rentals and invoices), the emails and the payment methods, ends the sessions and links,
/// and moves the Stripe customer when the survivor has none.
#[derive(Debug, Clone)]
pub struct MergePreview {
    /// The account that would stay.
    pub survivor: Account,
    /// The account that would be merged and removed.
    pub merged: Account,
    pub contacts: u64,
    pub rentals: u64,
    pub invoices: u64,
    pub deliveries: u64,
    pub payment_methods: u64,
    pub sessions: u64,
    pub links: u64,
    pub stripe_customer_moves: bool,
}

/// An account as the API shows it: with the references of its contacts.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub account: Account,
    /// Its contacts' references, in the order they were created.
    pub contact_refs: Vec<String>,
}

impl Store {
    /// A page of the storefront's accounts as the API shows them, newest first.
    pub async fn account_records(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<AccountRecord>> {
        let sql = format!(
            "SELECT {} FROM accounts a {}",
            qualified(ACCOUNT_COLUMNS, "a"),
            keyset("a")
        );
        let rows = self
            .db()
            .query(&sql, &keyset_params(storefront_id, before, limit))
            .await?;
        let accounts: Vec<Account> = rows.iter().map(account_from).collect();
        let page = page_of(accounts, limit, |a: &Account| a.id);
        let records = self.with_contact_refs(storefront_id, page.items).await?;
        Ok(Page {
            items: records,
            next: page.next,
        })
    }

    /// The storefront's account with this id, as the API shows it (`None` for another
    /// storefront's).
    pub async fn account_record(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Option<AccountRecord>> {
        let Some(account) = self.account(storefront_id, account_id).await? else {
            return Ok(None);
        };
        Ok(self
            .with_contact_refs(storefront_id, vec![account])
            .await?
            .pop())
    }

    /// The accounts with their contacts' references, read in one statement over the range of
    /// their ids.
    async fn with_contact_refs(
        &self,
        storefront_id: i64,
        accounts: Vec<Account>,
    ) -> DbResult<Vec<AccountRecord>> {
        let (Some(low), Some(high)) = (
            accounts.iter().map(|a| a.id).min(),
            accounts.iter().map(|a| a.id).max(),
        ) else {
            return Ok(Vec::new());
        };
        let links = self
            .db()
            .query(
                "SELECT account_id, external_ref FROM contacts
                 WHERE storefront_id = $1 AND account_id BETWEEN $2 AND $3 ORDER BY id",
                &params![storefront_id, low, high],
            )
            .await?;
        Ok(accounts
            .into_iter()
            .map(|account| {
                let contact_refs = links
                    .iter()
                    .filter(|r| r.opt_i64(0) == Some(account.id))
                    .map(|r| r.string(1))
                    .collect();
                AccountRecord {
                    account,
                    contact_refs,
                }
            })
            .collect())
    }

    pub async fn account_by_email(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
    ) -> DbResult<Option<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND email_key = $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, email.key()])
            .await?
            .as_ref()
            .map(account_from))
    }

    /// An account of this storefront (never of another).
    /// Sets the language the customer chose (`None`: follow the storefront).
    pub async fn set_account_language(
        &self,
        storefront_id: i64,
        account_id: i64,
        language: Option<&str>,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE accounts SET language = $3, updated_at = $4 WHERE storefront_id = $1 AND id = $2",
                &params![storefront_id, account_id, language, now],
            )
            .await?;
        Ok(())
    }

    pub async fn account(&self, storefront_id: i64, account_id: i64) -> DbResult<Option<Account>> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2");
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, account_id])
            .await?
            .as_ref()
            .map(account_from))
    }

    /// Creates an account; a taken address is `DbError::Unique`.
    pub async fn create_account(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
        full_name: &str,
        phone: &str,
        now: DateTime<Utc>,
    ) -> DbResult<Account> {
        let mut tx = self.db().begin().await?;
        let account = insert_account(&mut *tx, storefront_id, email, full_name, phone, now).await?;
        emit_account_created(&mut *tx, &account, &[], now).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Saves the name and phone. A new email is not applied: when it is free, the pending
    /// change (`confirmation`'s link) and its email to the new address are written in the same
    /// transaction (`confirmation` builds them from the account as it is); when another
    /// account has it, or the account asked for `max_changes` changes within `window`, nothing
    /// is saved (the account row is locked, so the count holds across web nodes).
    pub async fn update_profile<F>(
        &self,
        storefront_id: i64,
        account_id: i64,
        change: &ProfileChange,
        (max_changes, window): (u32, chrono::Duration),
        confirmation: F,
        now: DateTime<Utc>,
    ) -> DbResult<AccountUpdate>
    where
        F: FnOnce(&Account) -> (NewEmailChange, NewDelivery) + Send,
    {
        let mut tx = self.db().begin().await?;
        let Some(old) = lock_account(&mut *tx, self.dialect(), storefront_id, account_id).await?
        else {
            tx.commit().await?;
            return Ok(AccountUpdate::NoSuchAccount);
        };
        let key = change.email.key();
        let changed = old.email.key() != key;
        if changed {
            if address_taken(&mut *tx, storefront_id, &key, Some(account_id)).await? {
                tx.commit().await?;
                return Ok(AccountUpdate::EmailTaken);
            }
            let recent = recent_email_changes(&mut *tx, account_id, now - window).await?;
            if recent >= max_changes as i64 {
                tx.commit().await?;
                return Ok(AccountUpdate::TooManyChanges);
            }
        }
        tx.execute(
            "UPDATE accounts SET full_name = $3, phone = $4, updated_at = $5
             WHERE storefront_id = $1 AND id = $2",
            &params![
                storefront_id,
                account_id,
                change.full_name.as_str(),
                change.phone.as_str(),
                now
            ],
        )
        .await?;
        let mut confirmation_delivery = None;
        if changed {
            let (pending, delivery) = confirmation(&old);
            insert_email_change(
                &mut *tx,
                storefront_id,
                account_id,
                &change.email,
                &pending,
                now,
            )
            .await?;
            confirmation_delivery = Some(insert_delivery(&mut *tx, &delivery, now).await?);
        }
        tx.commit().await?;
        Ok(AccountUpdate::Saved {
            confirmation_delivery,
        })
    }

    /// Storefront sign-up: creates the account and links the given contacts (which must be
    /// the storefront's and not linked yet), all or nothing, with its audit entry (`audit`, to
    /// which the account's id and the linked contacts are added) in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_up(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
        full_name: &str,
        phone: &str,
        contact_refs: &[String],
        audit: (&str, serde_json::Value),
        now: DateTime<Utc>,
    ) -> DbResult<SignUp> {
        let mut tx = self.db().begin().await?;
        if address_taken(&mut *tx, storefront_id, &email.key(), None).await? {
            return Ok(SignUp::EmailTaken);
        }
        let inserted = insert_account(&mut *tx, storefront_id, email, full_name, phone, now).await;
        let account = match inserted {
            Ok(account) => account,
            // Another sign-up with this address committed in between.
            Err(DbError::Unique(_)) => return Ok(SignUp::EmailTaken),
            Err(e) => return Err(e),
        };
        for contact_ref in contact_refs {
            let Some(contact) = contact_by_ref(&mut *tx, storefront_id, contact_ref).await? else {
                return Ok(SignUp::UnknownContact(contact_ref.clone()));
            };
            if !link_unlinked_contact(&mut *tx, contact.id, account.id, now).await? {
                return Ok(SignUp::ContactLinked(contact_ref.clone()));
            }
        }
        let (action, mut details) = audit;
        details["account_id"] = account.id.into();
        details["contacts"] = contact_refs.into();
        insert_audit(&mut *tx, Some(storefront_id), None, action, &details, now).await?;
        emit_account_created(&mut *tx, &account, contact_refs, now).await?;
        tx.commit().await?;
        Ok(SignUp::Created {
            account,
            contact_refs: contact_refs.to_vec(),
        })
    }

    /// A page of the storefront's customers for the console, newest first, keyset-paged by id
    /// like the API's pages; with `q`, only those whose name or email address contains it
    /// (without regard to case, `%` and `_` matching themselves). The page walks the
    /// `(storefront_id, id)` index down from the cursor and stops at `limit + 1` matches, so
    /// browsing costs what one index range does; a query that matches few accounts reads the
    /// storefront's accounts until it has found a page (no trigram index: SQLite has none, and
    /// a storefront has thousands of accounts, not millions).
    pub async fn customers_page(
        &self,
        storefront_id: i64,
        q: &str,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<Account>> {
        let q = q.trim();
        let cols = qualified(ACCOUNT_COLUMNS, "a");
        let mut params = keyset_params(storefront_id, before, limit);
        let filter = if q.is_empty() {
            String::new()
        } else {
            let like = self.dialect().ilike();
            params.push(super::db::contains_pattern(q).into());
            format!("a.email {like} $4 ESCAPE '\\' OR a.full_name {like} $4 ESCAPE '\\'")
        };
        let sql = if filter.is_empty() {
            format!("SELECT {cols} FROM accounts a {}", keyset("a"))
        } else {
            format!(
                "SELECT {cols} FROM accounts a WHERE ({filter}) AND {}",
                keyset("a").trim_start_matches("WHERE ")
            )
        };
        let rows = self.db().query(&sql, &params).await?;
        Ok(page_of(
            rows.iter().map(account_from).collect(),
            limit,
            |a| a.id,
        ))
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
            .account_invoices(storefront_id, account_id, InvoiceFilter::All)
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

    /// What merging `merged` into `survivor` (both of the storefront) would move and end;
    /// `None` when either is not the storefront's or they are the same account. Changes nothing.
    pub async fn merge_preview(
        &self,
        storefront_id: i64,
        survivor: i64,
        merged: i64,
    ) -> DbResult<Option<MergePreview>> {
        if survivor == merged {
            return Ok(None);
        }
        let (Some(keep), Some(gone)) = (
            self.account(storefront_id, survivor).await?,
            self.account(storefront_id, merged).await?,
        ) else {
            return Ok(None);
        };
        let row = self
            .db()
            .query_one(
                "SELECT
                   (SELECT COUNT(*) FROM contacts WHERE account_id = $1),
                   (SELECT COUNT(*) FROM rentals r JOIN contacts c ON c.id = r.contact_id WHERE c.account_id = $1),
                   (SELECT COUNT(*) FROM invoices i JOIN contacts c ON c.id = i.contact_id WHERE c.account_id = $1),
                   (SELECT COUNT(*) FROM deliveries WHERE account_id = $1),
                   (SELECT COUNT(*) FROM payment_methods WHERE account_id = $1),
                   (SELECT COUNT(*) FROM sessions WHERE account_id = $1),
                   (SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1)",
                &params![merged],
            )
            .await?;
        let n = |i: usize| row.i64(i).max(0) as u64;
        Ok(Some(MergePreview {
            contacts: n(0),
            rentals: n(1),
            invoices: n(2),
            deliveries: n(3),
            payment_methods: n(4),
            sessions: n(5),
            links: n(6),
            stripe_customer_moves: keep.stripe_customer_id.is_none()
                && gone.stripe_customer_id.is_some(),
            merged: gone,
            survivor: keep,
        }))
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
            contacts: move_contacts(&mut *tx, merged, survivor, now).await?,
            deliveries: move_deliveries(&mut *tx, merged, survivor).await?,
            payment_methods: move_payment_methods(&mut *tx, merged, survivor).await?,
            sessions_ended: end_sessions(&mut *tx, &CUSTOMERS, merged).await?,
            links_ended: delete_links(&mut *tx, &CUSTOMERS, merged).await?,
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
        insert_audit(
            &mut *tx,
            Some(storefront_id),
            Some(by),
            "merge_accounts",
            &details,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some((gone, report)))
    }
}

/// The `account.created` webhook event, in the transaction that created the account.
async fn emit_account_created(
    conn: &mut dyn Conn,
    account: &Account,
    contact_refs: &[String],
    now: DateTime<Utc>,
) -> DbResult<()> {
    let created = serde_json::json!({
        "account_id": account.id,
        "email": account.email.as_str(),
        "full_name": account.full_name,
        "contacts": contact_refs,
    });
    let event = super::events::NewEvent::new(
        account.storefront_id,
        crate::domain::events::EventType::AccountCreated,
        created,
    );
    super::events::emit_event(conn, event, now).await?;
    Ok(())
}

/// Writes a new account on the caller's connection or transaction; a taken address is
/// `DbError::Unique`.
async fn insert_account(
    conn: &mut dyn Conn,
    storefront_id: i64,
    email: &EmailAddress,
    full_name: &str,
    phone: &str,
    now: DateTime<Utc>,
) -> DbResult<Account> {
    let sql = format!(
        "INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {ACCOUNT_COLUMNS}"
    );
    let row = conn
        .query_one(
            &sql,
            &params![
                storefront_id,
                email.as_str(),
                email.key(),
                full_name,
                phone,
                now
            ],
        )
        .await?;
    Ok(account_from(&row))
}
