//! Payments are never taken twice (SPEC §8, §4): idempotency keys on every Stripe create, at
//! most one open Checkout per invoice (also for two presses at once), Processing for a debit
//! on its way until Stripe says it succeeded (Paid, receipt) or failed (Pending, an email),
//! and the page back from Checkout saying the payment is being confirmed. Against the fake
//! Stripe server, on both stores.

mod support;

use chrono::Duration as Span;
use latchkey::actors::billing_sync::Reconcile;
use latchkey_testkit::{Fault, PaymentMethodKind};
use serde_json::{Value, json};
use support::*;

async fn signed_in_alex(app: &TestApp) -> Browser {
    let browser = app.browser();
    app.sign_in(&browser, "alex@example.com").await;
    browser
}

/// Presses the Pay button of an invoice on the Billing page and returns the answer.
async fn pay(app: &TestApp, browser: &Browser, number: &str) -> Page {
    let id = app.invoice_id(number).await;
    let billing = browser.get("/s/demo/billing").await;
    browser
        .submit(
            &billing,
            &format!("form[action='/s/demo/billing/invoices/{id}/pay']"),
            &[],
        )
        .await
}

/// Pay, expecting the redirect to Checkout; returns the session id.
async fn pay_session(app: &TestApp, browser: &Browser, number: &str) -> String {
    let redirect = pay(app, browser, number).await;
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    session_of(&redirect)
}

fn session_of(redirect: &Page) -> String {
    redirect
        .location()
        .expect("a redirect to Checkout")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

async fn invoice_status(app: &TestApp, number: &str) -> String {
    app.rows(
        "SELECT status FROM invoices WHERE number = $1",
        &[number.into()],
    )
    .await[0]
        .string(0)
}

/// The Status badge and the buttons of one invoice's row on the Billing page.
async fn row(app: &TestApp, page: &Page, number: &str) -> (String, Vec<String>) {
    let id = app.invoice_id(number).await;
    let status = page.select_text(&format!("#invoice-{id} td[data-label=Status]"));
    let buttons = page.select_text(&format!("#invoice-{id} button"));
    (status.join(" "), buttons)
}

fn payment_sessions(app: &TestApp) -> Vec<Value> {
    app.fake_stripe()
        .sessions()
        .into_iter()
        .filter(|s| s["mode"] == "payment")
        .collect()
}

async fn deliveries_of_kind(app: &TestApp, kind: &str) -> i64 {
    app.count(
        "SELECT COUNT(*) FROM deliveries WHERE kind = $1",
        &[kind.into()],
    )
    .await
}

/// Pays INV-1042 by pre-authorized debit at the fake Stripe and delivers the
/// `checkout.session.completed` event (`payment_status=unpaid`); returns the session id.
async fn pay_by_debit(app: &TestApp, browser: &Browser) -> String {
    let session = pay_session(app, browser, "INV-1042").await;
    let completed = app.fake_stripe().complete_payment_with(
        &session,
        PaymentMethodKind::acss_debit("TD Canada Trust", "6789"),
    );
    assert_eq!(completed["data"]["object"]["status"], "complete");
    assert_eq!(completed["data"]["object"]["payment_status"], "unpaid");
    assert_eq!(app.send_webhook(&completed).await.status(), 200);
    session
}

/// Sends an event twice (Stripe retries): both answered 200, processed once.
async fn deliver_twice(app: &TestApp, event: &Value) {
    let before = app.store().stripe_event_counts().await.unwrap();
    assert_eq!(app.send_webhook(event).await.status(), 200);
    assert_eq!(app.send_webhook(event).await.status(), 200);
    let after = app.store().stripe_event_counts().await.unwrap();
    assert_eq!(after.0, before.0 + 1, "the event is recorded once");
    assert_eq!(after.0, after.1, "and processed");
}

both_backends! {
    async fn pressing_pay_twice_opens_one_checkout_with_idempotency_keys(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let first = pay(&app, &browser, "INV-1042").await;
        let second = pay(&app, &browser, "INV-1042").await;
        assert_eq!(second.status, 303);
        assert_eq!(first.location(), second.location(), "the open Checkout is handed out again");
        assert_eq!(stripe.checkout_sessions_created(), 1);

        // Every create carried a key: the customer's names the account, the Checkout's the
        // invoice and which Checkout of it this is.
        let customer_keys = stripe.idempotency_keys("/v1/customers");
        assert_eq!(customer_keys.len(), 1);
        let customer_key = customer_keys[0].clone().expect("the customer create has a key");
        let session_keys = stripe.idempotency_keys("/v1/checkout/sessions");
        assert_eq!(session_keys.len(), 1, "the second press created nothing");
        let session_key = session_keys[0].clone().expect("the Checkout create has a key");
        let invoice = app.invoice_id("INV-1042").await;
        assert!(session_key.contains(&format!("-invoice-{invoice}-checkout-0")), "{session_key}");
        assert_ne!(customer_key, session_key);

        // Another customer's invoice gets keys of its own.
        app.store()
            .db()
            .execute("UPDATE invoices SET status = 'pending', paid_at = NULL WHERE number = 'INV-1020'", &[])
            .await
            .unwrap();
        let sam = app.browser();
        app.sign_in(&sam, "sam@example.com").await;
        pay_session(&app, &sam, "INV-1020").await;
        let keys: Vec<String> = stripe
            .idempotency_keys("/v1/")
            .into_iter()
            .map(|k| k.expect("every create has a key"))
            .collect();
        assert_eq!(keys.len(), 4);
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 4, "{keys:?}");
        assert_eq!(stripe.checkout_sessions_created(), 2);
    }

    async fn two_pay_presses_at_once_open_one_checkout(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let other_tab = &browser;
        let (a, b) = tokio::join!(
            pay(&app, &browser, "INV-1042"),
            pay(&app, other_tab, "INV-1042")
        );
        assert_eq!((a.status, b.status), (303, 303), "{} {}", a.body, b.body);
        assert_eq!(a.location(), b.location());
        assert_eq!(stripe.checkout_sessions_created(), 1);
        assert_eq!(stripe.customers().len(), 1, "one Stripe customer too");

        // The Checkout expires at Stripe; two presses at once replace it with one new one.
        let old = session_of(&a);
        stripe.expire_checkout(&old);
        let (c, d) = tokio::join!(
            pay(&app, &browser, "INV-1042"),
            pay(&app, other_tab, "INV-1042")
        );
        assert_eq!((c.status, d.status), (303, 303), "{} {}", c.body, d.body);
        assert_eq!(c.location(), d.location());
        assert_ne!(session_of(&c), old);
        assert_eq!(stripe.checkout_sessions_created(), 2);
        let noted = app
            .rows("SELECT checkout_session_id, checkout_attempt FROM invoices WHERE number = 'INV-1042'", &[])
            .await;
        assert_eq!(noted[0].opt_string(0), Some(session_of(&c)));
        assert_eq!(noted[0].i64(1), 1);
    }

    async fn a_retry_after_a_lost_answer_reuses_what_stripe_created(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;

        // Stripe creates the customer but the answer never comes back.
        stripe.set_fault(Fault::LoseAnswer);
        let billing = browser.get("/s/demo/billing").await;
        let add = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        assert_eq!(add.status, 503);
        assert_eq!(stripe.customers().len(), 1);
        stripe.set_fault(Fault::None);
        let add = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        assert_eq!(add.status, 303, "{}", add.body);
        assert_eq!(stripe.customers().len(), 1, "the retry got the customer already created");
        let keys = stripe.idempotency_keys("/v1/customers");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], keys[1]);

        // The same for a Checkout: the retry is answered with the session already created.
        stripe.set_fault(Fault::LoseAnswer);
        assert_eq!(pay(&app, &browser, "INV-1042").await.status, 503);
        assert_eq!(payment_sessions(&app).len(), 1, "Stripe made it");
        stripe.set_fault(Fault::None);
        let session = pay_session(&app, &browser, "INV-1042").await;
        assert_eq!(payment_sessions(&app).len(), 1, "and was not asked to make another");
        assert_eq!(payment_sessions(&app)[0]["id"], session.as_str());
        let keys: Vec<_> = stripe
            .requests_to("/v1/checkout/sessions")
            .into_iter()
            .filter(|r| r.param("mode") == Some("payment"))
            .map(|r| r.idempotency_key)
            .collect();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].is_some());
        assert_eq!(keys[0], keys[1]);

        // Adding another payment method later is a new operation: a new Checkout.
        let before = stripe.checkout_sessions_created();
        let billing = browser.get("/s/demo/billing").await;
        let again = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        assert_eq!(again.status, 303);
        assert_eq!(stripe.checkout_sessions_created(), before + 1);
    }

    async fn a_checkout_past_use_is_expired_before_a_new_one_opens(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let first = pay_session(&app, &browser, "INV-1042").await;

        // The facility changes the amount: the open Checkout asks for the old one.
        app.store()
            .db()
            .execute("UPDATE invoices SET amount_minor = 13900 WHERE number = 'INV-1042'", &[])
            .await
            .unwrap();
        let second = pay_session(&app, &browser, "INV-1042").await;
        assert_ne!(first, second);
        assert_eq!(stripe.session(&first).unwrap()["status"], "expired", "it can no longer be paid");
        assert_eq!(stripe.session(&second).unwrap()["amount_total"], 13900);
        let expired = stripe.requests_to(&format!("/v1/checkout/sessions/{first}/expire"));
        assert_eq!(expired.len(), 1);

        // Near the end of its life (Stripe expires it after 24 hours) it is replaced too.
        app.clock.advance(Span::hours(23) + Span::minutes(45));
        let third = pay_session(&app, &browser, "INV-1042").await;
        assert_ne!(third, second);
        assert_eq!(stripe.session(&second).unwrap()["status"], "expired");
        assert_eq!(stripe.checkout_sessions_created(), 3);
        let keys: std::collections::BTreeSet<_> = stripe
            .idempotency_keys("/v1/checkout/sessions")
            .into_iter()
            .filter_map(|k| k.filter(|k| k.contains("-invoice-")))
            .collect();
        assert_eq!(keys.len(), 3, "each Checkout of the invoice has its own key: {keys:?}");
    }

    async fn a_pending_debit_shows_processing_until_the_payment_succeeds(backend: Backend) {
        let app = Setup::new(backend).with_stripe().with_smtp().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let session = pay_by_debit(&app, &browser).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");

        let billing = browser.get("/s/demo/billing").await;
        let (status, buttons) = row(&app, &billing, "INV-1042").await;
        assert_eq!(status, "Processing");
        assert!(buttons.is_empty(), "no Pay button: {buttons:?}");
        assert!(billing.text().contains("Payment on its way"));
        // Still listed among the unpaid ones.
        let pending = browser.get("/s/demo/billing?status=pending").await;
        assert_eq!(row(&app, &pending, "INV-1042").await.0, "Processing");
        // Pressing Pay anyway opens nothing.
        let id = app.invoice_id("INV-1042").await;
        let again = browser
            .post_form(&format!("/s/demo/billing/invoices/{id}/pay"), &[("csrf_token".into(), billing.csrf())])
            .await;
        assert_eq!(again.status, 409);
        assert_eq!(again.h1(), "Payment on its way");
        assert_eq!(stripe.checkout_sessions_created(), 1);
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 0);

        // The bank pays: Paid, with one receipt, however often Stripe sends the news.
        let succeeded = stripe.payment_intent_succeeded_event(&session);
        assert_eq!(succeeded["data"]["object"]["status"], "succeeded");
        deliver_twice(&app, &succeeded).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        deliver_twice(&app, &stripe.async_payment_succeeded_event(&session)).await;
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 1);
        let mails = app.mailbox.wait_for_n("alex@example.com", 2).await;
        assert!(mails[1].subject().unwrap().starts_with("Receipt for invoice INV-1042"));
        let paid = browser.get("/s/demo/billing").await;
        assert_eq!(row(&app, &paid, "INV-1042").await.0, "Paid");
    }

    async fn an_async_payment_succeeded_event_marks_it_paid(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = signed_in_alex(&app).await;
        let session = pay_by_debit(&app, &browser).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");
        let event = app.fake_stripe().async_payment_succeeded_event(&session);
        assert_eq!(event["data"]["object"]["payment_status"], "paid");
        deliver_twice(&app, &event).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 1);
        let pi = app.rows("SELECT payment_intent_id FROM invoices WHERE number = 'INV-1042'", &[]).await;
        assert!(pi[0].opt_string(0).unwrap().starts_with("pi_test_"));
    }

    async fn a_failed_debit_returns_the_invoice_to_pending_and_emails_the_customer(backend: Backend) {
        let app = Setup::new(backend).with_stripe().with_smtp().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let session = pay_by_debit(&app, &browser).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");

        let failed = stripe.payment_intent_payment_failed_event(&session);
        assert_eq!(failed["data"]["object"]["status"], "requires_payment_method");
        deliver_twice(&app, &failed).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
        // The session's own failure event, arriving too, changes nothing more.
        deliver_twice(&app, &stripe.async_payment_failed_event(&session)).await;
        assert_eq!(deliveries_of_kind(&app, "payment_failed").await, 1);

        let mails = app.mailbox.wait_for_n("alex@example.com", 2).await;
        let notice = &mails[1];
        assert_eq!(
            notice.subject().unwrap(),
            "Your payment of invoice INV-1042 to Harborview Rentals did not go through"
        );
        let text = notice.text_body();
        assert!(text.contains("did not go through"), "{text}");
        assert!(text.contains("$129.00 USD"), "{text}");
        assert!(text.contains("press Pay"), "{text}");
        assert!(notice.links().contains(&app.url("/s/demo/billing")), "{:?}", notice.links());

        // The customer can pay again, through a new Checkout with a new key.
        let billing = browser.get("/s/demo/billing").await;
        let (status, buttons) = row(&app, &billing, "INV-1042").await;
        assert_eq!(status, "Pending");
        assert_eq!(buttons, ["Pay $129.00 USD"]);
        let next = pay_session(&app, &browser, "INV-1042").await;
        assert_ne!(next, session);
        assert_eq!(stripe.checkout_sessions_created(), 2);
        let keys = stripe.idempotency_keys("/v1/checkout/sessions");
        assert_ne!(keys[0], keys[1]);
    }

    async fn a_failure_for_an_invoice_not_processing_sends_nothing(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        // A card declined inside Checkout: the customer sees it there; no email from us.
        let session = pay_session(&app, &browser, "INV-1042").await;
        stripe.payment_intent_succeeded_event(&session);
        let failed = stripe.payment_intent_payment_failed_event(&session);
        deliver_twice(&app, &failed).await;
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
        assert_eq!(deliveries_of_kind(&app, "payment_failed").await, 0);
    }

    async fn back_from_checkout_the_page_says_the_payment_is_being_confirmed(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let redirect = pay(&app, &browser, "INV-1042").await;
        let checkout = redirect.location().unwrap();
        // The customer pays on Stripe's page and is sent back; Stripe cannot be asked yet
        // and its webhook is not here.
        let hosted = browser.get_url(&checkout).await;
        assert_eq!(hosted.status, 200);
        stripe.set_fault(Fault::ServerError);
        let done = browser
            .post_form(&format!("{}/checkout/{}/complete", stripe.url(), session_of(&redirect)), &[])
            .await;
        assert_eq!(done.status, 303);
        let back_to = done.location().unwrap();
        assert_eq!(back_to, app.url("/s/demo/billing?checkout=success"));
        let back = browser.get_url(&back_to).await;
        assert_eq!(back.status, 200);
        assert!(back.text().contains("your payment is being confirmed"), "{}", back.text());
        let (status, buttons) = row(&app, &back, "INV-1042").await;
        assert_eq!(status, "Confirming payment");
        assert!(buttons.is_empty(), "no Pay button: {buttons:?}");
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");

        // With Stripe reachable, the page asks it and shows the truth at once.
        stripe.set_fault(Fault::None);
        let back = browser.get_url(&back_to).await;
        assert_eq!(row(&app, &back, "INV-1042").await.0, "Paid");
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 1);
        // The webhook arriving later changes nothing.
        let session = session_of(&redirect);
        let completed = stripe.events().into_iter().find(|e| e["type"] == "checkout.session.completed").unwrap();
        assert_eq!(completed["data"]["object"]["id"], session.as_str());
        deliver_twice(&app, &completed).await;
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 1);
    }

    async fn back_from_a_debit_checkout_the_page_shows_processing(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let session = pay_session(&app, &browser, "INV-1042").await;
        stripe.complete_payment_with(&session, PaymentMethodKind::acss_debit("RBC", "4321"));
        let back = browser.get("/s/demo/billing?checkout=success").await;
        assert!(back.text().contains("your payment is being confirmed"));
        let (status, buttons) = row(&app, &back, "INV-1042").await;
        assert_eq!(status, "Processing");
        assert!(buttons.is_empty());
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");
    }

    async fn reconciliation_settles_processing_payments(backend: Backend) {
        let app = Setup::new(backend).with_stripe().with_smtp().start().await;
        let stripe = app.fake_stripe();
        let browser = signed_in_alex(&app).await;
        let session = pay_by_debit(&app, &browser).await;
        let bs = &app.app().actors.billing_sync;
        app.clock.advance(Span::minutes(11));
        assert_eq!(bs.send(Reconcile).await.unwrap().unwrap(), 0, "still on its way");
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");
        // The debit fails and no webhook comes: reconciliation finds out.
        stripe.async_payment_failed_event(&session);
        assert_eq!(bs.send(Reconcile).await.unwrap().unwrap(), 1);
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");
        assert_eq!(deliveries_of_kind(&app, "payment_failed").await, 1);
        let mails = app.mailbox.wait_for_n("alex@example.com", 2).await;
        assert!(mails[1].subject().unwrap().contains("did not go through"));

        // Paid by debit again; this time it succeeds, silently.
        let second = pay_by_debit(&app, &browser).await;
        assert_ne!(second, session);
        stripe.async_payment_succeeded_event(&second);
        app.clock.advance(Span::minutes(11));
        assert_eq!(bs.send(Reconcile).await.unwrap().unwrap(), 1);
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
        assert_eq!(deliveries_of_kind(&app, "payment_receipt").await, 1);
    }

    async fn the_api_shows_processing_and_a_pending_put_keeps_it(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = signed_in_alex(&app).await;
        pay_by_debit(&app, &browser).await;
        let sf = app.rows("SELECT id FROM storefronts WHERE slug = 'demo'", &[]).await[0].i64(0);
        let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
        app.store().create_api_key(sf, "Test", &hash, &prefix, chrono::Utc::now()).await.unwrap();
        let refs = app
            .rows(
                "SELECT c.external_ref, r.external_ref FROM invoices i JOIN contacts c ON c.id = i.contact_id
                 LEFT JOIN rentals r ON r.id = i.rental_id WHERE i.number = 'INV-1042'",
                &[],
            )
            .await;
        let invoice = app.rows("SELECT issued_on, due_on FROM invoices WHERE number = 'INV-1042'", &[]).await;
        let body = json!({
            "contact": refs[0].string(0),
            "rental": refs[0].opt_string(1),
            "number": "INV-1042",
            "description": "Unit B-112, monthly rent",
            "amount_minor": 12900,
            "currency": "USD",
            "issued_on": invoice[0].date(0).to_string(),
            "due_on": invoice[0].date(1).to_string(),
            "status": "pending",
        });
        let reply = reqwest::Client::new()
            .put(app.url("/api/v1/invoices/INV-1042"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let answer: Value = serde_json::from_slice(&reply.bytes().await.unwrap()).unwrap();
        assert_eq!(answer["status"], "processing", "{answer}");
        assert_eq!(invoice_status(&app, "INV-1042").await, "processing");
        // The document says it can.
        let doc = serde_json::to_value(latchkey::http::api::openapi()).unwrap();
        let status = &doc["components"]["schemas"]["Invoice"]["properties"]["status"];
        let status = match status["$ref"].as_str() {
            Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
            None => status,
        };
        let statuses = &status["enum"];
        assert!(statuses.as_array().unwrap().contains(&json!("processing")));
    }

    async fn the_console_customer_record_shows_processing(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = signed_in_alex(&app).await;
        pay_by_debit(&app, &browser).await;
        let store = app.store();
        let demo = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        store
            .create_staff(
                Some(demo),
                &latchkey::domain::EmailAddress::parse("olivia@harborview.example").unwrap(),
                "Olivia Owner",
                latchkey::store::Role::Owner,
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let staff = app.browser();
        let page = staff.get("/console/sign-in").await;
        let sent = staff
            .submit_followed(&page, "form[action='/console/sign-in']", &[("email", "olivia@harborview.example")])
            .await;
        assert_eq!(sent.status, 200);
        let mail = app.mailbox.wait_for("olivia@harborview.example").await;
        let link = mail.links().into_iter().find(|l| l.contains("/console/auth/")).unwrap();
        let landing = staff.get_url(&link).await;
        let signed_in = staff.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);
        let account = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let record = staff.get(&format!("/console/s/demo/customers/{account}")).await;
        assert_eq!(record.status, 200, "{}", record.body);
        let invoices = record.select_text("section[aria-labelledby=invoices-heading] li");
        assert!(
            invoices.iter().any(|i| i.starts_with("INV-1042") && i.ends_with("Processing")),
            "{invoices:?}"
        );
    }

    async fn back_from_checkout_an_invoice_left_in_an_open_checkout_can_still_be_paid(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let stripe = app.fake_stripe();
        app.store()
            .db()
            .execute("UPDATE invoices SET status = 'pending', paid_at = NULL WHERE number = 'INV-1031'", &[])
            .await
            .unwrap();
        let browser = signed_in_alex(&app).await;
        // Pay opened for both; only INV-1042 is paid.
        pay_session(&app, &browser, "INV-1031").await;
        let paid = pay_session(&app, &browser, "INV-1042").await;
        stripe.complete_checkout(&paid);
        let back = browser.get("/s/demo/billing?checkout=success").await;
        assert_eq!(row(&app, &back, "INV-1042").await.0, "Paid");
        let (status, buttons) = row(&app, &back, "INV-1031").await;
        assert_eq!(status, "Pending");
        assert_eq!(buttons, ["Pay $129.00 USD"]);
    }
}
