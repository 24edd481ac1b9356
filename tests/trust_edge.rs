//! Issue 8 at the edge of the system (SPEC §8 "Resource limits", "Custom hosts", §2 redirect
//! targets): unsigned webhooks stay cheap, custom hosts serve one storefront, sign-in
//! redirects never leave the storefront, unknown slugs and hosts are remembered for a moment,
//! API JSON with a key twice is refused, and internal queues are bounded.

mod support;

use chrono::Duration as ChronoDuration;
use latchkey::http::portal::safe_next;
use proptest::prelude::*;
use serde_json::Value;
use support::*;

const CUSTOM_HOST: &str = "portal.harborview.example";

/// A second storefront, `beta`, with its own customer.
async fn add_beta(app: &TestApp) -> i64 {
    let id = app
        .store()
        .upsert_storefront(
            &latchkey::store::NewStorefront {
                slug: "beta".into(),
                name: "Beta Rentals".into(),
                from_name: "Beta".into(),
                from_email: latchkey::domain::EmailAddress::parse("portal@beta.example").unwrap(),
                rent_url: "https://beta.example/".into(),
                custom_host: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let email = latchkey::domain::EmailAddress::parse("bea@example.com").unwrap();
    app.store()
        .create_account(id, &email, "Bea Beta", "", chrono::Utc::now())
        .await
        .unwrap();
    id
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// How many webhook HMACs the application has computed (an operations metric, read in
/// process: nothing of it is in a public answer).
fn hmacs(app: &TestApp) -> u64 {
    app.app().services.metrics.webhook_hmacs.get()
}

async fn invoice_status(app: &TestApp, number: &str) -> String {
    app.rows(
        "SELECT status FROM invoices WHERE number = $1",
        &[number.into()],
    )
    .await[0]
        .string(0)
}

/// Signs alex in on a fresh browser after posting the sign-in form with `next` (as an
/// attacker's page could), and returns the `Location` of the sign-in's redirect.
async fn location_after_sign_in(app: &TestApp, sign_in_path: &str, next: Option<&str>) -> String {
    // Each attempt is its own link request: move past the per-account link limits.
    app.clock.advance(ChronoDuration::minutes(61));
    let browser = app.browser();
    let before = app.mailbox.to("alex@example.com").len();
    let page = browser.get(sign_in_path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut fields = vec![("email", "alex@example.com")];
    if let Some(next) = next {
        fields.push(("next", next));
    }
    let sent = browser
        .submit_followed(&page, "form[action$='/sign-in']", &fields)
        .await;
    assert!(sent.status < 400, "{}: {}", sent.status, sent.body);
    let link = sign_in_link(&app.mailbox.nth("alex@example.com", before + 1).await);
    let landing = browser.get_url(&link).await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    let signed_in = browser.submit(&landing, "form", &[]).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    signed_in.location().expect("a Location")
}

/// Where a browser goes with this `Location` (WHATWG URL resolution, which treats `%2e` as a
/// dot and `\` as `/`).
fn resolved_path(app: &TestApp, location: &str) -> String {
    let base = url::Url::parse(&app.url("/s/demo/auth/x")).unwrap();
    base.join(location).unwrap().path().to_string()
}

both_backends! {
    async fn a_webhook_with_thousands_of_signatures_is_refused_before_any_hmac(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let now = app.clock_now().timestamp();
        let body = vec![b' '; 200 * 1024];
        let flood = format!("t={now}{}", ",v1=00".repeat(5_000));
        let answer = app.post_webhook(body.clone(), Some(flood)).await;
        assert_eq!(answer.status(), 400);
        let text = answer.text().await.unwrap();
        assert!(text.contains("signatures"), "{text}");
        // Four full-length signatures, one of them right: still more than Stripe sends.
        let good = latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, now);
        let good_tag = good.split("v1=").nth(1).unwrap();
        let four = format!("t={now}{},v1={good_tag}", format!(",v1={}", "ab".repeat(32)).repeat(3));
        assert_eq!(app.post_webhook(body.clone(), Some(four)).await.status(), 400);
        // A body far over the webhook limit is refused unread.
        let huge = vec![b' '; 1024 * 1024];
        let signed = latchkey_testkit::stripe::sign(&huge, WEBHOOK_SECRET, now);
        assert_eq!(app.post_webhook(huge, Some(signed)).await.status(), 413);
        assert_eq!(hmacs(&app), 0, "no HMAC was computed for any of them");
        assert_eq!(app.store().stripe_event_counts().await.unwrap(), (0, 0));
    }

    async fn a_stale_webhook_is_refused_before_any_hmac_and_a_valid_one_works(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let invoice = app.invoice_id("INV-1042").await;
        let page = browser.get("/s/demo/billing").await;
        let pay = browser
            .submit(&page, &format!("form[action$='/billing/invoices/{invoice}/pay']"), &[])
            .await;
        assert_eq!(pay.status, 303, "{}", pay.body);
        let session = pay.location().unwrap().rsplit('/').next().unwrap().to_string();
        let event = app.fake_stripe().complete_checkout(&session);
        let body = serde_json::to_vec(&event).unwrap();

        let hour_ago = app.clock_now().timestamp() - 3600;
        let stale = latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, hour_ago);
        assert_eq!(app.post_webhook(body.clone(), Some(stale)).await.status(), 400);
        let in_an_hour = latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, hour_ago + 7200);
        assert_eq!(app.post_webhook(body.clone(), Some(in_an_hour)).await.status(), 400);
        assert_eq!(hmacs(&app), 0, "the timestamp is checked first");
        assert_eq!(invoice_status(&app, "INV-1042").await, "pending");

        // A wrong signature with a fresh timestamp costs exactly one HMAC.
        let now = app.clock_now().timestamp();
        let forged = latchkey_testkit::stripe::sign(&body, "whsec_wrong", now);
        assert_eq!(app.post_webhook(body.clone(), Some(forged)).await.status(), 400);
        assert_eq!(hmacs(&app), 1);

        // Stripe's own signature (with a second one, as during a secret roll) still works.
        let good = latchkey_testkit::stripe::sign(&body, WEBHOOK_SECRET, now);
        let rolled = format!("{good},v1={}", "cd".repeat(32));
        let answer = app.post_webhook(body.clone(), Some(rolled)).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(hmacs(&app), 2, "one HMAC however many signatures");
        assert_eq!(invoice_status(&app, "INV-1042").await, "paid");
    }

    async fn a_custom_host_serves_only_its_own_storefront(backend: Backend) {
        let app = TestApp::start(backend).await;
        add_beta(&app).await;
        app.store()
            .db()
            .execute("UPDATE storefronts SET custom_host = $1 WHERE slug = 'demo'", &[CUSTOM_HOST.into()])
            .await
            .unwrap();
        app.app().services.storefronts.clear();
        let client = no_redirects();
        let get = |path: &str| client.get(app.url(path)).header("host", CUSTOM_HOST).send();

        // Another storefront's portal is not there, whatever the method or page.
        for path in ["/s/beta/", "/s/beta/sign-in", "/s/beta/dashboard", "/s/beta/account", "/s/nosuch/sign-in"] {
            let answer = get(path).await.unwrap();
            assert_eq!(answer.status(), 404, "{path}");
            // The answer is this host's own 404 page (with its layout's CSRF cookie, as every
            // page of the portal has); nothing of the other storefront, no session.
            let cookies: Vec<_> = answer.headers().get_all("set-cookie").iter().collect();
            assert!(
                cookies.iter().all(|c| c.to_str().unwrap().starts_with("lk_csrf=")),
                "{path} sets no cookie but the CSRF one: {cookies:?}"
            );
            assert!(!answer.text().await.unwrap().contains("Beta"), "{path}");
        }
        let posted = client
            .post(app.url("/s/beta/sign-in"))
            .header("host", CUSTOM_HOST)
            .form(&[("email", "bea@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 404);
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE recipient = 'bea@example.com'", &[]).await, 0);
        // Neither is the console or the API: staff and integrations use the public host.
        assert_eq!(get("/console/sign-in").await.unwrap().status(), 404);
        assert_eq!(get("/api/v1/openapi.json").await.unwrap().status(), 404);

        // Its own portal answers at the root, and under its own prefix (old links), with the
        // root's links.
        let home = get("/").await.unwrap();
        assert_eq!(home.status(), 303);
        assert_eq!(home.headers()["location"], "/sign-in");
        for path in ["/sign-in", "/s/demo/sign-in"] {
            let page = get(path).await.unwrap();
            assert_eq!(page.status(), 200, "{path}");
            let body = page.text().await.unwrap();
            assert!(body.contains("action=\"/sign-in\""), "{path}: {body}");
            assert!(body.contains("Harborview"), "{path}");
        }
        assert_eq!(get("/s/demo").await.unwrap().headers()["location"], "/sign-in");
        assert_eq!(get("/healthz").await.unwrap().status(), 200);

        // The public host still serves both storefronts.
        assert_eq!(app.browser().get("/s/beta/sign-in").await.status, 200);
        assert_eq!(app.browser().get("/s/demo/sign-in").await.status, 200);
    }

    async fn encoded_next_values_never_leave_the_storefront_after_a_real_sign_in(backend: Backend) {
        let app = TestApp::start(backend).await;
        // The issue's link, as a URL: the sign-in page must not carry it into its form.
        let issue = "/s/demo/sign-in?next=/dashboard/%252e%252e/%252e%252e/beta/dashboard";
        let location = location_after_sign_in(&app, issue, None).await;
        assert_eq!(location, "/s/demo/dashboard");
        for next in [
            "/dashboard/%2e%2e/%2e%2e/beta/dashboard",
            "/dashboard/%252e%252e/%252e%252e/beta/dashboard",
            "/dashboard/..\\..\\beta/dashboard",
            "//evil.example/dashboard",
            "/%2e%2e/beta/dashboard",
            "/dashboard/%2F%2Fevil.example",
        ] {
            let location = location_after_sign_in(&app, "/s/demo/sign-in", Some(next)).await;
            let path = resolved_path(&app, &location);
            assert!(path.starts_with("/s/demo/"), "{next} led to {location} ({path})");
            assert_eq!(location, "/s/demo/dashboard", "{next}");
        }
        // A real page of the storefront is still where the customer lands.
        let location = location_after_sign_in(&app, "/s/demo/sign-in?next=%2Fbilling%3Fstatus%3Dpaid", None).await;
        assert_eq!(location, "/s/demo/billing?status=paid");
    }

    async fn an_unknown_slug_is_remembered_for_a_moment(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        assert_eq!(browser.get("/s/beta/sign-in").await.status, 404);
        // beta now exists, but the second request does not ask the store: still unknown.
        add_beta(&app).await;
        assert_eq!(browser.get("/s/beta/sign-in").await.status, 404);
        assert_eq!(browser.get("/s/beta/").await.status, 404);
        // Seconds later it is asked again, and found.
        app.clock.advance(ChronoDuration::seconds(6));
        assert_eq!(browser.get("/s/beta/sign-in").await.status, 200);
    }

    async fn an_unknown_host_is_remembered_for_a_moment(backend: Backend) {
        let app = TestApp::start(backend).await;
        let client = no_redirects();
        let get = |path: &str| client.get(app.url(path)).header("host", CUSTOM_HOST).send();
        assert_eq!(get("/sign-in").await.unwrap().status(), 404);
        app.store()
            .db()
            .execute("UPDATE storefronts SET custom_host = $1 WHERE slug = 'demo'", &[CUSTOM_HOST.into()])
            .await
            .unwrap();
        assert_eq!(get("/sign-in").await.unwrap().status(), 404, "remembered as unknown");
        app.clock.advance(ChronoDuration::seconds(6));
        assert_eq!(get("/sign-in").await.unwrap().status(), 200);
    }

    async fn api_json_with_a_key_twice_is_refused_at_any_depth(backend: Backend) {
        let app = TestApp::start(backend).await;
        let sf = app.store().storefront_by_slug("demo").await.unwrap().unwrap().id;
        let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
        app.store().create_api_key(sf, "Test", &hash, &prefix, chrono::Utc::now()).await.unwrap();
        let put = |path: &str, body: &'static str| {
            no_redirects()
                .put(app.url(&format!("/api/v1{path}")))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let facility = r#"{"name": "Dup", "address": "1 Test Road", "phone": "+1 207-555-0100", "email": "desk@test.example"}"#;
        assert_eq!(put("/facilities/FAC-OK", facility).await.unwrap().status(), 201);
        let cases = [
            ("/facilities/FAC-DUP", r#"{"name": "Shown", "address": "1 Test Road", "phone": "+1 207-555-0100", "email": "desk@test.example", "name": "Hidden"}"#),
            ("/rentals/RNT-DUP", r#"{"contact": "CON-X", "label": "Unit", "status": "upcoming", "starts_on": "2031-07-04",
               "rate": {"amount_minor": 100, "currency": "usd", "period": "day", "amount_minor": 1}}"#),
            ("/rentals/RNT-DUP2", r#"{"contact": "CON-X", "label": "Unit", "status": "upcoming", "starts_on": "2031-07-04",
               "rate": {"amount_minor": 100, "currency": "usd", "period": "day"},
               "delivery": {"status": "scheduled", "extra": [{"a": 1, "a": 2}]}}"#),
        ];
        for (path, body) in cases {
            let answer = put(path, body).await.unwrap();
            assert_eq!(answer.status(), 400, "{path}");
            let error: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
            assert_eq!(error["code"], "bad_json", "{error}");
            assert!(error["message"].as_str().unwrap().contains("twice"), "{error}");
        }
        assert_eq!(
            app.count("SELECT COUNT(*) FROM facilities WHERE name IN ('Shown', 'Hidden')", &[]).await,
            0
        );
    }
}

#[tokio::test]
async fn a_full_in_process_queue_refuses_like_a_broker_outage() {
    use futures::StreamExt;
    use latchkey::queue::local::LocalQueue;
    use latchkey::queue::{MailMessage, MailQueue, QueueError};

    let queue = LocalQueue::with_capacity(2);
    let msg = |delivery_id| MailMessage { delivery_id };
    queue.publish(msg(1)).await.unwrap();
    queue.publish(msg(2)).await.unwrap();
    let full = queue.publish(msg(3)).await.unwrap_err();
    assert!(
        matches!(&full, QueueError::Unavailable(m) if m.contains("full")),
        "{full}"
    );
    assert_eq!(queue.depth().await.unwrap(), 2);
    // A worker takes one: there is room again (the relay's next publish gets in).
    let mut jobs = queue.subscribe(1).await.unwrap();
    let job = jobs.next().await.unwrap();
    assert_eq!(job.message, Some(msg(1)));
    job.ack.ack().await;
    queue.publish(msg(3)).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 2);
    assert_eq!(jobs.next().await.unwrap().message, Some(msg(2)));
    assert_eq!(jobs.next().await.unwrap().message, Some(msg(3)));
}

/// The pieces an attacker combines into a `next` value.
fn next_parts() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec![
        "/",
        "//",
        "\\",
        "..",
        ".",
        "%2e",
        "%2E",
        "%2e%2e",
        "%252e",
        "%252e%252e",
        "%25252e",
        "%2f",
        "%2F",
        "%252f",
        "%5c",
        "%255c",
        "%00",
        "%0d%0a",
        "dashboard",
        "billing",
        "account",
        "rentals",
        "beta",
        "s",
        "evil.example",
        "http:",
        "https://evil.example",
        "?",
        "#",
        "=",
        "&",
        "%3f",
        "%",
        "%zz",
        "12",
        "é",
        " ",
        "\t",
    ]);
    prop::collection::vec(part, 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn safe_next_only_yields_plain_paths_of_the_storefront(raw in next_parts()) {
        let raw = format!("/dashboard{raw}");
        if let Some(next) = safe_next(&raw) {
            prop_assert!(
                ["/dashboard", "/billing", "/account", "/rentals"].iter().any(|p| {
                    next == *p || next.starts_with(&format!("{p}/")) || next.starts_with(&format!("{p}?"))
                }),
                "{raw} -> {next}"
            );
            prop_assert!(!next.contains("//") && !next.contains('\\') && !next.contains('%'), "{raw} -> {next}");
            prop_assert!(!next.chars().any(char::is_control), "{raw} -> {next}");
            let path = next.split('?').next().unwrap();
            prop_assert!(path.split('/').all(|s| s != "." && s != ".."), "{raw} -> {next}");
            // A browser resolves it inside the storefront, unchanged.
            let base = url::Url::parse("https://portal.example/s/demo/auth/x").unwrap();
            let resolved = base.join(&format!("/s/demo{next}")).unwrap();
            prop_assert_eq!(resolved.host_str(), Some("portal.example"));
            prop_assert!(resolved.path().starts_with("/s/demo/"), "{raw} -> {next} -> {resolved}");
            prop_assert_eq!(resolved.path(), format!("/s/demo{path}"));
            // And it is stable: checking it again gives it back.
            prop_assert_eq!(safe_next(&next), Some(next.clone()));
        }
    }

    #[test]
    fn safe_next_never_resolves_outside_the_storefront(
        page in prop::sample::select(vec!["", "/dashboard", "/billing/", "/rentals/12", "/account"]),
        raw in next_parts(),
    ) {
        let raw = format!("{page}{raw}");
        if let Some(next) = safe_next(&raw) {
            let base = url::Url::parse("https://portal.example/s/demo/auth/x").unwrap();
            let resolved = base.join(&format!("/s/demo{next}")).unwrap();
            prop_assert!(resolved.path().starts_with("/s/demo/"), "{raw} -> {next} -> {resolved}");
        }
    }
}
