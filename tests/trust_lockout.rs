//! Nobody can lock a customer out (SPEC §8, §2 rate limits): the sign-in limit is spent per
//! requesting client (IP, or IPv6 /64), a ceiling per account holds against requests spread
//! over many IPs, and a browser that signed in before carries a signed device cookie whose
//! requests strangers cannot hold back. The same for the staff console. Clients are told apart
//! by `X-Forwarded-For` from a trusted proxy (127.0.0.1), on both stores.

mod support;

use chrono::Utc;
use latchkey::domain::EmailAddress;
use latchkey::store::Role;
use support::*;

const ALEX: &str = "alex@example.com";
const STAN: &str = "stan@harborview.example";

/// An application that believes `X-Forwarded-For` from 127.0.0.1, with the default limits.
async fn start(backend: Backend) -> TestApp {
    Setup::new(backend)
        .config(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
        .start()
        .await
}

/// A browser whose requests come from `ip`.
fn from(app: &TestApp, ip: &str) -> Browser {
    Browser::from_ip(&app.app().url(), ip)
}

/// Asks for a sign-in link on a storefront's sign-in page, as a customer does: the answer is
/// always the same page. Returns the delivery the request made.
async fn ask_on(app: &TestApp, slug: &str, browser: &Browser, email: &str) -> i64 {
    let page = browser.get(&format!("/s/{slug}/sign-in")).await;
    let sent = browser
        .submit_followed(&page, "form[action$='/sign-in']", &[("email", email)])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.h1(), "Check your email");
    app.latest_delivery_to(email).await.id
}

async fn ask(app: &TestApp, browser: &Browser, email: &str) -> i64 {
    ask_on(app, "demo", browser, email).await
}

/// Asks for a console link, as a staff member does. Returns the delivery the request made.
async fn ask_console(app: &TestApp, browser: &Browser, email: &str) -> i64 {
    let page = browser.get("/console/sign-in").await;
    let sent = browser
        .submit_followed(
            &page,
            "form[action='/console/sign-in']",
            &[("email", email)],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.h1(), "Check your email");
    app.latest_delivery_to(email).await.id
}

/// A delivery's status and last error.
async fn status(app: &TestApp, id: i64) -> (String, String) {
    let row = &app
        .rows(
            "SELECT status, last_error FROM deliveries WHERE id = $1",
            &[id.into()],
        )
        .await[0];
    (row.string(0), row.opt_string(1).unwrap_or_default())
}

async fn assert_suppressed(app: &TestApp, id: i64, reason: &str) {
    let (status, error) = status(app, id).await;
    assert_eq!(status, "suppressed", "delivery {id}");
    assert!(error.contains(reason), "delivery {id}: {error}");
}

/// The request's email is really sent.
async fn assert_sent(app: &TestApp, id: i64) {
    app.wait_for_status(id, "sent").await;
}

/// `n` requests from `browser`; returns their deliveries.
async fn ask_n(app: &TestApp, browser: &Browser, email: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(ask(app, browser, email).await);
    }
    ids
}

/// Opens the newest link mailed to `email` in `browser` and signs in with it; returns the
/// `Set-Cookie` headers of the answer.
async fn redeem_newest(app: &TestApp, browser: &Browser, email: &str, n: usize) -> Vec<String> {
    let mail = app.mailbox.nth(email, n).await;
    let link = sign_in_link(&mail);
    let landing = browser.get_url(&link).await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    let signed_in = browser.submit(&landing, "form", &[]).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    signed_in.set_cookies()
}

fn cookie_named(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
        .clone()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// Signs `email` in on the demo portal from `browser`; returns the device cookie it was given.
async fn sign_in(app: &TestApp, browser: &Browser, email: &str) -> String {
    let before = app.mailbox.to(email).len();
    let id = ask(app, browser, email).await;
    assert_sent(app, id).await;
    cookie_named(
        &redeem_newest(app, browser, email, before + 1).await,
        "lk_device",
    )
}

async fn add_stan(app: &TestApp) {
    let demo = app
        .store()
        .storefront_by_slug("demo")
        .await
        .unwrap()
        .unwrap();
    app.store()
        .create_staff(
            Some(demo.id),
            &EmailAddress::parse(STAN).unwrap(),
            "Stan Staff",
            Role::Staff,
            Utc::now(),
        )
        .await
        .unwrap();
}

both_backends! {
    async fn strangers_from_another_ip_do_not_stop_the_customers_own_request(backend: Backend) {
        let app = start(backend).await;
        let stranger = from(&app, "203.0.113.7");
        let asked = ask_n(&app, &stranger, ALEX, 7).await;
        for id in &asked[..5] {
            assert_sent(&app, *id).await;
        }
        for id in &asked[5..] {
            assert_suppressed(&app, *id, "5 sign-in links in 15 minutes from one client").await;
        }

        // Alex, from home: the link is sent.
        let alex = from(&app, "198.51.100.20");
        let own = ask(&app, &alex, ALEX).await;
        assert_sent(&app, own).await;
        app.mailbox.wait_for_n(ALEX, 6).await;
        // The stranger's bucket stays spent; Alex has four more of their own.
        assert_suppressed(&app, ask(&app, &stranger, ALEX).await, "from one client").await;
        for id in ask_n(&app, &alex, ALEX, 4).await {
            assert_sent(&app, id).await;
        }
        assert_suppressed(&app, ask(&app, &alex, ALEX).await, "from one client").await;

        // The same /64 is one client: a stranger cannot rotate through its addresses.
        for (i, id) in ask_n(&app, &from(&app, "2001:db8:7:1::1"), "sam@example.com", 5).await.into_iter().enumerate() {
            assert_ne!(status(&app, id).await.0, "suppressed", "request {i}");
        }
        let same_64 = ask(&app, &from(&app, "2001:db8:7:1:ffff::2"), "sam@example.com").await;
        assert_suppressed(&app, same_64, "from one client").await;
        let next_64 = ask(&app, &from(&app, "2001:db8:7:2::1"), "sam@example.com").await;
        assert_sent(&app, next_64).await;

        // What the limits count by is a keyed hash of the client, never its address.
        let keys = app.rows("SELECT client_key FROM sign_in_tokens", &[]).await;
        assert_eq!(keys.len(), 16);
        for row in &keys {
            let key = row.bytes(0);
            assert_eq!(key.len(), 16);
            assert!(!String::from_utf8_lossy(&key).contains("203.0"));
        }

        // After the window, the stranger's bucket is open again.
        app.clock.advance(chrono::Duration::minutes(16));
        assert_sent(&app, ask(&app, &stranger, ALEX).await).await;
    }

    async fn a_browser_that_signed_in_before_gets_its_link_whatever_strangers_did(backend: Backend) {
        let app = start(backend).await;
        // Alex signs in at the café once: the browser gets the device cookie.
        let alex = from(&app, "192.0.2.50");
        let device = sign_in(&app, &alex, ALEX).await;
        assert!(device.contains("Path=/s/demo/"), "{device}");
        assert!(device.contains("HttpOnly") && device.contains("SameSite=Lax"), "{device}");
        assert!(!device.contains("Secure"), "plain http here: {device}");
        let max_age: i64 = device.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
        assert_eq!(max_age, 365 * 86_400);
        // It reveals nothing: a random device id and an HMAC, no address or account id, and a
        // new one at each sign-in.
        let value = cookie_value(&device);
        assert_eq!(value.len(), 64, "16 random bytes and a 32-byte HMAC, base64: {value}");
        assert!(!value.to_lowercase().contains("alex"), "{value}");
        assert_eq!(alex.cookie("/s/demo/", "lk_device").as_deref(), Some(value.as_str()));
        assert_eq!(alex.cookie("/s/other/", "lk_device"), None, "scoped to the storefront");

        // A stranger on the same café network spends that IP's allowance...
        let stranger = from(&app, "192.0.2.50");
        let asked = ask_n(&app, &stranger, ALEX, 5).await;
        assert_suppressed(&app, *asked.last().unwrap(), "from one client").await;
        let fresh = from(&app, "192.0.2.50");
        assert_suppressed(&app, ask(&app, &fresh, ALEX).await, "from one client").await;
        // ...and Alex's browser still gets its link, from there.
        let own = ask(&app, &alex, ALEX).await;
        assert_sent(&app, own).await;

        // Its own allowance is 5 per 15 minutes (the sign-in link was counted on the IP).
        for id in ask_n(&app, &alex, ALEX, 4).await {
            assert_sent(&app, id).await;
        }
        assert_suppressed(&app, ask(&app, &alex, ALEX).await, "5 sign-in links in 15 minutes from one client").await;
        assert_eq!(app.mailbox.wait_for_n(ALEX, 10).await.len(), 10);
    }

    async fn the_account_ceiling_holds_against_many_ips_but_not_against_the_device(backend: Backend) {
        let app = start(backend).await;
        let alex = from(&app, "198.51.100.20");
        sign_in(&app, &alex, ALEX).await;
        // 25 requests spread over five IPs: with Alex's own link, 20 are sent in the hour.
        let mut asked = Vec::new();
        for i in 1..=5 {
            asked.extend(ask_n(&app, &from(&app, &format!("203.0.113.{i}")), ALEX, 5).await);
        }
        let mut suppressed = 0;
        for id in &asked {
            let (status, error) = status(&app, *id).await;
            if status == "suppressed" {
                assert!(error.contains("20 sign-in links in 60 minutes for one account"), "{error}");
                suppressed += 1;
            }
        }
        assert_eq!(suppressed, 6, "1 + 19 links sent, 6 held back by the ceiling");
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 20);
        // Another IP, and Alex's own IP without the cookie: held back by the ceiling too.
        assert_suppressed(&app, ask(&app, &from(&app, "203.0.113.99"), ALEX).await, "for one account").await;
        assert_suppressed(&app, ask(&app, &from(&app, "198.51.100.20"), ALEX).await, "for one account").await;
        // Alex's browser gets its link.
        let own = ask(&app, &alex, ALEX).await;
        assert_sent(&app, own).await;
        app.mailbox.wait_for_n(ALEX, 21).await;

        // An hour later the ceiling is open again.
        app.clock.advance(chrono::Duration::minutes(61));
        assert_sent(&app, ask(&app, &from(&app, "203.0.113.99"), ALEX).await).await;
    }

    async fn a_forged_or_foreign_device_cookie_gets_no_special_treatment(backend: Backend) {
        let app = start(backend).await;
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
                Utc::now(),
            )
            .await
            .unwrap();
        app.store()
            .create_account(other, &EmailAddress::parse(ALEX).unwrap(), "Alex Other", "", Utc::now())
            .await
            .unwrap();
        // Genuine cookies: Sam's on demo, Alex's on the other storefront, Alex's on demo.
        let sam_cookie = cookie_value(&sign_in(&app, &from(&app, "198.51.100.1"), "sam@example.com").await);
        let elsewhere = from(&app, "198.51.100.2");
        ask_on(&app, "other", &elsewhere, ALEX).await;
        let other_cookie = cookie_value(&cookie_named(&redeem_newest(&app, &elsewhere, ALEX, 1).await, "lk_device"));
        let alex_cookie = cookie_value(&sign_in(&app, &from(&app, "198.51.100.3"), ALEX).await);
        let mut tampered = alex_cookie.clone().into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();

        // A stranger spends the allowance of 203.0.113.7 for Alex.
        ask_n(&app, &from(&app, "203.0.113.7"), ALEX, 5).await;
        for (what, value) in [
            ("Sam's cookie", sam_cookie.as_str()),
            ("Alex's cookie of another storefront", other_cookie.as_str()),
            ("a tampered cookie", tampered.as_str()),
            ("a made-up cookie", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ("garbage", "not-a-device-cookie"),
        ] {
            let b = from(&app, "203.0.113.7");
            b.set_cookie("/s/demo/", &format!("lk_device={value}; Path=/s/demo/"));
            assert_eq!(b.cookie("/s/demo/", "lk_device").as_deref(), Some(value));
            let id = ask(&app, &b, ALEX).await;
            let (status, _) = status(&app, id).await;
            assert_eq!(status, "suppressed", "{what} must not count as Alex's device");
        }
        // Alex's own cookie, from the same IP, does.
        let b = from(&app, "203.0.113.7");
        b.set_cookie("/s/demo/", &format!("lk_device={alex_cookie}; Path=/s/demo/"));
        assert_sent(&app, ask(&app, &b, ALEX).await).await;
    }

    async fn strangers_cannot_lock_a_staff_member_out_of_the_console(backend: Backend) {
        let app = start(backend).await;
        add_stan(&app).await;
        let stranger = from(&app, "203.0.113.7");
        let mut asked = Vec::new();
        for _ in 0..6 {
            asked.push(ask_console(&app, &stranger, STAN).await);
        }
        for id in &asked[..5] {
            assert_sent(&app, *id).await;
        }
        assert_suppressed(&app, asked[5], "5 sign-in links in 15 minutes from one client").await;

        // Stan, from the office: the link is sent, and signing in sets the console device cookie.
        let stan = from(&app, "198.51.100.20");
        let own = ask_console(&app, &stan, STAN).await;
        assert_sent(&app, own).await;
        let mail = app.mailbox.nth(STAN, 6).await;
        let link = mail.links().into_iter().find(|l| l.contains("/console/auth/")).unwrap();
        let landing = stan.get_url(&link).await;
        let signed_in = stan.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        let device = cookie_named(&signed_in.set_cookies(), "lk_console_device");
        assert!(device.contains("Path=/console;") && device.contains("HttpOnly") && device.contains("SameSite=Lax"), "{device}");

        // Strangers over many IPs spend the ceiling (6 links so far; 14 more are sent).
        let mut suppressed = 0;
        for i in 1..=4 {
            let b = from(&app, &format!("192.0.2.{i}"));
            for _ in 0..5 {
                let id = ask_console(&app, &b, STAN).await;
                if status(&app, id).await.0 == "suppressed" {
                    suppressed += 1;
                }
            }
        }
        assert_eq!(suppressed, 6);
        assert_suppressed(&app, ask_console(&app, &from(&app, "192.0.2.99"), STAN).await, "20 sign-in links in 60 minutes for one account").await;
        assert_suppressed(&app, ask_console(&app, &from(&app, "198.51.100.20"), STAN).await, "for one account").await;

        // A customer's device cookie, or a forged one, under the console's name: nothing special.
        let customer = cookie_value(&sign_in(&app, &from(&app, "198.51.100.30"), ALEX).await);
        for value in [customer.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            let b = from(&app, "198.51.100.20");
            b.set_cookie("/console", &format!("lk_console_device={value}; Path=/console"));
            assert_suppressed(&app, ask_console(&app, &b, STAN).await, "for one account").await;
        }
        // Stan's browser still gets the link.
        assert_sent(&app, ask_console(&app, &stan, STAN).await).await;
    }

    async fn concurrent_requests_from_many_ips_cannot_exceed_the_ceiling(backend: Backend) {
        let app = start(backend).await;
        // 40 requests at once from 10 IPs (4 each): each IP is under its 5, all together over 20.
        let mut browsers = Vec::new();
        for i in 0..40 {
            let b = from(&app, &format!("203.0.113.{}", i % 10));
            let page = b.get("/s/demo/sign-in").await;
            browsers.push((b, page));
        }
        let posts = browsers
            .iter()
            .map(|(b, page)| b.submit_followed(page, "form[action$='/sign-in']", &[("email", ALEX)]));
        for page in futures::future::join_all(posts).await {
            assert_eq!(page.status, 200);
            assert_eq!(page.h1(), "Check your email");
        }
        let rows = app.rows("SELECT status FROM deliveries", &[]).await;
        let suppressed = rows.iter().filter(|r| r.string(0) == "suppressed").count();
        assert_eq!((rows.len(), suppressed), (40, 20));
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 20);
    }

    async fn concurrent_console_requests_cannot_exceed_the_per_client_limit(backend: Backend) {
        let app = start(backend).await;
        add_stan(&app).await;
        let mut browsers = Vec::new();
        for _ in 0..12 {
            let b = from(&app, "203.0.113.7");
            let page = b.get("/console/sign-in").await;
            browsers.push((b, page));
        }
        let posts = browsers
            .iter()
            .map(|(b, page)| b.submit_followed(page, "form[action='/console/sign-in']", &[("email", STAN)]));
        for page in futures::future::join_all(posts).await {
            assert_eq!(page.status, 200);
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM staff_tokens", &[]).await, 5);
        let suppressed = app
            .count("SELECT COUNT(*) FROM deliveries WHERE status = 'suppressed'", &[])
            .await;
        assert_eq!(suppressed, 7);
    }
}
