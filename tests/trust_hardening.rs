//! Hardening (SPEC §8): disabling a staff user from the command line ends their console at
//! once; HSTS under an https public URL; the file outbox readable by its owner only.

mod support;

use chrono::Utc;
use latchkey::domain::EmailAddress;
use latchkey::store::Role;
use support::*;

const STAN: &str = "stan@harborview.example";

/// Runs `latchkey admin …` against the test application's database.
fn admin(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = app
        .command(&[&["admin"], args].concat())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asks for a console link for `email`; the number of console links on record for them.
async fn request_console_link(app: &TestApp, browser: &Browser, email: &str) -> i64 {
    let page = browser.get("/console/sign-in").await;
    let sent = browser
        .submit_followed(
            &page,
            "form[action='/console/sign-in']",
            &[("email", email)],
        )
        .await;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.h1(), "Check your email");
    app.count(
        "SELECT COUNT(*) FROM staff_tokens t JOIN staff_users u ON u.id = t.staff_user_id WHERE u.email = $1",
        &[email.into()],
    )
    .await
}

fn console_link(mail: &latchkey_testkit::ReceivedEmail) -> String {
    mail.links()
        .into_iter()
        .find(|l| l.contains("/console/auth/"))
        .expect("a console link")
}

both_backends! {
    async fn disabling_a_staff_user_ends_their_console_sessions_and_links(backend: Backend) {
        let app = TestApp::start(backend).await;
        let demo = app.store().storefront_by_slug("demo").await.unwrap().unwrap().id;
        app.store()
            .create_staff(Some(demo), &EmailAddress::parse(STAN).unwrap(), "Stan Staff", Role::Staff, Utc::now())
            .await
            .unwrap();

        // Signed in in one browser, with a second link waiting unused in the mailbox.
        let browser = app.browser();
        assert_eq!(request_console_link(&app, &browser, STAN).await, 1);
        let first = console_link(&app.mailbox.nth(STAN, 1).await);
        let landing = browser.get_url(&first).await;
        let signed_in = browser.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);
        // Signed in, the console sends them on to their storefront's pages.
        let console = browser.get("/console").await;
        assert_ne!(console.location().as_deref(), Some("/console/sign-in"));
        assert_eq!(browser.follow(&console).await.status, 200);
        let other = app.browser();
        assert_eq!(request_console_link(&app, &other, STAN).await, 2);
        let unused = console_link(&app.mailbox.nth(STAN, 2).await);

        let (ok, out) = admin(&app, &["staff", "disable", "--email", STAN]);
        assert!(ok, "{out}");
        assert!(out.contains("disabled"), "{out}");

        // The session is gone: the console sends the browser to sign in.
        let console = browser.get("/console").await;
        assert_eq!(console.status, 303);
        assert_eq!(console.location().unwrap(), "/console/sign-in");
        // The unused link no longer works.
        assert_eq!(other.get_url(&unused).await.status, 410);
        // A new request looks the same to the requester but issues no link.
        assert_eq!(request_console_link(&app, &other, STAN).await, 2);
        // The audit log names it.
        assert_eq!(
            app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.disabled'", &[]).await,
            1
        );
        // Disabling twice says so; enabling lets them back in.
        let (ok, out) = admin(&app, &["staff", "disable", "--email", STAN]);
        assert!(!ok, "{out}");
        let (ok, out) = admin(&app, &["staff", "enable", "--email", STAN]);
        assert!(ok, "{out}");
        assert_eq!(request_console_link(&app, &other, STAN).await, 3);
    }
}

both_backends! {
    async fn https_public_urls_get_hsts_and_http_ones_do_not(backend: Backend) {
        let plain = TestApp::start(backend).await;
        let page = plain.browser().get("/s/demo/sign-in").await;
        assert_eq!(page.status, 200);
        assert!(page.headers.get("strict-transport-security").is_none());

        let https = TestApp::start_with(
            Setup::new(backend).config(|c| c.public_url = "https://portal.example.com".into()),
        )
        .await;
        for path in ["/s/demo/sign-in", "/healthz", "/s/nowhere/"] {
            let page = https.browser().get(path).await;
            assert_eq!(
                page.headers.get("strict-transport-security").and_then(|v| v.to_str().ok()),
                Some("max-age=31536000"),
                "{path}"
            );
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_outbox_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::start(Backend::Embedded).await;
    let browser = app.browser();
    app.request_link(&browser, "alex@example.com").await;
    app.mailbox.wait_for("alex@example.com").await;
    let outbox = app.dir.path().join("outbox");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&outbox), 0o700);
    let emails: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert!(!emails.is_empty());
    for email in emails {
        assert_eq!(mode(&email), 0o600, "{}", email.display());
    }
}
