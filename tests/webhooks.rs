//! Signed event webhooks (SPEC §9): a receiver the test runs gets each event once (again only
//! after a failed try), signed as the README documents; a 500 or a receiver that is down is
//! retried on the product's clock; an endpoint failing for three days is disabled and the
//! storefront's owners are emailed; private targets are refused by default; another
//! storefront's key sees none of it. Every event type of the spec reaches the receiver from the
//! change it tells of (email outcomes, reports, suppressions and lifts, accounts, invoices,
//! payment methods), and a storefront without an endpoint for a type gets no row for it. The
//! console's Webhooks page adds, tests, disables and deletes endpoints and shows their tries.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{Duration as Span, Utc};
use http_body_util::{BodyExt, Full};
use ring::hmac;
use serde_json::{Value, json};
use support::*;

/// What the receiver got: the signature header and the raw body.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: Vec<u8>,
}

/// A tiny HTTP server that records every POST and answers the statuses scripted (200 after).
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/latchkey", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (g, s) = (got.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (g, s) = (g.clone(), s.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (g, s) = (g.clone(), s.clone());
                            async move {
                                let signature = req
                                    .headers()
                                    .get("latchkey-signature")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_string();
                                let body =
                                    req.into_body().collect().await.unwrap().to_bytes().to_vec();
                                g.lock().unwrap().push(Received { signature, body });
                                let status = s.lock().unwrap().pop_front().unwrap_or(200);
                                let mut resp = hyper::Response::new(Full::new(Bytes::from(
                                    format!("status {status}"),
                                )));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, got, script }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} posts, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Verifies `Latchkey-Signature` as the README tells receivers to: HMAC-SHA256 of
/// "{t}.{body}" with the secret, hex, and t within 5 minutes of (the product's) now.
fn verify(secret: &str, r: &Received, now: i64) -> Value {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in r.signature.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1.push(x.to_string()),
            _ => {}
        }
    }
    let t = t.expect("a timestamp");
    assert!(
        (now - t).abs() <= 300,
        "t={t} is not within 5 minutes of {now}"
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(&r.body);
    let want = hex::encode(hmac::sign(&key, &signed));
    assert!(
        v1.contains(&want),
        "signature {} does not verify",
        r.signature
    );
    serde_json::from_slice(&r.body).unwrap()
}

async fn storefront_id(app: &TestApp, slug: &str) -> i64 {
    app.store()
        .storefront_by_slug(slug)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn api_key(app: &TestApp, slug: &str) -> String {
    let sf = storefront_id(app, slug).await;
    let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
    app.store()
        .create_api_key(sf, "Books", &hash, &prefix, Utc::now())
        .await
        .unwrap();
    key
}

async fn api(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = app.url(&format!("/api/v1{path}"));
    let mut req = client
        .request(method.parse().unwrap(), url)
        .header("authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b).unwrap());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, json)
}

/// Deletes the webhook queues of a RabbitMQ test (the harness deletes the mail queues).
struct WebhookQueues(Option<latchkey::queue::rabbit::RabbitQueue>, Vec<Duration>);

impl WebhookQueues {
    fn of(app: &TestApp) -> Self {
        let queue = (app.backend == Backend::Postgres).then(|| {
            latchkey::queue::rabbit::RabbitQueue::new(
                &amqp_url(),
                &latchkey::app::webhook_queue_prefix(&app.config),
                false,
                Duration::from_secs(5),
            )
        });
        Self(queue, app.config.webhook_retry_delays())
    }
}

impl Drop for WebhookQueues {
    fn drop(&mut self) {
        if let Some(queue) = self.0.take() {
            let delays = self.1.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let _ = queue.delete_all(&delays).await;
                });
            })
            .join();
        }
    }
}

async fn start(backend: Backend) -> TestApp {
    Setup::new(backend)
        .with_smtp()
        .config(|c| c.webhooks.allow_private_targets = true)
        .start()
        .await
}

/// The endpoint's deliveries once the newest has `tries` tries (or is in `status`).
async fn wait_for_tries(app: &TestApp, key: &str, endpoint: i64, tries: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, list) = api(
            app,
            key,
            "GET",
            &format!("/webhooks/{endpoint}/deliveries"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{list}");
        if let Some(d) = list["data"].as_array().and_then(|a| a.first())
            && d["tries"].as_array().map(Vec::len).unwrap_or(0) >= tries
            && d["status"] != "sending"
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "waited for {tries} tries: {list}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

both_backends! {
    async fn an_event_arrives_signed_and_a_500_is_retried_once_then_recorded(backend: Backend) {
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        let receiver = Receiver::start(&[500]).await;
        let key = api_key(&app, "demo").await;
        let (status, created) = api(&app, &key, "POST", "/webhooks", Some(json!({
            "url": receiver.url, "event_types": ["account.created"], "description": "Books"
        }))).await;
        assert_eq!(status, 201, "{created}");
        let secret = created["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("whsec_"));
        let id = created["endpoint"]["id"].as_i64().unwrap();
        // The secret is shown once: reads never carry it.
        let (_, read) = api(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert!(!read.to_string().contains(&secret));
        assert_eq!(read["event_types"], json!(["account.created"]));

        // A change the endpoint subscribes to: a sign-up through the API.
        let (status, account) = api(&app, &key, "POST", "/accounts", Some(json!({
            "email": "jordan.lee@example.com", "full_name": "Jordan Lee"
        }))).await;
        assert_eq!(status, 201, "{account}");
        let first = receiver.wait_for(1).await;
        let event = verify(&secret, &first[0], app.clock_now().timestamp());
        assert_eq!(event["type"], "account.created");
        assert_eq!(event["storefront"], "demo");
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert!(event["created"].is_string());
        assert_eq!(event["data"]["account_id"], account["id"]);
        assert_eq!(event["data"]["email"], "jordan.lee@example.com");

        // The 500 is recorded, and the event waits for its next try.
        let d = wait_for_tries(&app, &key, id, 1).await;
        assert_eq!(d["status"], "pending", "{d}");
        assert_eq!(d["tries"][0]["http_status"], 500);
        assert_eq!(d["tries"][0]["response_excerpt"], "status 500");
        assert_eq!(d["event_id"], event["id"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 1, "no second post before the retry is due");
        // A try that commits between the read of the deliveries and that of their tries is
        // not shown beside the status read before it (here: a try row its delivery does not
        // count yet).
        let delivery_id = d["id"].as_i64().expect("the delivery's id");
        app.rows(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, http_status, error, response_excerpt, worker)
             VALUES ($1, 2, $2, 1, 200, NULL, 'ok', 'elsewhere') RETURNING delivery_id",
            &[delivery_id.into(), latchkey::store::Value::Ts(app.clock_now())],
        )
        .await;
        let (_, listed) = api(&app, &key, "GET", &format!("/webhooks/{id}/deliveries"), None).await;
        let shown = listed["data"].as_array().and_then(|d| d.first()).cloned().unwrap_or_default();
        assert_eq!(shown["tries"].as_array().map(Vec::len), Some(1), "{listed}");
        app.rows(
            "DELETE FROM webhook_attempts WHERE delivery_id = $1 AND attempt = 2 RETURNING delivery_id",
            &[delivery_id.into()],
        )
        .await;

        // A minute later (the product's clock) the relay hands it to a worker again.
        app.clock.advance(Span::minutes(2));
        app.app().relay_webhooks_once().await.unwrap();
        let both = receiver.wait_for(2).await;
        let again = verify(&secret, &both[1], app.clock_now().timestamp());
        assert_eq!(again["id"], event["id"], "the same event, again");
        assert_eq!(both[1].body, both[0].body, "the same body, byte for byte");
        let d = wait_for_tries(&app, &key, id, 2).await;
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["tries"][1]["http_status"], 200);
        // Delivered: no more posts, whatever the relay does.
        app.clock.advance(Span::hours(1));
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 2);
        assert!(receiver.script.lock().unwrap().is_empty());
        // Audited.
        let n = app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'webhook_endpoint_created'", &[]).await;
        assert_eq!(n, 1);
    }

    async fn a_receiver_that_stays_down_is_retried_for_three_days_then_disabled_and_the_owners_emailed(backend: Backend) {
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        let demo = storefront_id(&app, "demo").await;
        app.store()
            .create_staff(
                Some(demo),
                &latchkey::domain::EmailAddress::parse("owner.hooks@harborview.example").unwrap(),
                "Olga Owner",
                latchkey::store::Role::Owner,
                Utc::now(),
            )
            .await
            .unwrap();
        // A port nobody listens on: every try is refused.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let key = api_key(&app, "demo").await;
        let (status, created) = api(&app, &key, "POST", "/webhooks", Some(json!({
            "url": format!("http://127.0.0.1:{dead}/hook"), "event_types": ["invoice.paid"]
        }))).await;
        assert_eq!(status, 201, "{created}");
        let id = created["endpoint"]["id"].as_i64().unwrap();
        let (status, queued) = api(&app, &key, "POST", &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(status, 202, "{queued}");
        let mut d = wait_for_tries(&app, &key, id, 1).await;
        assert_eq!(d["event_type"], "ping");
        assert!(d["tries"][0]["http_status"].is_null());
        assert!(d["tries"][0]["error"].as_str().unwrap().contains("connect"), "{d}");
        let (_, ep) = api(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert!(ep["failing_since"].is_string());
        assert_eq!(ep["enabled"], true);

        // Half a day at a time on the product's clock: each step brings one more try.
        let mut tries = 1;
        while d["status"] == "pending" {
            assert!(tries < 12, "still retrying after {tries} tries: {d}");
            app.clock.advance(Span::hours(13));
            app.app().relay_webhooks_once().await.unwrap();
            tries += 1;
            d = wait_for_tries(&app, &key, id, tries).await;
        }
        assert_eq!(d["status"], "failed", "{d}");
        assert!(tries >= 6, "retried for three days, not {tries} tries");
        let (_, ep) = api(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert_eq!(ep["enabled"], false, "{ep}");
        assert!(ep["disabled_reason"].as_str().unwrap().contains("failed for 72 hours"), "{ep}");

        // The owner is told, through the normal email pipeline.
        let mail = app.mailbox.wait_for("owner.hooks@harborview.example").await;
        assert!(mail.text_body().contains(&format!("http://127.0.0.1:{dead}/hook")), "{}", mail.text_body());
        assert!(mail.text_body().contains("disabled"));

        // Disabled: a new event is not written for it; enabling again forgets the failures.
        let (status, ep) = api(&app, &key, "PATCH", &format!("/webhooks/{id}"), Some(json!({"enabled": true}))).await;
        assert_eq!(status, 200, "{ep}");
        assert_eq!(ep["enabled"], true);
        assert!(ep["failing_since"].is_null());
        assert!(ep["disabled_reason"].is_null());
    }

    async fn a_private_target_is_refused_unless_configuration_allows_it(backend: Backend) {
        let app = Setup::new(backend).start().await;
        let _queues = WebhookQueues::of(&app);
        let key = api_key(&app, "demo").await;
        for url in ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://100.64.0.1/"] {
            let (status, err) = api(&app, &key, "POST", "/webhooks", Some(json!({
                "url": url, "event_types": ["delivery.sent"]
            }))).await;
            assert_eq!(status, 422, "{url}: {err}");
            assert!(err.to_string().contains("internal") , "{url}: {err}");
        }
        let (status, err) = api(&app, &key, "POST", "/webhooks", Some(json!({
            "url": "ftp://example.com/", "event_types": ["delivery.sent"]
        }))).await;
        assert_eq!(status, 422, "{err}");
        let (status, err) = api(&app, &key, "POST", "/webhooks", Some(json!({
            "url": "https://hooks.example.com/", "event_types": ["nope"]
        }))).await;
        assert_eq!(status, 422, "{err}");
        let (_, list) = api(&app, &key, "GET", "/webhooks", None).await;
        assert_eq!(list["data"], json!([]));
    }

    async fn another_storefronts_key_cannot_see_or_change_the_endpoint(backend: Backend) {
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        app.store()
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
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let other = api_key(&app, "other").await;
        let (status, created) = api(&app, &key, "POST", "/webhooks", Some(json!({
            "url": receiver.url, "event_types": ["delivery.sent"]
        }))).await;
        assert_eq!(status, 201);
        let id = created["endpoint"]["id"].as_i64().unwrap();
        let (_, list) = api(&app, &other, "GET", "/webhooks", None).await;
        assert_eq!(list["data"], json!([]));
        for (method, path, body) in [
            ("GET", format!("/webhooks/{id}"), None),
            ("PATCH", format!("/webhooks/{id}"), Some(json!({"enabled": false}))),
            ("DELETE", format!("/webhooks/{id}"), None),
            ("POST", format!("/webhooks/{id}/test"), None),
            ("GET", format!("/webhooks/{id}/deliveries"), None),
        ] {
            let (status, err) = api(&app, &other, method, &path, body).await;
            assert_eq!(status, 404, "{method} {path}: {err}");
            assert_eq!(err["code"], "not_found");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.received().is_empty(), "the other key's test event was not sent");
        let (_, ep) = api(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert_eq!(ep["enabled"], true, "unchanged");

        // The owner's key can: a test event arrives, then the endpoint is deleted.
        let (status, _) = api(&app, &key, "POST", &format!("/webhooks/{id}/test"), None).await;
        assert_eq!(status, 202);
        let got = receiver.wait_for(1).await;
        let ping = verify(created["secret"].as_str().unwrap(), &got[0], app.clock_now().timestamp());
        assert_eq!(ping["type"], "ping");
        let (status, _) = api(&app, &key, "DELETE", &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, 204);
        let (status, _) = api(&app, &key, "GET", &format!("/webhooks/{id}"), None).await;
        assert_eq!(status, 404);
    }
}

/// Posts the receiver got, by event type (each verified with the secret).
fn by_type(secret: &str, got: &[Received], now: i64) -> Vec<(String, Value)> {
    let mut events: Vec<(String, Value)> = got
        .iter()
        .map(|r| {
            let event = verify(secret, r, now);
            (event["type"].as_str().unwrap().to_string(), event)
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events
}

async fn endpoint_for(app: &TestApp, key: &str, url: &str, types: &[&str]) -> (i64, String) {
    let (status, created) = api(
        app,
        key,
        "POST",
        "/webhooks",
        Some(json!({
            "url": url, "event_types": types
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["endpoint"]["id"].as_i64().unwrap(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn webhook_rows(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM webhook_events", &[]).await,
        app.count("SELECT COUNT(*) FROM webhook_deliveries", &[])
            .await,
    )
}

both_backends! {
    async fn email_outcomes_are_events_only_where_an_endpoint_subscribes_to_them(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| {
                c.webhooks.allow_private_targets = true;
                c.sign_in.per_account_max = 20;
            })
            .start()
            .await;
        let _queues = WebhookQueues::of(&app);
        let customer = app.browser();
        // No endpoint: the outcome writes no event row at all.
        let first = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(first, "sent").await;
        assert_eq!(webhook_rows(&app).await, (0, 0));

        // An endpoint for other types: still nothing for a sent email.
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let (id, secret) = endpoint_for(&app, &key, &receiver.url, &["delivery.failed"]).await;
        let second = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(second, "sent").await;
        assert_eq!(webhook_rows(&app).await, (0, 0));

        // Subscribed: a sent email and a failed one, each posted once, signed.
        let (status, _) = api(&app, &key, "PATCH", &format!("/webhooks/{id}"), Some(json!({
            "event_types": ["delivery.sent", "delivery.failed"]
        }))).await;
        assert_eq!(status, 200);
        let sent = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(sent, "sent").await;
        let got = receiver.wait_for(1).await;
        let event = verify(&secret, &got[0], app.clock_now().timestamp());
        assert_eq!(event["type"], "delivery.sent");
        assert_eq!(event["storefront"], "demo");
        assert_eq!(event["data"]["delivery_id"], sent);
        assert_eq!(event["data"]["recipient"], "alex@example.com");
        assert_eq!(event["data"]["kind"], "sign_in");
        assert!(event["data"]["error"].is_null());
        assert_eq!(event["data"]["account_id"], app.latest_delivery_to("alex@example.com").await.account_id.unwrap());

        app.smtp().set_mode(latchkey_testkit::SmtpMode::RejectRcpt {
            code: 550,
            message: "5.1.1 <sam@example.com>: Recipient address rejected".into(),
        });
        let failed = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(failed, "failed").await;
        let got = receiver.wait_for(2).await;
        let event = verify(&secret, &got[1], app.clock_now().timestamp());
        assert_eq!(event["type"], "delivery.failed");
        assert_eq!(event["data"]["delivery_id"], failed);
        assert!(event["data"]["error"].as_str().unwrap().contains("Recipient address rejected"), "{event}");
        assert_ne!(got[0].body, got[1].body);

        // Once each: the relay passing again later sends nothing more.
        app.clock.advance(Span::hours(1));
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 2);
        assert_eq!(webhook_rows(&app).await, (2, 2));
    }

    async fn bounces_complaints_suppressions_and_lifts_are_events(backend: Backend) {
        use latchkey::store::{DeliveryReport, ReportKind};
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let (_, secret) = endpoint_for(&app, &key, &receiver.url, &[
            "delivery.bounced", "delivery.complained", "suppression.added", "suppression.lifted",
        ]).await;
        let customer = app.browser();
        let alex = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(alex, "sent").await;
        let sam = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(sam, "sent").await;
        assert_eq!(webhook_rows(&app).await, (0, 0), "delivery.sent is not subscribed");

        let report = |kind, code: Option<&str>, diagnostic: &str| DeliveryReport {
            kind,
            status_code: code.map(String::from),
            diagnostic: diagnostic.into(),
            reporter: "mx.example.net".into(),
            received_at: app.clock_now(),
        };
        let bounced = app.store()
            .record_delivery_report(alex, &report(ReportKind::Bounce, Some("5.1.1"), "550 5.1.1 User unknown"))
            .await.unwrap().unwrap();
        assert_eq!(bounced.events, 2);
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(2).await;
        let events = by_type(&secret, &got, app.clock_now().timestamp());
        assert_eq!(events[0].0, "delivery.bounced");
        assert_eq!(events[0].1["data"]["delivery_id"], alex);
        assert_eq!(events[0].1["data"]["recipient"], "alex@example.com");
        assert_eq!(events[0].1["data"]["status_code"], "5.1.1");
        assert_eq!(events[0].1["data"]["diagnostic"], "550 5.1.1 User unknown");
        assert_eq!(events[1].0, "suppression.added");
        assert_eq!(events[1].1["data"]["email"], "alex@example.com");
        assert_eq!(events[1].1["data"]["reason"], "hard_bounce");
        let suppression_id = events[1].1["data"]["suppression_id"].as_i64().unwrap();

        // A delay changes nothing and tells nobody; a second bounce neither.
        let delayed = app.store()
            .record_delivery_report(alex, &report(ReportKind::Delay, Some("4.2.2"), "452 mailbox full"))
            .await.unwrap().unwrap();
        assert_eq!(delayed.events, 0);
        let again = app.store()
            .record_delivery_report(alex, &report(ReportKind::Bounce, Some("5.1.1"), "550 again"))
            .await.unwrap().unwrap();
        assert_eq!(again.events, 0);

        // A complaint: the delivery and the suppression, again.
        app.store()
            .record_delivery_report(sam, &report(ReportKind::Complaint, None, "abuse"))
            .await.unwrap().unwrap();
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(4).await;
        let events = by_type(&secret, &got[2..], app.clock_now().timestamp());
        assert_eq!(events[0].0, "delivery.complained");
        assert_eq!(events[0].1["data"]["delivery_id"], sam);
        assert_eq!(events[1].0, "suppression.added");
        assert_eq!(events[1].1["data"]["reason"], "complaint");

        // Lifted, in the transaction of the lift.
        let demo = storefront_id(&app, "demo").await;
        app.store()
            .lift_suppression(demo, suppression_id, "API key Books", None, app.clock_now())
            .await.unwrap().unwrap();
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(5).await;
        let lifted = verify(&secret, &got[4], app.clock_now().timestamp());
        assert_eq!(lifted["type"], "suppression.lifted");
        assert_eq!(lifted["data"]["suppression_id"], suppression_id);
        assert_eq!(lifted["data"]["email"], "alex@example.com");
        assert_eq!(lifted["data"]["lifted_by"], "API key Books");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 5, "each event once");
    }
}

/// Signs a staff member in to the console by the emailed link.
async fn console_sign_in(app: &TestApp, email: &str) -> Browser {
    let browser = app.browser();
    let before = app.mailbox.to(email).len();
    let page = browser.get("/console/sign-in").await;
    let sent = browser
        .submit_followed(
            &page,
            "form[action='/console/sign-in']",
            &[("email", email)],
        )
        .await;
    assert_eq!(sent.status, 200);
    let mail = app.mailbox.nth(email, before + 1).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains("/console/auth/"))
        .expect("a console link");
    let landing = browser.get_url(&link).await;
    let signed_in = browser.submit(&landing, "form", &[]).await;
    assert_eq!(signed_in.status, 303);
    browser
}

/// The endpoint's page once its newest try shows `http_status`.
async fn wait_for_console_try(browser: &Browser, path: &str, http_status: &str) -> Page {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200);
        let statuses = page.select_text("td[data-label='HTTP status']");
        // The page reads the deliveries and their tries in two statements: a try may show
        // while its delivery still reads `sending` (the next statement saw the outcome commit).
        let settled = page
            .select_text("td[data-label=Status]")
            .first()
            .is_some_and(|s| s != "sending");
        if statuses.first().map(String::as_str) == Some(http_status) && settled {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "waited for a {http_status} try: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

both_backends! {
    async fn the_console_webhooks_page_adds_tests_disables_and_deletes_endpoints_with_an_audit_trail(backend: Backend) {
        use latchkey::domain::EmailAddress;
        use latchkey::store::Role;
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        let demo = storefront_id(&app, "demo").await;
        for (sf, email, name, role) in [
            (Some(demo), "olivia@harborview.example", "Olivia Owner", Role::Owner),
            (Some(demo), "stan@harborview.example", "Stan Staff", Role::Staff),
            (None, "sue@latchkey.example", "Sue Support", Role::Support),
        ] {
            app.store()
                .create_staff(sf, &EmailAddress::parse(email).unwrap(), name, role, Utc::now())
                .await
                .unwrap();
        }
        let receiver = Receiver::start(&[500]).await;

        // The owner finds the page from the storefront's and adds an endpoint.
        let olivia = console_sign_in(&app, "olivia@harborview.example").await;
        let home = olivia.get("/console/s/demo").await;
        assert!(home.html().select(&scraper::Selector::parse("a[href='/console/s/demo/webhooks']").unwrap()).next().is_some());
        let list = olivia.get("/console/s/demo/webhooks").await;
        assert_eq!(list.status, 200);
        assert!(list.text().contains("No webhook endpoint yet."));
        // Without an event type the form comes back with the reason, and nothing is added.
        let refused = olivia.submit(&list, "form[action='/console/s/demo/webhooks']", &[("url", &receiver.url)]).await;
        assert_eq!(refused.status, 422);
        assert!(refused.text().contains("Choose at least one event type."));
        assert_eq!(app.count("SELECT COUNT(*) FROM webhook_endpoints", &[]).await, 0);
        let created = olivia.submit(&list, "form[action='/console/s/demo/webhooks']", &[
            ("url", &receiver.url), ("description", "Books"), ("type.account.created", "on"), ("type.invoice.paid", "on"),
        ]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let secret = created.select_text("[data-secret]")[0].clone();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let id = app.rows("SELECT id FROM webhook_endpoints", &[]).await[0].i64(0);
        let path = format!("/console/s/demo/webhooks/{id}");
        // Shown once: neither the list nor the endpoint's page has it again.
        let list = olivia.get("/console/s/demo/webhooks").await;
        assert!(list.text().contains(&receiver.url) && list.text().contains("account.created, invoice.paid"), "{}", list.text());
        assert_eq!(list.select_text("td[data-label=State] .badge"), ["enabled"]);
        let page = olivia.get(&path).await;
        assert!(!page.body.contains(&secret));
        assert!(page.text().contains("No event sent yet."));

        // Send test event: the receiver answers 500, the try and its next retry are shown.
        let sent = olivia.submit(&page, &format!("form[action='{path}/test']"), &[]).await;
        assert_eq!(sent.status, 303);
        assert!(olivia.follow(&sent).await.text().contains("A test event (ping) is on its way"));
        let got = receiver.wait_for(1).await;
        let ping = verify(&secret, &got[0], app.clock_now().timestamp());
        assert_eq!(ping["type"], "ping");
        let page = wait_for_console_try(&olivia, &path, "500").await;
        assert_eq!(page.select_text("td[data-label=Event] code"), ["ping"]);
        assert!(!page.select_text("td[data-label='Next retry']")[0].is_empty(), "the next retry is shown");
        assert_eq!(page.select_text("td[data-label=Status]"), ["pending"]);
        // The retry, on the product's clock, succeeds; both tries are listed, newest first.
        app.clock.advance(Span::minutes(2));
        app.app().relay_webhooks_once().await.unwrap();
        receiver.wait_for(2).await;
        let page = wait_for_console_try(&olivia, &path, "200").await;
        assert_eq!(page.select_text("td[data-label='HTTP status']"), ["200", "500"]);
        assert_eq!(page.select_text("td[data-label=Status]"), ["delivered", "failed try"]);
        assert!(page.select_text("td[data-label='Next retry']").iter().all(String::is_empty));

        // Front-desk staff neither see nor change it; support sees it without the buttons.
        let stan = console_sign_in(&app, "stan@harborview.example").await;
        assert!(!stan.get("/console/s/demo").await.body.contains("/console/s/demo/webhooks"));
        assert_eq!(stan.get("/console/s/demo/webhooks").await.status, 403);
        assert_eq!(stan.get(&path).await.status, 403);
        let stan_csrf = stan.get("/console/s/demo").await.csrf();
        let refused = stan.post_form(&format!("{path}/disable"), &[("csrf_token".into(), stan_csrf)]).await;
        assert_eq!(refused.status, 403);
        let sue = console_sign_in(&app, "sue@latchkey.example").await;
        let seen = sue.get(&path).await;
        assert_eq!(seen.status, 200);
        assert_eq!(seen.select_text("td[data-label='HTTP status']"), ["200", "500"]);
        assert!(seen.html().select(&scraper::Selector::parse("form[action*='/webhooks/']").unwrap()).next().is_none());
        let sue_csrf = seen.csrf();
        let refused = sue.post_form(&format!("{path}/test"), &[("csrf_token".into(), sue_csrf)]).await;
        assert_eq!(refused.status, 403);
        // A form without its CSRF token does nothing.
        let forged = olivia.post_form(&format!("{path}/disable"), &[]).await;
        assert_eq!(forged.status, 403);
        assert_eq!(olivia.get(&path).await.select_text("[data-field=state]"), ["enabled"]);

        // Disable, enable, delete.
        let page = olivia.get(&path).await;
        let done = olivia.submit(&page, &format!("form[action='{path}/disable']"), &[]).await;
        let page = olivia.follow(&done).await;
        assert_eq!(page.select_text("[data-field=state]"), ["disabled"]);
        assert!(page.text().contains("disabled by olivia@harborview.example") || page.text().contains("disabled by Olivia"), "{}", page.text());
        let done = olivia.submit(&page, &format!("form[action='{path}/enable']"), &[]).await;
        let page = olivia.follow(&done).await;
        assert_eq!(page.select_text("[data-field=state]"), ["enabled"]);
        let done = olivia.submit(&page, &format!("form[action='{path}/delete']"), &[]).await;
        assert_eq!(done.status, 303);
        let list = olivia.follow(&done).await;
        assert!(list.text().contains("was deleted") && list.text().contains("No webhook endpoint yet."), "{}", list.text());
        assert_eq!(olivia.get(&path).await.status, 404);

        // Every change is in the audit log under the owner's name.
        let olivia_id = app.rows("SELECT id FROM staff_users WHERE email = 'olivia@harborview.example'", &[]).await[0].i64(0);
        let actions: Vec<String> = app
            .rows("SELECT action FROM audit_log WHERE staff_user_id = $1 AND action LIKE 'webhook%' ORDER BY id", &[olivia_id.into()])
            .await
            .iter()
            .map(|r| r.string(0))
            .collect();
        assert_eq!(actions, [
            "webhook_endpoint_created", "webhook_test_sent", "webhook_endpoint_updated",
            "webhook_endpoint_updated", "webhook_endpoint_deleted",
        ]);
    }

    async fn the_console_refuses_a_private_target_by_default(backend: Backend) {
        use latchkey::domain::EmailAddress;
        use latchkey::store::Role;
        let app = Setup::new(backend).with_smtp().start().await;
        let demo = storefront_id(&app, "demo").await;
        app.store()
            .create_staff(Some(demo), &EmailAddress::parse("max@harborview.example").unwrap(), "Max Manager", Role::Manager, Utc::now())
            .await
            .unwrap();
        let max = console_sign_in(&app, "max@harborview.example").await;
        let list = max.get("/console/s/demo/webhooks").await;
        let refused = max.submit(&list, "form[action='/console/s/demo/webhooks']", &[
            ("url", "http://10.0.0.5/hook"), ("type.delivery.sent", "on"),
        ]).await;
        assert_eq!(refused.status, 422);
        assert!(refused.text().contains("The URL is refused") && refused.text().contains("internal"), "{}", refused.text());
        assert_eq!(app.count("SELECT COUNT(*) FROM webhook_endpoints", &[]).await, 0);
    }
}

both_backends! {
    async fn invoices_paid_and_payment_methods_added_or_removed_are_events(backend: Backend) {
        use latchkey_testkit::PaymentMethodKind;
        let app = Setup::new(backend)
            .with_stripe()
            .with_smtp()
            .config(|c| c.webhooks.allow_private_targets = true)
            .start()
            .await;
        let _queues = WebhookQueues::of(&app);
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let (_, secret) = endpoint_for(&app, &key, &receiver.url, &[
            "invoice.paid", "invoice.payment_failed", "payment_method.added", "payment_method.removed",
        ]).await;
        let stripe = app.fake_stripe();
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);

        // Paid through Checkout: one invoice.paid, however often Stripe tells us.
        let id = app.invoice_id("INV-1042").await;
        let billing = browser.get("/s/demo/billing?status=pending").await;
        let checkout = browser
            .submit(&billing, &format!("form[action='/s/demo/billing/invoices/{id}/pay']"), &[])
            .await
            .location()
            .unwrap();
        let session = checkout.rsplit('/').next().unwrap().to_string();
        let event = stripe.complete_checkout(&session);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        assert_eq!(app.send_webhook(&event).await.status(), 200);
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(1).await;
        let paid = verify(&secret, &got[0], app.clock_now().timestamp());
        assert_eq!(paid["type"], "invoice.paid");
        assert_eq!(paid["data"]["invoice_id"], id);
        assert_eq!(paid["data"]["ref"], "INV-1042");
        assert_eq!(paid["data"]["status"], "paid");
        assert_eq!(paid["data"]["amount"], json!({"minor": 12900, "currency": "USD"}));
        assert_eq!(paid["data"]["account_id"], alex);
        assert!(paid["data"]["paid_at"].is_string());

        // A payment method saved through Checkout, another attached at Stripe: added, each once.
        let billing = browser.get("/s/demo/billing").await;
        let redirect = browser.submit(&billing, "form[action$='/billing/payment-methods']", &[]).await;
        let setup = redirect.location().unwrap().rsplit('/').next().unwrap().to_string();
        assert_eq!(app.send_webhook(&stripe.complete_checkout(&setup)).await.status(), 200);
        let customer = stripe.customers()[0]["id"].as_str().unwrap().to_string();
        stripe.attach_payment_method(&customer, PaymentMethodKind::card("mastercard", "5454", 3, 2031));
        let back = browser.get("/s/demo/billing?setup=success").await;
        assert_eq!(back.select_text(".method span").len(), 2);
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(3).await;
        let added = by_type(&secret, &got[1..], app.clock_now().timestamp());
        assert!(added.iter().all(|(t, e)| t == "payment_method.added" && e["data"]["account_id"] == alex), "{added:?}");
        let mut last4: Vec<String> = added.iter().map(|(_, e)| e["data"]["last4"].as_str().unwrap().to_string()).collect();
        last4.sort();
        assert_eq!(last4, ["4242", "5454"]);

        // Removed by the customer: payment_method.removed with its Stripe id.
        let visa = app.rows("SELECT id, stripe_id FROM payment_methods WHERE last4 = '4242'", &[]).await;
        let (row_id, stripe_id) = (visa[0].i64(0), visa[0].string(1));
        let removed = browser
            .submit(&back, &format!("form[action='/s/demo/billing/payment-methods/{row_id}/remove']"), &[])
            .await;
        assert_eq!(removed.status, 303);
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(4).await;
        let gone = verify(&secret, &got[3], app.clock_now().timestamp());
        assert_eq!(gone["type"], "payment_method.removed");
        assert_eq!(gone["data"]["payment_method"], stripe_id.as_str());
        // Reading the list again changes nothing and tells nobody.
        browser.get("/s/demo/billing").await;
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 4, "each event once");
    }
}

both_backends! {
    async fn a_failed_debit_is_one_signed_invoice_payment_failed_event(backend: Backend) {
        use latchkey_testkit::PaymentMethodKind;
        let app = Setup::new(backend)
            .with_stripe()
            .with_smtp()
            .config(|c| c.webhooks.allow_private_targets = true)
            .start()
            .await;
        let _queues = WebhookQueues::of(&app);
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let (endpoint, secret) =
            endpoint_for(&app, &key, &receiver.url, &["invoice.paid", "invoice.payment_failed"]).await;
        let stripe = app.fake_stripe();
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);

        // Paid by pre-authorized debit: the Checkout completes with the money still on its way
        // (processing, which is no event).
        let id = app.invoice_id("INV-1042").await;
        let billing = browser.get("/s/demo/billing?status=pending").await;
        let checkout = browser
            .submit(&billing, &format!("form[action='/s/demo/billing/invoices/{id}/pay']"), &[])
            .await
            .location()
            .unwrap();
        let session = checkout.rsplit('/').next().unwrap().to_string();
        let completed =
            stripe.complete_payment_with(&session, PaymentMethodKind::acss_debit("TD Canada Trust", "6789"));
        assert_eq!(completed["data"]["object"]["payment_status"], "unpaid");
        assert_eq!(app.send_webhook(&completed).await.status(), 200);
        let pi = app.rows("SELECT payment_intent_id FROM invoices WHERE id = $1", &[id.into()]).await[0]
            .opt_string(0)
            .expect("the debit's PaymentIntent");
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.received().is_empty(), "processing is no event");

        // The bank refuses the debit: Stripe says so twice over, each event twice (its retries).
        let failed = stripe.payment_intent_payment_failed_event(&session);
        assert_eq!(failed["type"], "payment_intent.payment_failed");
        for event in [&failed, &failed, &stripe.async_payment_failed_event(&session)] {
            assert_eq!(app.send_webhook(event).await.status(), 200);
        }
        let pending = app.rows("SELECT status FROM invoices WHERE id = $1", &[id.into()]).await;
        assert_eq!(pending[0].string(0), "pending");
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(1).await;
        let event = verify(&secret, &got[0], app.clock_now().timestamp());
        assert_eq!(event["type"], "invoice.payment_failed");
        assert_eq!(event["storefront"], "demo");
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["data"]["invoice_id"], id);
        assert_eq!(event["data"]["ref"], "INV-1042");
        assert_eq!(event["data"]["status"], "pending", "waiting for payment again");
        assert_eq!(event["data"]["amount"], json!({"minor": 12900, "currency": "USD"}));
        assert_eq!(event["data"]["paid_at"], Value::Null);
        assert_eq!(event["data"]["account_id"], alex);
        // The PaymentIntent that failed (the invoice itself no longer names it: its next
        // Checkout is a new attempt).
        assert_eq!(event["data"]["payment_intent"], pi.as_str(), "{event}");
        let d = wait_for_tries(&app, &key, endpoint, 1).await;
        assert_eq!((d["status"].as_str(), d["event_id"].as_str()), (Some("delivered"), event["id"].as_str()), "{d}");

        // Once: the repeats and the session's own failure event tell nobody again.
        app.clock.advance(Span::hours(1));
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 1, "one invoice.payment_failed, no invoice.paid");
        assert_eq!(
            app.count("SELECT COUNT(*) FROM webhook_events WHERE type = 'invoice.payment_failed'", &[]).await,
            1
        );
    }
}

both_backends! {
    async fn a_confirmed_email_change_is_an_event_and_an_unconfirmed_one_is_not(backend: Backend) {
        const NEW: &str = "alex.new@example.com";
        let app = start(backend).await;
        let _queues = WebhookQueues::of(&app);
        let receiver = Receiver::start(&[]).await;
        let key = api_key(&app, "demo").await;
        let (_, secret) = endpoint_for(&app, &key, &receiver.url, &["account.email_changed"]).await;
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let page = browser.get("/s/demo/account").await;
        let saved = browser.submit(&page, "form[action$='/account']", &[("email", NEW)]).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let mail = app.mailbox.wait_for(NEW).await;
        // Asked for, not confirmed yet: nothing to tell.
        app.app().relay_webhooks_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(receiver.received().is_empty());
        assert_eq!(webhook_rows(&app).await, (0, 0));

        let link = mail.links().into_iter().find(|l| l.contains("/confirm-email/")).unwrap();
        let landing = browser.get_url(&link).await;
        let confirmed = browser.submit(&landing, "form", &[]).await;
        assert_eq!(confirmed.status, 303, "{}", confirmed.body);
        app.app().relay_webhooks_once().await.unwrap();
        let got = receiver.wait_for(1).await;
        let event = verify(&secret, &got[0], app.clock_now().timestamp());
        assert_eq!(event["type"], "account.email_changed");
        assert_eq!(event["data"], json!({"account_id": alex, "old_email": "alex@example.com", "new_email": NEW}));
    }
}
