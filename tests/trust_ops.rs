//! Operations you can trust (SPEC §8): metrics and detailed readiness only on the operations
//! port, of `serve` and of `worker`; web readiness that survives a broker outage; a request id
//! on every response and in the request's log lines; graceful shutdown of web and worker
//! processes; no second email when the outcome write meets a database outage; a body read
//! timeout and a cap on open connections.

mod support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey::app::{App, AppOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

/// The value of an unlabelled metric (or a labelled one, given the whole series name).
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn ops_metric(app: &TestApp, series: &str) -> f64 {
    let body = reqwest::get(app.ops_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(&body, series).unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

/// Waits until a metric on an operations port reaches `want`.
async fn wait_for_metric(ops_url: &str, series: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = match reqwest::get(format!("{ops_url}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if metric(&body, series) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {want}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads one HTTP/1.1 response (headers, and a body of Content-Length bytes) from a stream.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return String::from_utf8_lossy(&buf).to_string();
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header_of(response: &str, name: &str) -> Option<String> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The CSRF cookie and token of the sign-in page, for hand-made POSTs.
async fn csrf(base: &str) -> (String, String) {
    let browser = Browser::new(base);
    let page = browser.get("/s/demo/sign-in").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lk_csrf="))
        .expect("a CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, fields) = page.form("form[action$='/sign-in']");
    let token = fields
        .into_iter()
        .find(|(n, _)| n == "csrf_token")
        .expect("a csrf_token field")
        .1;
    (cookie, token)
}

both_backends! {
    async fn metrics_and_readiness_are_on_the_operations_port_only(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        // A stranger asks about an address that has no account.
        let page = browser.get("/s/demo/sign-in").await;
        let sent = browser
            .submit_followed(&page, "form[action$='/sign-in']", &[("email", "nobody@example.com")])
            .await;
        assert_eq!(sent.status, 200);

        // The public port: liveness only; the counters that tell customers apart are not there.
        assert_eq!(browser.get("/healthz").await.status, 200);
        let public_metrics = browser.get("/metrics").await;
        assert_eq!(public_metrics.status, 404);
        assert!(!public_metrics.body.contains("latchkey_"));
        assert_eq!(browser.get("/readyz").await.status, 404);

        // The operations port: metrics, detailed readiness, liveness; nothing else.
        let metrics = browser.get_url(&app.ops_url("/metrics")).await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains("latchkey_sign_in_requests_total{outcome=\"no_account\"} 1"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.contains("latchkey_http_open_connections"));
        let ready = browser.get_url(&app.ops_url("/readyz")).await;
        assert_eq!(ready.status, 200);
        let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
        assert_eq!(body["status"], "ready");
        assert_eq!(body["role"], "web");
        assert_eq!(body["database"], "ok");
        assert_eq!(body["queue"], "ok");
        assert_eq!(browser.get_url(&app.ops_url("/healthz")).await.status, 200);
        assert_eq!(browser.get_url(&app.ops_url("/s/demo/sign-in")).await.status, 404);
        assert_ne!(app.app().ops_addr, app.app().addr.unwrap());
    }

    async fn every_response_carries_a_request_id(backend: Backend) {
        let app = Setup::new(backend)
            .config(|c| {
                c.rate_limit.ip_per_second = 1;
                c.rate_limit.ip_burst = 3;
            })
            .start()
            .await;
        let browser = app.browser();
        let mut seen = std::collections::HashSet::new();
        let mut check = |what: &str, page: &Page, status: u16| {
            assert_eq!(page.status, status, "{what}: {}", page.body);
            let id = page
                .headers
                .get("x-request-id")
                .unwrap_or_else(|| panic!("{what}: no X-Request-Id"))
                .to_str()
                .unwrap()
                .to_string();
            assert!(id.len() >= 16, "{what}: {id}");
            assert!(seen.insert(id), "{what}: the id repeats");
        };
        check("page", &browser.get("/s/demo/sign-in").await, 200);
        check("redirect", &browser.get("/s/demo/dashboard").await, 303);
        check("404", &browser.get("/s/demo/no-such-page").await, 404);
        check("unknown storefront", &browser.get("/s/nowhere/").await, 404);
        check("static", &browser.get("/static/app.css").await, 200);
        check("health", &browser.get("/healthz").await, 200);
        check("405", &browser.post_raw("/healthz", "text/plain", vec![]).await, 405);
        check("API error", &browser.get("/api/v1/deliveries").await, 401);
        check(
            "API bad JSON",
            &Browser::new(&app.app().url())
                .post_raw("/api/v1/accounts", "application/json", b"{".to_vec())
                .await,
            401,
        );
        // The per-IP limit on link visits answers 429.
        let mut limited = None;
        for _ in 0..10 {
            let page = browser.get("/s/demo/auth/not-a-real-token").await;
            if page.status == 429 {
                limited = Some(page);
                break;
            }
            check("link visit", &page, page.status);
        }
        check("429", &limited.expect("the IP limit answers 429"), 429);
        check("ops metrics", &browser.get_url(&app.ops_url("/metrics")).await, 200);
        check("ops 404", &browser.get_url(&app.ops_url("/nothing")).await, 404);

        // An id sent by a client that is not a trusted proxy is not taken.
        let resp = reqwest::Client::new()
            .get(app.url("/healthz"))
            .header("x-request-id", "chosen-by-the-client-0001")
            .send()
            .await
            .unwrap();
        assert_ne!(resp.headers()["x-request-id"], "chosen-by-the-client-0001");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_passes_its_request_id_when_it_is_sane() {
    let app = Setup::new(Backend::Embedded)
        .config(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
        .start()
        .await;
    let client = reqwest::Client::new();
    let id_for = |sent: &'static str| {
        let client = client.clone();
        let url = app.url("/s/demo/sign-in");
        async move {
            let resp = client
                .get(url)
                .header("x-request-id", sent)
                .send()
                .await
                .unwrap();
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(
        id_for("6f1c2a9e-1f0b-4c55-9d7e-2b8f3c4d5e6f").await,
        "6f1c2a9e-1f0b-4c55-9d7e-2b8f3c4d5e6f"
    );
    // Not sane: spaces, quotes, a line of HTML, or far too long; a fresh id instead.
    for bad in [
        "two words",
        "<script>alert(1)</script>",
        "\"quoted\"",
        Box::leak("x".repeat(200).into_boxed_str()) as &'static str,
    ] {
        let got = id_for(bad).await;
        assert_ne!(got, bad);
        assert_eq!(got.len(), 32, "{got}");
        assert!(got.chars().all(|c| c.is_ascii_hexdigit()), "{got}");
    }
}

/// Collects the application's log lines (JSON) in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_lines_of_a_request_carry_its_id() {
    let logs = Captured::default();
    let installed = tracing_subscriber::fmt()
        .json()
        .with_writer(logs.clone())
        .with_env_filter("warn")
        .try_init()
        .is_ok();
    if !installed {
        // Another test of this process installed a subscriber first (cargo test, not nextest).
        eprintln!("skipped: a global subscriber is already installed in this process");
        return;
    }
    let app = Setup::new(Backend::Postgres).with_db_proxy().start().await;
    let proxy = app.db_proxy.clone().unwrap();
    let browser = app.browser();
    let page = browser.get("/s/demo/sign-in").await;
    proxy.set_down(true);
    let during = browser
        .submit_followed(
            &page,
            "form[action$='/sign-in']",
            &[("email", "alex@example.com")],
        )
        .await;
    proxy.set_down(false);
    assert_eq!(during.status, 503);
    let id = during.headers["x-request-id"].to_str().unwrap().to_string();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["fields"]["message"] == "dependency unavailable")
        .collect();
    assert!(
        !lines.is_empty(),
        "no log line for the failed request:\n{text}"
    );
    for line in lines {
        assert_eq!(line["span"]["request_id"], id.as_str(), "{line}");
    }
}

/// The JSON log lines captured so far whose message is `message`.
fn log_lines(logs: &Captured, message: &str) -> Vec<serde_json::Value> {
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["fields"]["message"] == message)
        .collect()
}

fn request_id_of(headers: &reqwest::header::HeaderMap) -> String {
    headers["x-request-id"].to_str().unwrap().to_string()
}

/// Work a request hands to an actor, and the tasks the actor spawns for it, log in the
/// request's span: a sign-in refused by the per-client limit (TokenIssuer's batch), a Checkout
/// started (BillingSync) and a webhook that marks the invoice paid (BillingSync's task) each
/// write a line with the id of the response that request got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_lines_actors_write_for_a_request_carry_its_id() {
    let logs = Captured::default();
    let installed = tracing_subscriber::fmt()
        .json()
        .with_writer(logs.clone())
        .with_env_filter("info")
        .try_init()
        .is_ok();
    if !installed {
        eprintln!("skipped: a global subscriber is already installed in this process");
        return;
    }
    let app = Setup::new(Backend::Embedded).with_stripe().start().await;
    let browser = app.browser();
    app.sign_in(&browser, "alex@example.com").await;

    let invoice = app.invoice_id("INV-1042").await;
    let billing = browser.get("/s/demo/billing").await;
    let pay = browser
        .submit(
            &billing,
            &format!("form[action='/s/demo/billing/invoices/{invoice}/pay']"),
            &[],
        )
        .await;
    assert_eq!(pay.status, 303, "{}", pay.body);
    let started = log_lines(&logs, "checkout started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        started[0]["span"]["request_id"],
        request_id_of(&pay.headers).as_str()
    );

    let session = pay
        .location()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let completed = app.fake_stripe().complete_checkout(&session);
    let webhook = app.send_webhook(&completed).await;
    assert_eq!(webhook.status(), 200);
    let paid = log_lines(&logs, "invoice paid; receipt queued");
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(
        paid[0]["span"]["request_id"],
        request_id_of(webhook.headers()).as_str()
    );

    // The sign-in above spent one of this IP's five links; a browser without the device
    // cookie gets four more, and its fifth request is refused by the limit.
    let stranger = app.browser();
    let mut last = None;
    for _ in 0..5 {
        let form = stranger.get("/s/demo/sign-in").await;
        // The POST's own answer (the redirect to Check your email) carries its request id.
        let sent = stranger
            .submit(
                &form,
                "form[action$='/sign-in']",
                &[("email", "alex@example.com")],
            )
            .await;
        assert_eq!(sent.status, 303);
        last = Some(sent);
    }
    let suppressed = log_lines(&logs, "sign-in link suppressed by a sign-in limit");
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(
        suppressed[0]["span"]["request_id"],
        request_id_of(&last.unwrap().headers).as_str()
    );

    // The suppression list stopping a link is logged in its own words, not as a limit.
    let sam = app
        .rows(
            "SELECT storefront_id FROM accounts WHERE email = 'sam@example.com'",
            &[],
        )
        .await[0]
        .i64(0);
    app.rows(
        "INSERT INTO suppressions (storefront_id, address_key, email, reason, detail, created_at)
         VALUES ($1, 'sam@example.com', 'sam@example.com', 'complaint', 'abuse', $2) RETURNING id",
        &[sam.into(), chrono::Utc::now().into()],
    )
    .await;
    let other = app.browser();
    let form = other.get("/s/demo/sign-in").await;
    let sent = other
        .submit(
            &form,
            "form[action$='/sign-in']",
            &[("email", "sam@example.com")],
        )
        .await;
    assert_eq!(sent.status, 303, "the redirect to Check your email");
    let listed = log_lines(
        &logs,
        "sign-in link not sent: the address is on the suppression list",
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["span"]["request_id"],
        request_id_of(&sent.headers).as_str()
    );
    assert_eq!(
        log_lines(&logs, "sign-in link suppressed by a sign-in limit").len(),
        1,
        "the limit's line is the limit's only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_readiness_survives_a_broker_outage_but_a_workers_does_not() {
    let app = Setup::new(Backend::Postgres)
        .without_workers()
        .with_broker_proxy()
        .start()
        .await;
    let worker = start_worker(&app);
    assert!(worker.addr.is_none(), "a worker has no public port");
    let ready = |url: String| async move {
        let resp = reqwest::get(format!("{url}/readyz")).await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        (status, body)
    };
    let (status, body) = ready(app.app().ops_url()).await;
    assert_eq!((status, &body["queue"]), (200, &"ok".into()), "{body}");
    let (status, body) = ready(worker.ops_url()).await;
    assert_eq!((status, &body["role"]), (200, &"worker".into()), "{body}");

    app.broker_proxy.as_ref().unwrap().set_down(true);
    let (status, body) = ready(app.app().ops_url()).await;
    assert_eq!(status, 200, "a web node stays in the balancer: {body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_ne!(
        body["queue"], "ok",
        "the broker's state is still shown: {body}"
    );
    let (status, body) = ready(worker.ops_url()).await;
    assert_eq!(
        status, 503,
        "a worker without its broker is not ready: {body}"
    );
    assert_eq!(body["status"], "unavailable");

    app.broker_proxy.as_ref().unwrap().set_down(false);
    worker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_mail_metrics_on_its_operations_port() {
    let app = Setup::new(Backend::Postgres)
        .without_workers()
        .start()
        .await;
    let worker = start_worker(&app);
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    let metrics = reqwest::get(format!("{}/metrics", worker.ops_url()))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let body = metrics.text().await.unwrap();
    assert_eq!(
        metric(&body, "latchkey_mail_sends_total{status=\"sent\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("latchkey_mail_queue_depth"), "{body}");
    // The web node sent nothing.
    assert_eq!(
        metric(
            &reqwest::get(app.ops_url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "latchkey_mail_sends_total{status=\"sent\"}"
        ),
        None
    );
    worker.stop();
}

/// The database goes away while the worker is in the SMTP dialogue, and comes back after the
/// server's 250. `held`: the claim wrote nothing (the row's message holds it); otherwise the
/// worker is allowed an SMTP dialogue longer than a fresh row's relay delay and leases the row.
async fn outcome_write_meets_a_database_outage(held: bool) {
    let app = Setup::new(Backend::Postgres)
        .with_db_proxy()
        .config(move |c| {
            if !held {
                c.mail.smtp_timeout_seconds = 60;
            }
        })
        .start()
        .await;
    let proxy = app.db_proxy.clone().unwrap();
    let smtp = app.smtp().clone();
    // The SMTP server takes its time to answer: the database goes away meanwhile.
    smtp.set_delay(Duration::from_secs(2));
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    if held {
        let deadline = std::time::Instant::now() + WAIT;
        while smtp.connections_accepted() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker never connected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.delivery_status(id).await, "queued");
    } else {
        app.wait_for_status(id, "sending").await;
    }
    proxy.set_down(true);
    smtp.wait_for_count(1, WAIT)
        .await
        .expect("the email is sent");
    // The worker now has the server's 250 and cannot write it down for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set_down(false);
    smtp.set_delay(Duration::ZERO);
    let delivery = app.wait_for_status(id, "sent").await;
    assert_eq!(delivery.attempts, 1);
    assert_eq!(app.attempts(id).await.len(), 1);
    assert_eq!(
        smtp.messages_to("alex@example.com").len(),
        1,
        "the email went out twice"
    );
    // Nothing else is pending that could send it again.
    let report = app.app().relay_once().await.unwrap();
    assert_eq!(report.published, 0);
    assert_eq!(smtp.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_email_when_the_outcome_write_meets_a_database_outage() {
    outcome_write_meets_a_database_outage(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_email_when_a_leased_rows_outcome_meets_a_database_outage() {
    outcome_write_meets_a_database_outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off() {
    let app = Setup::new(Backend::Embedded)
        .config(|c| c.body_read_timeout_seconds = 1)
        .start()
        .await;
    let (cookie, token) = csrf(&app.app().url()).await;
    let body = format!("csrf_token={token}&email=alex%40example.com");
    let addr = app.app().addr.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /s/demo/sign-in HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One byte every 100 ms: the whole body would take far longer than the limit.
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for b in body.as_bytes() {
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let waited = started.elapsed();
    trickle.abort();
    let response = String::from_utf8_lossy(&buf);
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(header_of(&response, "x-request-id").is_some());
    assert!(waited < Duration::from_secs(5), "cut off after {waited:?}");
    // The sign-in was not taken.
    assert!(app.mailbox.to("alex@example.com").is_empty());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries", &[]).await,
        0,
        "nothing was queued"
    );
    // A body that arrives in time is served.
    assert_eq!(app.browser().get("/s/demo/sign-in").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds() {
    let app = Setup::new(Backend::Embedded)
        .config(|c| c.max_connections = 2)
        .start()
        .await;
    let addr = app.app().addr.unwrap();
    // Two clients hold a connection each, with a request half sent.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    wait_for_metric(&app.app().ops_url(), "latchkey_http_open_connections", 2.0).await;
    // A third waits: the server does not take its connection while two are open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the third connection was served past the cap"
    );
    assert_eq!(
        ops_metric(&app, "latchkey_http_open_connections").await,
        2.0
    );
    // The operations port is not behind the public cap.
    assert_eq!(
        reqwest::get(app.ops_url("/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // One finishes its request and leaves: the third is served.
    let mut first = held.remove(0);
    first.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    assert_eq!(status_of(&read_response(&mut first).await), 200);
    drop(first);
    let answer = tokio::time::timeout(WAIT, read_response(&mut third))
        .await
        .expect("the third connection is served once a slot is free");
    assert_eq!(status_of(&answer), 200, "{answer}");
}

/// A worker process of `app` (same database, queue and mailbox), in this test process.
fn start_worker(app: &TestApp) -> latchkey::app::AppHandle {
    App::start(
        app.config.clone(),
        AppOptions {
            web: false,
            workers: Some(true),
            bounces: None,
            ..AppOptions::default()
        },
    )
    .unwrap()
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn quiet() -> bool {
    std::env::var("TEST_LOG").is_err()
}

fn output() -> Stdio {
    if quiet() {
        Stdio::null()
    } else {
        Stdio::inherit()
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child process to exit, at most `limit`.
async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_request_already_received() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ops_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("LATCHKEY_CONFIG_DIR", dir.path().join("none"))
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LATCHKEY_OPS_LISTEN", format!("127.0.0.1:{ops_port}"))
        .env("LATCHKEY_MAIL__PRINT_LINKS", "false")
        .env("LATCHKEY_LOG_LEVEL", if quiet() { "error" } else { "info" })
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let ops = format!("http://127.0.0.1:{ops_port}");
    let deadline = Instant::now() + WAIT;
    while reqwest::get(format!("{ops}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "latchkey serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `serve`: metrics on its operations port, not on the public one.
    assert_eq!(
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .status(),
        404
    );
    let metrics = reqwest::get(format!("{ops}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("latchkey_http_requests_total")
    );

    // Eight sign-in POSTs: headers and half of each body are in when SIGTERM comes.
    let (cookie, token) = csrf(&base).await;
    let body = format!("csrf_token={token}&email=alex%40example.com");
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST /s/demo/sign-in HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first_half}",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        streams.push(s);
    }
    wait_for_metric(&ops, "latchkey_http_requests_in_flight", 8.0).await;
    sigterm(&child);

    // It stops accepting: the listening socket closes.
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The clients are slow: their bodies finish well after the signal (the actors' own
    // stopping takes about a second, which must not be what lets them through).
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every request already received is answered.
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(second_half.as_bytes()).await.unwrap();
        let response = tokio::time::timeout(WAIT, read_response(s))
            .await
            .unwrap_or_else(|_| panic!("request {i} got no answer"));
        assert_eq!(status_of(&response), 303, "request {i}: {response}");
        assert_eq!(
            header_of(&response, "location").as_deref(),
            Some("/s/demo/sign-in/sent"),
            "request {i}: {response}"
        );
        assert!(header_of(&response, "x-request-id").is_some());
    }
    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_worker_finish_its_sends_and_leaves_the_rest_queued() {
    let app = Setup::new(Backend::Postgres)
        .without_workers()
        .start()
        .await;
    let smtp = app.smtp().clone();
    // Sends that take seconds: far longer than the worker's own stopping would last.
    smtp.set_delay(Duration::from_secs(4));
    let ops_port = free_port();
    let ops = format!("http://127.0.0.1:{ops_port}");
    let spawn = |ops_port: u16| {
        app.command(&["worker"])
            .env("LATCHKEY_OPS_LISTEN", format!("127.0.0.1:{ops_port}"))
            .env("LATCHKEY_MAIL__CONCURRENCY", "2")
            .spawn()
            .expect("start a latchkey worker process")
    };
    let mut worker = spawn(ops_port);
    let deadline = Instant::now() + WAIT;
    while reqwest::get(format!("{ops}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "latchkey worker did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `worker`: metrics (its mail metrics) on its operations port.
    let metrics = reqwest::get(format!("{ops}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("latchkey_mail_queue_depth")
    );

    let browser = app.browser();
    let mut ids = Vec::new();
    for email in [
        "alex@example.com",
        "sam@example.com",
        "alex@example.com",
        "sam@example.com",
    ] {
        ids.push(app.request_link(&browser, email).await);
    }
    // Two sends in flight (the worker's concurrency: two SMTP dialogues open), two still in
    // the queue. (Fresh rows are taken without a claim write: they stay `queued` meanwhile.)
    let deadline = Instant::now() + WAIT;
    while smtp.connections_accepted() < 2 {
        assert!(Instant::now() < deadline, "the worker never took two");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&worker);
    let status = wait_exit(&mut worker, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    // The two in flight were finished and recorded; nothing is left half done.
    assert_eq!(smtp.count(), 2, "the sends in flight were finished");
    let by_status = |s: &'static str| {
        let app = &app;
        async move {
            app.count(
                "SELECT COUNT(*) FROM deliveries WHERE status = $1",
                &[s.into()],
            )
            .await
        }
    };
    assert_eq!(by_status("sent").await, 2);
    assert_eq!(by_status("sending").await, 0);
    assert_eq!(by_status("queued").await, 2, "the rest wait in the queue");

    // The next worker sends the rest, once each.
    smtp.set_delay(Duration::ZERO);
    let mut next = spawn(free_port());
    for id in &ids {
        app.wait_for_status(*id, "sent").await;
    }
    assert_eq!(smtp.count(), 4, "each email exactly once");
    sigterm(&next);
    assert!(
        wait_exit(&mut next, Duration::from_secs(20))
            .await
            .success()
    );
}

#[test]
fn an_operations_port_that_is_taken_stops_start_up_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("worker")
        .current_dir(dir.path())
        .env_clear()
        .env("LATCHKEY_CONFIG_DIR", dir.path())
        .env("LATCHKEY_DATA_DIR", dir.path().join("data"))
        .env(
            "LATCHKEY_DATABASE_URL",
            format!("sqlite://{}/lk.db", dir.path().display()),
        )
        .env("LATCHKEY_OPS_LISTEN", addr.to_string())
        .env("LATCHKEY_LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    let _ = std::io::stderr().flush();
}
