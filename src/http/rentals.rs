//! The signed-in customer's rentals: the dashboard, the rental history, agreements.

use http::{HeaderValue, StatusCode, header};
use warp::Reply;
use warp::reply::Response;

use super::portal::{PageCommon, Portal};
use crate::display::{self, label};
use crate::i18n::Lang;
use crate::store::{Facility, Invoice, Rental};
use crate::usecases::records;

pub(crate) struct RentalView {
    id: i64,
    label: String,
    status: String,
    status_label: String,
    facility: String,
    dates: String,
    rate: String,
    delivery: Option<(String, String)>,
    has_agreement: bool,
}

/// A rental as the pages show it; `today` decides between "From" and "Since" for an open one.
pub(crate) fn rental_view(t: &Lang, r: Rental, today: chrono::NaiveDate) -> RentalView {
    let dates = display::rental_period(t, r.starts_on, r.ends_on, today);
    let delivery = if r.delivery_in_progress() {
        r.tracking_url.clone().map(|url| {
            (
                label(
                    t,
                    "delivery-status",
                    r.delivery_status.as_deref().unwrap_or("in_progress"),
                ),
                url,
            )
        })
    } else {
        None
    };
    RentalView {
        id: r.id,
        status_label: label(t, "rental-status", &r.status),
        status: r.status,
        label: r.label,
        facility: r.facility_name,
        dates,
        rate: display::rate(t, &r.rate, &r.rate_period),
        delivery,
        has_agreement: r.has_agreement,
    }
}

struct FacilityView {
    name: String,
    address: String,
    phone: String,
    phone_link: String,
    email: String,
}

fn facility_view(f: Facility) -> FacilityView {
    FacilityView {
        phone_link: f
            .phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect(),
        name: f.name,
        address: f.address,
        phone: f.phone,
        email: f.email,
    }
}

#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: PageCommon,
    first_name: String,
    rentals: Vec<RentalView>,
    any_active: bool,
    rent_url: String,
    facilities: Vec<FacilityView>,
}

pub async fn dashboard(portal: &mut Portal) -> Response {
    let today = portal.state.svc.now().date_naive();
    let session = match portal.signed_in("/dashboard").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let sf = portal.site.storefront.id;
    let loaded = records::dashboard(&portal.state.svc, sf, session.account.id).await;
    let records::Dashboard {
        rentals,
        facilities,
    } = match loaded {
        Ok(x) => x,
        Err(e) => return portal.failed(&e),
    };
    let any_active = rentals.iter().any(|r| r.status == "active");
    let page = PageCommon::new(portal, true, "dashboard");
    let page = DashboardPage {
        first_name: session.account.first_name(),
        rentals: rentals
            .into_iter()
            .map(|r| rental_view(&page.t, r, today))
            .collect(),
        page,
        any_active,
        rent_url: portal.site.storefront.rent_url.clone(),
        facilities: facilities.into_iter().map(facility_view).collect(),
    };
    portal.page(StatusCode::OK, &page)
}

struct PastRental {
    rental: RentalView,
    invoices: Vec<InvoiceView>,
}

/// An invoice as the pages show it.
pub(crate) struct InvoiceView {
    pub id: i64,
    pub number: String,
    pub description: String,
    pub facility: String,
    pub issued: String,
    pub due: String,
    pub amount: String,
    pub status: String,
    pub status_label: String,
    pub paid_on: Option<String>,
}

pub(crate) fn invoice_view(t: &Lang, i: &Invoice) -> InvoiceView {
    InvoiceView {
        id: i.id,
        number: i.number.clone(),
        description: i.description.clone(),
        facility: i.facility_name.clone(),
        issued: t.date(i.issued_on),
        due: t.date(i.due_on),
        amount: t.money(&i.amount),
        status: i.status.clone(),
        status_label: label(t, "invoice-status", &i.status),
        paid_on: i.paid_at.map(|at| t.date(at.date_naive())),
    }
}

#[derive(askama::Template)]
#[template(path = "history.html")]
struct HistoryPage {
    page: PageCommon,
    rentals: Vec<HistoryRental>,
}

/// A past rental with its invoices, flattened for the template.
struct HistoryRental {
    id: i64,
    label: String,
    status: String,
    status_label: String,
    facility: String,
    dates: String,
    rate: String,
    has_agreement: bool,
    invoices: Vec<InvoiceView>,
}

impl From<PastRental> for HistoryRental {
    fn from(p: PastRental) -> Self {
        let r = p.rental;
        Self {
            id: r.id,
            label: r.label,
            status: r.status,
            status_label: r.status_label,
            facility: r.facility,
            dates: r.dates,
            rate: r.rate,
            has_agreement: r.has_agreement,
            invoices: p.invoices,
        }
    }
}

pub async fn history(portal: &mut Portal) -> Response {
    let today = portal.state.svc.now().date_naive();
    let session = match portal.signed_in("/rentals/history").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let sf = portal.site.storefront.id;
    let loaded = records::history(&portal.state.svc, sf, session.account.id).await;
    let records::History { rentals, invoices } = match loaded {
        Ok(x) => x,
        Err(e) => return portal.failed(&e),
    };
    let page = PageCommon::new(portal, true, "dashboard");
    let t = &page.t;
    let rentals = rentals
        .into_iter()
        .map(|r| {
            let of_rental = invoices
                .iter()
                .filter(|i| i.rental_id == Some(r.id))
                .map(|i| invoice_view(t, i))
                .collect();
            HistoryRental::from(PastRental {
                rental: rental_view(t, r, today),
                invoices: of_rental,
            })
        })
        .collect();
    let page = HistoryPage { page, rentals };
    portal.page(StatusCode::OK, &page)
}

/// The signed agreement of one of the customer's rentals; any other id is 404.
pub async fn agreement(portal: &mut Portal, rental_id: i64) -> Response {
    let session = match portal
        .signed_in(&format!("/rentals/{rental_id}/agreement.pdf"))
        .await
    {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let sf = portal.site.storefront.id;
    match records::agreement(&portal.state.svc, sf, session.account.id, rental_id).await {
        Ok(Some((file_name, body))) => {
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            let safe: String = file_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Ok(None) => portal.not_found(),
        Err(e) => portal.failed(&e),
    }
}

#[derive(askama::Template)]
#[template(path = "rental.html")]
struct RentalPage {
    page: PageCommon,
    r: RentalView,
    facility: Option<FacilityView>,
}

/// `GET /rentals/{id}`: one of the customer's rentals (where a booking confirmation lands);
/// any other id is 404.
pub async fn rental(portal: &mut Portal, rental_id: i64) -> Response {
    let today = portal.state.svc.now().date_naive();
    let session = match portal.signed_in(&format!("/rentals/{rental_id}")).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let sf = portal.site.storefront.id;
    match records::rental(&portal.state.svc, sf, session.account.id, rental_id).await {
        Ok(Some((rental, facility))) => {
            let page = PageCommon::new(portal, true, "dashboard");
            let page = RentalPage {
                r: rental_view(&page.t, rental, today),
                facility: facility.map(facility_view),
                page,
            };
            portal.page(StatusCode::OK, &page)
        }
        Ok(None) => portal.not_found(),
        Err(e) => portal.failed(&e),
    }
}
