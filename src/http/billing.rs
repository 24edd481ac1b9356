//! Billing: invoices with the All / Pending / Paid filters, paying through Stripe Checkout,
//! payment methods (add through Checkout in setup mode, remove), receipts.

use http::StatusCode;
use warp::reply::Response;

use super::frame::{Body, Form, see_other};
use super::portal::{PageCommon, Portal};
use super::rentals::{InvoiceView, invoice_view};
use crate::billing::BillingError;
use crate::store::{InvoiceFilter, PaymentMethod};
use crate::usecases::{billing, records};

struct MethodView {
    id: i64,
    description: String,
}

fn method_view(m: &PaymentMethod) -> MethodView {
    let description = match m.kind.as_str() {
        "acss_debit" => format!(
            "Pre-authorized debit, {} account ending in {}",
            m.brand, m.last4
        ),
        _ => {
            let brand = crate::display::humanize(&m.brand);
            match (m.exp_month, m.exp_year) {
                (Some(mo), Some(y)) => {
                    format!("{brand} ending in {}, expires {mo:02}/{y}", m.last4)
                }
                _ => format!("{brand} ending in {}", m.last4),
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
    filters: Vec<(&'static str, &'static str)>,
    current: &'static str,
    invoices: Vec<InvoiceView>,
    methods: Vec<MethodView>,
    payments_enabled: bool,
    notice: Option<&'static str>,
    alert: Option<&'static str>,
}

const FILTERS: [(&str, &str); 3] = [("all", "All"), ("pending", "Pending"), ("paid", "Paid")];

const PROVIDER_DOWN: &str = "We could not reach our payment provider. Nothing was charged and nothing was changed. Please try again in a few minutes.";

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
    let Some(filter) = InvoiceFilter::parse(q.get("status").unwrap_or("all")) else {
        return portal.message(
            StatusCode::BAD_REQUEST,
            "Unknown filter",
            "Invoices can be filtered by All, Pending or Paid.",
            Some((
                format!("{}/billing", portal.base),
                "Show all invoices".into(),
            )),
        );
    };
    let notice = match (q.get("checkout"), q.get("setup"), q.get("removed")) {
        (Some("success"), _, _) => Some(
            "Thank you: your payment is being confirmed. The invoice shows Paid as soon as Stripe confirms it.",
        ),
        (Some("cancelled"), _, _) => Some("Payment cancelled: nothing was charged."),
        (_, Some("success"), _) => Some("Your payment method was added."),
        (_, Some("cancelled"), _) => Some("No payment method was added."),
        (_, _, Some(_)) => Some("The payment method was removed."),
        _ => None,
    };
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
        filters: FILTERS.to_vec(),
        current: filter.as_str(),
        invoices: invoices
            .iter()
            .map(|i| {
                let mut view = invoice_view(i);
                // Just paid through Checkout, not confirmed yet: being confirmed, not due.
                if returned
                    && i.status == "pending"
                    && i.checkout_session_id.is_some()
                    && !unpaid.contains(&i.id)
                {
                    view.status = "processing".into();
                    view.status_label = "Confirming payment".into();
                }
                view
            })
            .collect(),
        methods: methods.iter().map(method_view).collect(),
        payments_enabled: enabled,
        notice,
        alert: None,
    };
    portal.page(StatusCode::OK, &page)
}

/// A failed billing action as a page: 404 for what is not the customer's, a clear message
/// when payment is off or Stripe is unreachable.
fn failure(portal: &mut Portal, e: BillingError) -> Response {
    let back = Some((
        format!("{}/billing", portal.base),
        "Back to Billing".to_string(),
    ));
    match e {
        BillingError::NotFound => portal.not_found(),
        BillingError::NotConfigured => portal.message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Online payment is not available",
            "Online payment is not available right now. To pay an invoice, contact your facility.",
            back,
        ),
        BillingError::Processing => portal.message(
            StatusCode::CONFLICT,
            "Payment on its way",
            "The payment of this invoice is being processed: a pre-authorized debit takes a few business days. The invoice shows Paid once your bank confirms it; nothing more to do.",
            back,
        ),
        BillingError::NotPayable => portal.message(
            StatusCode::CONFLICT,
            "Nothing to pay",
            "This invoice is not waiting for payment.",
            back,
        ),
        BillingError::Provider(p) => {
            tracing::warn!(error = %p, "payment provider unavailable");
            portal.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Payment provider unavailable",
                PROVIDER_DOWN,
                back,
            )
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
    heading: &'static str,
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
            let page = ReceiptPage {
                page: PageCommon::new(portal, true, "billing"),
                heading: if invoice.status == "paid" {
                    "Receipt for invoice"
                } else {
                    "Invoice"
                },
                invoice: invoice_view(&invoice),
            };
            portal.page(StatusCode::OK, &page)
        }
        Ok(None) => portal.not_found(),
        Err(e) => portal.failed(&e),
    }
}
