//! What operations relies on: health and readiness, metrics, start-up errors, custom hosts,
//! quorum queues, the commands.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

both_backends! {
    async fn health_readiness_and_metrics_answer(backend: Backend) {
        let app = TestApp::start(backend).await;
        let browser = app.browser();
        let health = browser.get("/healthz").await;
        assert_eq!(health.status, 200);
        // Readiness and metrics are on the operations port (`ops_listen`) only.
        let ready = browser.get_url(&app.ops_url("/readyz")).await;
        assert_eq!(ready.status, 200);
        let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
        assert_eq!(body["database"], "ok");
        assert_eq!(body["queue"], "ok");

        let id = app.request_link(&browser, "alex@example.com").await;
        app.wait_for_status(id, "sent").await;
        let metrics = browser.get_url(&app.ops_url("/metrics")).await;
        assert_eq!(metrics.status, 200);
        for expected in [
            // POST-redirect-GET: the request answers 303, and Check your email is a GET.
            "latchkey_http_requests_total{route=\"sign_in\",method=\"POST\",status=\"303\"} 1",
            "latchkey_http_requests_total{route=\"sign_in\",method=\"GET\",status=\"200\"} 2",
            "latchkey_mail_sends_total{status=\"sent\"} 1",
            "latchkey_sign_in_requests_total{outcome=\"queued\"} 1",
            "latchkey_mail_send_duration_seconds_count 1",
            "latchkey_mail_pending_deliveries 0",
            "latchkey_http_request_duration_seconds_bucket{le=",
        ] {
            assert!(metrics.body.contains(expected), "metrics lack {expected}:\n{}", metrics.body);
        }
        assert!(!metrics.body.contains("/auth/"), "no raw paths (tokens) in metrics");
    }

    async fn a_custom_host_serves_its_storefront_at_the_root(backend: Backend) {
        let app = TestApp::start(backend).await;
        app.store()
            .db()
            .execute("UPDATE storefronts SET custom_host = 'portal.harborview.example' WHERE slug = 'demo'", &[])
            .await
            .unwrap();
        app.app().services.storefronts.clear();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        let host = "portal.harborview.example";
        let get = |path: &str| client.get(app.url(path)).header("host", host).send();
        let home = get("/").await.unwrap();
        assert_eq!(home.status(), 303);
        assert_eq!(home.headers()["location"], "/sign-in");
        let page = get("/sign-in").await.unwrap();
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        assert!(body.contains("action=\"/sign-in\""));
        let csrf = body.split("name=\"csrf_token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let sent = client
            .post(app.url("/sign-in"))
            .header("host", host)
            .form(&[("csrf_token", csrf.as_str()), ("email", "alex@example.com")])
            .send()
            .await
            .unwrap();
        // Check your email is reached by POST-redirect-GET, at the root of the custom host too.
        assert_eq!(sent.status(), 303);
        assert_eq!(sent.headers()["location"], "/sign-in/sent");
        let check = get("/sign-in/sent").await.unwrap();
        assert_eq!(check.status(), 200);
        let check = check.text().await.unwrap();
        assert!(check.contains("Check your email") && check.contains("action=\"/sign-in/code\""), "{check}");
        let link = sign_in_link(&app.mailbox.wait_for("alex@example.com").await);
        assert!(link.starts_with("http://portal.harborview.example/auth/"), "{link}");
        let path = link.trim_start_matches("http://portal.harborview.example");
        let signed_in = client
            .post(app.url(path))
            .header("host", host)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303);
        assert_eq!(signed_in.headers()["location"], "/dashboard");
        let cookie = signed_in.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).find(|c| c.starts_with("lk_session=")).unwrap();
        assert!(cookie.contains("Path=/;"), "{cookie}");
        // The main host still serves the storefront under /s/demo/.
        assert_eq!(app.browser().get("/s/demo/sign-in").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_are_declared_when_configured() {
    let app = Setup::new(Backend::Postgres)
        .config(|c| c.queue.quorum = true)
        .start()
        .await;
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    // Declaring the same queue as a classic queue is refused: it is a quorum queue.
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("classic".into()),
    );
    let err = channel
        .queue_declare(
            format!("{}.dead", app.config.queue.prefix).into(),
            lapin::options::QueueDeclareOptions::durable(),
            args,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("x-queue-type"), "{err}");
}

fn latchkey(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("LATCHKEY_CONFIG_DIR", dir.path())
        .env("LATCHKEY_DATA_DIR", dir.path().join("data"))
        .env("LATCHKEY_OPS_LISTEN", "127.0.0.1:0")
        .env(
            "LATCHKEY_DATABASE_URL",
            format!("sqlite://{}/lk.db", dir.path().display()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (key, value, named) in [
        ("LATCHKEY_MAIL__CONCURRENCY", "lots", "mail.concurrency"),
        ("LATCHKEY_DATABASE_URL", "mysql://x", "database_url"),
        ("LATCHKEY_LISTEN", "somewhere", "listen"),
        ("LATCHKEY_QUEUE_URL", "kafka://x", "queue_url"),
    ] {
        let out = latchkey(&["serve"], &[(key, value)]);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("latchkey: configuration error: {named}: ")),
            "{stderr}"
        );
    }
}

#[test]
fn migrate_and_demo_commands_work_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/lk.db", dir.path().display());
    let env = [("LATCHKEY_DATABASE_URL", db.as_str())];
    let run = |args: &[&str]| {
        let out = latchkey(args, &env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["migrate"]).contains("Applied: 0001_init"));
    assert!(run(&["migrate"]).contains("up to date"));
    assert!(run(&["demo"]).contains("alex@example.com"));
    run(&["demo"]);
    let conn = rusqlite::Connection::open(dir.path().join("lk.db")).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM storefronts"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM accounts"), 2);
    assert_eq!(
        count("SELECT COUNT(*) FROM rentals WHERE status = 'active'"),
        2
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM invoices WHERE status = 'pending'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM agreements"), 1);
}

#[test]
fn the_embedded_default_starts_with_no_configuration_and_prints_how_to_sign_in() {
    // `latchkey serve` in an empty directory: SQLite under ./data, the demo, the outbox.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .current_dir(dir.path())
        .env_clear()
        .env("LATCHKEY_CONFIG_DIR", dir.path().join("none"))
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LATCHKEY_OPS_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut ok = false;
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /s/demo/sign-in HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            ok = resp.starts_with("HTTP/1.1 200") && resp.contains("Customer portal");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(ok, "the portal did not answer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("http://127.0.0.1:{port}/s/demo/")),
        "{stdout}"
    );
    assert!(stdout.contains("alex@example.com"), "{stdout}");
    assert!(dir.path().join("data/latchkey.db").exists());
    assert!(dir.path().join("data/secret.key").exists());
    assert!(
        out.status.success(),
        "SIGTERM shuts down cleanly: {:?}",
        out.status
    );
}
