//! Trust in accounts (SPEC §8, issue 8 items 1 and 2), through HTTP as browsers: an email
//! change is confirmed at the new address before anything changes, confirming ends the
//! account's other sessions and earlier links and notifies the old address; **Sign out
//! everywhere**; and a magic link never silently switches a browser from one account (or
//! staff member) to another.

mod support;

use chrono::Utc;
use latchkey::domain::EmailAddress;
use latchkey::store::Role;
use latchkey_testkit::ReceivedEmail;
use support::*;

const NEW: &str = "alex.martin@example.org";

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    app.sign_in(&browser, email).await;
    browser
}

async fn account_email(app: &TestApp, id: i64) -> String {
    app.rows("SELECT email FROM accounts WHERE id = $1", &[id.into()])
        .await[0]
        .string(0)
}

async fn account_id(app: &TestApp, email: &str) -> i64 {
    app.rows("SELECT id FROM accounts WHERE email = $1", &[email.into()])
        .await[0]
        .i64(0)
}

/// Whether the browser's session still works (the dashboard, not a redirect to sign-in).
async fn is_signed_in(browser: &Browser) -> bool {
    let page = browser.get("/s/demo/dashboard").await;
    match page.status {
        200 => true,
        303 => {
            assert!(page.location().unwrap().contains("/sign-in"), "{page:?}");
            false
        }
        other => panic!("dashboard answered {other}: {}", page.body),
    }
}

/// Submits the Account form with `email` (other fields as shown).
async fn change_email(browser: &Browser, email: &str) -> Page {
    let page = browser.get("/s/demo/account").await;
    browser
        .submit(&page, "form[action$='/account']", &[("email", email)])
        .await
}

/// The confirmation link in the email to the new address.
fn confirm_link(mail: &ReceivedEmail) -> String {
    mail.links()
        .into_iter()
        .find(|l| l.contains("/confirm-email/"))
        .unwrap_or_else(|| panic!("no confirmation link in:\n{}", mail.text_body()))
}

/// Requests a sign-in link for `email` from a browser of its own; returns the link.
async fn link_for(app: &TestApp, email: &str) -> String {
    let before = app.mailbox.to(email).len();
    app.request_link(&app.browser(), email).await;
    sign_in_link(&app.mailbox.nth(email, before + 1).await)
}

both_backends! {
    async fn an_email_change_waits_for_confirmation_at_the_new_address(backend: Backend) {
        let app = TestApp::start(backend).await;
        let laptop = signed_in(&app, "alex@example.com").await;
        let tablet = signed_in(&app, "alex@example.com").await;
        let alex = account_id(&app, "alex@example.com").await;
        // A link mailed to the old address before the change, not used yet.
        let earlier = link_for(&app, "alex@example.com").await;
        let to_old = app.mailbox.to("alex@example.com").len();

        let saved = change_email(&laptop, NEW).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let page = laptop.follow(&saved).await;
        assert!(page.text().contains("Confirm your new address"), "{}", page.text());
        assert!(page.text().contains(NEW), "{}", page.text());
        // Nothing changed yet: the page, the database, and where links go.
        let (_, fields) = page.form("form[action$='/account']");
        assert!(fields.contains(&("email".to_string(), "alex@example.com".to_string())), "{fields:?}");
        assert_eq!(account_email(&app, alex).await, "alex@example.com");
        assert!(is_signed_in(&tablet).await);
        let mail = app.mailbox.wait_for(NEW).await;
        assert_eq!(mail.subject().unwrap(), "Confirm your new email address for Harborview Rentals");
        let link = confirm_link(&mail);
        assert!(link.starts_with(&app.url("/s/demo/confirm-email/")), "{link}");
        assert!(mail.html_body().unwrap().contains(&link));
        // Only the token's hash is stored, tied to the account and the new address.
        let token = link.rsplit('/').next().unwrap().to_string();
        let rows = app.rows("SELECT account_id, new_email, token_hash FROM email_change_tokens", &[]).await;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].i64(0), rows[0].string(1)), (alex, NEW.to_string()));
        assert_eq!(rows[0].bytes(2).len(), 32);
        assert!(!rows[0].bytes(2).windows(token.len()).any(|w| w == token.as_bytes()));
        let delivery = app.latest_delivery_to(NEW).await;
        assert_eq!(delivery.kind.as_str(), "confirm_email");
        // A sign-in request still goes to the old address; the new one has no account yet.
        app.request_link(&app.browser(), "alex@example.com").await;
        app.mailbox.wait_for_n("alex@example.com", to_old + 1).await;
        let fresh = app.browser();
        let sign_in = fresh.get("/s/demo/sign-in").await;
        fresh.submit_followed(&sign_in, "form[action$='/sign-in']", &[("email", NEW)]).await;
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE recipient = $1 AND kind = 'sign_in'", &[NEW.into()]).await, 0);

        // The link's page never uses it up (mail scanners): opened twice, still nothing changed.
        let phone = app.browser();
        for _ in 0..2 {
            let landing = phone.get_url(&link).await;
            assert_eq!(landing.status, 200, "{}", landing.body);
            assert_eq!(landing.h1(), "Confirm your new address");
            assert!(landing.text().contains(NEW));
            assert!(!landing.body.contains("data-autosubmit"));
        }
        assert_eq!(account_email(&app, alex).await, "alex@example.com");
        assert!(is_signed_in(&laptop).await && is_signed_in(&tablet).await);

        // Confirming from the phone: the address switches, every other browser is signed out,
        // and the phone is signed in to the account.
        let landing = phone.get_url(&link).await;
        let confirmed = phone.submit(&landing, "form", &[]).await;
        assert_eq!(confirmed.status, 303, "{}", confirmed.body);
        assert_eq!(confirmed.location().unwrap(), "/s/demo/account?email_confirmed=1");
        let page = phone.follow(&confirmed).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("Your new email address is confirmed"), "{}", page.text());
        let (_, fields) = page.form("form[action$='/account']");
        assert!(fields.contains(&("email".to_string(), NEW.to_string())), "{fields:?}");
        assert_eq!(account_id(&app, NEW).await, alex, "the account id stays");
        assert!(!is_signed_in(&laptop).await);
        assert!(!is_signed_in(&tablet).await);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE account_id = $1", &[alex.into()]).await, 1);
        // The link works once.
        let again = phone.submit(&landing, "form", &[]).await;
        assert_eq!(again.status, 410);
        assert_eq!(app.browser().get_url(&link).await.status, 410);
        // The link mailed earlier to the old address is dead.
        let stale = app.browser();
        let landing = stale.get_url(&earlier).await;
        assert_eq!(landing.status, 410);
        let token = earlier.rsplit('/').next().unwrap();
        let posted = stale.post_form(&format!("/s/demo/auth/{token}"), &[("csrf_token".into(), landing.csrf())]).await;
        assert_eq!(posted.status, 410);
        assert!(!is_signed_in(&stale).await);

        // The old address gets the notice, the new address masked, and how to reach the facility.
        let notice = app.mailbox.wait_for_n("alex@example.com", to_old + 2).await.pop().unwrap();
        assert_eq!(notice.subject().unwrap(), "Your Harborview Rentals email address was changed");
        let text = notice.text_body();
        assert!(text.contains("a\u{2022}\u{2022}\u{2022}@example.org"), "{text}");
        assert!(!text.contains(NEW), "{text}");
        assert!(text.contains("+1 207-555-0140") && text.contains("downtown@harborview.example"), "{text}");
        let html = notice.html_body().unwrap();
        assert!(html.contains("a\u{2022}\u{2022}\u{2022}@example.org") && !html.contains(NEW), "{html}");
        // From now on links go to the new address, and the old one has no account.
        let to_old_links = "SELECT COUNT(*) FROM deliveries WHERE recipient = 'alex@example.com' AND kind = 'sign_in'";
        let before_old = app.count(to_old_links, &[]).await;
        link_for(&app, NEW).await;
        let fresh = app.browser();
        let sign_in = fresh.get("/s/demo/sign-in").await;
        fresh.submit_followed(&sign_in, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        assert_eq!(app.count(to_old_links, &[]).await, before_old);
    }

    async fn a_taken_address_is_refused_when_saving_and_when_confirming(backend: Backend) {
        let app = TestApp::start(backend).await;
        let alex_browser = signed_in(&app, "alex@example.com").await;
        let sam_browser = signed_in(&app, "sam@example.com").await;
        let alex = account_id(&app, "alex@example.com").await;

        // Saving another account's address: refused beside the field, nothing saved at all.
        let page = alex_browser.get("/s/demo/account").await;
        let refused = alex_browser
            .submit(&page, "form[action$='/account']", &[("email", "SAM@example.com"), ("full_name", "Alexandra Martin")])
            .await;
        assert_eq!(refused.status, 409);
        assert_eq!(
            refused.select_text("#email-error"),
            ["Another account already uses this email address. Use a different address, or sign in with that one."]
        );
        assert!(refused.text().contains("Nothing was saved."));
        assert_eq!(app.rows("SELECT full_name FROM accounts WHERE id = $1", &[alex.into()]).await[0].string(0), "Alex Martin");
        assert_eq!(app.count("SELECT COUNT(*) FROM email_change_tokens", &[]).await, 0);
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'confirm_email'", &[]).await, 0);

        // A free address, asked for by Alex and by Sam; Sam confirms first.
        let shared = "shared@example.org";
        assert_eq!(change_email(&alex_browser, shared).await.status, 303);
        let alex_link = confirm_link(&app.mailbox.wait_for(shared).await);
        assert_eq!(change_email(&sam_browser, shared).await.status, 303);
        let sam_link = confirm_link(&app.mailbox.nth(shared, 2).await);
        let landing = sam_browser.get_url(&sam_link).await;
        assert_eq!(sam_browser.submit(&landing, "form", &[]).await.status, 303);
        assert_eq!(account_email(&app, account_id(&app, shared).await).await, shared);

        // Alex's link now finds the address taken: nothing changes for Alex.
        let landing = alex_browser.get_url(&alex_link).await;
        assert_eq!(landing.status, 200);
        let answer = alex_browser.submit(&landing, "form", &[]).await;
        assert_eq!(answer.status, 409, "{}", answer.body);
        assert!(answer.text().contains("Another account now uses shared@example.org"), "{}", answer.text());
        assert!(answer.text().contains("Nothing was changed"));
        assert_eq!(account_email(&app, alex).await, "alex@example.com");
        assert!(is_signed_in(&alex_browser).await);
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'email_changed' AND account_id = $1", &[alex.into()]).await, 0);
        // Links to Alex's own address still work.
        let link = link_for(&app, "alex@example.com").await;
        let other = app.browser();
        let landing = other.get_url(&link).await;
        assert_eq!(other.submit(&landing, "form", &[]).await.status, 303);
    }

    async fn only_the_newest_confirmation_link_works(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        let alex = account_id(&app, "alex@example.com").await;
        assert_eq!(change_email(&browser, "first@example.org").await.status, 303);
        let first = confirm_link(&app.mailbox.wait_for("first@example.org").await);
        assert_eq!(change_email(&browser, "second@example.org").await.status, 303);
        let second = confirm_link(&app.mailbox.wait_for("second@example.org").await);
        assert_eq!(browser.get_url(&first).await.status, 410);
        let landing = browser.get_url(&second).await;
        // Confirmed in the browser that is signed in to the account: it stays signed in.
        let confirmed = browser.submit(&landing, "form", &[]).await;
        assert_eq!(confirmed.status, 303);
        assert!(is_signed_in(&browser).await);
        assert_eq!(account_email(&app, alex).await, "second@example.org");
    }

    async fn address_changes_are_limited_like_sign_in_links(backend: Backend) {
        // Each change emails an address of the customer's choosing: 5 per 15 minutes.
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        for i in 0..5 {
            assert_eq!(change_email(&browser, &format!("new{i}@example.org")).await.status, 303);
        }
        let page = browser.get("/s/demo/account").await;
        let refused = browser
            .submit(&page, "form[action$='/account']", &[("email", "new5@example.org"), ("full_name", "Alexandra Martin")])
            .await;
        assert_eq!(refused.status, 429);
        assert!(refused.select_text("#email-error")[0].contains("too many times"));
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'confirm_email'", &[]).await, 5);
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts WHERE full_name = 'Alexandra Martin'", &[]).await, 0);
        app.clock.advance(chrono::Duration::minutes(16));
        assert_eq!(change_email(&browser, "new5@example.org").await.status, 303);
    }

    async fn a_link_past_its_lifetime_changes_nothing(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "alex@example.com").await;
        let alex = account_id(&app, "alex@example.com").await;
        assert_eq!(change_email(&browser, NEW).await.status, 303);
        let link = confirm_link(&app.mailbox.wait_for(NEW).await);
        let landing = browser.get_url(&link).await;
        app.clock.advance(chrono::Duration::minutes(61));
        assert_eq!(browser.submit(&landing, "form", &[]).await.status, 410);
        assert_eq!(browser.get_url(&link).await.status, 410);
        assert_eq!(account_email(&app, alex).await, "alex@example.com");
    }

    async fn sign_out_everywhere_ends_every_session_of_the_account(backend: Backend) {
        let app = TestApp::start(backend).await;
        let laptop = signed_in(&app, "alex@example.com").await;
        let phone = signed_in(&app, "alex@example.com").await;
        let sam = signed_in(&app, "sam@example.com").await;
        let page = laptop.get("/s/demo/account").await;
        assert!(page.select_text("button").contains(&"Sign out everywhere".to_string()));
        // Like every form, it needs its CSRF token.
        let forged = laptop.post_form("/s/demo/sign-out-everywhere", &[]).await;
        assert_eq!(forged.status, 403);
        assert!(is_signed_in(&laptop).await && is_signed_in(&phone).await);

        let done = laptop.submit(&page, "form[action$='/sign-out-everywhere']", &[]).await;
        assert_eq!(done.status, 303);
        assert!(done.location().unwrap().contains("/s/demo/sign-in"));
        assert!(done.set_cookies().iter().any(|c| c.starts_with("lk_session=;") && c.contains("Max-Age=0")));
        assert!(!is_signed_in(&laptop).await);
        assert!(!is_signed_in(&phone).await);
        assert!(is_signed_in(&sam).await, "another account's sessions stay");
        let alex = account_id(&app, "alex@example.com").await;
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE account_id = $1", &[alex.into()]).await, 0);
    }

    async fn a_link_for_another_account_asks_before_switching(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = signed_in(&app, "sam@example.com").await;
        let sam = account_id(&app, "sam@example.com").await;
        let link = link_for(&app, "alex@example.com").await;
        let token = link.rsplit('/').next().unwrap().to_string();
        let unused = || async {
            app.count("SELECT COUNT(*) FROM sign_in_tokens t JOIN accounts a ON a.id = t.account_id WHERE a.email = 'alex@example.com' AND t.used_at IS NULL", &[]).await
        };
        assert_eq!(unused().await, 1);

        // The landing page asks, and submits nothing by itself.
        let question = browser.get_url(&link).await;
        assert_eq!(question.status, 200);
        assert_eq!(question.h1(), "Switch accounts?");
        let text = question.text();
        assert!(text.contains("signed in as Sam Rivera"), "{text}");
        assert!(text.contains("is for Alex Martin"), "{text}");
        assert!(question.select_text("button").contains(&"Continue as Alex".to_string()), "{text}");
        assert!(question.select_text("a").contains(&"Stay signed in as Sam".to_string()), "{text}");
        assert!(!question.body.contains("data-autosubmit"));
        assert!(!question.body.contains("<script"), "{}", question.body);
        // GET used nothing up and switched nothing.
        assert_eq!(unused().await, 1);
        assert_eq!(browser.get("/s/demo/dashboard").await.h1(), "Hi, Sam");

        // "Stay signed in" goes back to the dashboard.
        let stay = question.html();
        let stay = stay
            .select(&scraper::Selector::parse("a.button").unwrap())
            .find(|a| a.text().collect::<String>().contains("Stay signed in"))
            .and_then(|a| a.value().attr("href"))
            .unwrap()
            .to_string();
        assert_eq!(stay, "/s/demo/dashboard");

        // A POST without the confirmation (a script, a scanner) asks again and switches nothing.
        let posted = browser.post_form(&format!("/s/demo/auth/{token}"), &[("csrf_token".into(), question.csrf())]).await;
        assert_eq!(posted.status, 409);
        assert_eq!(posted.h1(), "Switch accounts?");
        assert!(!posted.body.contains("<script"));
        assert_eq!(unused().await, 1);
        assert_eq!(browser.get("/s/demo/dashboard").await.h1(), "Hi, Sam");

        // "Continue as Alex": Sam's session in this browser ends, Alex is signed in.
        let switched = browser.submit(&question, "form", &[]).await;
        assert_eq!(switched.status, 303, "{}", switched.body);
        assert_eq!(browser.follow(&switched).await.h1(), "Hi, Alex");
        assert_eq!(unused().await, 0);
        assert_eq!(app.count("SELECT COUNT(*) FROM sessions WHERE account_id = $1", &[sam.into()]).await, 0);

        // The same account's link signs in at once, as before.
        let link = link_for(&app, "alex@example.com").await;
        let landing = browser.get_url(&link).await;
        assert_eq!(landing.h1(), "Signing you in…");
        assert!(landing.body.contains("data-autosubmit"));
        assert_eq!(browser.submit(&landing, "form", &[]).await.status, 303);
    }

    async fn a_console_link_for_another_staff_member_asks_before_switching(backend: Backend) {
        let app = TestApp::start(backend).await;
        let demo = app.store().storefront_by_slug("demo").await.unwrap().unwrap().id;
        for (email, name) in [("olivia@harborview.example", "Olivia Owner"), ("max@harborview.example", "Max Manager")] {
            app.store()
                .create_staff(Some(demo), &EmailAddress::parse(email).unwrap(), name, Role::Owner, Utc::now())
                .await
                .unwrap();
        }
        let console_link = |email: &'static str| {
            let app = &app;
            async move {
                let before = app.mailbox.to(email).len();
                let other = app.browser();
                let page = other.get("/console/sign-in").await;
                other.submit_followed(&page, "form[action='/console/sign-in']", &[("email", email)]).await;
                app.mailbox
                    .nth(email, before + 1)
                    .await
                    .links()
                    .into_iter()
                    .find(|l| l.contains("/console/auth/"))
                    .unwrap()
            }
        };
        let who = |page: &Page| page.text();
        let browser = app.browser();
        let landing = browser.get_url(&console_link("olivia@harborview.example").await).await;
        assert!(landing.body.contains("data-autosubmit"));
        assert_eq!(browser.submit(&landing, "form", &[]).await.status, 303);
        assert!(who(&browser.get("/console/s/demo").await).contains("Olivia Owner"));

        let link = console_link("max@harborview.example").await;
        let token = link.rsplit('/').next().unwrap().to_string();
        let question = browser.get_url(&link).await;
        assert_eq!(question.status, 200);
        assert_eq!(question.h1(), "Switch accounts?");
        assert!(question.text().contains("signed in to the console as Olivia Owner"), "{}", question.text());
        assert!(question.select_text("button").contains(&"Continue as Max Manager".to_string()));
        assert!(!question.body.contains("data-autosubmit") && !question.body.contains("<script"));
        let posted = browser.post_form(&format!("/console/auth/{token}"), &[("csrf_token".into(), question.csrf())]).await;
        assert_eq!(posted.status, 409);
        let console = browser.get("/console/s/demo").await;
        assert!(who(&console).contains("Olivia Owner") && !who(&console).contains("Max Manager"));
        assert_eq!(app.count("SELECT COUNT(*) FROM staff_tokens WHERE used_at IS NULL", &[]).await, 1);

        let switched = browser.submit(&question, "form", &[]).await;
        assert_eq!(switched.status, 303);
        let console = browser.get("/console/s/demo").await;
        assert!(who(&console).contains("Max Manager") && !who(&console).contains("Olivia Owner"), "{}", who(&console));
        assert_eq!(app.count("SELECT COUNT(*) FROM staff_sessions", &[]).await, 1);
    }
}
