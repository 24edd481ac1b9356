//! What the integration API writes and reads that nothing else does: API key checks, upserts
//! of the operator's records by their external reference (facilities, contacts, rentals,
//! invoices, agreements), and the storefront sign-up that creates an account and links
//! contacts.
//!
//! An upsert tells a create from an update exactly, on both databases and under concurrent
//! calls: `INSERT … ON CONFLICT DO NOTHING RETURNING id` returns a row only when it inserted;
//! otherwise the `UPDATE` of the existing row follows in the same transaction.

use chrono::{DateTime, NaiveDate, Utc};

use super::Store;
use super::db::{DbError, DbResult, Row, Transaction, Value};
use super::staff::{AUDIT_INSERT, ApiKeyInfo, audit_params};
use super::storefronts::{ACCOUNT_COLUMNS, Account, account_from};
use crate::domain::{EmailAddress, TokenHash};
use crate::params;

/// An API key as stored, live or revoked.
#[derive(Debug, Clone)]
pub struct ApiKeyLookup {
    pub key: ApiKeyInfo,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The stored record and whether this call created it.
#[derive(Debug, Clone)]
pub struct Upserted<T> {
    pub record: T,
    pub created: bool,
}

/// A reference in an upsert's input that does not name a record of the storefront.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    Facility,
    Contact,
    Rental,
    /// The rental exists but belongs to another contact than the invoice's.
    RentalOfAnotherContact,
}

pub type UpsertResult<T> = DbResult<Result<Upserted<T>, Unresolved>>;

#[derive(Debug, Clone)]
pub struct FacilityFields {
    pub name: String,
    pub address: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct FacilityRecord {
    pub id: i64,
    pub external_ref: String,
    pub fields: FacilityFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

#[derive(Debug, Clone)]
pub struct RentalFields {
    pub contact_ref: String,
    pub label: String,
    pub status: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub rate_minor: i64,
    pub currency: String,
    pub rate_period: String,
    pub delivery_status: Option<String>,
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RentalRecord {
    pub id: i64,
    pub external_ref: String,
    pub facility_ref: String,
    pub fields: RentalFields,
    pub has_agreement: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct InvoiceFields {
    pub contact_ref: String,
    pub rental_ref: Option<String>,
    pub number: String,
    pub description: String,
    pub amount_minor: i64,
    pub currency: String,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct InvoiceRecord {
    pub id: i64,
    pub external_ref: String,
    pub facility_ref: String,
    /// As stored: an invoice already paid stays paid when an upsert says `pending`.
    pub fields: InvoiceFields,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AgreementRecord {
    pub rental_id: i64,
    pub rental_ref: String,
    pub file_name: String,
    pub size: i64,
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

const FACILITY_COLUMNS: &str =
    "id, external_ref, name, address, phone, email, created_at, updated_at";

fn facility_from(r: &Row) -> FacilityRecord {
    FacilityRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        fields: FacilityFields {
            name: r.string(2),
            address: r.string(3),
            phone: r.string(4),
            email: r.string(5),
        },
        created_at: r.ts(6),
        updated_at: r.ts(7),
    }
}

const CONTACT_QUERY: &str =
    "SELECT c.id, c.external_ref, f.external_ref, c.full_name, c.email, c.phone, c.account_id,
        c.created_at, c.updated_at
     FROM contacts c JOIN facilities f ON f.id = c.facility_id WHERE c.id = $1";

fn contact_from(r: &Row) -> ContactRecord {
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

const RENTAL_QUERY: &str =
    "SELECT r.id, r.external_ref, c.external_ref, f.external_ref, r.label, r.status, r.starts_on,
        r.ends_on, r.rate_minor, r.currency, r.rate_period, r.delivery_status, r.tracking_url,
        EXISTS (SELECT 1 FROM agreements g WHERE g.rental_id = r.id), r.created_at, r.updated_at
     FROM rentals r JOIN contacts c ON c.id = r.contact_id JOIN facilities f ON f.id = r.facility_id
     WHERE r.id = $1";

fn rental_from(r: &Row) -> RentalRecord {
    RentalRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        facility_ref: r.string(3),
        fields: RentalFields {
            contact_ref: r.string(2),
            label: r.string(4),
            status: r.string(5),
            starts_on: r.date(6),
            ends_on: r.opt_date(7),
            rate_minor: r.i64(8),
            currency: r.string(9),
            rate_period: r.string(10),
            delivery_status: r.opt_string(11),
            tracking_url: r.opt_string(12),
        },
        has_agreement: r.bool(13),
        created_at: r.ts(14),
        updated_at: r.ts(15),
    }
}

const INVOICE_QUERY: &str = "SELECT i.id, i.external_ref, c.external_ref, r.external_ref, f.external_ref, i.number,
        i.description, i.amount_minor, i.currency, i.issued_on, i.due_on, i.status, i.paid_at,
        i.created_at, i.updated_at
     FROM invoices i JOIN contacts c ON c.id = i.contact_id JOIN facilities f ON f.id = i.facility_id
     LEFT JOIN rentals r ON r.id = i.rental_id
     WHERE i.id = $1";

fn invoice_from(r: &Row) -> InvoiceRecord {
    InvoiceRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        facility_ref: r.string(4),
        fields: InvoiceFields {
            contact_ref: r.string(2),
            rental_ref: r.opt_string(3),
            number: r.string(5),
            description: r.string(6),
            amount_minor: r.i64(7),
            currency: r.string(8),
            issued_on: r.date(9),
            due_on: r.date(10),
            status: r.string(11),
        },
        paid_at: r.opt_ts(12),
        created_at: r.ts(13),
        updated_at: r.ts(14),
    }
}

/// Inserts a row unless its reference exists (then `update` runs instead); returns the row's
/// id and whether it was created.
async fn insert_or_update(
    tx: &mut dyn Transaction,
    (insert, insert_params): (&str, &[Value]),
    (update, update_params): (&str, &[Value]),
) -> DbResult<(i64, bool)> {
    if let Some(row) = tx.query_opt(insert, insert_params).await? {
        return Ok((row.i64(0), true));
    }
    let row = tx.query_one(update, update_params).await?;
    Ok((row.i64(0), false))
}

/// The id of a record of the storefront by its external reference, in a transaction.
async fn id_by_ref(
    tx: &mut dyn Transaction,
    table: RefTable,
    storefront_id: i64,
    external_ref: &str,
) -> DbResult<Option<Row>> {
    let sql = match table {
        RefTable::Facility => {
            "SELECT id FROM facilities WHERE storefront_id = $1 AND external_ref = $2"
        }
        RefTable::Contact => {
            "SELECT id, facility_id, account_id FROM contacts WHERE storefront_id = $1 AND external_ref = $2"
        }
        RefTable::Rental => {
            "SELECT id, contact_id FROM rentals WHERE storefront_id = $1 AND external_ref = $2"
        }
    };
    tx.query_opt(sql, &params![storefront_id, external_ref])
        .await
}

#[derive(Clone, Copy)]
enum RefTable {
    Facility,
    Contact,
    Rental,
}

impl Store {
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

    /// A facility's id by its external reference (`None` for another storefront's).
    pub async fn facility_id_by_ref(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<i64>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT id FROM facilities WHERE storefront_id = $1 AND external_ref = $2",
                &params![storefront_id, external_ref],
            )
            .await?
            .map(|r| r.i64(0)))
    }

    /// A rental's id by its external reference (`None` for another storefront's).
    pub async fn rental_id_by_ref(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<i64>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT id FROM rentals WHERE storefront_id = $1 AND external_ref = $2",
                &params![storefront_id, external_ref],
            )
            .await?
            .map(|r| r.i64(0)))
    }

    /// Creates or replaces a facility by its external reference.
    pub async fn upsert_facility(
        &self,
        storefront_id: i64,
        external_ref: &str,
        f: &FacilityFields,
        now: DateTime<Utc>,
    ) -> DbResult<Upserted<FacilityRecord>> {
        let mut tx = self.db().begin().await?;
        let values = params![
            storefront_id,
            external_ref,
            f.name.as_str(),
            f.address.as_str(),
            f.phone.as_str(),
            f.email.as_str(),
            now
        ];
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO facilities (storefront_id, external_ref, name, address, phone, email, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &values,
            ),
            (
                "UPDATE facilities SET name = $3, address = $4, phone = $5, email = $6, updated_at = $7
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &values,
            ),
        )
        .await?;
        let sql = format!("SELECT {FACILITY_COLUMNS} FROM facilities WHERE id = $1");
        let row = tx.query_one(&sql, &params![id]).await?;
        tx.commit().await?;
        Ok(Upserted {
            record: facility_from(&row),
            created,
        })
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
        let Some(facility) =
            id_by_ref(&mut *tx, RefTable::Facility, storefront_id, &c.facility_ref).await?
        else {
            return Ok(Err(Unresolved::Facility));
        };
        let values = params![
            storefront_id,
            external_ref,
            facility.i64(0),
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
        let row = tx.query_one(CONTACT_QUERY, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: contact_from(&row),
            created,
        }))
    }

    /// Creates or replaces a rental by its external reference; its facility is its contact's.
    pub async fn upsert_rental(
        &self,
        storefront_id: i64,
        external_ref: &str,
        r: &RentalFields,
        now: DateTime<Utc>,
    ) -> UpsertResult<RentalRecord> {
        let mut tx = self.db().begin().await?;
        let Some(contact) =
            id_by_ref(&mut *tx, RefTable::Contact, storefront_id, &r.contact_ref).await?
        else {
            return Ok(Err(Unresolved::Contact));
        };
        let values = params![
            storefront_id,
            external_ref,
            contact.i64(1),
            contact.i64(0),
            r.label.as_str(),
            r.status.as_str(),
            r.starts_on,
            r.ends_on,
            r.rate_minor,
            r.currency.as_str(),
            r.rate_period.as_str(),
            r.delivery_status.clone(),
            r.tracking_url.clone(),
            now
        ];
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO rentals (storefront_id, external_ref, facility_id, contact_id, label, status, starts_on,
                     ends_on, rate_minor, currency, rate_period, delivery_status, tracking_url, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &values,
            ),
            (
                "UPDATE rentals SET facility_id = $3, contact_id = $4, label = $5, status = $6, starts_on = $7,
                     ends_on = $8, rate_minor = $9, currency = $10, rate_period = $11, delivery_status = $12,
                     tracking_url = $13, updated_at = $14
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &values,
            ),
        )
        .await?;
        let row = tx.query_one(RENTAL_QUERY, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: rental_from(&row),
            created,
        }))
    }

    /// Creates or replaces an invoice by its external reference. An invoice already paid
    /// (through the portal, or an earlier upsert) stays paid when the upsert says `pending`;
    /// `paid_at` is kept while it stays paid. One whose payment is processing (a debit on its
    /// way) stays processing when the upsert says `pending`.
    pub async fn upsert_invoice(
        &self,
        storefront_id: i64,
        external_ref: &str,
        i: &InvoiceFields,
        now: DateTime<Utc>,
    ) -> UpsertResult<InvoiceRecord> {
        let mut tx = self.db().begin().await?;
        let Some(contact) =
            id_by_ref(&mut *tx, RefTable::Contact, storefront_id, &i.contact_ref).await?
        else {
            return Ok(Err(Unresolved::Contact));
        };
        let (contact_id, facility_id) = (contact.i64(0), contact.i64(1));
        let mut rental_id = None;
        if let Some(rental_ref) = &i.rental_ref {
            let Some(rental) =
                id_by_ref(&mut *tx, RefTable::Rental, storefront_id, rental_ref).await?
            else {
                return Ok(Err(Unresolved::Rental));
            };
            if rental.i64(1) != contact_id {
                return Ok(Err(Unresolved::RentalOfAnotherContact));
            }
            rental_id = Some(rental.i64(0));
        }
        let common = [
            Value::from(storefront_id),
            Value::from(external_ref),
            Value::from(facility_id),
            Value::from(contact_id),
            Value::from(rental_id),
            Value::from(i.number.as_str()),
            Value::from(i.description.as_str()),
            Value::from(i.amount_minor),
            Value::from(i.currency.as_str()),
            Value::from(i.issued_on),
            Value::from(i.due_on),
            Value::from(i.status.as_str()),
            Value::from(now),
        ];
        let mut insert_values = common.to_vec();
        insert_values.push(Value::from((i.status == "paid").then_some(now)));
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO invoices (storefront_id, external_ref, facility_id, contact_id, rental_id, number,
                     description, amount_minor, currency, issued_on, due_on, status, created_at, updated_at, paid_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &insert_values,
            ),
            (
                "UPDATE invoices SET facility_id = $3, contact_id = $4, rental_id = $5, number = $6,
                     description = $7, amount_minor = $8, currency = $9, issued_on = $10, due_on = $11,
                     status = CASE WHEN status IN ('paid', 'processing') AND $12 = 'pending' THEN status ELSE $12 END,
                     paid_at = CASE WHEN $12 = 'paid' OR (status = 'paid' AND $12 = 'pending')
                                    THEN COALESCE(paid_at, $13) ELSE NULL END,
                     updated_at = $13
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &common,
            ),
        )
        .await?;
        let row = tx.query_one(INVOICE_QUERY, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: invoice_from(&row),
            created,
        }))
    }

    /// Stores (or replaces) a rental's signed agreement. `None` when the storefront has no
    /// rental with that reference.
    pub async fn put_agreement(
        &self,
        storefront_id: i64,
        rental_ref: &str,
        file_name: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> DbResult<Option<Upserted<AgreementRecord>>> {
        let mut tx = self.db().begin().await?;
        let Some(rental) = id_by_ref(&mut *tx, RefTable::Rental, storefront_id, rental_ref).await?
        else {
            return Ok(None);
        };
        let rental_id = rental.i64(0);
        let values = params![rental_id, file_name, body, now];
        let (_, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO agreements (rental_id, file_name, body, signed_at, created_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (rental_id) DO NOTHING RETURNING id",
                &values,
            ),
            (
                "UPDATE agreements SET file_name = $2, body = $3, signed_at = $4
                 WHERE rental_id = $1 RETURNING id",
                &values,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Upserted {
            record: AgreementRecord {
                rental_id,
                rental_ref: rental_ref.to_string(),
                file_name: file_name.to_string(),
                size: body.len() as i64,
            },
            created,
        }))
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
        let taken = tx
            .query_opt(
                "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2",
                &params![storefront_id, email.key()],
            )
            .await?;
        if taken.is_some() {
            return Ok(SignUp::EmailTaken);
        }
        let sql = format!(
            "INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {ACCOUNT_COLUMNS}"
        );
        let inserted = tx
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
            .await;
        let account = match inserted {
            Ok(row) => account_from(&row),
            // Another sign-up with this address committed in between.
            Err(DbError::Unique(_)) => return Ok(SignUp::EmailTaken),
            Err(e) => return Err(e),
        };
        for contact_ref in contact_refs {
            let Some(contact) =
                id_by_ref(&mut *tx, RefTable::Contact, storefront_id, contact_ref).await?
            else {
                return Ok(SignUp::UnknownContact(contact_ref.clone()));
            };
            let linked = tx
                .execute(
                    "UPDATE contacts SET account_id = $2, updated_at = $3
                     WHERE id = $1 AND account_id IS NULL",
                    &params![contact.i64(0), account.id, now],
                )
                .await?;
            if linked != 1 {
                return Ok(SignUp::ContactLinked(contact_ref.clone()));
            }
        }
        let (action, mut details) = audit;
        details["account_id"] = account.id.into();
        details["contacts"] = contact_refs.into();
        tx.execute(
            AUDIT_INSERT,
            &audit_params(Some(storefront_id), None, action, &details, now),
        )
        .await?;
        tx.commit().await?;
        Ok(SignUp::Created {
            account,
            contact_refs: contact_refs.to_vec(),
        })
    }
}
