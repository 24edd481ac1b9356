//! The demo storefront of SPEC §6, loaded by `latchkey demo` and on the embedded default's
//! first start. Loading twice changes nothing but the dates, which follow today.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::Store;
use super::db::{Conn, DbResult};
use super::storefronts::NewStorefront;
use crate::domain::EmailAddress;
use crate::domain::pdf::simple_pdf;
use crate::params;

#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub storefront_id: i64,
    pub slug: String,
    pub customers: Vec<String>,
}

struct DemoFacility<'a> {
    ext: &'a str,
    name: &'a str,
    address: &'a str,
    phone: &'a str,
    email: &'a str,
}

async fn upsert_facility(
    c: &mut dyn Conn,
    sf: i64,
    f: &DemoFacility<'_>,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    let DemoFacility {
        ext,
        name,
        address,
        phone,
        email,
    } = *f;
    Ok(c.query(
        "INSERT INTO facilities (storefront_id, external_ref, name, address, phone, email, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (storefront_id, external_ref) DO UPDATE SET name = excluded.name,
             address = excluded.address, phone = excluded.phone, email = excluded.email
         RETURNING id",
        &params![sf, ext, name, address, phone, email, now],
    )
    .await?[0]
        .i64(0))
}

async fn upsert_account(
    c: &mut dyn Conn,
    sf: i64,
    email: &str,
    name: &str,
    phone: &str,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    c.execute(
        "INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (storefront_id, email_key) DO NOTHING",
        &params![sf, email, email.to_lowercase(), name, phone, now],
    )
    .await?;
    Ok(c.query(
        "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2",
        &params![sf, email.to_lowercase()],
    )
    .await?[0]
        .i64(0))
}

/// A contact of `facility`, linked to `account`: (external ref, name, email).
async fn upsert_contact(
    c: &mut dyn Conn,
    sf: i64,
    (facility, account): (i64, i64),
    (ext, name, email): (&str, &str, &str),
    now: DateTime<Utc>,
) -> DbResult<i64> {
    Ok(c.query(
        "INSERT INTO contacts (storefront_id, facility_id, account_id, external_ref, full_name, email, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (storefront_id, external_ref) DO UPDATE SET facility_id = excluded.facility_id
         RETURNING id",
        &params![sf, facility, account, ext, name, email, now],
    )
    .await?[0]
        .i64(0))
}

struct DemoRental<'a> {
    ext: &'a str,
    label: &'a str,
    status: &'a str,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
    rate_minor: i64,
    period: &'a str,
    delivery: Option<(&'a str, &'a str)>,
}

async fn upsert_rental(
    c: &mut dyn Conn,
    sf: i64,
    facility: i64,
    contact: i64,
    r: &DemoRental<'_>,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    Ok(c.query(
        "INSERT INTO rentals (storefront_id, facility_id, contact_id, external_ref, label, status, starts_on, ends_on,
             rate_minor, currency, rate_period, delivery_status, tracking_url, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'USD', $10, $11, $12, $13, $13)
         ON CONFLICT (storefront_id, external_ref) DO UPDATE SET label = excluded.label, status = excluded.status,
             starts_on = excluded.starts_on, ends_on = excluded.ends_on, rate_minor = excluded.rate_minor,
             rate_period = excluded.rate_period, delivery_status = excluded.delivery_status,
             tracking_url = excluded.tracking_url, updated_at = excluded.updated_at
         RETURNING id",
        &params![
            sf,
            facility,
            contact,
            r.ext,
            r.label,
            r.status,
            r.starts_on,
            r.ends_on,
            r.rate_minor,
            r.period,
            r.delivery.map(|d| d.0),
            r.delivery.map(|d| d.1),
            now
        ],
    )
    .await?[0]
        .i64(0))
}

#[allow(clippy::too_many_arguments)]
async fn upsert_invoice(
    c: &mut dyn Conn,
    sf: i64,
    facility: i64,
    contact: i64,
    rental: i64,
    number: &str,
    description: &str,
    amount_minor: i64,
    issued_on: NaiveDate,
    due_on: NaiveDate,
    status: &str,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let paid_at = (status == "paid").then_some(now);
    c.execute(
        "INSERT INTO invoices (storefront_id, facility_id, contact_id, rental_id, external_ref, number, description,
             amount_minor, currency, issued_on, due_on, status, paid_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 'USD', $8, $9, $10, $11, $12, $12)
         ON CONFLICT (storefront_id, external_ref) DO NOTHING",
        &params![
            sf, facility, contact, rental, number, description, amount_minor, issued_on, due_on, status,
            paid_at, now
        ],
    )
    .await?;
    Ok(())
}

/// The day of the month the demo's rent is due: its agreement says so, and its invoices are
/// due then.
const RENT_DUE_DAY: u32 = 15;

/// The due date of a demo invoice issued on the first of a month.
fn due_on(month_start: NaiveDate) -> NaiveDate {
    month_start
        .with_day(RENT_DUE_DAY)
        .expect("a day every month has")
}

fn first_of_month(d: NaiveDate, months_back: u32) -> NaiveDate {
    let mut y = d.year();
    let mut m = d.month() as i32 - months_back as i32;
    while m <= 0 {
        m += 12;
        y -= 1;
    }
    NaiveDate::from_ymd_opt(y, m as u32, 1).expect("valid date")
}

impl Store {
    /// Loads (or refreshes) the demo storefront. Idempotent.
    pub async fn load_demo(&self, now: DateTime<Utc>) -> DbResult<DemoSummary> {
        let sf = self
            .upsert_storefront(
                &NewStorefront {
                    slug: "demo".into(),
                    name: "Harborview Rentals".into(),
                    from_name: "Harborview Rentals".into(),
                    from_email: EmailAddress::parse("portal@harborview.example")
                        .expect("a valid address"),
                    rent_url: "https://harborview.example/rent".into(),
                    custom_host: None,
                },
                now,
            )
            .await?;
        let today = now.date_naive();
        let mut tx = self.db().begin().await?;
        let c: &mut dyn Conn = &mut *tx;
        let downtown = upsert_facility(
            c,
            sf,
            &DemoFacility {
                ext: "FAC-DT",
                name: "Harborview Self Storage, Downtown",
                address: "410 Front Street, Portland, ME 04101",
                phone: "+1 207-555-0140",
                email: "downtown@harborview.example",
            },
            now,
        )
        .await?;
        let marina = upsert_facility(
            c,
            sf,
            &DemoFacility {
                ext: "FAC-MR",
                name: "Harborview Carts, Marina",
                address: "12 Wharf Road, Portland, ME 04101",
                phone: "+1 207-555-0175",
                email: "marina@harborview.example",
            },
            now,
        )
        .await?;
        let alex = upsert_account(
            c,
            sf,
            "alex@example.com",
            "Alex Martin",
            "+1 207-555-0111",
            now,
        )
        .await?;
        let sam = upsert_account(
            c,
            sf,
            "sam@example.com",
            "Sam Rivera",
            "+1 207-555-0122",
            now,
        )
        .await?;
        let alex_dt = upsert_contact(
            c,
            sf,
            (downtown, alex),
            ("CON-DT-1001", "Alex Martin", "alex@example.com"),
            now,
        )
        .await?;
        let alex_mr = upsert_contact(
            c,
            sf,
            (marina, alex),
            ("CON-MR-2001", "Alex Martin", "alex@example.com"),
            now,
        )
        .await?;
        let sam_dt = upsert_contact(
            c,
            sf,
            (downtown, sam),
            ("CON-DT-1002", "Sam Rivera", "sam@example.com"),
            now,
        )
        .await?;

        let unit_start = first_of_month(today, 8);
        let unit = upsert_rental(
            c,
            sf,
            downtown,
            alex_dt,
            &DemoRental {
                ext: "RNT-DT-B112",
                label: "Unit B-112, 10×10",
                status: "active",
                starts_on: unit_start,
                ends_on: None,
                rate_minor: 12_900,
                period: "month",
                delivery: None,
            },
            now,
        )
        .await?;
        upsert_rental(
            c,
            sf,
            marina,
            alex_mr,
            &DemoRental {
                ext: "RNT-MR-C14",
                label: "6-seat cart #14",
                status: "active",
                starts_on: today - Duration::days(2),
                ends_on: Some(today + Duration::days(5)),
                rate_minor: 8_900,
                period: "day",
                delivery: Some((
                    "out_for_delivery",
                    "https://track.harborview.example/deliveries/C14-7731",
                )),
            },
            now,
        )
        .await?;
        let old_unit = upsert_rental(
            c,
            sf,
            downtown,
            alex_dt,
            &DemoRental {
                ext: "RNT-DT-A07",
                label: "Unit A-07, 5×5",
                status: "ended",
                starts_on: first_of_month(today, 20),
                ends_on: Some(first_of_month(today, 9) - Duration::days(1)),
                rate_minor: 5_900,
                period: "month",
                delivery: None,
            },
            now,
        )
        .await?;
        let sam_unit = upsert_rental(
            c,
            sf,
            downtown,
            sam_dt,
            &DemoRental {
                ext: "RNT-DT-C03",
                label: "Unit C-03, 5×10",
                status: "ended",
                starts_on: first_of_month(today, 14),
                ends_on: Some(first_of_month(today, 2) - Duration::days(1)),
                rate_minor: 7_900,
                period: "month",
                delivery: None,
            },
            now,
        )
        .await?;
        let this_month = first_of_month(today, 0);
        let last_month = first_of_month(today, 1);
        upsert_invoice(
            c,
            sf,
            downtown,
            alex_dt,
            unit,
            "INV-1042",
            "Unit B-112, monthly rent",
            12_900,
            this_month,
            due_on(this_month),
            "pending",
            now,
        )
        .await?;
        upsert_invoice(
            c,
            sf,
            downtown,
            alex_dt,
            unit,
            "INV-1031",
            "Unit B-112, monthly rent",
            12_900,
            last_month,
            due_on(last_month),
            "paid",
            now,
        )
        .await?;
        upsert_invoice(
            c,
            sf,
            downtown,
            alex_dt,
            old_unit,
            "INV-0877",
            "Unit A-07, final month",
            5_900,
            first_of_month(today, 10),
            due_on(first_of_month(today, 10)),
            "paid",
            now,
        )
        .await?;
        upsert_invoice(
            c,
            sf,
            downtown,
            sam_dt,
            sam_unit,
            "INV-1020",
            "Unit C-03, final month",
            7_900,
            first_of_month(today, 3),
            due_on(first_of_month(today, 3)),
            "paid",
            now,
        )
        .await?;
        let pdf = simple_pdf(
            "Harborview Self Storage - Rental Agreement",
            &[
                "Tenant: Alex Martin".to_string(),
                "Unit: B-112, 10×10, Harborview Self Storage, Downtown".to_string(),
                format!("Start date: {unit_start}"),
                format!("Rent: $129.00 per month, due on the {RENT_DUE_DAY}th"),
                "Signed electronically by Alex Martin — a copy is in the customer portal."
                    .to_string(),
            ],
        );
        // A card on file, so the Payment method section is filled in too.
        c.execute(
            "INSERT INTO payment_methods (account_id, stripe_id, kind, brand, last4, exp_month, exp_year, created_at)
             VALUES ($1, 'pm_demo_visa_4242', 'card', 'visa', '4242', 12, 2030, $2)
             ON CONFLICT (stripe_id) DO NOTHING",
            &params![alex, now],
        )
        .await?;
        c.execute(
            "INSERT INTO agreements (rental_id, file_name, body, signed_at, created_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (rental_id) DO NOTHING",
            &params![unit, "agreement-B-112.pdf", pdf, now],
        )
        .await?;
        tx.commit().await?;
        Ok(DemoSummary {
            storefront_id: sf,
            slug: "demo".into(),
            customers: vec!["alex@example.com".into(), "sam@example.com".into()],
        })
    }
}
