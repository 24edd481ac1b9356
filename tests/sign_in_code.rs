//! The sign-in code (SPEC §11) through HTTP as browsers do it, on both backends, with the
//! emails read at an SMTP server the test starts: the code in the sign-in email signs in only
//! the browser that asked for the link, within the link's lifetime; 5 wrong tries end it; the
//! code and the link use each other up; and "Check your email" is reached by
//! POST-redirect-GET, so reloading it sends nothing.

mod support;

use std::time::Duration;

use chrono::Duration as Minutes;
use latchkey_testkit::ReceivedEmail;
use support::*;

const ALEX: &str = "alex@example.com";
const CODE_FORM: &str = "form[action$='/sign-in/code']";

/// The 6-digit code in a sign-in email's text part.
fn code_of(mail: &ReceivedEmail) -> String {
    let text = mail.text_body();
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in:\n{text}"))
        .to_string()
}

/// A 6-digit code that is not `code`.
fn wrong(code: &str) -> String {
    let last = (code.as_bytes()[5] - b'0' + 1) % 10;
    format!("{}{last}", &code[..5])
}

/// Asks for a link for `email` in `browser`; returns the "Check your email" page reached.
async fn ask(browser: &Browser, email: &str) -> Page {
    let page = browser.get("/s/demo/sign-in").await;
    let answer = browser
        .submit(&page, "form[action$='/sign-in']", &[("email", email)])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location().unwrap(), "/s/demo/sign-in/sent");
    let sent = browser.follow(&answer).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.h1(), "Check your email");
    sent
}

/// Types `code` into the page's code form.
async fn type_code(browser: &Browser, page: &Page, code: &str) -> Page {
    browser.submit(page, CODE_FORM, &[("code", code)]).await
}

/// Posts `code` for `email` from a browser that never saw a "Check your email" page.
async fn post_code(browser: &Browser, email: &str, code: &str) -> Page {
    let page = browser.get("/s/demo/sign-in").await;
    let (_, fields) = page.form("form[action$='/sign-in']");
    let csrf = fields
        .into_iter()
        .find(|(n, _)| n == "csrf_token")
        .unwrap()
        .1;
    let fields = [
        ("csrf_token".to_string(), csrf),
        ("email".to_string(), email.to_string()),
        ("code".to_string(), code.to_string()),
    ];
    browser.post_form("/s/demo/sign-in/code", &fields).await
}

/// Each link's wrong tries and whether it is used up, in order.
async fn tries(app: &TestApp) -> Vec<(i64, bool)> {
    let mut rows = app
        .rows(
            "SELECT code_tries, used_at IS NOT NULL FROM sign_in_tokens",
            &[],
        )
        .await
        .iter()
        .map(|r| (r.i64(0), r.bool(1)))
        .collect::<Vec<_>>();
    rows.sort();
    rows
}

fn refused(page: &Page) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(page.h1(), "Check your email");
    assert!(
        page.text().contains("That code did not sign you in"),
        "{}",
        page.text()
    );
    assert!(
        !page
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("lk_session=")),
        "no session"
    );
}

both_backends! {
    async fn the_code_signs_in_the_browser_that_asked_and_uses_the_link_up(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        assert!(sent.text().contains("Have a code?"), "{}", sent.text());
        let (action, fields) = sent.form(CODE_FORM);
        assert_eq!(action, "/s/demo/sign-in/code");
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["csrf_token", "email", "code"]);

        let mail = app.mailbox.wait_for(ALEX).await;
        let code = code_of(&mail);
        assert!(mail.text_body().contains("enter this code"), "{}", mail.text_body());
        let html = mail.html_body().unwrap();
        assert!(html.contains(&code) && html.contains("enter this code"), "the HTML part carries it too");
        let link = sign_in_link(&mail);
        // No code is stored: the row keeps a keyed hash of the browser's cookie value.
        let stored = app.rows("SELECT code_binding FROM sign_in_tokens", &[]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].bytes(0).len(), 32);

        let signed_in = type_code(&laptop, &sent, &format!(" {} {} ", &code[..3], &code[3..])).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(signed_in.location().unwrap(), "/s/demo/dashboard");
        let cookies = signed_in.set_cookies();
        assert!(cookies.iter().any(|c| c.starts_with("lk_session=")), "{cookies:?}");
        assert!(cookies.iter().any(|c| c.starts_with("lk_device=")), "{cookies:?}");
        assert!(cookies.iter().any(|c| c.starts_with("lk_sign_in=;")), "{cookies:?}");
        let dashboard = laptop.follow(&signed_in).await;
        assert_eq!(dashboard.h1(), "Hi, Alex");

        // Using the code used the link up.
        assert_eq!(tries(&app).await, [(1, true)]);
        let phone = laptop.fresh();
        assert_eq!(phone.get_url(&link).await.status, 410);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 1);
    }

    async fn the_code_fails_in_another_browser_and_strangers_spend_no_tries(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        let code = code_of(&app.mailbox.wait_for(ALEX).await);

        // A browser with no sign-in cookie: the right code does not sign in, and a stranger's
        // tries are not counted on the customer's link (nobody can spend them but the browser
        // that asked).
        let stranger = app.browser();
        for _ in 0..6 {
            refused(&post_code(&stranger, ALEX, &code).await);
        }
        assert_eq!(tries(&app).await, [(0, false)]);

        // A browser that asked for a link of its own (another cookie): the laptop's code
        // fails there too, and counts on that browser's own link only.
        let other = app.browser();
        let other_sent = ask(&other, ALEX).await;
        app.mailbox.wait_for_n(ALEX, 2).await;
        refused(&type_code(&other, &other_sent, &code).await);
        assert_eq!(tries(&app).await, [(0, false), (1, false)]);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);

        // The laptop still signs in with it.
        let signed_in = type_code(&laptop, &sent, &code).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(tries(&app).await, [(1, false), (1, true)]);
    }

    async fn five_wrong_codes_end_the_link(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        let mail = app.mailbox.wait_for(ALEX).await;
        let code = code_of(&mail);
        let link = sign_in_link(&mail);
        let bad = wrong(&code);
        for n in 1..=4 {
            refused(&type_code(&laptop, &sent, &bad).await);
            assert_eq!(tries(&app).await, [(n, false)]);
        }
        // A code of the wrong shape is not a try.
        let short = type_code(&laptop, &sent, "12345").await;
        assert_eq!(short.status, 400);
        assert!(short.text().contains("The code has 6 digits"), "{}", short.text());
        assert_eq!(tries(&app).await, [(4, false)]);

        refused(&type_code(&laptop, &sent, &bad).await);
        assert_eq!(tries(&app).await, [(5, true)], "the fifth wrong try uses the link up");
        refused(&type_code(&laptop, &sent, &code).await);
        assert_eq!(tries(&app).await, [(5, true)]);
        assert_eq!(laptop.get_url(&link).await.status, 410, "the link is used up too");
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);
    }

    async fn the_fifth_try_may_be_the_right_one_and_many_at_once_get_five(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        let code = code_of(&app.mailbox.wait_for(ALEX).await);
        let bad = wrong(&code);
        for _ in 0..4 {
            refused(&type_code(&laptop, &sent, &bad).await);
        }
        let signed_in = type_code(&laptop, &sent, &code).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(tries(&app).await, [(5, true)]);

        // Twenty guesses sent together are still five tries: each is counted before it is
        // compared.
        let other = app.browser();
        let other_sent = ask(&other, ALEX).await;
        let code = code_of(&app.mailbox.nth(ALEX, 2).await);
        let guesses: Vec<String> = (0..20u32)
            .map(|i| format!("{:06}", (code.parse::<u32>().unwrap() + 1 + i) % 1_000_000))
            .collect();
        let answers = futures::future::join_all(guesses.iter().map(|g| type_code(&other, &other_sent, g))).await;
        for answer in &answers {
            // Refused, or stopped by the per-IP burst limit first (429).
            assert!([400, 429].contains(&answer.status), "{}", answer.body);
        }
        assert!(answers.iter().filter(|a| a.status == 400).count() >= 5);
        assert_eq!(tries(&app).await, [(5, true), (5, true)]);
        refused(&type_code(&other, &other_sent, &code).await);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 1);
    }

    async fn a_second_request_in_the_same_browser_keeps_both_codes_working(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        ask(&laptop, ALEX).await;
        let first = code_of(&app.mailbox.wait_for(ALEX).await);
        let sent = ask(&laptop, ALEX).await;
        let second = app.mailbox.nth(ALEX, 2).await;
        // The first email's code still signs in here; the second link stays usable.
        let signed_in = type_code(&laptop, &sent, &first).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        let phone = app.browser();
        let landing = phone.get_url(&sign_in_link(&second)).await;
        assert_eq!(landing.status, 200);
    }

    async fn the_link_used_makes_the_code_fail(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        let mail = app.mailbox.wait_for(ALEX).await;
        let code = code_of(&mail);
        let phone = app.browser();
        let landing = phone.get_url(&sign_in_link(&mail)).await;
        let signed_in = phone.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);

        refused(&type_code(&laptop, &sent, &code).await);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 1);
    }

    async fn an_expired_code_fails(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        let code = code_of(&app.mailbox.wait_for(ALEX).await);
        app.clock.advance(Minutes::minutes(61));
        refused(&type_code(&laptop, &sent, &code).await);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions", &[]).await, 0);
    }

    async fn reloading_check_your_email_sends_nothing(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let laptop = app.browser();
        let sent = ask(&laptop, ALEX).await;
        app.mailbox.wait_for(ALEX).await;
        for _ in 0..3 {
            let again = laptop.get_url(&sent.url).await;
            assert_eq!(again.status, 200);
            assert_eq!(again.h1(), "Check your email");
            assert!(again.text().contains(ALEX), "{}", again.text());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(app.mailbox.to(ALEX).len(), 1, "one email at the SMTP server");
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries", &[]).await, 1);
        assert_eq!(app.count("SELECT COUNT(*) FROM sign_in_tokens", &[]).await, 1);

        // Without the request's cookie the page sends the browser to sign in.
        let fresh = laptop.fresh().get("/s/demo/sign-in/sent").await;
        assert_eq!(fresh.status, 303);
        assert_eq!(fresh.location().unwrap(), "/s/demo/sign-in");
    }

    async fn an_unknown_address_gets_the_same_pages(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let known = app.browser();
        let known_sent = ask(&known, ALEX).await;
        let code = code_of(&app.mailbox.wait_for(ALEX).await);
        let unknown = app.browser();
        let unknown_sent = ask(&unknown, "nobody@example.com").await;
        assert_eq!(
            unknown_sent.form(CODE_FORM).1.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            known_sent.form(CODE_FORM).1.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        );
        let a = type_code(&known, &known_sent, &wrong(&code)).await;
        let b = type_code(&unknown, &unknown_sent, &code).await;
        refused(&a);
        refused(&b);
        assert_eq!(a.status, b.status);
        assert_eq!(
            a.text().replace(ALEX, "X"),
            b.text().replace("nobody@example.com", "X")
        );
    }
}
