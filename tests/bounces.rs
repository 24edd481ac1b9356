//! Bounces end to end (SPEC §9): the product sends sign-in emails with a VERP Return-Path to
//! the test's SMTP server; the test answers them as real MTAs do (Postfix, Exim, Exchange and
//! Gmail delivery status notifications, an ARF complaint), over SMTP to the bounce listener on
//! its real socket; the delivery ends `bounced` / `complained` with the diagnostic on its
//! history, the address is suppressed (the next link is recorded, not sent, and the sign-in page
//! answers as for any address) until Lift. Forged VERP addresses are refused at RCPT, and
//! malformed reports and MIME bombs are refused or ignored with nothing changed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use latchkey::domain::EmailAddress;
use latchkey::mail::bounce::verp_address;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const BOUNCE_DOMAIN: &str = "bounces.latchkey.test";
const DEMO_DOMAIN: &str = "bounces.demo-storage.test";

/// The application with the bounce listener on a free port, sending over SMTP (so the test
/// sees the envelope), with room for many links to one address.
async fn start(backend: Backend) -> TestApp {
    Setup::new(backend)
        .with_smtp()
        .config(|c| {
            c.bounces.listen = Some("127.0.0.1:0".parse().unwrap());
            c.bounces.domain = Some(BOUNCE_DOMAIN.into());
            c.sign_in.per_account_max = 100;
            c.sign_in.account_ceiling_max = 100;
        })
        .start()
        .await
}

fn listener(app: &TestApp) -> SocketAddr {
    app.app()
        .bounce_addr
        .expect("the bounce listener runs with the workers")
}

/// A minimal SMTP client, as an MTA delivering a bounce talks.
struct Smtp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Smtp {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("the listener answers");
        let (read, writer) = stream.into_split();
        let mut s = Self {
            reader: BufReader::new(read),
            writer,
        };
        let (code, text) = s.reply().await;
        assert_eq!(code, 220, "{text}");
        assert_eq!(s.command("EHLO mx.customer-isp.example").await, 250);
        s
    }

    async fn reply(&mut self) -> (u16, String) {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("a reply in time")
                .expect("read");
            assert!(n > 0, "the listener closed the connection after: {all}");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return (line[..3].parse().expect("a reply code"), all);
            }
        }
    }

    async fn command(&mut self, line: &str) -> u16 {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await.0
    }

    /// DATA with the message (line ends made CRLF, dot-stuffed); the final reply.
    async fn data(&mut self, raw: &[u8]) -> (u16, String) {
        assert_eq!(self.command("DATA").await, 354);
        let text = String::from_utf8_lossy(raw);
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with('.') {
                out.push(b'.');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.writer.write_all(&out).await.unwrap();
        self.reply().await
    }

    /// One message from the null sender to `rcpt`: the RCPT reply, then DATA's (if accepted).
    async fn deliver(&mut self, rcpt: &str, raw: &[u8]) -> (u16, Option<(u16, String)>) {
        assert_eq!(self.command("MAIL FROM:<>").await, 250);
        let rcpt_code = self.command(&format!("RCPT TO:<{rcpt}>")).await;
        if rcpt_code != 250 {
            assert_eq!(self.command("RSET").await, 250);
            return (rcpt_code, None);
        }
        (rcpt_code, Some(self.data(raw).await))
    }
}

/// Sends one report over a fresh connection; the DATA reply code.
async fn send_report(app: &TestApp, rcpt: &str, raw: &[u8]) -> u16 {
    send_report_to(listener(app), rcpt, raw).await
}

async fn send_report_to(addr: SocketAddr, rcpt: &str, raw: &[u8]) -> u16 {
    let mut smtp = Smtp::connect(addr).await;
    let (rcpt_code, data) = smtp.deliver(rcpt, raw).await;
    assert_eq!(rcpt_code, 250, "the VERP address {rcpt} is accepted");
    let (code, text) = data.unwrap();
    assert_eq!(smtp.command("QUIT").await, 221);
    assert!(code == 250 || code >= 500, "{text}");
    code
}

/// A fixture in the shape of a real MTA's report, about our email: its VERP address and the
/// failed recipient replaced by the ones of the email the product sent.
fn fixture(name: &str, fixture_rcpt: &str, verp: &str, rcpt: &str) -> Vec<u8> {
    let text = fixture_at(name, verp);
    assert!(text.contains(fixture_rcpt), "{name} names {fixture_rcpt}");
    text.replace(fixture_rcpt, rcpt).into_bytes()
}

/// A fixture sent to `verp` instead of the VERP address it was written for.
fn fixture_at(name: &str, verp: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let verp_re =
        regex::Regex::new(r"bounces\+\d+-[0-9a-f]+@bounces\.harborview\.example").unwrap();
    assert!(verp_re.is_match(&text), "{name} carries a VERP address");
    verp_re.replace_all(&text, verp).into_owned()
}

/// Asks for a sign-in link for `email` and waits for it at the SMTP server; the delivery and
/// the envelope sender it arrived with.
async fn sent_link(app: &TestApp, email: &str) -> (i64, String) {
    let before = app.mailbox.to(email).len();
    let id = app.request_link(&app.browser(), email).await;
    app.wait_for_status(id, "sent").await;
    let mail = app.mailbox.nth(email, before + 1).await;
    (id, mail.mail_from)
}

fn expected_verp(app: &TestApp, id: i64, domain: &str) -> String {
    verp_address(&app.app().services.keys, id, domain)
}

async fn suppression(app: &TestApp, id: i64, email: &str) -> Option<latchkey::store::Suppression> {
    let d = app.store().delivery(id).await.unwrap().unwrap();
    app.store()
        .suppression_for(d.storefront_id, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
}

async fn lift(app: &TestApp, id: i64, email: &str) {
    let s = suppression(app, id, email).await.expect("suppressed");
    app.store()
        .lift_suppression(
            s.storefront_id,
            s.id,
            "owner@demo.example",
            None,
            app.clock_now(),
        )
        .await
        .unwrap()
        .expect("lifted");
}

/// Everything a report could change, to compare before and after bad input.
async fn footprint(app: &TestApp) -> (i64, i64, Vec<String>) {
    let attempts = app
        .count("SELECT COUNT(*) FROM delivery_attempts", &[])
        .await;
    let suppressions = app.count("SELECT COUNT(*) FROM suppressions", &[]).await;
    let statuses = app
        .rows("SELECT status FROM deliveries ORDER BY id", &[])
        .await
        .iter()
        .map(|r| r.string(0))
        .collect();
    (attempts, suppressions, statuses)
}

both_backends! {
    async fn a_postfix_hard_bounce_suppresses_the_address_until_lifted(backend: Backend) {
        let app = start(backend).await;
        let (id, mail_from) = sent_link(&app, "alex@example.com").await;
        assert_eq!(mail_from, expected_verp(&app, id, BOUNCE_DOMAIN), "the envelope sender is the VERP address");
        assert!(mail_from.starts_with(&format!("bounces+{id}-")));

        let dsn = fixture("postfix_hard_bounce.eml", "alex@customer-isp.example", &mail_from, "alex@example.com");
        assert_eq!(send_report(&app, &mail_from, &dsn).await, 250);

        let bounced = app.wait_for_status(id, "bounced").await;
        assert!(bounced.last_error.unwrap().contains("User unknown"));
        let last = app.attempts(id).await.pop().unwrap();
        assert_eq!(last.outcome, "bounced");
        assert!(last.detail.contains("5.1.1") && last.detail.contains("Recipient address rejected"), "{}", last.detail);
        assert_eq!(last.worker, "mail.customer-isp.example");
        let s = suppression(&app, id, "alex@example.com").await.expect("the address is suppressed");
        assert_eq!(s.delivery_id, Some(id));
        assert_eq!(s.reason.as_str(), "hard_bounce");

        // The next link is recorded `suppressed` and never reaches the SMTP server; the page
        // answers as it does for an address with no account.
        let browser = app.browser();
        let page = browser.get("/s/demo/sign-in").await;
        let suppressed = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "alex@example.com")]).await;
        let fresh = browser.submit_followed(&page, "form[action$='/sign-in']", &[("email", "nobody@example.com")]).await;
        assert_eq!(suppressed.status, fresh.status);
        assert_eq!(
            suppressed.text().replace("alex@example.com", "ADDRESS"),
            fresh.text().replace("nobody@example.com", "ADDRESS"),
        );
        let next = app.latest_delivery_to("alex@example.com").await;
        assert_ne!(next.id, id);
        assert_eq!(next.status.as_str(), "suppressed");
        assert!(next.last_error.unwrap().contains("suppression list"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(app.mailbox.to("alex@example.com").len(), 1, "nothing more was sent");
        assert_eq!(app.store().delivery(next.id).await.unwrap().unwrap().status.as_str(), "suppressed");

        // Lift restores sending.
        lift(&app, id, "alex@example.com").await;
        let (again, _) = sent_link(&app, "alex@example.com").await;
        assert_ne!(again, next.id);
        assert_eq!(app.mailbox.to("alex@example.com").len(), 2);

        // Accepted reports are counted.
        let metrics = reqwest::get(app.ops_url("/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("latchkey_bounce_reports_total{outcome=\"bounced\"} 1"), "{metrics}");
    }

    async fn dsns_in_the_shapes_of_exim_exchange_and_gmail_bounce_their_emails(backend: Backend) {
        let app = start(backend).await;
        let cases = [
            ("exim_dsn.eml", "jordan@lakeside-mail.example", "mailbox disabled"),
            ("exchange_ndr.eml", "riley@contoso-storage.example", "RecipientNotFound"),
            ("gmail_bounce.eml", "morgan.nosuchuser@gmail.com", "does not exist"),
        ];
        for (name, fixture_rcpt, diagnostic) in cases {
            let (id, verp) = sent_link(&app, "sam@example.com").await;
            assert_eq!(verp, expected_verp(&app, id, BOUNCE_DOMAIN));
            let dsn = fixture(name, fixture_rcpt, &verp, "sam@example.com");
            assert_eq!(send_report(&app, &verp, &dsn).await, 250, "{name}");
            let bounced = app.wait_for_status(id, "bounced").await;
            assert!(bounced.last_error.clone().unwrap().contains(diagnostic), "{name}: {:?}", bounced.last_error);
            let last = app.attempts(id).await.pop().unwrap();
            assert_eq!(last.outcome, "bounced", "{name}");
            assert!(last.detail.contains(diagnostic), "{name}: {}", last.detail);
            assert!(suppression(&app, id, "sam@example.com").await.is_some(), "{name}: suppressed");
            lift(&app, id, "sam@example.com").await;
        }
    }

    async fn an_arf_complaint_marks_the_email_complained_and_suppresses(backend: Backend) {
        let app = start(backend).await;
        let (id, verp) = sent_link(&app, "alex@example.com").await;
        let arf = fixture("arf_abuse.eml", "taylor@hotmail.example", &verp, "alex@example.com");
        assert_eq!(send_report(&app, &verp, &arf).await, 250);
        let complained = app.wait_for_status(id, "complained").await;
        assert!(complained.last_error.unwrap().contains("abuse"));
        let last = app.attempts(id).await.pop().unwrap();
        assert_eq!(last.outcome, "complained");
        assert_eq!(last.worker, "mail.hotmail.example");
        let s = suppression(&app, id, "alex@example.com").await.expect("suppressed");
        assert_eq!(s.reason.as_str(), "complaint");
        // The same report again changes nothing more.
        assert_eq!(send_report(&app, &verp, &arf).await, 250);
        assert_eq!(app.store().delivery(id).await.unwrap().unwrap().status.as_str(), "complained");
        assert_eq!(app.count("SELECT COUNT(*) FROM suppressions", &[]).await, 1);
    }

    async fn a_4xx_dsn_records_delayed_only(backend: Backend) {
        let app = start(backend).await;
        let (id, verp) = sent_link(&app, "sam@example.com").await;
        let dsn = fixture("postfix_delayed.eml", "sam@storage-co.example", &verp, "sam@example.com");
        assert_eq!(send_report(&app, &verp, &dsn).await, 250);
        let deadline = std::time::Instant::now() + WAIT;
        let last = loop {
            let last = app.attempts(id).await.pop().unwrap();
            if last.outcome != "sent" || std::time::Instant::now() > deadline {
                break last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((last.outcome.as_str(), last.smtp_code), ("delayed", Some(450)));
        assert!(last.detail.contains("4.4.1"), "{}", last.detail);
        assert_eq!(app.store().delivery(id).await.unwrap().unwrap().status.as_str(), "sent");
        assert!(suppression(&app, id, "sam@example.com").await.is_none());
        // The address still gets email.
        sent_link(&app, "sam@example.com").await;
    }

    async fn a_storefront_bounce_domain_overrides_the_global_one(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| {
                c.bounces.listen = Some("127.0.0.1:0".parse().unwrap());
                c.bounces.domain = Some(BOUNCE_DOMAIN.into());
                c.bounces.storefront_domains.insert("demo".into(), DEMO_DOMAIN.into());
            })
            .start()
            .await;
        let (id, verp) = sent_link(&app, "alex@example.com").await;
        assert_eq!(verp, expected_verp(&app, id, DEMO_DOMAIN));
        let dsn = fixture("postfix_hard_bounce.eml", "alex@customer-isp.example", &verp, "alex@example.com");
        assert_eq!(send_report(&app, &verp, &dsn).await, 250);
        app.wait_for_status(id, "bounced").await;
    }

    async fn forged_verp_addresses_are_refused_at_rcpt(backend: Backend) {
        let app = start(backend).await;
        let (id, verp) = sent_link(&app, "alex@example.com").await;
        let before = footprint(&app).await;
        let mac = &verp[verp.find('-').unwrap() + 1..verp.find('@').unwrap()];
        let flipped = format!("{}{}", &mac[..11], if mac.ends_with('0') { '1' } else { '0' });
        let forged = [
            format!("bounces+{id}-{flipped}@{BOUNCE_DOMAIN}"),
            format!("bounces+{}-{mac}@{BOUNCE_DOMAIN}", id + 1),
            expected_verp(&app, id, "bounces.elsewhere.test"),
            expected_verp(&app, id, &format!("sub.{BOUNCE_DOMAIN}")),
            format!("postmaster@{BOUNCE_DOMAIN}"),
            "alex@example.com".to_string(),
        ];
        let mut smtp = Smtp::connect(listener(&app)).await;
        for rcpt in &forged {
            let dsn = fixture("postfix_hard_bounce.eml", "alex@customer-isp.example", rcpt, "alex@example.com");
            let (code, data) = smtp.deliver(rcpt, &dsn).await;
            assert_eq!(code, 550, "{rcpt} is refused at RCPT");
            assert!(data.is_none());
        }
        // DATA without an accepted recipient is refused too.
        assert_eq!(smtp.command("MAIL FROM:<>").await, 250);
        assert_eq!(smtp.command(&format!("RCPT TO:<{}>", forged[0])).await, 550);
        assert_eq!(smtp.command("DATA").await, 554);
        assert_eq!(smtp.command("QUIT").await, 221);
        assert_eq!(footprint(&app).await, before, "nothing changed");
        assert_eq!(app.store().delivery(id).await.unwrap().unwrap().status.as_str(), "sent");
    }

    async fn bad_input_is_refused_or_ignored_and_the_listener_stays_healthy(backend: Backend) {
        let app = start(backend).await;
        let (id, verp) = sent_link(&app, "alex@example.com").await;
        let before = footprint(&app).await;

        // Claims to be a DSN but has no delivery-status part.
        let malformed = format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: {verp}\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nStatus: 5.1.1 (not really)\r\n--b--\r\n"
        );
        // Over the size cap.
        let huge = format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: {verp}\r\nSubject: x\r\n\r\n{}",
            format!("{}\r\n", "A".repeat(76)).repeat(15_000)
        );
        assert!(huge.len() > latchkey::mail::bounce::MAX_REPORT_BYTES);
        // Multiparts nested deeper than the parser goes.
        let depth = latchkey::mail::bounce::MAX_MIME_DEPTH + 5;
        let mut deep = String::from("From: MAILER-DAEMON@mx.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n");
        for level in 0..depth {
            deep.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"));
        }
        deep.push_str("Content-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\nAction: failed\r\n");
        for level in (0..depth).rev() {
            deep.push_str(&format!("--b{level}--\r\n"));
        }
        // Too many parts.
        let mut many = String::from(
            "From: MAILER-DAEMON@mx.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"m\"\r\n\r\n",
        );
        for _ in 0..latchkey::mail::bounce::MAX_MIME_PARTS + 20 {
            many.push_str("--m\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        many.push_str("--m\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; alex@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--m--\r\n");
        let plain = fixture_at("plain_email.eml", &verp).into_bytes();
        let auto_reply = fixture_at("auto_reply.eml", &verp).into_bytes();

        let cases: [(&str, &[u8], u16); 6] = [
            ("malformed DSN", malformed.as_bytes(), 250),
            ("huge report", huge.as_bytes(), 552),
            ("deep nesting", deep.as_bytes(), 554),
            ("many parts", many.as_bytes(), 554),
            ("plain email", &plain, 250),
            ("auto-reply", &auto_reply, 250),
        ];
        let mut smtp = Smtp::connect(listener(&app)).await;
        for (what, raw, code) in cases {
            let (rcpt, data) = smtp.deliver(&verp, raw).await;
            assert_eq!(rcpt, 250, "{what}");
            let (got, text) = data.unwrap();
            assert_eq!(got, code, "{what}: {text}");
            // The same connection still answers.
            assert_eq!(smtp.command("NOOP").await, 250, "{what}");
            assert_eq!(footprint(&app).await, before, "{what}: nothing changed");
        }
        assert_eq!(smtp.command("QUIT").await, 221);
        assert_eq!(app.store().delivery(id).await.unwrap().unwrap().status.as_str(), "sent");

        // And a genuine report afterwards is still recorded.
        let dsn = fixture("postfix_hard_bounce.eml", "alex@customer-isp.example", &verp, "alex@example.com");
        assert_eq!(send_report(&app, &verp, &dsn).await, 250);
        app.wait_for_status(id, "bounced").await;
    }
}

#[test]
fn latchkey_bounces_requires_a_listen_address() {
    let mut config = latchkey::config::Config::defaults();
    config.bounces.domain = Some(BOUNCE_DOMAIN.into());
    config.ops_listen = "127.0.0.1:0".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.data_dir = dir.path().to_path_buf();
    config.database_url = format!("sqlite://{}", dir.path().join("db.sqlite").display()).into();
    config.mail_url = format!("file://{}", dir.path().join("outbox").display()).into();
    let err = latchkey::app::App::start(
        config,
        latchkey::app::AppOptions {
            web: false,
            workers: Some(false),
            bounces: Some(true),
            ..Default::default()
        },
    )
    .err()
    .expect("no listener to run");
    let text = err.to_string();
    assert!(text.contains("bounces.listen"), "{text}");
}

/// `latchkey bounces` runs the listener on its own (configured by the environment), records
/// what it receives in the shared database, and stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latchkey_bounces_runs_the_listener_alone_and_stops_on_sigterm() {
    let app = start(Backend::Postgres).await;
    let (id, verp) = sent_link(&app, "alex@example.com").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = app
        .command(&["bounces"])
        .env("LATCHKEY_BOUNCES__LISTEN", addr.to_string())
        .env("LATCHKEY_BOUNCES__DOMAIN", BOUNCE_DOMAIN)
        .spawn()
        .expect("latchkey bounces starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "latchkey bounces never listened on {addr}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "latchkey bounces exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dsn = fixture(
        "postfix_hard_bounce.eml",
        "alex@customer-isp.example",
        &verp,
        "alex@example.com",
    );
    assert_eq!(send_report_to(addr, &verp, &dsn).await, 250);
    app.wait_for_status(id, "bounced").await;

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "SIGTERM shuts down cleanly: {status:?}");
}
