//! The customer portal in a real browser: headless Chromium, driven through chromedriver
//! (WebDriver), walks sign-in → dashboard → billing → account → sign-out on a phone-sized and
//! on a desktop-sized window, checks on every page what a phone or keyboard user needs, and
//! saves a full-page screenshot of each step under `target/screenshots/` for review
//! (`phone-01-sign-in.png` … `desktop-06-signed-out.png`). Another test signs in to the
//! operator console and watches the facility Emails tab follow a delivery through a mail
//! server outage without a reload (`console-desktop-*.png`, then `console-phone-*.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/services chromium` installs them).
//! Each test starts its own chromedriver on a free port, with a fresh Chromium profile, and a
//! guard stops chromedriver and its Chromium when the test ends, also when it fails.

mod support;

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use latchkey::domain::EmailAddress;
use latchkey::store::Role;
use latchkey_testkit::SmtpMode;
use serde_json::{Value, json};
use support::*;

/// How long the browser may take to show what a step expects.
const STEP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Window {
    name: &'static str,
    width: u32,
    height: u32,
    /// Emulate a phone: touch, device pixel ratio 2 and the page's `<meta name=viewport>`
    /// honoured, as a phone's browser does (a narrow desktop window would ignore it, and a page
    /// without it would pass the width checks there while a phone shows it 980 px wide).
    phone: bool,
}

const PHONE: Window = Window {
    name: "phone",
    width: 375,
    height: 812,
    phone: true,
};

const DESKTOP: Window = Window {
    name: "desktop",
    width: 1280,
    height: 800,
    phone: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_walks_through_the_portal() {
    walk_through_the_portal(PHONE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_walks_through_the_portal() {
    walk_through_the_portal(DESKTOP).await;
}

async fn walk_through_the_portal(window: Window) {
    let (chromium, chromedriver) = browser_binaries();
    let app = TestApp::start(Backend::Embedded).await;
    let driver = Chromedriver::start(&chromedriver);
    let browser = Browser::open(&driver, &chromium, window).await;
    let b = &browser;

    // 1. The sign-in page.
    let page = "sign-in";
    b.goto(page, &app.url("/s/demo/sign-in")).await;
    b.wait_for_h1(page, "Customer portal").await;
    let label = b
        .find(page, Locator::XPath("//label[normalize-space()='Email']"))
        .await;
    b.find(page, Locator::Css("input[type=email][name=email]"))
        .await;
    b.find(
        page,
        Locator::XPath("//button[normalize-space()='Send sign-in link']"),
    )
    .await;
    b.check_page(page).await;
    b.screenshot(1, page).await;

    // 2. Keyboard only: the label focuses the field, type the address, Enter sends the form.
    b.click(page, &label).await;
    b.expect_focus_on(page, "email").await;
    b.type_keys(page, "alex@example.com").await;
    b.press(page, Key::Enter).await;
    let page = "check-email";
    b.wait_for_h1(page, "Check your email").await;
    b.expect_text(page, "alex@example.com").await;
    b.check_page(page).await;
    b.screenshot(2, page).await;

    // 3. The link from the email: the landing page's script posts the form by itself.
    let page = "dashboard";
    let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
    b.goto(page, &link).await;
    b.wait_for_h1(page, "Hi, Alex").await;
    let rentals = b.texts(page, ".rental h3").await;
    if rentals != ["Unit B-112, 10×10", "6-seat cart #14"] {
        b.fail(
            page,
            format!("expected Alex's two rentals, the page lists {rentals:?}"),
        );
    }
    b.check_page(page).await;
    b.screenshot(3, page).await;

    // 4. Billing from the navigation, then the Pending filter.
    let page = "billing";
    b.click_link(page, "Billing").await;
    b.wait_for_h1(page, "Billing").await;
    let all = b.texts(page, "table tbody tr td:first-child").await;
    if all.len() != 3 || !all.iter().any(|n| n == "INV-1042") {
        b.fail(
            page,
            format!("expected Alex's three invoices, the table has {all:?}"),
        );
    }
    b.expect_text(page, "Online payment is not available").await;
    b.check_page(page).await;
    let page = "billing (pending)";
    b.click_link(page, "Pending").await;
    b.wait_until(
        page,
        "the Pending filter to be the current one",
        || async move {
            b.text_of(page, ".filters a[aria-current=page]")
                .await
                .as_deref()
                == Some("Pending")
        },
    )
    .await;
    let pending = b.texts(page, "table tbody tr td:first-child").await;
    if pending != ["INV-1042"] {
        b.fail(
            page,
            format!("expected only INV-1042, the table has {pending:?}"),
        );
    }
    b.check_page(page).await;
    b.screenshot(4, "billing").await;

    // 5. Account: a new phone number, saved.
    let page = "account";
    b.click_link(page, "Account").await;
    b.wait_for_h1(page, "Account").await;
    b.check_page(page).await;
    let label = b
        .find(page, Locator::XPath("//label[normalize-space()='Phone']"))
        .await;
    b.click(page, &label).await;
    b.expect_focus_on(page, "phone").await;
    b.press_with_control(page, 'a').await;
    b.type_keys(page, "+1 207-555-0199").await;
    let save = b
        .find(
            page,
            Locator::XPath("//button[normalize-space()='Save changes']"),
        )
        .await;
    b.click(page, &save).await;
    let page = "account (saved)";
    b.wait_until(page, "\"Your details were saved.\"", || async move {
        b.text_of(page, ".notice").await.as_deref() == Some("Your details were saved.")
    })
    .await;
    let shown = b
        .js(page, "return document.getElementById('phone').value")
        .await;
    if shown != json!("+1 207-555-0199") {
        b.fail(page, format!("the Phone field shows {shown} after saving"));
    }
    let stored = app
        .rows(
            "SELECT phone FROM accounts WHERE email = $1",
            &["alex@example.com".into()],
        )
        .await;
    if stored.first().map(|r| r.string(0)).as_deref() != Some("+1 207-555-0199") {
        b.fail(page, "the new phone number is not in the database");
    }
    b.check_page(page).await;
    b.screenshot(5, "account").await;

    // 6. Sign out.
    let page = "signed-out";
    let sign_out = b
        .find(
            page,
            Locator::XPath("//button[normalize-space()='Sign out']"),
        )
        .await;
    b.click(page, &sign_out).await;
    b.wait_for_h1(page, "Customer portal").await;
    b.expect_text(page, "You are signed out.").await;
    b.check_page(page).await;
    b.screenshot(6, page).await;

    browser.close().await;
    drop(driver);
}

/// The phone window of the French walk (its own screenshots).
/// Pay waits on the server for Stripe (up to `stripe_timeout_seconds`): the button says at once
/// that Checkout is opening, cannot be pressed twice, and a polite live region says the same to
/// screen readers. Stripe never answers here, so the page stays as it was while it is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_says_at_once_that_checkout_is_opening() {
    let (chromium, chromedriver) = browser_binaries();
    let app = Setup::new(Backend::Embedded)
        .with_stripe()
        .config(|c| c.stripe_timeout_seconds = 2)
        .start()
        .await;
    app.stripe
        .as_ref()
        .expect("the fake Stripe")
        .set_fault(latchkey_testkit::stripe::Fault::Hang);
    let driver = Chromedriver::start(&chromedriver);
    let browser = Browser::open(&driver, &chromium, PHONE).await;
    let b = &browser;

    let page = "sign-in";
    b.goto(page, &app.url("/s/demo/sign-in")).await;
    b.wait_for_h1(page, "Customer portal").await;
    let field = b
        .find(page, Locator::Css("input[type=email][name=email]"))
        .await;
    b.click(page, &field).await;
    b.type_keys(page, "alex@example.com").await;
    b.press(page, Key::Enter).await;
    b.wait_for_h1("check-email", "Check your email").await;
    let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
    b.goto("dashboard", &link).await;
    b.wait_for_h1("dashboard", "Hi, Alex").await;

    let page = "billing";
    b.goto(page, &app.url("/s/demo/billing")).await;
    b.wait_for_h1(page, "Billing").await;
    // The click and the reading in one script: the submit handler runs during the click, before
    // the browser leaves for the server's answer.
    let state = b
        .js(
            page,
            "const button = document.querySelector(\"form[action$='/pay'] button\");
             const before = [button.disabled, button.textContent];
             button.click();
             return [before, button.disabled, button.getAttribute('aria-busy'), button.textContent,
                     document.getElementById('live-status').textContent];",
        )
        .await;
    let before = &state[0];
    if before[0] != json!(false) || !before[1].as_str().unwrap_or("").starts_with("Pay ") {
        b.fail(
            page,
            format!("expected an enabled Pay button first, got {before}"),
        );
    }
    let busy = json!([
        true,
        "true",
        "Opening Stripe's secure checkout…",
        "Opening Stripe's secure checkout…"
    ]);
    if state.as_array().map(|a| Value::Array(a[1..].to_vec())) != Some(busy.clone()) {
        b.fail(
            page,
            format!("expected the pressed Pay button disabled and saying so, and the live region too ({busy}); got {state}"),
        );
    }
}

const PHONE_FR: Window = Window {
    name: "phone-fr-CA",
    ..PHONE
};

/// The same walk in French (Canada) on a phone: the footer's switcher chooses French on the
/// sign-in page, and every page after it reads French, dates and amounts included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_walks_through_the_portal_in_french() {
    let (chromium, chromedriver) = browser_binaries();
    let app = TestApp::start(Backend::Embedded).await;
    let driver = Chromedriver::start(&chromedriver);
    let browser = Browser::open(&driver, &chromium, PHONE_FR).await;
    let b = &browser;

    // 1. The sign-in page, switched to French from its footer.
    let page = "sign-in";
    b.goto(page, &app.url("/s/demo/sign-in")).await;
    b.wait_for_h1(page, "Customer portal").await;
    b.click_link(page, "Français").await;
    b.wait_for_h1(page, "Portail client").await;
    let lang = b.js(page, "return document.documentElement.lang").await;
    if lang != json!("fr-CA") {
        b.fail(page, format!("<html lang> is {lang}"));
    }
    b.check_page(page).await;
    b.screenshot(1, page).await;

    // 2. Ask for a link.
    let label = b
        .find(
            page,
            Locator::XPath("//label[normalize-space()='Courriel']"),
        )
        .await;
    b.click(page, &label).await;
    b.type_keys(page, "alex@example.com").await;
    b.press(page, Key::Enter).await;
    let page = "check-email";
    b.wait_for_h1(page, "Consultez vos courriels").await;
    b.check_page(page).await;
    b.screenshot(2, page).await;

    // 3. The dashboard, then a rental.
    let page = "dashboard";
    let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
    b.goto(page, &link).await;
    b.wait_for_h1(page, "Bonjour, Alex").await;
    b.expect_text(page, "Vos locations").await;
    b.expect_text(page, " par mois").await;
    b.check_page(page).await;
    b.screenshot(3, page).await;
    let page = "rental";
    b.click_link(page, "Unit B-112, 10×10").await;
    b.wait_for_h1(page, "Unit B-112, 10×10").await;
    b.expect_text(page, "Votre réservation").await;
    b.expect_text(page, "Depuis le ").await;
    b.check_page(page).await;
    b.screenshot(4, page).await;

    // 4. Billing.
    let page = "billing";
    b.click_link(page, "Facturation").await;
    b.wait_for_h1(page, "Facturation").await;
    b.expect_text(page, "Le paiement en ligne n’est pas disponible")
        .await;
    b.expect_text(page, "À payer").await;
    b.check_page(page).await;
    b.screenshot(5, page).await;

    // 5. Account.
    let page = "account";
    b.click_link(page, "Compte").await;
    b.wait_for_h1(page, "Compte").await;
    b.expect_text(page, "Langue").await;
    b.check_page(page).await;
    b.screenshot(6, page).await;

    browser.close().await;
    drop(driver);
}

/// The operator console's owner of the demo storefront, who signs in in the console tests.
const OWNER: &str = "olivia@harborview.example";

/// Window sizes for the console test, named apart from the portal's (each `Browser::open`
/// clears the screenshots of its window name).
const CONSOLE_DESKTOP: Window = Window {
    name: "console-desktop",
    ..DESKTOP
};

const CONSOLE_PHONE: Window = Window {
    name: "console-phone",
    ..PHONE
};

/// The facility Emails tab follows a delivery in flight without a reload: console.js asks for
/// the row's status every two seconds and rewrites its badge, attempts and last error. The
/// mail server first swallows the message (the row is `sending` when the page loads), then
/// goes down (the page turns the row `deferred` by itself), then comes back (the page shows
/// `sent` with every attempt); the page is never reloaded, which a marker set on `window`
/// proves. Without the script the row would stay `sending`. Then a phone window checks the
/// console's layout, Emails tab included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_emails_tab_follows_a_delivery_without_reloading() {
    let (chromium, chromedriver) = browser_binaries();
    let app = Setup::new(Backend::Embedded)
        .with_smtp()
        .config(|c| {
            // A retry every second, for longer than the outage lasts.
            c.mail.retry_delays_seconds = vec![1.0; 60];
            // The swallowed first attempt ends when the test takes the server down, not by
            // timing out while the page is being checked.
            c.mail.smtp_timeout_seconds = 60;
        })
        .start()
        .await;
    let demo = app
        .store()
        .storefront_by_slug("demo")
        .await
        .expect("query")
        .expect("the demo storefront")
        .id;
    let owner = app
        .store()
        .create_staff(
            Some(demo),
            &EmailAddress::parse(OWNER).expect("an address"),
            "Olivia Owner",
            Role::Owner,
            chrono::Utc::now(),
        )
        .await
        .expect("the owner");
    let smtp = app.smtp().clone();
    let driver = Chromedriver::start(&chromedriver);
    let browser = Browser::open(&driver, &chromium, CONSOLE_DESKTOP).await;
    let b = &browser;

    // 1–3. Sign in to the console by the emailed link (the mail server accepts it).
    sign_in_to_console(b, &app, OWNER).await;

    // 4. A customer asks for a sign-in link; the mail server takes the message and never
    // answers, so the delivery stays `sending` while the Emails tab loads.
    smtp.set_mode(SmtpMode::StallData);
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    smtp.wait_for_stalled(1, WAIT)
        .await
        .expect("the message reaches the mail server");
    let page = "emails (sending)";
    let emails = b
        .find(
            page,
            Locator::XPath(
                "//li[h3[normalize-space()='Harborview Self Storage, Downtown']]\
                 //a[normalize-space()='Emails']",
            ),
        )
        .await;
    b.click(page, &emails).await;
    b.wait_for_h1(page, "Emails · Harborview Self Storage, Downtown")
        .await;
    let row = b.delivery_row(page, id).await;
    if !row.is("sending") || row.attempts != Some(0) {
        b.fail(
            page,
            format!("expected delivery {id} sending, no attempt finished; the row: {row:?}"),
        );
    }
    if b.texts(page, "tr[data-delivery] td[data-label=Recipient]")
        .await
        != ["alex@example.com"]
    {
        b.fail(page, "the tab should list only Alex's email");
    }
    b.check_page(page).await;
    b.screenshot(4, "emails-sending").await;
    // Gone if anything reloads the page or navigates away.
    b.js(page, "window.__latchkeyMarker = 'same page'; return null")
        .await;

    // 5. The mail server goes down: the held attempt fails, so do the retries, and the page
    // shows the row deferred with the connection error, by itself.
    smtp.set_mode(SmtpMode::Down);
    let page = "emails (deferred)";
    b.wait_until_within(
        page,
        &format!("delivery {id} to turn deferred on the page"),
        Duration::from_secs(15),
        || async move {
            let row = b.delivery_row(page, id).await;
            row.is("deferred")
                && row.attempts.is_some_and(|n| n >= 1)
                && row
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("could not connect"))
        },
    )
    .await;
    b.expect_same_page(page).await;
    // The change was said in the page's polite live region, for screen readers.
    b.expect_announced(page, id).await;
    b.screenshot(5, "emails-deferred").await;

    // 6. The mail server is back: the next retry goes out and the page shows it sent, with
    // every attempt counted, still without a reload.
    smtp.set_mode(SmtpMode::Accept);
    let page = "emails (sent)";
    b.wait_until_within(
        page,
        &format!("delivery {id} to turn sent on the page"),
        Duration::from_secs(20),
        || async move {
            let row = b.delivery_row(page, id).await;
            row.is("sent") && row.attempts.is_some_and(|n| n >= 2)
        },
    )
    .await;
    b.expect_same_page(page).await;
    let shown = b.delivery_row(page, id).await;
    b.expect_announced(page, id).await;
    let stored = app.wait_for_status(id, "sent").await;
    // The last error stays on record after the email goes out.
    let stored_error = stored.last_error.unwrap_or_default();
    if shown.attempts != u32::try_from(stored.attempts).ok()
        || shown.last_error.as_deref() != Some(stored_error.as_str())
    {
        b.fail(
            page,
            format!(
                "the page shows {:?} attempts and last error {:?}, the database has {} and \
                 {stored_error:?}",
                shown.attempts, shown.last_error, stored.attempts
            ),
        );
    }
    app.mailbox.wait_for("alex@example.com").await;
    let polls = b
        .js(
            page,
            "return performance.getEntriesByType('resource')
               .filter(e => e.name.includes('/deliveries/status?ids=')).length",
        )
        .await;
    if polls.as_u64().unwrap_or(0) < 2 {
        b.fail(
            page,
            format!("expected the page to have polled the status feed, it did so {polls} times"),
        );
    }
    b.check_page(page).await;
    b.screenshot(6, "emails-sent").await;

    // 6b. The audit log at 1,280 px: sentences, no sideways scrolling, even with long details
    // (a long webhook URL, a merge's report) and with them opened.
    let long_url = format!("https://hooks.crm.example/{}", "segment/".repeat(30));
    for (action, details) in [
        (
            "webhook_endpoint_created",
            json!({"endpoint_id": 1, "url": long_url, "event_types": ["delivery.sent", "delivery.failed", "delivery.bounced", "account.created"]}),
        ),
        (
            "merge_accounts",
            json!({"into_account_id": 7, "merged_account_id": 12, "merged_email": "alex.work@example.com", "merged_name": "Alex Martin", "moved": {"contacts": 1, "deliveries": 3, "payment_methods": 0, "sessions_ended": 1, "links_ended": 2, "stripe_customer_moved": false}}),
        ),
    ] {
        app.store()
            .audit(
                Some(demo),
                Some(&owner),
                action,
                details,
                chrono::Utc::now(),
            )
            .await
            .expect("an audit entry");
    }
    let page = "audit log";
    b.goto(page, &app.url("/console/s/demo/audit")).await;
    b.wait_for_h1(page, "Audit log").await;
    let sentences = b.texts(page, "li.audit-entry p.audit-sentence").await;
    if sentences.len() != 2
        || !sentences[0].ends_with(
            "Olivia Owner (owner) merged account #12 (Alex Martin, alex.work@example.com) into #7",
        )
        || !sentences[1].contains(&format!(
            "Olivia Owner (owner) added webhook endpoint {long_url}"
        ))
    {
        b.fail(
            page,
            format!("the audit log should read as sentences: {sentences:?}"),
        );
    }
    b.check_page(page).await;
    b.js(page, "document.querySelectorAll('li.audit-entry details').forEach(d => d.open = true); return null")
        .await;
    b.check_page(page).await;
    b.screenshot(7, "audit-log").await;
    browser.close().await;
    drop(driver);

    // 7. The console on a phone: sign-in, the storefront and the Emails tab fit the screen.
    let driver = Chromedriver::start(&chromedriver);
    let phone = Browser::open(&driver, &chromium, CONSOLE_PHONE).await;
    let b = &phone;
    sign_in_to_console(b, &app, OWNER).await;
    let page = "emails";
    let emails = b
        .find(
            page,
            Locator::XPath(
                "//li[h3[normalize-space()='Harborview Self Storage, Downtown']]\
                 //a[normalize-space()='Emails']",
            ),
        )
        .await;
    b.click(page, &emails).await;
    b.wait_for_h1(page, "Emails · Harborview Self Storage, Downtown")
        .await;
    let row = b.delivery_row(page, id).await;
    if !row.is("sent") {
        b.fail(
            page,
            format!("expected delivery {id} sent; the row: {row:?}"),
        );
    }
    b.check_page(page).await;
    b.screenshot(4, "emails").await;
    phone.close().await;
    drop(driver);
}

/// Signs a staff member in to the console as a person does: the sign-in page, the address
/// typed, the link from the email opened; ends on the storefront's console page.
async fn sign_in_to_console(b: &Browser, app: &TestApp, email: &str) {
    let page = "console sign-in";
    b.goto(page, &app.url("/console/sign-in")).await;
    b.wait_for_h1(page, "Console sign-in").await;
    let label = b
        .find(page, Locator::XPath("//label[normalize-space()='Email']"))
        .await;
    b.check_page(page).await;
    b.screenshot(1, "sign-in").await;
    let before = app.mailbox.to(email).len();
    b.click(page, &label).await;
    b.expect_focus_on(page, "email").await;
    b.type_keys(page, email).await;
    b.press(page, Key::Enter).await;
    let page = "console check-email";
    b.wait_for_h1(page, "Check your email").await;
    b.check_page(page).await;
    b.screenshot(2, "check-email").await;
    let mail = app.mailbox.nth(email, before + 1).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/console/auth/"))
        .unwrap_or_else(|| b.fail(page, format!("no console link in:\n{}", mail.text_body())));
    // The landing page's script posts the form by itself; the console goes to the storefront.
    let page = "console storefront";
    b.goto(page, &link).await;
    b.wait_for_h1(page, "Harborview Rentals").await;
    b.check_page(page).await;
    b.screenshot(3, "storefront").await;
}

/// A row of the console's Emails tab as the page shows it.
#[derive(Debug, Default)]
struct DeliveryRow {
    /// The row's `data-status`, which console.js keeps up to date.
    status: Option<String>,
    badge: Option<String>,
    badge_class: Option<String>,
    /// The badge takes more than one line (a squeezed column breaks "deferred" in two).
    badge_wrapped: bool,
    attempts: Option<u32>,
    last_error: Option<String>,
}

impl DeliveryRow {
    /// Row, badge text and badge colour all say `status`.
    fn is(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
            && self.badge.as_deref() == Some(status)
            && self.badge_class.as_deref() == Some(&format!("badge badge-{status}"))
    }
}

/// Chromium and chromedriver, or a failure that says how to install them.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let chromium = ["chromium", "chromium-browser"]
        .iter()
        .find_map(|name| on_path(name));
    let chromedriver = on_path("chromedriver");
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => (chromium, chromedriver),
        (chromium, chromedriver) => {
            let missing: Vec<&str> = [
                chromium.is_none().then_some("`chromium`"),
                chromedriver.is_none().then_some("`chromedriver`"),
            ]
            .into_iter()
            .flatten()
            .collect();
            panic!(
                "the browser tests need Chromium and chromedriver, and {} is not installed \
                 (not on PATH): run `scripts/services chromium`, which installs Debian's \
                 chromium and chromium-driver",
                missing.join(" and ")
            )
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Where the screenshots go: `screenshots/` in the target directory this test was built in.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// A chromedriver this test started, with its log and Chromium's profile in a temp dir.
/// Dropping it ends chromedriver and the Chromium it started, whatever state they are in.
struct Chromedriver {
    child: Child,
    addr: SocketAddr,
    /// Declared after `child`: the profile goes once the processes are gone.
    dir: tempfile::TempDir,
}

impl Chromedriver {
    fn start(binary: &Path) -> Self {
        let mut last_error = String::new();
        // A port picked free may be taken before chromedriver binds it: then try another.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temp dir");
            let log = std::fs::File::create(dir.path().join("chromedriver.log"))
                .expect("the chromedriver log");
            let addr = free_port();
            let child = Command::new(binary)
                .arg(format!("--port={}", addr.port()))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the chromedriver log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e}; run `scripts/services chromium`",
                        binary.display()
                    )
                });
            let mut driver = Chromedriver { child, addr, dir };
            match driver.wait_until_ready() {
                Ok(()) => return driver,
                Err(e) => last_error = e,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until chromedriver answers `GET /status` with `ready: true`.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status}): {}", self.log_tail()));
            }
            if let Some(body) = http_get(self.addr, "/status", Duration::from_millis(500))
                && let Ok(status) = serde_json::from_str::<Value>(&body)
                && status["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on {} after 10 s: {}",
                    self.addr,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let pid = self.child.id();
        // Chromium and its helpers, found now: once chromedriver is gone they have a new parent.
        let browser = descendants(pid);
        // Asked politely, chromedriver closes its sessions (so Chromium) and exits.
        let _ = http_get(self.addr, "/shutdown", Duration::from_secs(1));
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever of Chromium is still there (the same processes: same start time) is killed.
        let left: Vec<String> = browser
            .into_iter()
            .filter(|(pid, started)| process_start(*pid).as_ref() == Some(started))
            .map(|(pid, _)| pid.to_string())
            .collect();
        if !left.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&left)
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A plain HTTP GET to chromedriver, blocking (also usable in `Drop`); the body on 200.
/// chromedriver keeps the connection open, so the body is read by its Content-Length.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            let complete = match length {
                Some(length) => body.len() >= length,
                None => n == 0,
            };
            if complete {
                return head.starts_with("HTTP/1.1 200").then(|| body.to_string());
            }
        }
        if n == 0 {
            return None;
        }
    }
}

/// A process's start time (field 22 of /proc/PID/stat), to tell it from a later one with the
/// same id.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19).map(str::to_string)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Every process below `root`, with its start time.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &pid in &pids {
            if !found.contains(&pid) && parent_of(pid).is_some_and(|p| found.contains(&p)) {
                found.push(pid);
                grew = true;
            }
        }
    }
    found
        .into_iter()
        .skip(1)
        .filter_map(|pid| Some((pid, process_start(pid)?)))
        .collect()
}

/// One chromedriver command that the WebDriver standard lacks: a Chrome DevTools Protocol call
/// (for full-page screenshots).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// A browser session on one window size; every failure names the page and the window.
struct Browser {
    client: Client,
    window: Window,
    shots: PathBuf,
}

impl Browser {
    async fn open(driver: &Chromedriver, chromium: &Path, window: Window) -> Self {
        let profile = driver.profile_dir();
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={},{}", window.width, window.height),
            ],
        });
        // The viewport is exactly the window size (a headless window would lose some of its
        // height to the browser's frame otherwise).
        options["mobileEmulation"] = json!({
            "deviceMetrics": {
                "width": window.width,
                "height": window.height,
                "pixelRatio": if window.phone { 2.0 } else { 1.0 },
                "touch": window.phone,
                "mobile": window.phone,
            },
        });
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "[{}] chromedriver could not start Chromium: {e}\n{}",
                    window.name,
                    driver.log_tail()
                )
            });
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        // Old screenshots of this window size would mislead a reviewer.
        if let Ok(rd) = std::fs::read_dir(&shots) {
            for entry in rd.flatten() {
                let name = entry.file_name();
                if name
                    .to_string_lossy()
                    .starts_with(&format!("{}-", window.name))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Browser {
            client,
            window,
            shots,
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }

    #[track_caller]
    fn fail(&self, page: &str, message: impl Display) -> ! {
        panic!(
            "[{} {}×{}] {page}: {message}",
            self.window.name, self.window.width, self.window.height
        )
    }

    #[track_caller]
    fn ok<T>(&self, page: &str, what: &str, result: Result<T, CmdError>) -> T {
        result.unwrap_or_else(|e| self.fail(page, format!("{what}: {e}")))
    }

    async fn goto(&self, page: &str, url: &str) {
        let r = self.client.goto(url).await;
        self.ok(page, &format!("open {url}"), r);
    }

    async fn js(&self, page: &str, script: &str) -> Value {
        let r = self.client.execute(script, vec![]).await;
        self.ok(page, "run a script", r)
    }

    async fn find(&self, page: &str, locator: Locator<'_>) -> fantoccini::elements::Element {
        let r = self.client.find(locator).await;
        self.ok(page, &format!("find {locator:?}"), r)
    }

    async fn click(&self, page: &str, e: &fantoccini::elements::Element) {
        let r = e.click().await;
        self.ok(page, "click", r);
    }

    async fn click_link(&self, page: &str, text: &str) {
        let link = self.find(page, Locator::LinkText(text)).await;
        self.click(page, &link).await;
    }

    /// Types into whatever has the focus, as a keyboard does.
    async fn type_keys(&self, page: &str, text: &str) {
        let mut keys = KeyActions::new("keyboard".into());
        for c in text.chars() {
            keys = keys
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        let r = self.client.perform_actions(keys).await;
        self.ok(page, &format!("type {text:?}"), r);
    }

    async fn press(&self, page: &str, key: Key) {
        let value = char::from(key);
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        let r = self.client.perform_actions(keys).await;
        self.ok(page, &format!("press {key:?}"), r);
    }

    /// The focus is on the field named `name`.
    async fn expect_focus_on(&self, page: &str, name: &str) {
        let focused = self
            .js(
                page,
                "return document.activeElement.name || document.activeElement.tagName",
            )
            .await;
        if focused != json!(name) {
            self.fail(
                page,
                format!(
                    "clicking the label should focus the field {name}, the focus is on {focused}"
                ),
            );
        }
    }

    /// The trimmed text of the first element matching a CSS selector.
    async fn text_of(&self, page: &str, selector: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent.trim() : null",
            json!(selector)
        );
        self.js(page, &script).await.as_str().map(str::to_string)
    }

    /// Ctrl + a key (Ctrl+A selects a field's text).
    async fn press_with_control(&self, page: &str, value: char) {
        let control = char::from(Key::Control);
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: control })
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value })
            .then(KeyAction::Up { value: control });
        let r = self.client.perform_actions(keys).await;
        self.ok(page, &format!("press Ctrl+{value}"), r);
    }

    /// The trimmed texts of the elements matching a CSS selector.
    async fn texts(&self, page: &str, selector: &str) -> Vec<String> {
        let v = self
            .js(
                page,
                &format!(
                    "return [...document.querySelectorAll({})].map(e => e.textContent.trim())",
                    json!(selector)
                ),
            )
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    async fn wait_until<F, Fut>(&self, page: &str, what: &str, ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.wait_until_within(page, what, STEP_WAIT, ready).await;
    }

    /// Polls `ready` until it holds, for at most `limit`; a failure shows what the page shows.
    async fn wait_until_within<F, Fut>(&self, page: &str, what: &str, limit: Duration, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while !ready().await {
            if Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let text = self
                    .js(page, "return document.body ? document.body.innerText : ''")
                    .await;
                let text = text.as_str().unwrap_or_default();
                self.fail(
                    page,
                    format!(
                        "waited {limit:?} for {what}; the browser is on {} showing:\n{}",
                        url.unwrap_or_else(|e| e.to_string()),
                        text.chars().take(600).collect::<String>()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_for_h1(&self, page: &str, text: &str) {
        self.wait_until(page, &format!("the heading \"{text}\""), || async move {
            self.js(
                page,
                "return document.readyState === 'complete' && document.querySelector('h1')
                    ? document.querySelector('h1').textContent.trim() : null",
            )
            .await
                == json!(text)
        })
        .await;
    }

    /// The console Emails tab's row for delivery `id`, as the page shows it now.
    async fn delivery_row(&self, page: &str, id: i64) -> DeliveryRow {
        let script = format!(
            "const row = document.querySelector('tr[data-delivery=\"{id}\"]');
             if (!row) return null;
             const field = name => {{
               const e = row.querySelector('[data-field=\"' + name + '\"]');
               return e ? e.textContent.trim() : null;
             }};
             const badge = row.querySelector('[data-field=\"status\"]');
             return {{
               status: row.getAttribute('data-status'),
               badge: field('status'),
               badgeClass: badge ? badge.className : null,
               badgeWrapped: !!badge && badge.getBoundingClientRect().height
                 > 1.5 * parseFloat(getComputedStyle(badge).lineHeight),
               attempts: field('attempts'),
               lastError: field('last_error'),
             }};"
        );
        let v = self.js(page, &script).await;
        if v.is_null() {
            self.fail(page, format!("the page has no row for delivery {id}"));
        }
        let text = |key: &str| v[key].as_str().map(str::to_string);
        let row = DeliveryRow {
            status: text("status"),
            badge: text("badge"),
            badge_class: text("badgeClass"),
            badge_wrapped: v["badgeWrapped"] == json!(true),
            attempts: text("attempts").and_then(|a| a.parse().ok()),
            last_error: text("lastError"),
        };
        if row.badge_wrapped {
            self.fail(
                page,
                format!("the status badge of delivery {id} breaks over two lines: {row:?}"),
            );
        }
        row
    }

    /// The marker set on `window` is still there: the page was neither reloaded nor left.
    /// The Emails tab's live region (polite) says the row's current status and attempts, as
    /// console.js announces a change (row and region read at once, between two polls).
    async fn expect_announced(&self, page: &str, id: i64) {
        let facts = self
            .js(
                page,
                &format!(
                    "const r = document.getElementById('delivery-announcer');
                     const row = document.querySelector('tr[data-delivery=\"{id}\"]');
                     if (!r || !row) {{ return null; }}
                     return [r.getAttribute('aria-live'), r.getAttribute('role'), r.textContent,
                             row.getAttribute('data-status'),
                             row.querySelector('[data-field=attempts]').textContent.trim()]"
                ),
            )
            .await;
        let status = facts[3].as_str().unwrap_or("?");
        let attempts = facts[4].as_str().unwrap_or("?");
        let expected = format!(
            "Email to alex@example.com is now {status} ({attempts} attempt{}).",
            if attempts == "1" { "" } else { "s" }
        );
        let said: Option<Vec<Value>> = facts
            .as_array()
            .map(|a| a.iter().take(3).cloned().collect());
        if said != Some(vec![json!("polite"), json!("status"), json!(expected)]) {
            self.fail(
                page,
                format!("the live region should say {expected:?}: {facts}"),
            );
        }
    }

    async fn expect_same_page(&self, page: &str) {
        let marker = self
            .js(page, "return window.__latchkeyMarker || null")
            .await;
        if marker != json!("same page") {
            self.fail(
                page,
                "the page was reloaded or left (the marker set on window is gone)",
            );
        }
    }

    async fn expect_text(&self, page: &str, text: &str) {
        let body = self.js(page, "return document.body.innerText").await;
        if !body.as_str().unwrap_or_default().contains(text) {
            self.fail(page, format!("the page does not show \"{text}\""));
        }
    }

    /// What a phone or keyboard user needs, on the page as it is now.
    async fn check_page(&self, page: &str) {
        self.js(page, "window.scrollTo(0, 0); return null").await;
        let width = self.window.width;
        let facts = self.client.execute(PAGE_FACTS, vec![json!(width)]).await;
        let facts = self.ok(page, "examine the page", facts);
        let scroll_width = facts["scrollWidth"].as_u64().unwrap_or(u64::MAX);
        let inner_width = facts["innerWidth"].as_u64().unwrap_or(0);
        // A phone zooms out to fit a page that is too wide: then innerWidth grows with it.
        if scroll_width > inner_width || inner_width != u64::from(width) {
            self.fail(
                page,
                format!(
                    "the page scrolls sideways: it is {scroll_width} px wide on a {width} px \
                     screen (window.innerWidth {inner_width}); widest elements: {}",
                    facts["sticking_out"]
                ),
            );
        }
        if facts["sticking_out"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            self.fail(
                page,
                format!(
                    "elements reach past the right edge of the {width} px screen: {}",
                    facts["sticking_out"]
                ),
            );
        }
        if facts["unlabelled"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            self.fail(
                page,
                format!("inputs without a label: {}", facts["unlabelled"]),
            );
        }
        let h1s = facts["h1s"].as_array().cloned().unwrap_or_default();
        if h1s.len() != 1 {
            self.fail(
                page,
                format!("expected exactly one h1, found {}: {h1s:?}", h1s.len()),
            );
        }
        if facts["tiny_text"].as_array().is_some_and(|a| !a.is_empty()) {
            self.fail(
                page,
                format!("text smaller than 12 px: {}", facts["tiny_text"]),
            );
        }
        self.check_focus_indicators(page).await;
    }

    /// Tabs through the page from the top: each element that gets the focus shows an outline,
    /// and is on screen (the skip link appears when focused).
    async fn check_focus_indicators(&self, page: &str) {
        self.js(
            page,
            "if (document.activeElement) document.activeElement.blur();
             window.scrollTo(0, 0); return null",
        )
        .await;
        let mut seen = Vec::new();
        for _ in 0..40 {
            self.press(page, Key::Tab).await;
            let f = self.js(page, FOCUS_FACTS).await;
            let Some(name) = f["name"].as_str() else {
                break; // back to the document: every stop was visited
            };
            if seen.first() == Some(&name.to_string()) {
                break;
            }
            if f["outline"] == json!(false) {
                self.fail(
                    page,
                    format!(
                        "no visible focus indicator on {name} (outline-style {}, outline-width {})",
                        f["outlineStyle"], f["outlineWidth"]
                    ),
                );
            }
            if f["onScreen"] == json!(false) {
                self.fail(
                    page,
                    format!("{name} has the focus but is not on screen: {}", f["rect"]),
                );
            }
            seen.push(name.to_string());
        }
        if seen.is_empty() {
            self.fail(page, "Tab never focuses anything on the page");
        }
        if !seen[0].starts_with("a") {
            self.fail(
                page,
                format!("the first Tab stop is {}, not a link", seen[0]),
            );
        }
        self.js(
            page,
            "if (document.activeElement) document.activeElement.blur();
             window.scrollTo(0, 0); return null",
        )
        .await;
    }

    /// A full-page screenshot, `{window}-{nn}-{name}.png`.
    async fn screenshot(&self, n: u32, name: &str) {
        let page = format!("screenshot {name}");
        let metrics = self
            .client
            .issue_cmd(Cdp {
                cmd: "Page.getLayoutMetrics",
                params: json!({}),
            })
            .await;
        let metrics = self.ok(&page, "measure the page", metrics);
        let size = &metrics["cssContentSize"];
        let width = size["width"]
            .as_f64()
            .unwrap_or(f64::from(self.window.width));
        let height = size["height"]
            .as_f64()
            .unwrap_or(f64::from(self.window.height));
        let shot = self
            .client
            .issue_cmd(Cdp {
                cmd: "Page.captureScreenshot",
                params: json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            })
            .await;
        let shot = self.ok(&page, "take a screenshot", shot);
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| self.fail(&page, format!("the screenshot is not base64: {e}")));
        let path = self
            .shots
            .join(format!("{}-{n:02}-{name}.png", self.window.name));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| self.fail(&page, format!("write {}: {e}", path.display())));
    }
}

/// Facts about the page for `check_page`, as JSON; `arguments[0]` is the expected width.
const PAGE_FACTS: &str = r#"
const de = document.documentElement;
const edge = Math.min(de.clientWidth, arguments[0]);
const describe = e => {
  let s = e.tagName.toLowerCase();
  if (e.id) s += '#' + e.id;
  if (typeof e.className === 'string' && e.className.trim()) s += '.' + e.className.trim().split(/\s+/).join('.');
  const text = (e.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
  return text ? s + ' "' + text + '"' : s;
};
const visible = e => {
  const r = e.getBoundingClientRect();
  const cs = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden' && cs.display !== 'none';
};
// Inside something that scrolls or clips sideways itself, sticking out is that thing's business.
const clipped = e => {
  for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
  }
  return false;
};
const all = [...document.body.querySelectorAll('*')];
const sticking = all
  .filter(e => visible(e) && !clipped(e) && e.getBoundingClientRect().right > edge + 0.5)
  .map(e => ({ e, right: e.getBoundingClientRect().right }))
  .sort((a, b) => b.right - a.right)
  .slice(0, 5)
  .map(x => describe(x.e) + ' (right edge at ' + Math.round(x.right) + ' px)');
const tiny = all
  .filter(e => visible(e) && [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
  .filter(e => parseFloat(getComputedStyle(e).fontSize) < 12)
  .slice(0, 5)
  .map(e => describe(e) + ' (' + getComputedStyle(e).fontSize + ')');
return {
  innerWidth: window.innerWidth,
  clientWidth: de.clientWidth,
  scrollWidth: Math.max(de.scrollWidth, document.body.scrollWidth),
  sticking_out: sticking,
  unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !e.labels || e.labels.length === 0)
    .map(e => e.outerHTML.slice(0, 120)),
  h1s: [...document.querySelectorAll('h1')].map(h => h.textContent.trim()),
  tiny_text: tiny,
};
"#;

/// The focused element, its outline and whether it is on screen, as JSON.
const FOCUS_FACTS: &str = r#"
const e = document.activeElement;
if (!e || e === document.body || e === document.documentElement) return { name: null };
const cs = getComputedStyle(e);
const r = e.getBoundingClientRect();
let name = e.tagName.toLowerCase();
if (e.id) name += '#' + e.id;
const text = (e.textContent || e.value || '').trim().replace(/\s+/g, ' ').slice(0, 30);
if (text) name += ' "' + text + '"';
return {
  name,
  outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0,
  outlineStyle: cs.outlineStyle,
  outlineWidth: cs.outlineWidth,
  onScreen: r.right > 0 && r.bottom > 0 && r.left < window.innerWidth && r.top < window.innerHeight,
  rect: [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)],
};
"#;
