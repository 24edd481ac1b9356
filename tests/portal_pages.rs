//! The signed-in portal's pages through HTTP as a browser: rental history, agreements,
//! receipts, Account edits; and no account ever reaching another account's data.

mod support;

use support::*;

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    app.sign_in(&browser, email).await;
    browser
}

/// Alex's account row: (id, full name, email, phone).
async fn alex_row(app: &TestApp) -> (i64, String, String, String) {
    let r = app
        .rows(
            "SELECT a.id, a.full_name, a.email, a.phone FROM accounts a
             JOIN contacts c ON c.account_id = a.id WHERE c.external_ref = 'CON-DT-1001'",
            &[],
        )
        .await;
    (r[0].i64(0), r[0].string(1), r[0].string(2), r[0].string(3))
}

async fn rental_id(app: &TestApp, external_ref: &str) -> i64 {
    app.rows(
        "SELECT id FROM rentals WHERE external_ref = $1",
        &[external_ref.into()],
    )
    .await[0]
        .i64(0)
}

both_backends! {
    async fn every_signed_in_page_carries_the_storefront_and_navigation(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        for (path, h1) in [
            ("/s/demo/dashboard", "Hi, Alex"),
            ("/s/demo/billing", "Billing"),
            ("/s/demo/account", "Account"),
            ("/s/demo/rentals/history", "Rental history"),
        ] {
            let page = browser.get(path).await;
            assert_eq!(page.status, 200, "{path}");
            assert_eq!(page.h1(), h1, "{path}");
            assert!(page.title().ends_with("· Harborview Rentals"), "{path}: {}", page.title());
            assert_eq!(page.select_text("nav[aria-label=Portal] a"), ["Dashboard", "Billing", "Account"], "{path}");
            assert!(page.select_text("button").contains(&"Sign out".to_string()), "{path}");
            assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        }
    }

    async fn the_rental_history_lists_past_rentals_with_their_invoices(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        let dashboard = browser.get("/s/demo/dashboard").await;
        assert!(dashboard.select_text("a").contains(&"Rental history".to_string()));
        let history = browser.get("/s/demo/rentals/history").await;
        let text = history.text();
        assert_eq!(history.select_text("li.rental h2"), ["Unit A-07, 5×5"]);
        assert!(text.contains("Ended"), "{text}");
        assert!(text.contains("INV-0877"), "{text}");
        assert!(text.contains("Unit A-07, final month"), "{text}");
        assert!(!text.contains("Unit B-112"), "active rentals are on the dashboard: {text}");
        let receipt_link = history.select_text("li.rental a");
        assert!(receipt_link.contains(&"Receipt".to_string()));

        let sam = signed_in(&app, "sam@example.com").await;
        let history = sam.get("/s/demo/rentals/history").await;
        assert_eq!(history.select_text("li.rental h2"), ["Unit C-03, 5×10"]);
        assert!(history.text().contains("INV-1020"));
    }

    async fn every_rental_on_the_dashboard_and_in_the_history_links_to_its_own_page(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        for list in ["/s/demo/dashboard", "/s/demo/rentals/history"] {
            let page = browser.get(list).await;
            let labels = page.select_text("li.rental .rental-head a");
            let links = page.hrefs("li.rental .rental-head a");
            assert!(!links.is_empty(), "{list}: no rental links in\n{}", page.body);
            assert_eq!(labels.len(), links.len(), "{list}");
            for (label, href) in labels.iter().zip(&links) {
                assert!(href.starts_with("/s/demo/rentals/"), "{list}: {href}");
                let rental = browser.get(href).await;
                assert_eq!(rental.status, 200, "{href}");
                assert!(rental.text().contains(label.as_str()), "{href} does not show {label}");
            }
        }
    }

    async fn the_demo_agreement_and_its_invoices_agree_on_the_due_day(backend: Backend) {
        use chrono::Datelike;
        let app = TestApp::start(backend).await;
        let alex = signed_in(&app, "alex@example.com").await;
        let id = rental_id(&app, "RNT-DT-B112").await;
        let pdf = alex.get(&format!("/s/demo/rentals/{id}/agreement.pdf")).await;
        let said = pdf.body.split("due on the ").nth(1).expect("the agreement names the due day");
        let day: u32 = said.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
        let rows = app.rows(
            "SELECT i.due_on FROM invoices i JOIN rentals r ON r.id = i.rental_id WHERE r.external_ref = 'RNT-DT-B112'",
            &[],
        ).await;
        assert!(rows.len() >= 2);
        for r in &rows {
            assert_eq!(r.date(0).day(), day, "the agreement says the {said:.4}, an invoice is due {}", r.date(0));
        }
    }

    async fn the_agreement_downloads_for_its_owner_only(backend: Backend) {
        let app = TestApp::start(backend).await;
        let alex = signed_in(&app, "alex@example.com").await;
        let id = rental_id(&app, "RNT-DT-B112").await;
        let pdf = alex.get(&format!("/s/demo/rentals/{id}/agreement.pdf")).await;
        assert_eq!(pdf.status, 200);
        assert_eq!(pdf.headers["content-type"], "application/pdf");
        assert_eq!(pdf.headers["content-disposition"], "attachment; filename=\"agreement-B-112.pdf\"");
        assert!(pdf.body.starts_with("%PDF-1.4"));
        assert!(pdf.body.contains("Alex Martin"));
        // Written in the font's WinAnsiEncoding (code page 1252): × is 0xD7, — is 0x97, not "?".
        assert!(pdf.bytes.windows(7).any(|w| w == b"10\xD710, "), "{}", pdf.body);
        assert!(pdf.bytes.windows(3).any(|w| w == b" \x97 "), "{}", pdf.body);
        assert!(!pdf.body.contains("10?10") && !pdf.body.contains("10x10"));
        // A rental without an agreement, and someone else's.
        let cart = rental_id(&app, "RNT-MR-C14").await;
        assert_eq!(alex.get(&format!("/s/demo/rentals/{cart}/agreement.pdf")).await.status, 404);
        let sam = signed_in(&app, "sam@example.com").await;
        assert_eq!(sam.get(&format!("/s/demo/rentals/{id}/agreement.pdf")).await.status, 404);
        // Not signed in: to sign-in, and back here afterwards.
        let anonymous = app.browser().get(&format!("/s/demo/rentals/{id}/agreement.pdf")).await;
        assert_eq!(anonymous.status, 303);
        assert!(anonymous.location().unwrap().contains("next=%2Frentals%2F"));
    }

    async fn no_account_reaches_another_accounts_data(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let alex = signed_in(&app, "alex@example.com").await;
        let sam = signed_in(&app, "sam@example.com").await;
        // Alex's ids.
        let rental = rental_id(&app, "RNT-DT-B112").await;
        let pending = app.invoice_id("INV-1042").await;
        let paid = app.invoice_id("INV-1031").await;
        let customer = app.fake_stripe().customers();
        assert!(customer.is_empty());
        // Give Alex a payment method.
        let billing = alex.get("/s/demo/billing").await;
        let setup = alex.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        let session = setup.location().unwrap().rsplit('/').next().unwrap().to_string();
        let event = app.fake_stripe().complete_checkout(&session);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        let method = app.rows("SELECT id FROM payment_methods", &[]).await[0].i64(0);

        let csrf = sam.get("/s/demo/billing").await.csrf();
        let form = vec![("csrf_token".to_string(), csrf)];
        for path in [
            format!("/s/demo/rentals/{rental}/agreement.pdf"),
            format!("/s/demo/billing/invoices/{pending}/receipt"),
            format!("/s/demo/billing/invoices/{paid}/receipt"),
            "/s/demo/billing/invoices/999999/receipt".to_string(),
            "/s/demo/rentals/abc/agreement.pdf".to_string(),
        ] {
            assert_eq!(sam.get(&path).await.status, 404, "GET {path}");
        }
        for path in [
            format!("/s/demo/billing/invoices/{pending}/pay"),
            format!("/s/demo/billing/payment-methods/{method}/remove"),
            "/s/demo/billing/invoices/999999/pay".to_string(),
            "/s/demo/billing/payment-methods/-1/remove".to_string(),
        ] {
            assert_eq!(sam.post_form(&path, &form).await.status, 404, "POST {path}");
        }
        // Nothing happened to Alex's things.
        assert_eq!(app.count("SELECT COUNT(*) FROM payment_methods", &[]).await, 1);
        assert!(app.fake_stripe().requests_to("/v1/payment_methods").is_empty());
        assert_eq!(app.fake_stripe().requests_to("/v1/checkout/sessions").len(), 1);
        // Alex still reaches them.
        assert_eq!(alex.get(&format!("/s/demo/billing/invoices/{paid}/receipt")).await.status, 200);
    }

    async fn account_edits_are_validated_and_saved(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        let page = browser.get("/s/demo/account").await;
        let (action, fields) = page.form("form[action$='/account']");
        assert_eq!(action, "/s/demo/account");
        assert_eq!(
            fields,
            [
                ("csrf_token".to_string(), page.csrf()),
                ("full_name".to_string(), "Alex Martin".to_string()),
                ("email".to_string(), "alex@example.com".to_string()),
                ("phone".to_string(), "+1 207-555-0111".to_string()),
                ("language".to_string(), String::new()),
            ]
        );
        assert_eq!(page.select_text("label"), ["Full name", "Email", "Phone", "Language"]);
        assert!(page.select_text("button").contains(&"Save changes".to_string()));

        let before = alex_row(&app).await;
        for (name, email, phone, status, field, message) in [
            ("", "alex@example.com", "", 422, "full_name", "Enter your full name."),
            (&"A".repeat(101)[..], "alex@example.com", "", 422, "full_name", "Use at most 100 characters."),
            ("Alex\u{0007}Martin", "alex@example.com", "", 422, "full_name", "A name cannot contain line breaks or control characters."),
            ("Alex\u{2028}Martin", "alex@example.com", "", 422, "full_name", "A name cannot contain line breaks or control characters."),
            ("Alex\u{202E}Martin", "alex@example.com", "", 422, "full_name", "A name cannot contain line breaks or control characters."),
            ("Alex Martin", "alex@", "", 422, "email", "Enter an email address like name@example.com."),
            ("Alex Martin", "alex@example.com\r\nBcc: x@evil.example", "", 422, "email", "An email address cannot contain line breaks or control characters."),
            ("Alex Martin", "alex@example.com", "call me maybe", 422, "phone", "Enter a phone number with digits, spaces, +, - or brackets."),
            ("Alex Martin", "SAM@example.com", "", 409, "email", "Another account already uses this email address. Use a different address, or sign in with that one."),
        ] {
            let answer = browser
                .submit(&page, "form[action$='/account']", &[("full_name", name), ("email", email), ("phone", phone)])
                .await;
            assert_eq!(answer.status, status, "{field}: {email:?}");
            assert_eq!(answer.select_text(&format!("#{field}-error")), [message], "{field}");
            assert!(answer.text().contains("Nothing was saved."));
            // The form keeps what was typed.
            let (_, kept) = answer.form("form[action$='/account']");
            let typed: String = email.chars().filter(|c| !c.is_control()).collect();
            assert!(kept.contains(&("email".to_string(), typed)), "{kept:?}");
            assert_eq!(alex_row(&app).await, before, "nothing saved for {field}");
        }

        let saved = browser
            .submit(&page, "form[action$='/account']", &[("full_name", "Alexandra Martin"), ("phone", "+1 (207) 555-0199")])
            .await;
        assert_eq!(saved.status, 303);
        let shown = browser.follow(&saved).await;
        assert!(shown.text().contains("Your details were saved."));
        let (_, fields) = shown.form("form[action$='/account']");
        assert!(fields.contains(&("full_name".to_string(), "Alexandra Martin".to_string())));
        assert_eq!(alex_row(&app).await.1, "Alexandra Martin");
        assert_eq!(browser.get("/s/demo/dashboard").await.h1(), "Hi, Alexandra");
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'email_changed'", &[]).await, 0);
    }

    async fn an_email_change_keeps_the_account_and_applies_once_confirmed(backend: Backend) {
        // SPEC §8: a new email is confirmed at the new address before it applies (it used to
        // apply at once); tests/trust_accounts.rs covers sessions, links and the notice.
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        let id_before = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let page = browser.get("/s/demo/account").await;
        let saved = browser
            .submit(&page, "form[action$='/account']", &[("email", "alex.martin@example.org")])
            .await;
        assert_eq!(saved.status, 303);
        assert!(browser.follow(&saved).await.text().contains("Confirm your new address"));
        assert_eq!(alex_row(&app).await.2, "alex@example.com", "nothing changes before confirmation");
        let mail = app.mailbox.wait_for("alex.martin@example.org").await;
        let link = mail.links().into_iter().find(|l| l.contains("/confirm-email/")).unwrap();
        let landing = browser.get_url(&link).await;
        assert_eq!(browser.submit(&landing, "form", &[]).await.status, 303);
        let row = app.rows("SELECT id FROM accounts WHERE email = 'alex.martin@example.org'", &[]).await;
        assert_eq!(row[0].i64(0), id_before, "the account id stays");
        // The confirming browser is signed in; the old address gets the notice.
        assert_eq!(browser.get("/s/demo/dashboard").await.status, 200);
        let notice = app.mailbox.nth("alex@example.com", 2).await;
        assert_eq!(notice.subject().unwrap(), "Your Harborview Rentals email address was changed");
    }
}
