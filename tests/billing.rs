//! Billing through Stripe, against a fake Stripe server the tests start: Checkout for an
//! invoice and for a payment method, signed webhooks processed once, failures retried,
//! reconciliation, and what the customer sees when Stripe is down or not configured.

mod support;

use std::time::Duration;

use chrono::Duration as Span;
use latchkey::actors::billing_sync::{Reconcile, RetryEvents};
use latchkey_testkit::{Fault, PaymentMethodKind};
use support::*;

async fn signed_in_alex(app: &TestApp) -> Browser {
    let browser = app.browser();
    app.sign_in(&browser, "alex@example.com").await;
    browser
}

/// Presses the pay button of an invoice and returns the redirect.
async fn pay(app: &TestApp, browser: &Browser, number: &str) -> Page {
    let id = app.invoice_id(number).await;
    let billing = browser.get("/s/demo/billing?status=pending").await;
    browser
        .submit(
            &billing,
            &format!("form[action='/s/demo/billing/invoices/{id}/pay']"),
            &[],
        )
        .await
}

async fn invoice_status(app: &TestApp, number: &str) -> String {
    app.rows(
        "SELECT status FROM invoices WHERE number = $1",
        &[number.into()],
    )
    .await[0]
        .string(0)
}

both_backends! {
    async fn the_billing_filters_return_exactly_the_right_invoices(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in_alex(&app).await;
        let numbers = |page: &Page| page.select_text("tbody td[data-label=Invoice]");
        let all = browser.get("/s/demo/billing").await;
        assert_eq!(all.status, 200);
        assert_eq!(all.h1(), "Billing");
        assert_eq!(numbers(&all), ["INV-1042", "INV-1031", "INV-0877"]);
        assert_eq!(browser.get("/s/demo/billing?status=all").await.body, all.body);
        let pending = browser.get("/s/demo/billing?status=pending").await;
        assert_eq!(numbers(&pending), ["INV-1042"]);
        let paid = browser.get("/s/demo/billing?status=paid").await;
        assert_eq!(numbers(&paid), ["INV-1031", "INV-0877"]);
        assert_eq!(
            pending.select_text("nav[aria-label='Filter invoices'] a[aria-current=page]"),
            ["Pending"]
        );
        assert_eq!(browser.get("/s/demo/billing?status=bogus").await.status, 400);
        // Sam sees only Sam's.
        let sam = app.browser();
        app.sign_in(&sam, "sam@example.com").await;
        assert_eq!(numbers(&sam.get("/s/demo/billing").await), ["INV-1020"]);
    }

    async fn without_stripe_keys_billing_says_online_payment_is_unavailable(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in_alex(&app).await;
        let billing = browser.get("/s/demo/billing").await;
        assert!(billing.text().contains("Online payment is not available right now"));
        // A neutral notice, not an error: nothing went wrong, and nobody can fix it on this page.
        let notice = billing.html().select(&scraper::Selector::parse("#payments-unavailable").unwrap()).next().map(|e| e.value().classes().map(str::to_string).collect::<Vec<_>>());
        assert_eq!(notice, Some(vec!["info".to_string()]));
        assert!(billing.html().select(&scraper::Selector::parse(".alert, [role=alert]").unwrap()).next().is_none());
        assert!(billing.select_text("button").iter().all(|b| !b.starts_with("Pay")));
        assert!(!billing.text().contains("Add a payment method"));
        // The demo's card on file is shown, without a Remove button that could not work.
        assert_eq!(billing.select_text(".method span"), ["Visa ending in 4242, expires 12/2030"]);
        assert!(!billing.select_text("button").contains(&"Remove".to_string()));
        // The forms are not shown, and posting anyway gets the same answer.
        let id = app.invoice_id("INV-1042").await;
        let csrf = billing.csrf();
        let pay = browser
            .post_form(&format!("/s/demo/billing/invoices/{id}/pay"), &[("csrf_token".into(), csrf.clone())])
            .await;
        assert_eq!(pay.status, 503);
        assert_eq!(pay.h1(), "Online payment is not available");
        let add = browser
            .post_form("/s/demo/billing/payment-methods", &[("csrf_token".into(), csrf)])
            .await;
        assert_eq!(add.status, 503);
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
    }

    async fn paying_opens_checkout_for_the_invoice(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let billing = browser.get("/s/demo/billing").await;
        assert!(billing.select_text("button").contains(&"Pay $129.00 USD".to_string()));
        let redirect = pay(&app, &browser, "INV-1042").await;
        assert_eq!(redirect.status, 303);
        let checkout = redirect.location().unwrap();
        assert!(checkout.starts_with(&format!("{}/checkout/cs_test_", stripe.url())), "{checkout}");

        // The customer was created on first need and remembered.
        let customers = stripe.requests_to("/v1/customers");
        assert_eq!(customers.len(), 1);
        assert_eq!(customers[0].param("email"), Some("alex@example.com"));
        let customer = stripe.customers()[0]["id"].as_str().unwrap().to_string();
        let stored = app.rows("SELECT stripe_customer_id FROM accounts WHERE email = 'alex@example.com'", &[]).await;
        assert_eq!(stored[0].opt_string(0).as_deref(), Some(customer.as_str()));

        let invoice_id = app.invoice_id("INV-1042").await.to_string();
        let session = &stripe.requests_to("/v1/checkout/sessions")[0];
        assert_eq!(session.method, "POST");
        assert_eq!(session.param("mode"), Some("payment"));
        assert_eq!(session.param("customer"), Some(customer.as_str()));
        assert_eq!(session.param("line_items[0][price_data][unit_amount]"), Some("12900"));
        assert_eq!(session.param("line_items[0][price_data][currency]"), Some("usd"));
        assert_eq!(session.param("line_items[0][quantity]"), Some("1"));
        assert_eq!(session.param("metadata[invoice_id]"), Some(invoice_id.as_str()));
        assert_eq!(session.param("payment_intent_data[metadata][invoice_id]"), Some(invoice_id.as_str()));
        assert_eq!(
            session.param("success_url").unwrap(),
            app.url("/s/demo/billing?checkout=success")
        );
        assert_eq!(
            session.param("cancel_url").unwrap(),
            app.url("/s/demo/billing?checkout=cancelled")
        );
        let noted = app.rows("SELECT checkout_session_id FROM invoices WHERE number = 'INV-1042'", &[]).await;
        assert!(noted[0].opt_string(0).unwrap().starts_with("cs_test_"));

        // Paying again reuses the customer; a paid invoice cannot be paid.
        pay(&app, &browser, "INV-1042").await;
        assert_eq!(stripe.requests_to("/v1/customers").len(), 1);
        let paid = app.invoice_id("INV-1031").await;
        let again = browser
            .post_form(
                &format!("/s/demo/billing/invoices/{paid}/pay"),
                &[("csrf_token".into(), billing.csrf())],
            )
            .await;
        assert_eq!(again.status, 409);
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending", "nothing is paid until Stripe says so");
    }

    async fn a_signed_webhook_marks_the_invoice_paid_once_and_sends_a_receipt(backend: Backend) {
        let app = Setup::new(backend).with_stripe().with_smtp().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let checkout = pay(&app, &browser, "INV-1042").await.location().unwrap();
        let session = checkout.rsplit('/').next().unwrap().to_string();
        let event = stripe.complete_checkout(&session);

        let answer = app.send_webhook(&event).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        // The sign-in link, then the receipt.
        let receipts: Vec<_> = app
            .mailbox
            .wait_for_n("alex@example.com", 2)
            .await
            .into_iter()
            .filter(|m| m.subject().unwrap_or_default().starts_with("Receipt"))
            .collect();
        assert_eq!(receipts.len(), 1);
        let text = receipts[0].text_body();
        assert!(receipts[0].subject().unwrap().contains("INV-1042"));
        assert!(text.contains("$129.00 USD"), "{text}");
        assert!(text.contains("Unit B-112, monthly rent"), "{text}");

        // The same event again changes nothing.
        let before = app.rows("SELECT paid_at FROM invoices WHERE number = 'INV-1042'", &[]).await[0].ts(0);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        let intent = stripe.payment_intent_succeeded_event(&session);
        assert_eq!(app.send_webhook(&intent).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = app.rows("SELECT paid_at FROM invoices WHERE number = 'INV-1042'", &[]).await[0].ts(0);
        assert_eq!(before, after);
        assert_eq!(
            app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'payment_receipt'", &[]).await,
            1
        );
        assert_eq!(app.store().stripe_event_counts().await.unwrap(), (2, 2));

        // The customer sees it paid, with a receipt page.
        let paid = browser.get("/s/demo/billing?status=paid").await;
        assert!(paid.select_text("tbody td[data-label=Invoice]").contains(&"INV-1042".to_string()));
        let id = app.invoice_id("INV-1042").await;
        let page = browser.get(&format!("/s/demo/billing/invoices/{id}/receipt")).await;
        assert_eq!(page.status, 200);
        assert!(page.h1().starts_with("Receipt for invoice INV-1042"));
    }

    async fn bad_webhooks_get_400_and_change_nothing(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let checkout = pay(&app, &browser, "INV-1042").await.location().unwrap();
        let event = stripe.complete_checkout(checkout.rsplit('/').next().unwrap());
        let body = serde_json::to_vec(&event).unwrap();
        let now = app.clock_now().timestamp();

        let cases: Vec<(Vec<u8>, Option<String>)> = vec![
            (body.clone(), None),
            (body.clone(), Some(latchkey_testkit::stripe::sign(&body, "whsec_wrong", now))),
            (body.clone(), Some(latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, now - 3600))),
            (body.clone(), Some("t=abc,v1=zz".into())),
            ({ let mut b = body.clone(); b[10] ^= 1; b }, Some(latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, now))),
            (b"{not json".to_vec(), Some(latchkey_testkit::stripe::sign(b"{not json", WEBHOOK_SECRET, now))),
            (b"{\"id\":\"x\"}".to_vec(), Some(latchkey_testkit::stripe::sign(b"{\"id\":\"x\"}", WEBHOOK_SECRET, now))),
        ];
        for (i, (payload, signature)) in cases.into_iter().enumerate() {
            let answer = app.post_webhook(payload, signature).await;
            assert_eq!(answer.status(), 400, "case {i}");
        }
        assert_eq!(app.store().stripe_event_counts().await.unwrap(), (0, 0));
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
    }

    async fn stripe_failing_shows_a_clear_message_and_loses_nothing(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        for fault in [Fault::ServerError, Fault::Hang] {
            stripe.set_fault(fault);
            let page = pay(&app, &browser, "INV-1042").await;
            assert_eq!(page.status, 503);
            assert_eq!(page.h1(), "Payment provider unavailable");
            assert!(page.text().contains("Nothing was charged"));
            let add = browser.submit(&browser.get("/s/demo/billing").await, "form[action$='/billing/payment-methods']", &[]).await;
            assert_eq!(add.status, 503);
        }
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
        let noted = app.rows("SELECT checkout_session_id FROM invoices WHERE number = 'INV-1042'", &[]).await;
        assert_eq!(noted[0].opt_string(0), None);
        // Back up: it works.
        stripe.set_fault(Fault::None);
        assert_eq!(pay(&app, &browser, "INV-1042").await.status, 303);
    }

    async fn adding_and_removing_payment_methods(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let billing = browser.get("/s/demo/billing").await;
        assert!(billing.text().contains("No payment method on file."));
        let redirect = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        assert_eq!(redirect.status, 303);
        let session_id = redirect.location().unwrap().rsplit('/').next().unwrap().to_string();
        let request = stripe.requests_to("/v1/checkout/sessions").pop().unwrap();
        assert_eq!(request.param("mode"), Some("setup"));
        assert_eq!(request.param("currency"), Some("usd"));
        assert_eq!(request.param("allowed_payment_method_types[0]"), Some("card"));
        assert_eq!(request.param("allowed_payment_method_types[1]"), None);
        assert_eq!(
            request.param("success_url").unwrap(),
            app.url("/s/demo/billing?setup=success")
        );

        // Stripe completes the setup and tells us.
        let event = stripe.complete_checkout(&session_id);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        let customer = stripe.customers()[0]["id"].as_str().unwrap().to_string();
        stripe.attach_payment_method(&customer, PaymentMethodKind::card("mastercard", "5454", 3, 2031));
        // Back from Checkout the page reads the methods again.
        let back = browser.get("/s/demo/billing?setup=success").await;
        let methods = back.select_text(".method span");
        assert_eq!(methods.len(), 2, "{methods:?}");
        assert!(methods.contains(&"Visa ending in 4242, expires 12/2030".to_string()), "{methods:?}");
        assert!(methods.contains(&"Mastercard ending in 5454, expires 03/2031".to_string()), "{methods:?}");
        assert!(back.text().contains("Your payment method was added."));

        // Remove the Visa.
        let visa = app
            .rows("SELECT id, stripe_id FROM payment_methods WHERE last4 = '4242'", &[])
            .await;
        let (row_id, stripe_id) = (visa[0].i64(0), visa[0].string(1));
        let removed = browser
            .submit(&back, &format!("form[action='/s/demo/billing/payment-methods/{row_id}/remove']"), &[])
            .await;
        assert_eq!(removed.status, 303);
        let after = browser.follow(&removed).await;
        assert_eq!(after.select_text(".method span"), ["Mastercard ending in 5454, expires 03/2031"]);
        assert!(after.text().contains("The payment method was removed."));
        assert!(stripe.payment_method(&stripe_id).unwrap()["customer"].is_null(), "detached at Stripe");

        // A detachment made elsewhere arrives as an event and updates the list.
        let other = app.rows("SELECT stripe_id FROM payment_methods", &[]).await[0].string(0);
        let detached = stripe.payment_method_detached_event(&other);
        assert_eq!(app.send_webhook(&detached).await.status(), 200);
        assert!(browser.get("/s/demo/billing").await.text().contains("No payment method on file."));
    }

    async fn webhook_work_that_fails_is_retried(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let billing = browser.get("/s/demo/billing").await;
        let redirect = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        let session_id = redirect.location().unwrap().rsplit('/').next().unwrap().to_string();
        let event = stripe.complete_checkout(&session_id);

        // Reading the new method from Stripe fails: the event is kept, not dropped.
        stripe.set_fault(Fault::ServerError);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        assert_eq!(app.store().stripe_event_counts().await.unwrap(), (1, 0));
        assert_eq!(app.count("SELECT COUNT(*) FROM payment_methods", &[]).await, 0);

        stripe.set_fault(Fault::None);
        app.clock.advance(Span::seconds(31));
        let retried = app.app().actors.billing_sync.send(RetryEvents).await.unwrap().unwrap();
        assert_eq!(retried, 1);
        assert_eq!(app.store().stripe_event_counts().await.unwrap(), (1, 1));
        assert_eq!(app.count("SELECT COUNT(*) FROM payment_methods", &[]).await, 1);
    }

    async fn a_checkout_without_a_webhook_is_reconciled(backend: Backend) {
        let app = Setup::new(backend).with_stripe().with_smtp().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let checkout = pay(&app, &browser, "INV-1042").await.location().unwrap();
        // The customer paid, but the webhook never came.
        stripe.complete_checkout(checkout.rsplit('/').next().unwrap());
        let bs = &app.app().actors.billing_sync;
        assert_eq!(bs.send(Reconcile).await.unwrap().unwrap(), 0, "too early to call it stuck");
        app.clock.advance(Span::minutes(11));
        assert_eq!(bs.send(Reconcile).await.unwrap().unwrap(), 1);
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        let emails = app.mailbox.wait_for_n("alex@example.com", 2).await;
        assert!(emails[1].subject().unwrap().starts_with("Receipt for invoice INV-1042"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_with_pre_authorized_debit_offers_it() {
    let app = Setup::new(Backend::Postgres).with_stripe().start().await;
    app.store()
        .db()
        .execute(
            "UPDATE storefronts SET acss_debit = TRUE WHERE slug = 'demo'",
            &[],
        )
        .await
        .unwrap();
    app.app().services.storefronts.clear();
    let stripe = app.fake_stripe();
    let browser = signed_in_alex(&app).await;
    let billing = browser.get("/s/demo/billing").await;
    let redirect = browser
        .submit(&billing, "form[action$='/billing/payment-methods']", &[])
        .await;
    assert_eq!(redirect.status, 303);
    let request = stripe.requests_to("/v1/checkout/sessions").pop().unwrap();
    assert_eq!(request.param("currency"), Some("cad"));
    assert_eq!(
        request.param("allowed_payment_method_types[1]"),
        Some("acss_debit")
    );
    assert_eq!(
        request.param("payment_method_options[acss_debit][currency]"),
        Some("cad")
    );
    let session_id = redirect
        .location()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let event = stripe.complete_setup_with(
        &session_id,
        PaymentMethodKind::acss_debit("TD Canada Trust", "6789"),
    );
    assert_eq!(app.send_webhook(&event).await.status(), 200);
    assert_eq!(
        browser
            .get("/s/demo/billing")
            .await
            .select_text(".method span"),
        ["Pre-authorized debit, TD Canada Trust account ending in 6789"]
    );
}
