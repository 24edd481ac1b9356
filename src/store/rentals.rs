//! Rentals and their signed agreements: what the dashboard and the booking page show, and the
//! operator's upserts by external reference and their read-back.

use chrono::{DateTime, NaiveDate, Utc};

use super::Store;
use super::contacts::contact_by_ref;
use super::db::{Conn, DbResult, Row};
use super::page::{Page, keyset, keyset_params, page_of};
use super::upsert::{Unresolved, UpsertResult, Upserted, insert_or_update};
use crate::domain::Money;
use crate::params;

#[derive(Debug, Clone)]
pub struct Rental {
    pub id: i64,
    pub facility_id: i64,
    pub facility_name: String,
    pub label: String,
    pub status: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub rate: Money,
    pub rate_period: String,
    pub delivery_status: Option<String>,
    pub tracking_url: Option<String>,
    pub has_agreement: bool,
}

impl Rental {
    /// A delivery is under way: the dashboard shows its tracking link.
    pub fn delivery_in_progress(&self) -> bool {
        self.tracking_url.is_some()
            && !matches!(
                self.delivery_status.as_deref(),
                None | Some("delivered") | Some("cancelled") | Some("returned")
            )
    }
}

pub(crate) const RENTAL_COLUMNS: &str = "r.id, r.facility_id, f.name, r.label, r.status, r.starts_on, r.ends_on, r.rate_minor, r.currency, r.rate_period, r.delivery_status, r.tracking_url, EXISTS (SELECT 1 FROM agreements g WHERE g.rental_id = r.id)";

pub(crate) fn rental_from(r: &Row) -> Rental {
    Rental {
        id: r.i64(0),
        facility_id: r.i64(1),
        facility_name: r.string(2),
        label: r.string(3),
        status: r.string(4),
        starts_on: r.date(5),
        ends_on: r.opt_date(6),
        rate: Money::new(r.i64(7), &r.string(8)).unwrap_or(Money::new(0, "USD").expect("valid")),
        rate_period: r.string(9),
        delivery_status: r.opt_string(10),
        tracking_url: r.opt_string(11),
        has_agreement: r.bool(12),
    }
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

/// A rental as the API shows it; the statement goes on with its `WHERE`.
const RENTAL_RECORD: &str =
    "SELECT r.id, r.external_ref, c.external_ref, f.external_ref, r.label, r.status, r.starts_on,
        r.ends_on, r.rate_minor, r.currency, r.rate_period, r.delivery_status, r.tracking_url,
        EXISTS (SELECT 1 FROM agreements g WHERE g.rental_id = r.id), r.created_at, r.updated_at
     FROM rentals r JOIN contacts c ON c.id = r.contact_id JOIN facilities f ON f.id = r.facility_id";

fn rental_record_from(r: &Row) -> RentalRecord {
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

#[derive(Debug, Clone)]
pub struct AgreementRecord {
    pub rental_id: i64,
    pub rental_ref: String,
    pub file_name: String,
    pub size: i64,
}

/// A rental found by its external reference.
pub(super) struct RentalRef {
    pub id: i64,
    pub contact_id: i64,
}

/// A rental by its external reference (`None` for another storefront's), on the caller's
/// connection or transaction.
pub(super) async fn rental_by_ref(
    conn: &mut dyn Conn,
    storefront_id: i64,
    external_ref: &str,
) -> DbResult<Option<RentalRef>> {
    Ok(conn
        .query_opt(
            "SELECT id, contact_id FROM rentals WHERE storefront_id = $1 AND external_ref = $2",
            &params![storefront_id, external_ref],
        )
        .await?
        .map(|r| RentalRef {
            id: r.i64(0),
            contact_id: r.i64(1),
        }))
}

impl Store {
    /// Active and upcoming rentals of every contact linked to the account, across the
    /// storefront's facilities.
    pub async fn current_rentals(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Vec<Rental>> {
        let sql = format!(
            "SELECT {RENTAL_COLUMNS} FROM rentals r
             JOIN contacts c ON c.id = r.contact_id
             JOIN facilities f ON f.id = r.facility_id
             WHERE c.account_id = $1 AND r.storefront_id = $2 AND r.status IN ('active', 'upcoming')
             ORDER BY r.status, r.starts_on, r.id"
        );
        Ok(self
            .db()
            .query(&sql, &params![account_id, storefront_id])
            .await?
            .iter()
            .map(rental_from)
            .collect())
    }

    /// Past rentals (ended or cancelled), newest first.
    pub async fn past_rentals(&self, storefront_id: i64, account_id: i64) -> DbResult<Vec<Rental>> {
        let sql = format!(
            "SELECT {RENTAL_COLUMNS} FROM rentals r
             JOIN contacts c ON c.id = r.contact_id
             JOIN facilities f ON f.id = r.facility_id
             WHERE c.account_id = $1 AND r.storefront_id = $2 AND r.status IN ('ended', 'cancelled')
             ORDER BY COALESCE(r.ends_on, r.starts_on) DESC, r.id DESC"
        );
        Ok(self
            .db()
            .query(&sql, &params![account_id, storefront_id])
            .await?
            .iter()
            .map(rental_from)
            .collect())
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
                    RENTAL_COLUMNS
                ),
                &params![rental_id],
            )
            .await?
            .as_ref()
            .map(rental_from);
        Ok(rental.map(|r| (r, account_id)))
    }

    /// A rental's signed agreement (file name, PDF bytes), only for the account that rents it.
    pub async fn rental_agreement(
        &self,
        storefront_id: i64,
        account_id: i64,
        rental_id: i64,
    ) -> DbResult<Option<(String, Vec<u8>)>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT g.file_name, g.body FROM agreements g
                 JOIN rentals r ON r.id = g.rental_id
                 JOIN contacts c ON c.id = r.contact_id
                 WHERE g.rental_id = $1 AND c.account_id = $2 AND r.storefront_id = $3",
                &params![rental_id, account_id, storefront_id],
            )
            .await?
            .map(|r| (r.string(0), r.bytes(1))))
    }

    /// A rental's id by its external reference (`None` for another storefront's).
    pub async fn rental_id_by_ref(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<i64>> {
        let mut conn = self.db().conn().await?;
        Ok(rental_by_ref(&mut *conn, storefront_id, external_ref)
            .await?
            .map(|r| r.id))
    }

    /// A page of the storefront's rentals as the API shows them, newest first.
    pub async fn rental_records(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<RentalRecord>> {
        let sql = format!("{RENTAL_RECORD} {}", keyset("r"));
        let rows = self
            .db()
            .query(&sql, &keyset_params(storefront_id, before, limit))
            .await?;
        let items = rows.iter().map(rental_record_from).collect();
        Ok(page_of(items, limit, |r: &RentalRecord| r.id))
    }

    /// The storefront's rental with this reference (`None` for another storefront's).
    pub async fn rental_record(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<RentalRecord>> {
        let sql = format!("{RENTAL_RECORD} WHERE r.storefront_id = $1 AND r.external_ref = $2");
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, external_ref])
            .await?
            .as_ref()
            .map(rental_record_from))
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
        let Some(contact) = contact_by_ref(&mut *tx, storefront_id, &r.contact_ref).await? else {
            return Ok(Err(Unresolved::Contact));
        };
        let values = params![
            storefront_id,
            external_ref,
            contact.facility_id,
            contact.id,
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
        let sql = format!("{RENTAL_RECORD} WHERE r.id = $1");
        let row = tx.query_one(&sql, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: rental_record_from(&row),
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
        let Some(rental) = rental_by_ref(&mut *tx, storefront_id, rental_ref).await? else {
            return Ok(None);
        };
        let rental_id = rental.id;
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
}
