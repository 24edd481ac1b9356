//! The delivery log: pages of a facility's or a storefront's deliveries, newest first,
//! filtered by status or recipient (the Emails tab and the API), and single deliveries of a
//! storefront.

use super::{DELIVERY_COLUMNS, Delivery, DeliveryStatus, delivery_from};
use crate::params;
use crate::store::Store;
use crate::store::db::{DbResult, Value, qualified};

/// Filters of the Emails tab (and the API's delivery list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// The recipient, matched whole and without regard to case (through the recipient index).
    pub recipient: Option<String>,
    /// Part of the recipient's address, without regard to case (`%` and `_` match
    /// themselves): read in the scope's scan windows like the status filter, so a page costs
    /// at most [`SCAN_LIMIT`] rows of the scope, and a rare match comes with a cursor to go on.
    pub recipient_contains: Option<String>,
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
        let cols = qualified(DELIVERY_COLUMNS, "p");
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
        // Part of an address: one more condition on the scan window's rows (the statement
        // without it stays the one the first page has always run).
        let contains = filter
            .recipient_contains
            .as_deref()
            .map(str::trim)
            .filter(|part| !part.is_empty());
        let recipient_part = match contains {
            Some(_) => format!(
                "\n                 AND d.recipient {} $6 ESCAPE '\\'",
                self.dialect().ilike()
            ),
            None => String::new(),
        };
        // One row even when nothing matches, carrying how far the scan went.
        let sql = format!(
            "WITH scan AS ({scope_ids}),
             picked AS (
                 {scope_rows}
                 AND ($4 = '' OR d.status = $4){recipient_part}
                 ORDER BY d.id DESC LIMIT $5)
             SELECT {cols}, s.low, s.n
             FROM (SELECT MIN(id) AS low, COUNT(*) AS n FROM scan) AS s
             LEFT JOIN picked p ON TRUE
             ORDER BY p.id DESC"
        );
        let mut params = vec![
            Value::from(scope_id),
            Value::from(before.unwrap_or(i64::MAX)),
            Value::from(SCAN_LIMIT),
            Value::from(filter.status.map(|s| s.as_str()).unwrap_or("")),
            Value::from(limit + 1),
        ];
        if let Some(part) = contains {
            params.push(Value::from(crate::store::db::contains_pattern(part)));
        }
        let rows = self.db().query(&sql, &params).await?;
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
        let cols = qualified(DELIVERY_COLUMNS, "d");
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
}
