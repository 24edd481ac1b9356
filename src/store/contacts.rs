//! Contacts: the operator's customer records at a facility (upserted by external reference and
//! read back by the API), linked to a portal account by sign-up or by support.

use chrono::{DateTime, Utc};

use super::Store;
use super::audit::insert_audit;
use super::db::{Conn, DbResult, Row};
use super::page::{Page, keyset, keyset_params, page_of};
use super::rows::StaffUser;
use super::storefronts::facility_by_ref;
use super::upsert::{Unresolved, UpsertResult, Upserted, insert_or_update};
use crate::params;

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

/// A [`ContactView`]'s columns and tables (`c`, `f`), for [`contact_view_from`].
const CONTACT_VIEW: &str =
    "SELECT c.id, c.facility_id, f.name, c.external_ref, c.full_name, c.email, c.phone, c.account_id
     FROM contacts c JOIN facilities f ON f.id = c.facility_id";

fn contact_view_from(r: &Row) -> ContactView {
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

#[derive(Debug, Clone)]
pub struct ContactFields {
    pub facility_ref: String,
    pub full_name: String,
    pub email: String,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct ContactRecord {
    pub id: i64,
    pub external_ref: String,
    pub fields: ContactFields,
    pub account_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contact as the API shows it; the statement goes on with its `WHERE`.
const CONTACT_RECORD: &str =
    "SELECT c.id, c.external_ref, f.external_ref, c.full_name, c.email, c.phone, c.account_id,
        c.created_at, c.updated_at
     FROM contacts c JOIN facilities f ON f.id = c.facility_id";

fn contact_record_from(r: &Row) -> ContactRecord {
    ContactRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        fields: ContactFields {
            facility_ref: r.string(2),
            full_name: r.string(3),
            email: r.string(4),
            phone: r.string(5),
        },
        account_id: r.opt_i64(6),
        created_at: r.ts(7),
        updated_at: r.ts(8),
    }
}

/// A contact found by its external reference.
pub(super) struct ContactRef {
    pub id: i64,
    pub facility_id: i64,
}

/// A contact by its external reference (`None` for another storefront's), in the caller's
/// transaction.
pub(super) async fn contact_by_ref(
    conn: &mut dyn Conn,
    storefront_id: i64,
    external_ref: &str,
) -> DbResult<Option<ContactRef>> {
    Ok(conn
        .query_opt(
            "SELECT id, facility_id FROM contacts WHERE storefront_id = $1 AND external_ref = $2",
            &params![storefront_id, external_ref],
        )
        .await?
        .map(|r| ContactRef {
            id: r.i64(0),
            facility_id: r.i64(1),
        }))
}

/// Links a contact to an account unless it is linked already (sign-up), in the caller's
/// transaction. Returns whether it did.
pub(super) async fn link_unlinked_contact(
    conn: &mut dyn Conn,
    contact_id: i64,
    account_id: i64,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let linked = conn
        .execute(
            "UPDATE contacts SET account_id = $2, updated_at = $3
             WHERE id = $1 AND account_id IS NULL",
            &params![contact_id, account_id, now],
        )
        .await?;
    Ok(linked == 1)
}

/// Moves an account's contacts to another account (a merge), inside the caller's
/// transaction. Returns how many.
pub(super) async fn move_contacts(
    conn: &mut dyn Conn,
    from: i64,
    to: i64,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    conn.execute(
        "UPDATE contacts SET account_id = $1, updated_at = $3 WHERE account_id = $2",
        &params![to, from, now],
    )
    .await
}

impl Store {
    pub(super) async fn account_contacts(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Vec<ContactView>> {
        Ok(self
            .db()
            .query(
                &format!(
                    "{CONTACT_VIEW}
                     WHERE c.storefront_id = $1 AND c.account_id = $2 ORDER BY f.name, c.id"
                ),
                &params![storefront_id, account_id],
            )
            .await?
            .iter()
            .map(contact_view_from)
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
                &format!(
                    "{CONTACT_VIEW}
                     WHERE c.storefront_id = $1 AND c.account_id IS NULL
                       AND (lower(c.email) LIKE $2 OR lower(c.full_name) LIKE $2 OR lower(c.external_ref) LIKE $2)
                     ORDER BY c.full_name, c.id LIMIT 50"
                ),
                &params![storefront_id, pattern],
            )
            .await?
            .iter()
            .map(contact_view_from)
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
                &format!(
                    "{CONTACT_VIEW}
                     WHERE c.storefront_id = $1 AND c.id = $2"
                ),
                &params![storefront_id, contact_id],
            )
            .await?
            .as_ref()
            .map(contact_view_from);
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
        insert_audit(
            &mut *tx,
            Some(storefront_id),
            Some(by),
            "link_contact",
            &details,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(contact))
    }

    /// A page of the storefront's contacts as the API shows them, newest first.
    pub async fn contact_records(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<ContactRecord>> {
        let sql = format!("{CONTACT_RECORD} {}", keyset("c"));
        let rows = self
            .db()
            .query(&sql, &keyset_params(storefront_id, before, limit))
            .await?;
        let items = rows.iter().map(contact_record_from).collect();
        Ok(page_of(items, limit, |c: &ContactRecord| c.id))
    }

    /// The storefront's contact with this reference (`None` for another storefront's).
    pub async fn contact_record(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<ContactRecord>> {
        let sql = format!("{CONTACT_RECORD} WHERE c.storefront_id = $1 AND c.external_ref = $2");
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, external_ref])
            .await?
            .as_ref()
            .map(contact_record_from))
    }

    /// Creates or replaces a contact by its external reference. The link to a portal account
    /// is left as it is (only sign-up and support link contacts).
    pub async fn upsert_contact(
        &self,
        storefront_id: i64,
        external_ref: &str,
        c: &ContactFields,
        now: DateTime<Utc>,
    ) -> UpsertResult<ContactRecord> {
        let mut tx = self.db().begin().await?;
        let Some(facility_id) = facility_by_ref(&mut *tx, storefront_id, &c.facility_ref).await?
        else {
            return Ok(Err(Unresolved::Facility));
        };
        let values = params![
            storefront_id,
            external_ref,
            facility_id,
            c.full_name.as_str(),
            c.email.as_str(),
            c.phone.as_str(),
            now
        ];
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO contacts (storefront_id, external_ref, facility_id, full_name, email, phone, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &values,
            ),
            (
                "UPDATE contacts SET facility_id = $3, full_name = $4, email = $5, phone = $6, updated_at = $7
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &values,
            ),
        )
        .await?;
        let sql = format!("{CONTACT_RECORD} WHERE c.id = $1");
        let row = tx.query_one(&sql, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: contact_record_from(&row),
            created,
        }))
    }
}
