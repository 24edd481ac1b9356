//! Magic-link sign-in through HTTP as a browser does it, on both backends (SQLite + in-process
//! queue + outbox, and PostgreSQL + RabbitMQ + a real SMTP server).

mod support;

use std::time::Duration;

use chrono::Duration as Minutes;
use support::*;

fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_string()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

both_backends! {
    async fn whole_flow_signs_in_and_out(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();

        let page = browser.get("/s/demo/sign-in").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.h1(), "Customer portal");
        assert!(page.title().contains("Harborview Rentals"));
        let (action, fields) = page.form("form[action$='/sign-in']");
        assert_eq!(action, "/s/demo/sign-in");
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["csrf_token", "email"]);
        assert!(page.select_text("button").contains(&"Send sign-in link".to_string()));

        let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert_eq!(sent.status, 200);
        assert_eq!(sent.h1(), "Check your email");

        let mail = app.mailbox.wait_for("alex@example.com").await;
        assert_eq!(mail.subject().unwrap(), "Your sign-in link for Harborview Rentals");
        assert_eq!(mail.from().unwrap(), "portal@harborview.example");
        assert!(mail.text_body().contains("Hi Alex,"));
        let link = sign_in_link(&mail);
        assert!(link.starts_with(&app.url("/s/demo/auth/")), "{link}");
        assert!(mail.html_body().unwrap().contains(&link));

        // A mail scanner and then the customer open the link: neither GET consumes it.
        for _ in 0..2 {
            let landing = browser.fresh().get_url(&link).await;
            assert_eq!(landing.status, 200);
            assert_eq!(landing.h1(), "Signing you in…");
            assert!(landing.body.contains("data-autosubmit"));
            assert!(landing.body.contains("/static/app.js"));
        }
        let unused = app
            .count("SELECT COUNT(*) FROM sign_in_tokens WHERE used_at IS NULL", &[])
            .await;
        assert_eq!(unused, 1);

        let landing = browser.get_url(&link).await;
        assert_eq!(landing.headers["referrer-policy"], "no-referrer");
        let signed_in = browser.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);
        assert_eq!(signed_in.location().unwrap(), "/s/demo/dashboard");
        let cookie = signed_in
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("lk_session="))
            .expect("a session cookie");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("Path=/s/demo/"), "{cookie}");
        assert!(cookie.contains("Max-Age=86400"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain http public URL: {cookie}");

        let dashboard = browser.follow(&signed_in).await;
        assert_eq!(dashboard.status, 200);
        assert_eq!(dashboard.h1(), "Hi, Alex");
        let text = dashboard.text();
        for expected in [
            "Unit B-112, 10×10",
            "6-seat cart #14",
            "Harborview Self Storage, Downtown",
            "Harborview Carts, Marina",
            "Track your delivery",
            "Download the rental agreement (PDF)",
            "+1 207-555-0140",
            "marina@harborview.example",
            "Sign out",
        ] {
            assert!(text.contains(expected), "dashboard lacks {expected:?}: {text}");
        }
        assert!(!text.contains("Rent a unit"), "Alex has active rentals");

        // The used link is spent.
        let used = browser.fresh().get_url(&link).await;
        assert_eq!(used.status, 410);
        assert_eq!(used.h1(), "Link expired");
        assert!(used.body.contains("Send sign-in link"), "the page offers a new link");
        let again = browser.submit(&landing, "form", &[]).await;
        assert_eq!(again.status, 410);

        // Sign out ends the session.
        let out = browser.submit(&dashboard, "form[action$='/sign-out']", &[]).await;
        assert_eq!(out.status, 303);
        assert_eq!(out.location().unwrap(), "/s/demo/sign-in?signed_out=1");
        assert!(out.set_cookies().iter().any(|c| c.starts_with("lk_session=;") && c.contains("Max-Age=0")));
        assert!(browser.follow(&out).await.text().contains("You are signed out."));
        let after = browser.get("/s/demo/dashboard").await;
        assert_eq!(after.status, 303);
        assert!(after.location().unwrap().starts_with("/s/demo/sign-in"));
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);
    }

    async fn sam_without_active_rentals_sees_rent_a_unit(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let dashboard = app.sign_in(&browser, "sam@example.com").await;
        assert_eq!(dashboard.h1(), "Hi, Sam");
        assert!(dashboard.text().contains("You have no active rentals right now."));
        let doc = dashboard.html();
        let rent = scraper::Selector::parse("a.button").unwrap();
        let hrefs: Vec<_> = doc.select(&rent).filter(|a| a.text().any(|t| t.contains("Rent a unit"))).map(|a| a.value().attr("href").unwrap().to_string()).collect();
        assert_eq!(hrefs, ["https://harborview.example/rent"]);
    }

    async fn unknown_address_gets_the_same_page_and_no_email(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let unknown = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "nobody@example.com")]).await;
        let known = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "sam@example.com")]).await;
        assert_eq!(unknown.status, known.status);
        assert_eq!(
            unknown.text().replace("nobody@example.com", "ADDRESS"),
            known.text().replace("sam@example.com", "ADDRESS"),
        );
        // Sam's email arriving proves the pipeline ran; nobody's never does.
        app.mailbox.wait_for("sam@example.com").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(app.mailbox.to("nobody@example.com").is_empty());
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE recipient = 'nobody@example.com'", &[]).await, 0);
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 1);
        // The unmatched request is recorded, its address only as a keyed hash.
        let unmatched = app.rows("SELECT email_hash, client_ip FROM unmatched_sign_ins", &[]).await;
        assert_eq!(unmatched.len(), 1);
        assert_eq!(unmatched[0].bytes(0).len(), 32);
        assert_eq!(unmatched[0].opt_string(1).as_deref(), Some("127.0.0.1"));
        assert!(!dump_database(&app).await.contains("nobody@example.com"));
    }

    async fn the_database_holds_only_hashes_of_tokens_and_sessions(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        let token = token_of(&link);
        let delivery = app.latest_delivery_to("alex@example.com").await;
        let delivery = app.wait_for_status(delivery.id, "sent").await;
        assert!(!delivery.has_sealed_token, "the sealed token is erased once sent");
        let landing = browser.get_url(&link).await;
        let signed_in = browser.submit(&landing, "form", &[]).await;
        let session = signed_in
            .set_cookies()
            .into_iter()
            .find_map(|c| c.strip_prefix("lk_session=").map(|v| v.split(';').next().unwrap().to_string()))
            .unwrap();

        use base64::Engine;
        let raw_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
        let raw_session = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&session).unwrap();
        let stored = app.rows("SELECT token_hash FROM sign_in_tokens", &[]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].bytes(0), sha256(&raw_token));
        let stored = app.rows("SELECT session_hash FROM sessions", &[]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].bytes(0), sha256(&raw_session));

        // Nowhere in the database, in any form.
        let dump = dump_database(&app).await;
        for secret in [&token, &session] {
            assert!(!dump.contains(secret.as_str()), "found a raw secret in the database");
        }
        for raw in [&raw_token, &raw_session] {
            assert!(!dump.contains(&hex::encode(raw)), "found raw secret bytes in the database");
            assert!(!dump.contains(&hex::encode_upper(raw)), "found raw secret bytes in the database");
        }
    }

    async fn a_link_lasts_sixty_minutes(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        app.clock.advance(Minutes::minutes(59));
        let landing = browser.get_url(&link).await;
        assert_eq!(landing.status, 200);
        app.clock.advance(Minutes::minutes(2));
        assert_eq!(browser.get_url(&link).await.status, 410);
        let late = browser.submit(&landing, "form", &[]).await;
        assert_eq!(late.status, 410);
        assert_eq!(late.h1(), "Link expired");
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);
    }

    async fn a_session_lasts_twenty_four_hours(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        app.clock.advance(Minutes::hours(23) + Minutes::minutes(59));
        assert_eq!(browser.get("/s/demo/dashboard").await.status, 200);
        app.clock.advance(Minutes::minutes(2));
        let expired = browser.get("/s/demo/dashboard").await;
        assert_eq!(expired.status, 303);
        assert_eq!(expired.location().unwrap(), "/s/demo/sign-in?next=%2Fdashboard");
        // The customer asks for a new link and lands where they were going.
        let page = browser.follow(&expired).await;
        let (_, fields) = page.form("form[action$='/sign-in']");
        assert!(fields.contains(&("next".into(), "/dashboard".into())));
    }

    async fn the_sixth_link_in_fifteen_minutes_is_suppressed(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        for _ in 0..6 {
            let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
            assert_eq!(sent.status, 200);
            assert_eq!(sent.h1(), "Check your email");
        }
        app.mailbox.wait_for_n("alex@example.com", 5).await;
        let statuses = app.rows("SELECT status, last_error FROM deliveries ORDER BY id", &[]).await;
        assert_eq!(statuses.len(), 6);
        let suppressed = &statuses[5];
        assert_eq!(suppressed.string(0), "suppressed");
        assert!(suppressed.string(1).contains("5 sign-in links in 15 minutes"));
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 5);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.mailbox.to("alex@example.com").len(), 5, "the suppressed link is not sent");

        // After the window, links flow again.
        app.clock.advance(Minutes::minutes(16));
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        app.mailbox.wait_for_n("alex@example.com", 6).await;
    }

    async fn concurrent_requests_cannot_exceed_the_per_account_limit(backend: Backend) {
        let app = TestApp::start(backend).await;
        let mut browsers = Vec::new();
        for _ in 0..12 {
            let b = app.browser();
            let page = b.get("/s/demo/sign-in").await;
            browsers.push((b, page));
        }
        let posts = browsers
            .iter()
            .map(|(b, page)| b.submit_followed(page, "form[action$='/sign-in']", &[("email", "alex@example.com")]));
        for page in futures::future::join_all(posts).await {
            assert_eq!(page.status, 200);
        }
        let rows = app.rows("SELECT status FROM deliveries", &[]).await;
        let suppressed = rows.iter().filter(|r| r.string(0) == "suppressed").count();
        assert_eq!((rows.len(), suppressed), (12, 7));
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 5);
    }

    async fn a_flood_from_one_ip_gets_429(backend: Backend) {
        let app = Setup::new(backend)
            .config(|c| {
                c.rate_limit.ip_per_second = 1;
                c.rate_limit.ip_burst = 3;
            })
            .start()
            .await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "nobody@example.com")]).await);
        }
        let codes: Vec<u16> = statuses.iter().map(|p| p.status).collect();
        assert_eq!(&codes[..3], [200, 200, 200]);
        let limited = statuses.last().unwrap();
        assert_eq!(limited.status, 429, "{codes:?}");
        assert_eq!(limited.h1(), "Too many requests");
        assert!(limited.headers.contains_key("retry-after"));
        // Showing the sign-in page is not limited.
        assert_eq!(browser.get("/s/demo/sign-in").await.status, 200);
    }

    async fn fifty_concurrent_posts_of_one_token_start_one_session(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        let mut prepared = Vec::new();
        for _ in 0..50 {
            let b = browser.fresh();
            let landing = b.get_url(&link).await;
            assert_eq!(landing.status, 200);
            prepared.push((b, landing));
        }
        let posts = prepared.iter().map(|(b, landing)| b.submit(landing, "form", &[]));
        let results = futures::future::join_all(posts).await;
        let ok = results.iter().filter(|p| p.status == 303).count();
        let gone = results.iter().filter(|p| p.status == 410).count();
        assert_eq!((ok, gone), (1, 49));
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 1);
    }

    async fn links_and_cookies_do_not_cross_storefronts(backend: Backend) {
        let app = TestApp::start(backend).await;
        let other = app
            .store()
            .upsert_storefront(
                &latchkey::store::NewStorefront {
                    slug: "other".into(),
                    name: "Other Rentals".into(),
                    from_name: "Other".into(),
                    from_email: latchkey::domain::EmailAddress::parse("portal@other.example").unwrap(),
                    rent_url: "https://other.example/".into(),
                    custom_host: None,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let email = latchkey::domain::EmailAddress::parse("alex@example.com").unwrap();
        app.store().create_account(other, &email, "Alex Other", "", chrono::Utc::now()).await.unwrap();

        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        let foreign = link.replace("/s/demo/", "/s/other/");
        assert_eq!(browser.get_url(&foreign).await.status, 410);
        let foreign_landing = browser.get("/s/other/sign-in").await;
        let (_, fields) = foreign_landing.form("form[action$='/sign-in']");
        let csrf = fields.iter().find(|(n, _)| n == "csrf_token").unwrap().1.clone();
        let posted = browser.post_form(&foreign, &[("csrf_token".into(), csrf)]).await;
        assert_eq!(posted.status, 410, "a demo link never signs in on another storefront");

        // The demo session cookie, forced onto the other storefront, is not a session there.
        let landing = browser.get_url(&link).await;
        let signed_in = browser.submit(&landing, "form", &[]).await;
        let session = signed_in
            .set_cookies()
            .into_iter()
            .find_map(|c| c.strip_prefix("lk_session=").map(|v| v.split(';').next().unwrap().to_string()))
            .unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let forced = client
            .get(app.url("/s/other/dashboard"))
            .header("cookie", format!("lk_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(forced.status(), 303);
        let own = client
            .get(app.url("/s/demo/dashboard"))
            .header("cookie", format!("lk_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 200);
    }

    async fn bad_input_gets_a_clear_4xx_and_changes_nothing(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let csrf = page.csrf();
        let form = |email: &str| vec![("csrf_token".to_string(), csrf.clone()), ("email".to_string(), email.to_string())];

        let missing = browser.post_form("/s/demo/sign-in", &[("csrf_token".into(), csrf.clone())]).await;
        assert_eq!(missing.status, 400);
        assert!(missing.text().contains("Enter your email address."));
        assert_eq!(missing.h1(), "Customer portal", "the form is shown again");

        let malformed = browser.post_form("/s/demo/sign-in", &form("alex@")).await;
        assert_eq!(malformed.status, 400);
        assert!(malformed.text().contains("Enter an email address like name@example.com."));

        let injected = browser.post_form("/s/demo/sign-in", &form("alex@example.com\r\nBcc: evil@example.com")).await;
        assert_eq!(injected.status, 400);
        assert!(injected.text().contains("line breaks"));

        let huge = browser
            .post_raw(
                "/s/demo/sign-in",
                "application/x-www-form-urlencoded",
                format!("csrf_token={csrf}&email={}", "a".repeat(1024 * 1024)).into_bytes(),
            )
            .await;
        assert_eq!(huge.status, 413);

        let mut bad_utf8 = format!("csrf_token={csrf}&email=").into_bytes();
        bad_utf8.extend_from_slice(b"alex\xff\xfe@example.com");
        let invalid = browser.post_raw("/s/demo/sign-in", "application/x-www-form-urlencoded", bad_utf8).await;
        assert_eq!(invalid.status, 400);
        assert!(invalid.text().contains("UTF-8"));
        let percent = browser
            .post_raw(
                "/s/demo/sign-in",
                "application/x-www-form-urlencoded",
                format!("csrf_token={csrf}&email=alex%C0%AF%40example.com").into_bytes(),
            )
            .await;
        assert_eq!(percent.status, 400);

        let no_csrf = browser.post_form("/s/demo/sign-in", &[("email".into(), "alex@example.com".into())]).await;
        assert_eq!(no_csrf.status, 403);
        assert_eq!(no_csrf.h1(), "This form has expired");
        let forged = browser
            .post_form(
                "/s/demo/sign-in",
                &[("csrf_token".into(), "forged".into()), ("email".into(), "alex@example.com".into())],
            )
            .await;
        assert_eq!(forged.status, 403);
        let other_browser = browser.fresh();
        let stolen = other_browser.post_form("/s/demo/sign-in", &form("alex@example.com")).await;
        assert_eq!(stolen.status, 403, "a token without its cookie is refused");

        let bad_token = browser.get("/s/demo/auth/not-a-token").await;
        assert_eq!(bad_token.status, 410);
        let forged_token = browser.get(&format!("/s/demo/auth/{}", "A".repeat(43))).await;
        assert_eq!(forged_token.status, 410);

        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries", &[]).await, 0);
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 0);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);
    }

    async fn unknown_storefronts_and_pages_are_404(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        assert_eq!(browser.get("/s/nope/sign-in").await.status, 404);
        // A page the storefront does not have keeps its header and offers the way back.
        for path in ["/s/demo/nope", "/s/demo/rentals/history/nope", "/s/demo/billing/invoices"] {
            let page = browser.get(path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(page.title().ends_with("· Harborview Rentals"), "{path}: {}", page.title());
            assert_eq!(page.h1(), "Page not found", "{path}");
            assert!(page.hrefs("main a").contains(&"/s/demo".to_string()), "{path}: {}", page.body);
        }
        // The console's own 404 sends staff back to the console, not to a customer portal.
        let page = browser.get("/console/nope").await;
        assert_eq!(page.status, 404);
        assert!(!page.text().contains("Customer portal link"), "{}", page.text());
        assert!(page.hrefs("main a").contains(&"/console".to_string()), "{}", page.body);
        let home = browser.get("/s/demo/").await;
        assert_eq!(home.status, 303);
        assert_eq!(home.location().unwrap(), "/s/demo/sign-in");
    }

    async fn after_sign_in_the_customer_lands_where_they_were_going(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let redirect = browser.get("/s/demo/dashboard").await;
        let page = browser.follow(&redirect).await;
        let sent = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert_eq!(sent.status, 200);
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        let landing = browser.get_url(&link).await;
        let signed_in = browser.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.location().unwrap(), "/s/demo/dashboard");

        // An outside target is ignored.
        let page = browser.fresh().get("/s/demo/sign-in?next=https%3A%2F%2Fevil.example%2F").await;
        let (_, fields) = page.form("form[action$='/sign-in']");
        assert!(!fields.iter().any(|(n, _)| n == "next"));
    }
}

/// Every value of every table, as text (bytes as hex), to search for secrets.
async fn dump_database(app: &TestApp) -> String {
    let mut out = String::new();
    match app.backend {
        Backend::Postgres => {
            let tables = app
                .rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", &[])
                .await;
            for t in tables {
                let name = t.string(0);
                for r in app
                    .rows(&format!("SELECT t::text FROM {name} t"), &[])
                    .await
                {
                    out.push_str(&r.string(0));
                    out.push('\n');
                }
            }
        }
        Backend::Embedded => {
            let tables = app
                .rows("SELECT name FROM sqlite_master WHERE type = 'table'", &[])
                .await;
            for t in tables {
                let name = t.string(0);
                let cols = app
                    .rows(
                        &format!("SELECT name FROM pragma_table_info('{name}')"),
                        &[],
                    )
                    .await;
                if cols.is_empty() {
                    continue;
                }
                let expr = cols
                    .iter()
                    .map(|c| format!("quote(\"{}\")", c.string(0)))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                for r in app
                    .rows(&format!("SELECT {expr} FROM \"{name}\""), &[])
                    .await
                {
                    out.push_str(&r.string(0));
                    out.push('\n');
                }
            }
        }
    }
    out.to_lowercase()
}
