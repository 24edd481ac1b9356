//! Billing: invoices with the All / Pending / Paid filters, paying through Stripe Checkout,
//! payment methods (add through Checkout in setup mode, remove), receipts.

use http::StatusCode;
use warp::reply::Response;

use super::frame::{Body, Form, see_other};
use super::portal::{PageCommon, Portal};
use super::rentals::{InvoiceView, invoice_view};
use crate::billing::BillingError;
use crate::i18n::Lang;
use crate::store::{InvoiceFilter, PaymentMethod};
use crate::usecases::{billing, records};

struct MethodView {
    id: i64,
    description: String,
}

fn method_view(t: &Lang, m: &PaymentMethod) -> MethodView {
    let last4 = m.last4.as_str();
    let description = match m.kind.as_str() {
        "acss_debit" => t.arg2("method-debit", "bank", m.brand.as_str(), "last4", last4),
        _ => {
            let brand = crate::display::humanize(&m.brand);
            match (m.exp_month, m.exp_year) {
                (Some(mo), Some(y)) => t.arg3(
                    "method-card-expires",
                    "brand",
                    brand,
                    "last4",
                    last4,
                    "expires",
                    format!("{mo:02}/{y}"),
                ),
                _ => t.arg2("method-card", "brand", brand, "last4", last4),
            }
        }
    };
    MethodView {
        id: m.id,
        description,
    }
}

#[derive(askama::Template)]
#[template(path = "billing.html")]
struct BillingPage {
    page: PageCommon,
    filters: Vec<(&'static str, String)>,
    current: &'static str,
    invoices: Vec<InvoiceView>,
    methods: Vec<MethodView>,
    payments_enabled: bool,
    notice: Option<String>,
    alert: Option<String>,
}

/// The filters: (value, message id of the label).
const FILTERS: [(&str, &str); 3] = [
    ("all", "billing-filter-all"),
    ("pending", "billing-filter-pending"),
    ("paid", "billing-filter-paid"),
];

/// `GET /billing?status=all|pending|paid` (and the notices after Checkout).
pub async fn page(portal: &mut Portal, query: &str) -> Response {
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let next = if query.is_empty() {
        "/billing".to_string()
    } else {
        format!("/billing?{query}")
    };
    let session = match portal.signed_in(&next).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let t = portal.site.lang.clone();
    let Some(filter) = InvoiceFilter::parse(q.get("status").unwrap_or("all")) else {
        return portal.message(
            StatusCode::BAD_REQUEST,
            &t.msg("billing-unknown-filter-heading"),
            &t.msg("billing-unknown-filter"),
            Some((
                format!("{}/billing", portal.base),
                t.msg("billing-show-all"),
            )),
        );
    };
    let notice = match (q.get("checkout"), q.get("setup"), q.get("removed")) {
        (Some("success"), _, _) => Some("billing-paid-notice"),
        (Some("cancelled"), _, _) => Some("billing-pay-cancelled"),
        (_, Some("success"), _) => Some("billing-method-added"),
        (_, Some("cancelled"), _) => Some("billing-method-not-added"),
        (_, _, Some(_)) => Some("billing-method-removed"),
        _ => None,
    }
    .map(|id| t.msg(id));
    let enabled = billing::payments_enabled(&portal.state.svc.config);
    // Back from adding a payment method: show it even if Stripe's webhook is not here yet.
    if enabled && q.get("setup") == Some("success") {
        let refreshed =
            billing::refresh_payment_methods(&portal.state.payments, session.account.clone()).await;
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "could not refresh payment methods after setup");
        }
    }
    // Back from paying: ask Stripe now, so a payment it took shows Paid (or Processing, for a
    // debit on its way) even if its webhook is not here yet.
    let returned = enabled && q.get("checkout") == Some("success");
    let mut unpaid = Vec::new();
    if returned {
        let confirmed = billing::confirm_checkouts(
            &portal.state.payments,
            &portal.site.storefront,
            session.account.clone(),
        )
        .await;
        match confirmed {
            Ok(ids) => unpaid = ids,
            Err(e) => tracing::warn!(error = %e, "could not confirm checkouts on return"),
        }
    }
    let sf = portal.site.storefront.id;
    let loaded =
        records::invoices_and_methods(&portal.state.svc, sf, session.account.id, filter).await;
    let (invoices, methods) = match loaded {
        Ok(x) => x,
        Err(e) => return portal.failed(&e),
    };
    let page = BillingPage {
        page: PageCommon::new(portal, true, "billing"),
        filters: FILTERS.iter().map(|(v, id)| (*v, t.msg(id))).collect(),
        current: filter.as_str(),
        invoices: invoices
            .iter()
            .map(|i| {
                let mut view = invoice_view(&t, i);
                // Just paid through Checkout, not confirmed yet: being confirmed, not due.
                if returned
                    && i.status == "pending"
                    && i.checkout_session_id.is_some()
                    && !unpaid.contains(&i.id)
                {
                    view.status = "processing".into();
                    view.status_label = t.msg("billing-confirming");
                }
                view
            })
            .collect(),
        methods: methods.iter().map(|m| method_view(&t, m)).collect(),
        payments_enabled: enabled,
        notice,
        alert: None,
    };
    portal.page(StatusCode::OK, &page)
}

/// A failed billing action as a page: 404 for what is not the customer's, a clear message
/// when payment is off or Stripe is unreachable.
fn failure(portal: &mut Portal, e: BillingError) -> Response {
    let t = portal.site.lang.clone();
    let back = Some((format!("{}/billing", portal.base), t.msg("billing-back")));
    let mut say = |status, id: &str| {
        let (heading, text) = (t.msg(&format!("{id}-heading")), t.msg(id));
        portal.message(status, &heading, &text, back.clone())
    };
    match e {
        BillingError::NotFound => portal.not_found(),
        BillingError::NotConfigured => say(StatusCode::SERVICE_UNAVAILABLE, "billing-payments-off"),
        BillingError::Processing => say(StatusCode::CONFLICT, "billing-processing"),
        BillingError::NotPayable => say(StatusCode::CONFLICT, "billing-not-payable"),
        BillingError::Provider(p) => {
            tracing::warn!(error = %p, "payment provider unavailable");
            say(StatusCode::SERVICE_UNAVAILABLE, "billing-provider-down")
        }
        BillingError::App(e) => portal.failed(&e),
    }
}

/// `POST /billing/invoices/{id}/pay`: to Stripe Checkout (303).
pub async fn pay(portal: &mut Portal, invoice_id: i64, body: Body) -> Response {
    if let Err(resp) = portal.read_form(body) {
        return *resp;
    }
    let session = match portal.signed_in("/billing").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let started = billing::start_payment(
        &portal.state.payments,
        &portal.site.storefront,
        session.account,
        invoice_id,
        portal.site.lang.clone(),
    )
    .await;
    match started {
        Ok(url) => see_other(&url),
        Err(e) => failure(portal, e),
    }
}

/// `POST /billing/payment-methods`: to Stripe Checkout in setup mode (303).
pub async fn add_method(portal: &mut Portal, body: Body) -> Response {
    if let Err(resp) = portal.read_form(body) {
        return *resp;
    }
    let session = match portal.signed_in("/billing").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let started = billing::start_setup(
        &portal.state.payments,
        &portal.site.storefront,
        session.account,
        portal.site.lang.clone(),
    )
    .await;
    match started {
        Ok(url) => see_other(&url),
        Err(e) => failure(portal, e),
    }
}

/// `POST /billing/payment-methods/{id}/remove`.
pub async fn remove_method(portal: &mut Portal, id: i64, body: Body) -> Response {
    if let Err(resp) = portal.read_form(body) {
        return *resp;
    }
    let session = match portal.signed_in("/billing").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let removed = billing::remove_payment_method(&portal.state.payments, session.account, id).await;
    match removed {
        Ok(()) => see_other(&format!("{}/billing?removed=1", portal.base)),
        Err(e) => failure(portal, e),
    }
}

#[derive(askama::Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    page: PageCommon,
    heading: String,
    invoice: InvoiceView,
}

/// `GET /billing/invoices/{id}/receipt`: the invoice, as a receipt once paid.
pub async fn receipt(portal: &mut Portal, invoice_id: i64) -> Response {
    let session = match portal
        .signed_in(&format!("/billing/invoices/{invoice_id}/receipt"))
        .await
    {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let sf = portal.site.storefront.id;
    let found = records::invoice(&portal.state.svc, sf, session.account.id, invoice_id).await;
    match found {
        Ok(Some(invoice)) => {
            let page = PageCommon::new(portal, true, "billing");
            let page = ReceiptPage {
                heading: page.t.msg(if invoice.status == "paid" {
                    "receipt-heading"
                } else {
                    "receipt-invoice-heading"
                }),
                invoice: invoice_view(&page.t, &invoice),
                page,
            };
            portal.page(StatusCode::OK, &page)
        }
        Ok(None) => portal.not_found(),
        Err(e) => portal.failed(&e),
    }
}
