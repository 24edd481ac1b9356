//! What the portal pages show: rentals, facilities.

use chrono::NaiveDate;

use super::Store;
use super::db::{DbResult, Row};
use crate::domain::Money;
use crate::params;

#[derive(Debug, Clone)]
pub struct Facility {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub email: String,
}

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

fn facility_from(r: &Row) -> Facility {
    Facility {
        id: r.i64(0),
        name: r.string(1),
        address: r.string(2),
        phone: r.string(3),
        email: r.string(4),
    }
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

    /// The facilities the account deals with (through its contacts); all of the storefront's
    /// when it has none yet.
    pub async fn account_facilities(
        &self,
        storefront_id: i64,
        account_id: i64,
    ) -> DbResult<Vec<Facility>> {
        let linked = self
            .db()
            .query(
                "SELECT f.id, f.name, f.address, f.phone, f.email FROM facilities f
                 WHERE f.storefront_id = $1 AND f.id IN (SELECT facility_id FROM contacts WHERE account_id = $2)
                 ORDER BY f.name, f.id",
                &params![storefront_id, account_id],
            )
            .await?;
        if !linked.is_empty() {
            return Ok(linked.iter().map(facility_from).collect());
        }
        self.facilities(storefront_id).await
    }

    pub async fn facilities(&self, storefront_id: i64) -> DbResult<Vec<Facility>> {
        Ok(self
            .db()
            .query(
                "SELECT id, name, address, phone, email FROM facilities WHERE storefront_id = $1 ORDER BY name, id",
                &params![storefront_id],
            )
            .await?
            .iter()
            .map(facility_from)
            .collect())
    }
}
