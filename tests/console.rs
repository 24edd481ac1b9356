//! The operator console through HTTP as a signed-in staff member: the facility Emails tab with
//! every status and attempt, customer records and resending the portal link, the support
//! tools (linking contacts, merging accounts) with their audit log, and who may do what.

mod support;

use chrono::Utc;
use latchkey::domain::EmailAddress;
use latchkey::store::{CooldownSlot, NewStorefront, Role};
use latchkey_testkit::SmtpMode;
use support::*;

/// Staff of the demo storefront, platform support, and an owner of another storefront.
async fn staff(app: &TestApp) {
    let store = app.store();
    let demo = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
    let other = store
        .upsert_storefront(
            &NewStorefront {
                slug: "other".into(),
                name: "Other Rentals".into(),
                from_name: "Other".into(),
                from_email: EmailAddress::parse("portal@other.example").unwrap(),
                rent_url: "https://other.example/".into(),
                custom_host: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    for (sf, email, name, role) in [
        (
            Some(demo),
            "olivia@harborview.example",
            "Olivia Owner",
            Role::Owner,
        ),
        (
            Some(demo),
            "max@harborview.example",
            "Max Manager",
            Role::Manager,
        ),
        (
            Some(demo),
            "stan@harborview.example",
            "Stan Staff",
            Role::Staff,
        ),
        (None, "sue@latchkey.example", "Sue Support", Role::Support),
        (Some(other), "otto@other.example", "Otto Other", Role::Owner),
    ] {
        store
            .create_staff(
                sf,
                &EmailAddress::parse(email).unwrap(),
                name,
                role,
                Utc::now(),
            )
            .await
            .unwrap();
    }
}

/// Signs a staff member in to the console by the emailed link; returns the page after.
async fn console_sign_in(app: &TestApp, browser: &Browser, email: &str) -> Page {
    let before = app.mailbox.to(email).len();
    let page = browser.get("/console/sign-in").await;
    assert_eq!(page.h1(), "Console sign-in");
    let sent = browser
        .submit_followed(
            &page,
            "form[action='/console/sign-in']",
            &[("email", email)],
        )
        .await;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.h1(), "Check your email");
    let mail = app.mailbox.nth(email, before + 1).await;
    assert!(mail.subject().unwrap().contains("console"));
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/console/auth/"))
        .expect("a console link");
    let landing = browser.get_url(&link).await;
    assert_eq!(landing.status, 200);
    let signed_in = browser.submit(&landing, "form", &[]).await;
    assert_eq!(signed_in.status, 303);
    let cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lk_console="))
        .unwrap();
    assert!(
        cookie.contains("Path=/console;") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let mut page = browser.follow(&signed_in).await;
    while page.status == 303 {
        page = browser.follow(&page).await;
    }
    page
}

async fn facility_id(app: &TestApp, external_ref: &str) -> i64 {
    app.rows(
        "SELECT id FROM facilities WHERE external_ref = $1",
        &[external_ref.into()],
    )
    .await[0]
        .i64(0)
}

async fn account_id(app: &TestApp, email: &str) -> i64 {
    app.rows("SELECT id FROM accounts WHERE email = $1", &[email.into()])
        .await[0]
        .i64(0)
}

both_backends! {
    async fn a_cooldown_slot_is_claimed_once_and_given_back_only_by_its_claim(backend: Backend) {
        let app = TestApp::start(backend).await;
        let store = app.store();
        let demo = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        let alex = account_id(&app, "alex@example.com").await;
        let rental = app.rows("SELECT id FROM rentals ORDER BY id LIMIT 1", &[]).await[0].i64(0);
        let cooldown = chrono::Duration::minutes(5);
        for slot in [CooldownSlot::LinkResend { account_id: alex }, CooldownSlot::BookingConfirmation { rental_id: rental }] {
            let t0 = app.clock_now();
            assert_eq!(store.claim_cooldown(demo, slot, cooldown, t0).await.unwrap(), Ok(()), "{slot:?}");
            // Held: the answer says when the slot was taken.
            let t1 = t0 + chrono::Duration::seconds(10);
            let held = store.claim_cooldown(demo, slot, cooldown, t1).await.unwrap().unwrap_err();
            assert_eq!(held.timestamp_micros(), t0.timestamp_micros(), "{slot:?}");
            // Another claim's release does not free it; its own does.
            store.release_cooldown(demo, slot, t1).await.unwrap();
            assert!(store.claim_cooldown(demo, slot, cooldown, t1).await.unwrap().is_err(), "{slot:?}");
            store.release_cooldown(demo, slot, t0).await.unwrap();
            assert_eq!(store.claim_cooldown(demo, slot, cooldown, t1).await.unwrap(), Ok(()), "{slot:?}");
            // Past the cooldown it is free again; another storefront cannot claim it.
            let t2 = t1 + cooldown;
            assert_eq!(store.claim_cooldown(demo + 1000, slot, cooldown, t2 + cooldown).await.unwrap(), Err(t2 + cooldown), "{slot:?}");
            assert_eq!(store.claim_cooldown(demo, slot, cooldown, t2).await.unwrap(), Ok(()), "{slot:?}");
        }
    }

    async fn a_suppressed_address_shows_on_the_record_and_the_suppressions_page_and_lifting_is_audited(backend: Backend) {
        use latchkey::store::{DeliveryReport, ReportKind};
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        app.wait_for_status(id, "sent").await;
        let report = DeliveryReport {
            kind: ReportKind::Bounce,
            status_code: Some("5.1.1".into()),
            diagnostic: "550 5.1.1 User unknown".into(),
            reporter: "mx.example.net".into(),
            received_at: app.clock_now(),
        };
        app.store().record_delivery_report(id, &report).await.unwrap().unwrap();
        let alex = account_id(&app, "alex@example.com").await;

        // Staff see it; a staff member without the role has no Lift button and cannot post it.
        let stan = app.browser();
        console_sign_in(&app, &stan, "stan@harborview.example").await;
        let record = stan.get(&format!("/console/s/demo/customers/{alex}")).await;
        assert!(record.text().contains("No email goes to this address"), "{}", record.text());
        assert!(record.text().contains("hard bounce: 550 5.1.1 User unknown"));
        assert!(record.html().select(&scraper::Selector::parse("form[action*='/lift']").unwrap()).next().is_none());
        let list = stan.get("/console/s/demo/suppressions").await;
        assert_eq!(list.status, 200);
        assert!(list.text().contains("alex@example.com"));
        let sid = app.rows("SELECT id FROM suppressions", &[]).await[0].i64(0);
        let csrf = list.csrf();
        let refused = stan
            .post_form(&format!("/console/s/demo/suppressions/{sid}/lift"), &[("csrf_token".into(), csrf)])
            .await;
        assert_eq!(refused.status, 403);
        // Another storefront's owner cannot see it.
        let otto = app.browser();
        console_sign_in(&app, &otto, "otto@other.example").await;
        assert_eq!(otto.get("/console/s/demo/suppressions").await.status, 404);

        // A manager lifts it from the record; the audit log says who.
        let max = app.browser();
        console_sign_in(&app, &max, "max@harborview.example").await;
        let record = max.get(&format!("/console/s/demo/customers/{alex}")).await;
        let lifted = max.submit(&record, "form[action*='/lift']", &[]).await;
        assert_eq!(lifted.status, 303);
        let after = max.follow(&lifted).await;
        assert!(after.text().contains("The address gets email again."));
        assert!(!after.text().contains("No email goes to this address"));
        let audit = app.rows("SELECT action, details FROM audit_log WHERE action = 'suppression.lifted'", &[]).await;
        assert_eq!(audit.len(), 1);
        assert!(audit[0].string(1).contains("max@harborview.example"), "{}", audit[0].string(1));
        assert!(max.get("/console/s/demo/suppressions").await.text().contains("No address is suppressed."));
    }

    async fn the_emails_tab_shows_every_status_with_its_attempts(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| {
                c.sign_in.per_account_max = 1;
                c.mail.retry_delays_seconds = vec![600.0];
            })
            .start()
            .await;
        staff(&app).await;
        let smtp = app.smtp().clone();
        let customer = app.browser();
        let sent = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(sent, "sent").await;
        smtp.set_mode(SmtpMode::RejectRcpt { code: 550, message: "5.1.1 <sam@example.com>: Recipient address rejected".into() });
        let failed = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(failed, "failed").await;
        let suppressed = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(suppressed, "suppressed").await;
        smtp.set_mode(SmtpMode::Accept);
        // Alex again, after the window: the server is down this time.
        app.clock.advance(chrono::Duration::minutes(16));
        smtp.set_mode(SmtpMode::Down);
        let deferred = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(deferred, "deferred").await;
        smtp.set_mode(SmtpMode::Accept);

        let browser = app.browser();
        let home = console_sign_in(&app, &browser, "stan@harborview.example").await;
        assert_eq!(home.h1(), "Harborview Rentals");
        let downtown = facility_id(&app, "FAC-DT").await;
        let tab = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails")).await;
        assert_eq!(tab.status, 200);
        assert!(tab.h1().starts_with("Emails · Harborview Self Storage, Downtown"));
        let ids: Vec<String> = tab.html().select(&scraper::Selector::parse("tr[data-delivery]").unwrap())
            .map(|r| r.value().attr("data-delivery").unwrap().to_string()).collect();
        assert_eq!(ids, [deferred, suppressed, failed, sent].map(|i| i.to_string()), "newest first");
        assert_eq!(tab.select_text("tbody td[data-label=Status]"), ["deferred", "suppressed", "failed", "sent"]);
        assert_eq!(tab.select_text("tbody td[data-label=Recipient]"), ["alex@example.com", "sam@example.com", "sam@example.com", "alex@example.com"]);
        assert_eq!(tab.select_text("tbody td[data-label=Attempts]"), ["1", "0", "1", "1"]);
        let errors = tab.select_text("tbody td[data-label='Last error']");
        assert!(errors[0].contains("could not connect"), "{errors:?}");
        assert!(errors[1].contains("sign-in links in 15 minutes"), "{errors:?}");
        assert!(errors[2].contains("Recipient address rejected"), "{errors:?}");
        assert!(tab.select_text("tbody td[data-label=Subject]").iter().all(|s| s == "Your sign-in link for Harborview Rentals"));
        assert!(tab.body.contains("/static/console.js"), "in-flight rows update themselves");

        // Filters.
        let only_failed = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails?status=failed")).await;
        assert_eq!(only_failed.select_text("tbody td[data-label=Status]"), ["failed"]);
        let sams = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails?recipient=SAM%40example.com")).await;
        assert_eq!(sams.select_text("tbody td[data-label=Status]"), ["suppressed", "failed"]);
        // Part of an address, without regard to case.
        let part = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails?recipient=SAM%40")).await;
        assert_eq!(part.select_text("tbody td[data-label=Status]"), ["suppressed", "failed"]);
        let part = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails?recipient=e.COM&status=sent")).await;
        assert_eq!(part.select_text("tbody td[data-label=Recipient]"), ["alex@example.com"]);
        let wildcard = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails?recipient=a_ex")).await;
        assert!(wildcard.select_text("tbody td[data-label=Status]").is_empty());
        assert_eq!(wildcard.html().select(&scraper::Selector::parse("input#recipient").unwrap()).next().unwrap().value().attr("value"), Some("a_ex"));

        // The detail view has every attempt with the server's reply.
        let detail = browser.get(&format!("/console/s/demo/deliveries/{failed}")).await;
        assert_eq!(detail.status, 200);
        assert_eq!(detail.select_text("td[data-label='SMTP code']"), ["550"]);
        assert!(detail.select_text("td[data-label='Server reply']")[0].contains("5.1.1 <sam@example.com>: Recipient address rejected"));

        // The live status feed reports the deferred one going out once the server is back.
        app.clock.advance(chrono::Duration::minutes(11));
        app.app().deliver(deferred).await.unwrap();
        let feed = browser.get(&format!("/console/s/demo/deliveries/status?ids={deferred},{sent}")).await;
        let feed: serde_json::Value = serde_json::from_str(&feed.body).unwrap();
        assert_eq!(feed[0]["status"], "sent");
        assert_eq!(feed[0]["attempts"], 2);
    }

    async fn nobody_sees_another_storefronts_emails_and_customers_never_open_the_console(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let downtown = facility_id(&app, "FAC-DT").await;
        let alex = account_id(&app, "alex@example.com").await;
        let otto = app.browser();
        let home = console_sign_in(&app, &otto, "otto@other.example").await;
        assert_eq!(home.h1(), "Other Rentals");
        for path in [
            "/console/s/demo".to_string(),
            format!("/console/s/demo/facilities/{downtown}/emails"),
            format!("/console/s/demo/deliveries/{id}"),
            format!("/console/s/demo/customers/{alex}"),
            format!("/console/s/demo/deliveries/status?ids={id}"),
            "/console/s/demo/customers?q=alex".to_string(),
        ] {
            assert_eq!(otto.get(&path).await.status, 404, "{path}");
        }
        // Its own storefront's pages do not reach the demo's ids either.
        assert_eq!(otto.get(&format!("/console/s/other/deliveries/{id}")).await.status, 404);
        assert_eq!(otto.get(&format!("/console/s/other/facilities/{downtown}/emails")).await.status, 404);
        assert_eq!(otto.get(&format!("/console/s/other/customers/{alex}")).await.status, 404);

        // A signed-in customer is not signed in to the console.
        let customer = app.browser();
        let dashboard = app.sign_in(&customer, "sam@example.com").await;
        assert_eq!(dashboard.status, 200);
        let console = customer.get("/console").await;
        assert_eq!(console.status, 303);
        assert_eq!(console.location().unwrap(), "/console/sign-in");
        // Not even with the customer's session id presented as a console cookie.
        let session = app.rows("SELECT COUNT(*) FROM sessions", &[]).await[0].i64(0);
        assert_eq!(session, 1);
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let forged = client.get(app.url("/console/s/demo")).header("cookie", "lk_console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").send().await.unwrap();
        assert_eq!(forged.status(), 303);
        // And a customer's address is not a staff address.
        let page = customer.get("/console/sign-in").await;
        customer.submit_followed(&page, "form[action='/console/sign-in']", &[("email", "sam@example.com")]).await;
        assert_eq!(app.count("SELECT COUNT(*) FROM staff_tokens", &[]).await, 1, "only Otto's link");
    }

    async fn roles_decide_who_may_resend_link_and_merge(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let alex = account_id(&app, "alex@example.com").await;
        let sam = account_id(&app, "sam@example.com").await;
        let contact = app.rows("SELECT id FROM contacts WHERE external_ref = 'CON-DT-1002'", &[]).await[0].i64(0);
        // Each resends a different customer's link, but support, who comes after the owner for
        // Alex: the cooldown (not the role) stops that one.
        for (email, customer, resend, support) in [
            ("stan@harborview.example", alex, 403, 403),
            ("olivia@harborview.example", alex, 303, 403),
            ("max@harborview.example", sam, 303, 403),
            ("sue@latchkey.example", alex, 429, 303),
        ] {
            let browser = app.browser();
            console_sign_in(&app, &browser, email).await;
            let record = browser.get(&format!("/console/s/demo/customers/{customer}")).await;
            assert_eq!(record.status, 200, "{email}");
            let csrf = record.csrf();
            let post = |path: String, extra: Vec<(String, String)>| {
                let mut form = vec![("csrf_token".to_string(), csrf.clone())];
                form.extend(extra);
                let browser = &browser;
                async move { browser.post_form(&path, &form).await.status }
            };
            // Owners and managers resend (support too, but the cooldown from their resend holds).
            assert_eq!(post(format!("/console/s/demo/customers/{customer}/resend"), vec![]).await, resend, "{email} resend");
            assert_eq!(
                post(format!("/console/s/demo/customers/{sam}/link"), vec![("contact_id".into(), contact.to_string())]).await,
                support,
                "{email} link"
            );
            let merge_status = post(format!("/console/s/demo/customers/{alex}/merge"), vec![("other_account_id".into(), "999999".into())]).await;
            assert_eq!(merge_status, if support == 303 { 404 } else { 403 }, "{email} merge");
            let buttons = record.select_text("button");
            assert_eq!(buttons.contains(&"Resend the portal link".to_string()), resend != 403, "{email}");
            assert_eq!(buttons.contains(&"Review the merge".to_string()), support == 303, "{email}");
        }
    }

    async fn resending_the_portal_link_signs_the_customer_in_and_the_cooldown_holds(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let alex = account_id(&app, "alex@example.com").await;
        let browser = app.browser();
        console_sign_in(&app, &browser, "olivia@harborview.example").await;
        let record = browser.get(&format!("/console/s/demo/customers/{alex}")).await;
        assert_eq!(record.h1(), "Alex Martin");
        for text in ["alex@example.com", "Harborview Self Storage, Downtown", "CON-MR-2001", "Unit B-112, 10×10", "6-seat cart #14", "Unit A-07, 5×5"] {
            assert!(record.text().contains(text), "the record lacks {text}");
        }
        let resent = browser.submit(&record, "form[action$='/resend']", &[]).await;
        assert_eq!(resent.status, 303);
        let after = browser.follow(&resent).await;
        assert!(after.text().contains("A new portal link is on its way"));
        // The customer gets it, and it signs them in. No browser asked for it, so it carries
        // no sign-in code (a code works only in the browser that asked), in neither part.
        let mail = app.mailbox.wait_for("alex@example.com").await;
        // Staff sent it: it does not tell Alex "if you did not ask for this link".
        for part in [mail.text_body(), mail.html_body().unwrap_or_default()] {
            assert!(!part.contains("did not ask for this link"), "{part}");
            assert!(part.contains("team sent you this link"), "{part}");
        }
        let link = sign_in_link(&mail);
        let html = mail.html_body().unwrap();
        for part in [mail.text_body(), html] {
            assert!(!part.contains("enter this code"), "no sign-in code: {part}");
        }
        let customer = app.browser();
        let landing = customer.get_url(&link).await;
        let signed_in = customer.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);
        assert_eq!(customer.follow(&signed_in).await.h1(), "Hi, Alex");
        // It shows in the Emails tab and in the record, like any send.
        let downtown = facility_id(&app, "FAC-DT").await;
        let tab = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails")).await;
        assert_eq!(tab.select_text("tbody td[data-label=Recipient]"), ["alex@example.com"]);
        // The cooldown holds.
        let again = browser.submit(&after, "form[action$='/resend']", &[]).await;
        assert_eq!(again.status, 429);
        assert!(again.headers.contains_key("retry-after"));
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE recipient = 'alex@example.com'", &[]).await, 1);
        app.clock.advance(chrono::Duration::minutes(6));
        assert_eq!(browser.submit(&after, "form[action$='/resend']", &[]).await.status, 303);
        let audit = app.store().audit_entries(None, 10).await.unwrap();
        assert_eq!(audit.len(), 2);
        assert!(audit.iter().all(|e| e.action == "resend_portal_link" && e.actor.contains("Olivia Owner")));
    }

    async fn support_links_contacts_and_merges_accounts_with_an_audit_trail(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let store = app.store();
        let now = Utc::now();
        let sf = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        let marina = facility_id(&app, "FAC-MR").await;
        // An unlinked contact of Sam's at the marina, with a rental.
        let db = store.db();
        db.execute(
            "INSERT INTO contacts (storefront_id, facility_id, external_ref, full_name, email, created_at, updated_at)
             VALUES ($1, $2, 'CON-MR-2002', 'Sam Rivera', 'sam@example.com', $3, $3)",
            &[sf.into(), marina.into(), now.into()],
        ).await.unwrap();
        let contact = app.rows("SELECT id FROM contacts WHERE external_ref = 'CON-MR-2002'", &[]).await[0].i64(0);
        db.execute(
            "INSERT INTO rentals (storefront_id, facility_id, contact_id, external_ref, label, status, starts_on, rate_minor, currency, rate_period, created_at, updated_at)
             VALUES ($1, $2, $3, 'RNT-MR-K3', 'Kayak #3', 'active', $4, 4500, 'USD', 'day', $5, $5)",
            &[sf.into(), marina.into(), contact.into(), now.date_naive().into(), now.into()],
        ).await.unwrap();
        let sam = account_id(&app, "sam@example.com").await;
        let sam_browser = app.browser();
        let before = app.sign_in(&sam_browser, "sam@example.com").await;
        assert!(!before.text().contains("Kayak #3"));

        let support = app.browser();
        console_sign_in(&app, &support, "sue@latchkey.example").await;
        let record = support.get(&format!("/console/s/demo/customers/{sam}")).await;
        let linked = support.submit(&record, "form[action$='/link']", &[("contact_id", &contact.to_string())]).await;
        assert_eq!(linked.status, 303);
        assert!(sam_browser.get("/s/demo/dashboard").await.text().contains("Kayak #3"), "the customer sees the linked contact's rental");

        // Alex also has a work account, with its own contact and invoice.
        let work = store.create_account(sf, &EmailAddress::parse("alex.work@example.com").unwrap(), "Alex Martin", "", now).await.unwrap();
        db.execute(
            "INSERT INTO contacts (storefront_id, facility_id, account_id, external_ref, full_name, email, created_at, updated_at)
             VALUES ($1, $2, $3, 'CON-MR-2003', 'Alex Martin (work)', 'alex.work@example.com', $4, $4)",
            &[sf.into(), marina.into(), work.id.into(), now.into()],
        ).await.unwrap();
        let work_contact = app.rows("SELECT id FROM contacts WHERE external_ref = 'CON-MR-2003'", &[]).await[0].i64(0);
        db.execute(
            "INSERT INTO invoices (storefront_id, facility_id, contact_id, external_ref, number, description, amount_minor, currency, issued_on, due_on, status, created_at, updated_at)
             VALUES ($1, $2, $3, 'INV-W-1', 'INV-W-1', 'Cart rental, work', 8900, 'USD', $4, $4, 'pending', $5, $5)",
            &[sf.into(), marina.into(), work_contact.into(), now.date_naive().into(), now.into()],
        ).await.unwrap();
        // The work account is signed in somewhere and has an unused link.
        let work_browser = app.browser();
        app.sign_in(&work_browser, "alex.work@example.com").await;
        let pending_link = app.browser();
        let page = pending_link.get("/s/demo/sign-in").await;
        pending_link.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex.work@example.com")]).await;
        let unused = sign_in_link(&app.mailbox.nth("alex.work@example.com", 2).await);

        let alex = account_id(&app, "alex@example.com").await;
        let record = support.get(&format!("/console/s/demo/customers/{alex}")).await;
        let preview = support.submit(&record, "form[action$='/merge']", &[("other_account_id", &work.id.to_string())]).await;
        // The first step shows what moves and changes nothing.
        assert_eq!(preview.status, 200);
        assert_eq!(preview.h1(), format!("Merge account #{} into #{alex}?", work.id));
        assert!(preview.text().contains("alex.work@example.com"), "{}", preview.text());
        assert_eq!(preview.select_text("li[data-moves=contacts]"), ["1 linked contact"]);
        assert_eq!(preview.select_text("li[data-moves=invoices]"), ["1 invoice (with their contacts)"]);
        assert_eq!(preview.select_text("li[data-moves=rentals]"), ["0 rentals (with their contacts)"]);
        assert_eq!(preview.select_text("li[data-ends=sessions]"), [format!("1 signed-in session of #{}", work.id)]);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM accounts WHERE id = {}", work.id), &[]).await, 1);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM contacts WHERE account_id = {}", work.id), &[]).await, 1);
        assert_eq!(work_browser.get("/s/demo/dashboard").await.status, 200, "the other account is still signed in");
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'merge_accounts'", &[]).await, 0);
        // A forged confirmation (not the server's tag, or the tag with another account) merges nothing.
        let form = |p: &Page, name: &str| p.html().select(&scraper::Selector::parse(&format!("form[action$='/merge'] input[name={name}]")).unwrap()).next().unwrap().value().attr("value").unwrap().to_string();
        let (csrf, issued, tag) = (preview.csrf(), form(&preview, "issued"), form(&preview, "confirm"));
        let confirm = |other: i64, issued: String, tag: String| {
            let support = &support;
            let csrf = csrf.clone();
            async move {
                support.post_form(&format!("/console/s/demo/customers/{alex}/merge"), &[
                    ("csrf_token".into(), csrf), ("other_account_id".into(), other.to_string()),
                    ("issued".into(), issued), ("confirm".into(), tag),
                ]).await
            }
        };
        assert_eq!(confirm(work.id, issued.clone(), "AAAA".into()).await.status, 409);
        let later = (issued.parse::<i64>().unwrap() + 1).to_string();
        assert_eq!(confirm(work.id, later, tag.clone()).await.status, 409);
        let sam_account = account_id(&app, "sam@example.com").await;
        assert_eq!(confirm(sam_account, issued.clone(), tag.clone()).await.status, 409);
        // Without the CSRF token, the console's rules refuse it.
        let no_csrf = support.post_form(&format!("/console/s/demo/customers/{alex}/merge"), &[
            ("other_account_id".into(), work.id.to_string()), ("issued".into(), issued.clone()), ("confirm".into(), tag.clone()),
        ]).await;
        assert_eq!(no_csrf.status, 403);
        // A stale one: the work account got another invoice since the preview.
        db.execute(
            "INSERT INTO invoices (storefront_id, facility_id, contact_id, external_ref, number, description, amount_minor, currency, issued_on, due_on, status, created_at, updated_at)
             VALUES ($1, $2, $3, 'INV-W-2', 'INV-W-2', 'Cart rental, work', 4500, 'USD', $4, $4, 'pending', $5, $5)",
            &[sf.into(), marina.into(), work_contact.into(), now.date_naive().into(), now.into()],
        ).await.unwrap();
        let stale = confirm(work.id, issued.clone(), tag.clone()).await;
        assert_eq!(stale.status, 409);
        assert!(stale.text().contains("Nothing was merged"), "{}", stale.text());
        assert_eq!(stale.select_text("li[data-moves=invoices]"), ["2 invoices (with their contacts)"]);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM accounts WHERE id = {}", work.id), &[]).await, 1);
        // A preview older than 15 minutes is out of date too.
        app.clock.advance(chrono::Duration::minutes(16));
        assert_eq!(support.submit(&stale, "form[action$='/merge']", &[]).await.status, 409);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM accounts WHERE id = {}", work.id), &[]).await, 1);
        // The confirmation of a fresh preview merges.
        let preview = support.submit(&record, "form[action$='/merge']", &[("other_account_id", &work.id.to_string())]).await;
        assert_eq!(preview.status, 200);
        let merged = support.submit(&preview, "form[action$='/merge']", &[]).await;
        assert_eq!(merged.status, 303);
        let after = support.follow(&merged).await;
        assert!(after.text().contains(&format!("Account #{} was merged into this one.", work.id)));
        assert!(after.text().contains("CON-MR-2003"));

        // Everything of the work account is reachable from the survivor.
        let alex_browser = app.browser();
        app.sign_in(&alex_browser, "alex@example.com").await;
        let billing = alex_browser.get("/s/demo/billing").await;
        assert!(billing.select_text("tbody td[data-label=Invoice]").contains(&"INV-W-1".to_string()));
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM contacts WHERE account_id = {alex}"), &[]).await, 3);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM deliveries WHERE account_id = {}", work.id), &[]).await, 0);
        // The merged account's session and link no longer work.
        assert_eq!(work_browser.get("/s/demo/dashboard").await.status, 303);
        assert_eq!(pending_link.get_url(&unused).await.status, 410);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM accounts WHERE id = {}", work.id), &[]).await, 0);

        // The audit log has both, with who and what.
        let audit = support.get("/console/s/demo/audit").await;
        assert_eq!(audit.status, 200);
        // Each entry reads as a sentence; the raw record is folded away in a <details>.
        let sentences = audit.select_text("li.audit-entry p.audit-sentence");
        assert_eq!(sentences.len(), 2, "{sentences:?}");
        assert!(sentences[0].ends_with(&format!("Sue Support (support) merged account #{} (Alex Martin, alex.work@example.com) into #{alex}", work.id)), "{sentences:?}");
        assert!(sentences[1].ends_with(&format!("Sue Support (support) linked contact CON-MR-2002 (Harborview Carts, Marina) to account #{sam}")), "{sentences:?}");
        let details = audit.select_text("li.audit-entry details pre.audit-details");
        assert!(details[0].contains("alex.work@example.com") && details[0].contains("\"contacts\": 1"), "{details:?}");
        assert!(details[1].contains("CON-MR-2002"), "{details:?}");
        assert!(audit.html().select(&scraper::Selector::parse("table, details[open]").unwrap()).next().is_none(), "no table, details closed");
        // A staff resend names the address the link went to.
        let sams_record = support.get(&format!("/console/s/demo/customers/{sam}")).await;
        assert_eq!(support.submit(&sams_record, "form[action$='/resend']", &[]).await.status, 303);
        let audit = support.get("/console/s/demo/audit").await;
        let newest = audit.select_text("li.audit-entry p.audit-sentence")[0].clone();
        assert!(newest.ends_with("Sue Support (support) resent a sign-in link to sam@example.com"), "{newest}");
    }

    async fn the_link_a_contact_form_shows_only_when_a_contact_is_left_to_link(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let sam = account_id(&app, "sam@example.com").await;
        let support = app.browser();
        console_sign_in(&app, &support, "sue@latchkey.example").await;
        let has = |p: &Page, selector: &str| p.html().select(&scraper::Selector::parse(selector).unwrap()).next().is_some();
        // Every demo contact is linked: a sentence, no empty dropdown.
        assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE account_id IS NULL", &[]).await, 0);
        let record = support.get(&format!("/console/s/demo/customers/{sam}")).await;
        assert!(!has(&record, "select#contact_id") && !has(&record, "form[action$='/link']"));
        assert_eq!(record.select_text("#nothing-to-link"), ["Every contact of Harborview Rentals is linked to an account: there is none left to link."]);
        // An unlinked contact arrives: the form offers it.
        let store = app.store();
        let sf = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        let marina = facility_id(&app, "FAC-MR").await;
        store.db().execute(
            "INSERT INTO contacts (storefront_id, facility_id, external_ref, full_name, email, created_at, updated_at)
             VALUES ($1, $2, 'CON-MR-2002', 'Sam Rivera', 'sam@example.com', $3, $3)",
            &[sf.into(), marina.into(), Utc::now().into()],
        ).await.unwrap();
        let record = support.get(&format!("/console/s/demo/customers/{sam}")).await;
        assert!(!has(&record, "#nothing-to-link"));
        let options = record.select_text("select#contact_id option");
        assert_eq!(options.len(), 1);
        assert!(options[0].contains("CON-MR-2002"), "{options:?}");
    }

    async fn staff_browse_customers_newest_first_and_find_them_by_part_of_a_name_or_address(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        let store = app.store();
        let sf = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        let now = Utc::now();
        // 52 more customers, one of them with wildcards in the name.
        for i in 0..51 {
            let email = EmailAddress::parse(&format!("renter{i:02}@Boats.example")).unwrap();
            store.create_account(sf, &email, &format!("Renter {i:02}"), "", now).await.unwrap();
        }
        store.create_account(sf, &EmailAddress::parse("deals@example.org").unwrap(), "50%_off Ltd", "", now).await.unwrap();
        let browser = app.browser();
        console_sign_in(&app, &browser, "stan@harborview.example").await;
        let names = |p: &Page| p.select_text("ul.customers li a");

        // No query: every customer, newest first, 50 to a page.
        let first = browser.get("/console/s/demo").await;
        let page1 = names(&first);
        assert_eq!(page1.len(), 50, "{page1:?}");
        assert_eq!(page1[0], "50%_off Ltd");
        assert_eq!(page1[1], "Renter 50");
        let doc = first.html();
        let older = doc.select(&scraper::Selector::parse("a.button").unwrap())
            .find(|a| a.text().any(|t| t.contains("Older customers")))
            .and_then(|a| a.value().attr("href"))
            .expect("a link to older customers")
            .to_string();
        let second = browser.get(&older).await;
        assert_eq!(names(&second), ["Renter 01", "Renter 00", "Sam Rivera", "Alex Martin"]);
        assert!(!second.text().contains("Older customers"));

        // Part of a name or of an address, without regard to case.
        let q = |q: &str| {
            let browser = &browser;
            let url = format!("/console/s/demo/customers?q={}", url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
            async move { names(&browser.get(&url).await) }
        };
        assert_eq!(q("MARTIN").await, ["Alex Martin"]);
        assert_eq!(q("riv").await, ["Sam Rivera"]);
        assert_eq!(q("SAM@EXAM").await, ["Sam Rivera"]);
        assert_eq!(q("@example.").await, ["50%_off Ltd", "Sam Rivera", "Alex Martin"]);
        assert_eq!(q("boats.EXAMPLE").await.len(), 50);
        // Wildcards typed are plain characters.
        assert_eq!(q("%_").await, ["50%_off Ltd"]);
        assert!(q("r_nter").await.is_empty());
        assert!(q("ri%a").await.is_empty());
        let none = browser.get("/console/s/demo/customers?q=nobody").await;
        assert!(none.text().contains("No customer's name or email address contains “nobody”."), "{}", none.text());
    }

    async fn the_emails_tab_pages_by_keyset(backend: Backend) {
        let app = TestApp::start(backend).await;
        staff(&app).await;
        // 57 links for Alex (staff resends are not limited).
        let store = app.store();
        let sf = store.storefront_by_slug("demo").await.unwrap().unwrap();
        let alex = account_id(&app, "alex@example.com").await;
        for _ in 0..57 {
            let request = latchkey::actors::TokenIssuer::link_request(
                &app.app().services,
                &sf,
                latchkey::store::LinkFor::Account(alex),
                latchkey::store::RequestedBy::Staff,
                None,
            );
            store.issue_sign_in_links(&[request], Utc::now()).await.unwrap();
        }
        let browser = app.browser();
        console_sign_in(&app, &browser, "stan@harborview.example").await;
        let downtown = facility_id(&app, "FAC-DT").await;
        let first = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails")).await;
        let ids = |p: &Page| -> Vec<i64> {
            p.html().select(&scraper::Selector::parse("tr[data-delivery]").unwrap())
                .map(|r| r.value().attr("data-delivery").unwrap().parse().unwrap()).collect()
        };
        let page1 = ids(&first);
        assert_eq!(page1.len(), 50);
        assert!(page1.windows(2).all(|w| w[0] > w[1]), "newest first");
        let doc = first.html();
        let older = doc.select(&scraper::Selector::parse("a.button").unwrap())
            .find(|a| a.text().any(|t| t.contains("Older emails")))
            .and_then(|a| a.value().attr("href"))
            .expect("a link to older emails")
            .to_string();
        let second = browser.get(&format!("/console/s/demo/facilities/{downtown}/emails{older}")).await;
        let page2 = ids(&second);
        assert_eq!(page2.len(), 7);
        assert!(page2[0] < *page1.last().unwrap());
        assert!(!second.text().contains("Older emails"));
    }
}

#[test]
fn the_admin_command_creates_storefronts_staff_and_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/lk.db", dir.path().display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("LATCHKEY_CONFIG_DIR", dir.path())
            .env("LATCHKEY_DATA_DIR", dir.path())
            .env("LATCHKEY_DATABASE_URL", &db)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        ok(&[
            "admin",
            "storefront",
            "--slug",
            "lakeside",
            "--name",
            "Lakeside Storage",
            "--from-email",
            "hello@lakeside.example",
            "--rent-url",
            "https://lakeside.example/rent"
        ])
        .contains("/s/lakeside/")
    );
    assert!(ok(&["admin", "storefronts"]).contains("Lakeside Storage\thello@lakeside.example\ten"));
    // Its default language: one of locales/, kept when the option is left out.
    let lakeside = [
        "admin",
        "storefront",
        "--slug",
        "lakeside",
        "--name",
        "Lakeside Storage",
        "--from-email",
        "hello@lakeside.example",
        "--rent-url",
        "https://lakeside.example/rent",
    ];
    ok(&[&lakeside[..], &["--language", "fr-CA"]].concat());
    assert!(ok(&["admin", "storefronts"]).contains("hello@lakeside.example\tfr-CA"));
    let refused = run(&[&lakeside[..], &["--language", "de"]].concat());
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("--language: `de` is not one of the languages shipped")
    );
    ok(&lakeside);
    assert!(ok(&["admin", "storefronts"]).contains("hello@lakeside.example\tfr-CA"));
    assert!(
        ok(&[
            "admin",
            "staff",
            "--storefront",
            "lakeside",
            "--email",
            "lee@lakeside.example",
            "--name",
            "Lee Owner",
            "--role",
            "owner"
        ])
        .contains("(owner)")
    );
    assert!(
        ok(&[
            "admin",
            "staff",
            "--email",
            "sue@latchkey.example",
            "--name",
            "Sue Support",
            "--role",
            "support"
        ])
        .contains("(support)")
    );
    let key = ok(&[
        "admin",
        "api-key",
        "--storefront",
        "lakeside",
        "--name",
        "Booking system",
    ]);
    let key = key.lines().last().unwrap();
    assert!(key.starts_with("lk_") && key.len() == 46, "{key}");
    assert!(
        ok(&[
            "admin",
            "revoke-api-key",
            "--storefront",
            "lakeside",
            "--id",
            "1"
        ])
        .contains("revoked")
    );
    // Mistakes get one clear line.
    for (args, says) in [
        (
            vec![
                "admin",
                "staff",
                "--email",
                "x@lakeside.example",
                "--name",
                "X",
                "--role",
                "owner",
            ],
            "--storefront",
        ),
        (
            vec![
                "admin",
                "staff",
                "--storefront",
                "lakeside",
                "--email",
                "lee@lakeside.example",
                "--name",
                "Lee",
                "--role",
                "staff",
            ],
            "already a staff user",
        ),
        (
            vec![
                "admin",
                "staff",
                "--storefront",
                "lakeside",
                "--email",
                "y@lakeside.example",
                "--name",
                "Y",
                "--role",
                "king",
            ],
            "--role",
        ),
        (
            vec!["admin", "api-key", "--storefront", "nowhere", "--name", "x"],
            "no storefront",
        ),
        (
            vec![
                "admin",
                "storefront",
                "--slug",
                "Bad Slug",
                "--name",
                "X",
                "--from-email",
                "a@b.example",
                "--rent-url",
                "https://x.example",
            ],
            "--slug",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

both_backends! {
    // A page of the delivery log reads at most 5,000 rows of its scope; whatever the depth of
    // the cursor and however little a filter matches, walking the Older cursors shows every
    // matching delivery once, newest first, for a facility and for a storefront.
    async fn the_delivery_log_pages_past_the_scan_limit(backend: Backend) {
        use latchkey::store::{DeliveryFilter, DeliveryScope, DeliveryStatus, Store, Value};

        let app = TestApp::start(backend).await;
        let store = app.store();
        let sf = store.storefront_by_slug("demo").await.unwrap().unwrap().id;
        let downtown = facility_id(&app, "FAC-DT").await;
        let now = Utc::now();
        store
            .db()
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000)
                 INSERT INTO deliveries (storefront_id, kind, recipient, subject, status, attempts, payload,
                     created_at, updated_at, next_attempt_at)
                 SELECT $1, 'sign_in',
                     CASE WHEN i % 4000 = 7 THEN 'Rare@Example.net' ELSE 'r' || i || '@example.net' END,
                     'Bulk', CASE WHEN i % 1000 = 3 THEN 'failed' ELSE 'sent' END, 1, '{}', $2, $2, $2
                 FROM n",
                &[Value::I64(sf), Value::Ts(now)],
            )
            .await
            .unwrap();
        // Two thirds of them are Downtown's.
        store
            .db()
            .execute(
                "INSERT INTO delivery_facilities (facility_id, delivery_id)
                 SELECT $1, id FROM deliveries WHERE subject = 'Bulk' AND id % 3 <> 0",
                &[Value::I64(downtown)],
            )
            .await
            .unwrap();

        async fn walk(store: &Store, scope: DeliveryScope, filter: &DeliveryFilter) -> Vec<i64> {
            let mut before = None;
            let mut seen = Vec::new();
            for _ in 0..1000 {
                let page = store.deliveries_page(scope, filter, before, 50).await.unwrap();
                assert!(page.deliveries.len() <= 50);
                seen.extend(page.deliveries.iter().map(|d| d.id));
                match page.next {
                    Some(next) => {
                        assert!(before.is_none_or(|b| next < b), "the cursor moves on");
                        before = Some(next);
                    }
                    None => return seen,
                }
            }
            panic!("more than 1,000 pages");
        }
        let ids = |sql: &'static str, params: Vec<Value>| {
            let app = &app;
            async move {
                app.rows(sql, &params)
                    .await
                    .iter()
                    .map(|r| r.i64(0))
                    .collect::<Vec<i64>>()
            }
        };
        let facility = DeliveryScope::Facility(downtown);
        let storefront = DeliveryScope::Storefront(sf);
        let all = DeliveryFilter::default();
        let failed = DeliveryFilter {
            status: Some(DeliveryStatus::Failed),
            ..Default::default()
        };
        let rare = DeliveryFilter {
            recipient: Some("rare@example.NET".into()),
            ..Default::default()
        };

        let expected = ids(
            "SELECT delivery_id FROM delivery_facilities WHERE facility_id = $1 ORDER BY delivery_id DESC",
            vec![Value::I64(downtown)],
        )
        .await;
        assert!(expected.len() > 7_000);
        assert_eq!(walk(store, facility, &all).await, expected);
        let expected = ids(
            "SELECT d.id FROM deliveries d JOIN delivery_facilities f ON f.delivery_id = d.id
             WHERE f.facility_id = $1 AND d.status = 'failed' ORDER BY d.id DESC",
            vec![Value::I64(downtown)],
        )
        .await;
        assert!(!expected.is_empty());
        assert_eq!(walk(store, facility, &failed).await, expected);
        let expected = ids(
            "SELECT d.id FROM deliveries d JOIN delivery_facilities f ON f.delivery_id = d.id
             WHERE f.facility_id = $1 AND d.recipient = 'Rare@Example.net' ORDER BY d.id DESC",
            vec![Value::I64(downtown)],
        )
        .await;
        assert_eq!(walk(store, facility, &rare).await, expected);

        let expected = ids(
            "SELECT id FROM deliveries WHERE storefront_id = $1 ORDER BY id DESC",
            vec![Value::I64(sf)],
        )
        .await;
        assert!(expected.len() >= 12_000);
        assert_eq!(walk(store, storefront, &all).await, expected);
        let expected = ids(
            "SELECT id FROM deliveries WHERE storefront_id = $1 AND recipient = 'Rare@Example.net'
             ORDER BY id DESC",
            vec![Value::I64(sf)],
        )
        .await;
        assert_eq!(expected.len(), 3);
        assert_eq!(walk(store, storefront, &rare).await, expected);
        // A recipient's emails come on one page, however far apart they are in the log.
        for scope in [storefront, facility] {
            let page = store.deliveries_page(scope, &rare, None, 50).await.unwrap();
            assert!(!page.deliveries.is_empty());
            assert_eq!(page.next, None, "{scope:?}");
        }
        // Part of an address, without regard to case: through the scan windows, the same rows.
        let part = |text: &str| DeliveryFilter {
            recipient_contains: Some(text.into()),
            ..Default::default()
        };
        assert_eq!(walk(store, storefront, &part("RARE@")).await, expected);
        assert_eq!(walk(store, storefront, &part("are@example.n")).await, expected);
        // `_` and `%` typed match themselves (as wildcards, "r_re" and "r%@" would match).
        assert_eq!(walk(store, storefront, &part("r_re")).await, Vec::<i64>::new());
        assert_eq!(walk(store, storefront, &part("r%@")).await, Vec::<i64>::new());
        let expected_r1 = ids(
            "SELECT d.id FROM deliveries d JOIN delivery_facilities f ON f.delivery_id = d.id
             WHERE f.facility_id = $1 AND d.recipient LIKE 'r1%@example.net' ORDER BY d.id DESC",
            vec![Value::I64(downtown)],
        )
        .await;
        assert!(expected_r1.len() > 1_000);
        assert_eq!(walk(store, facility, &part("R1")).await, expected_r1);
        let rare_failed = DeliveryFilter {
            status: Some(DeliveryStatus::Failed),
            recipient: rare.recipient.clone(),
            ..Default::default()
        };
        assert_eq!(walk(store, storefront, &rare_failed).await, Vec::<i64>::new());
        // A cursor deep in the log answers the rows below it.
        let deep = expected[1];
        let page = store.deliveries_page(storefront, &all, Some(deep), 50).await.unwrap();
        assert_eq!(page.deliveries.first().map(|d| d.id), Some(deep - 1));
    }
}
