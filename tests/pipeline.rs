//! The email pipeline under faults: SMTP outages and refusals, the broker going away, a worker
//! killed mid-send, poison messages, a database outage. No email is lost: every delivery ends
//! `sent` or `failed` with a reason, and every try is recorded with the server's reply.

mod support;

use std::process::Child;
use std::time::Duration;

use chrono::Duration as Span;
use latchkey::actors::DeliverOutcome;
use latchkey_testkit::SmtpMode;
use support::*;

both_backends! {
    // One runtime thread is the default; one per core (`threads = 0`) and a fixed number stay
    // supported: each serves pages and delivers every email it is asked for.
    async fn every_email_arrives_on_one_runtime_thread_or_several(backend: Backend) {
        assert_eq!(latchkey::config::Config::defaults().threads, 1);
        for threads in [1usize, 0, 3] {
            let app = Setup::new(backend)
                .config(move |c| {
                    c.threads = threads;
                    c.sign_in.per_account_max = 100;
                })
                .start()
                .await;
            let browser = app.browser();
            let mut ids = Vec::new();
            for _ in 0..6 {
                ids.push(app.request_link(&browser, "alex@example.com").await);
            }
            for id in &ids {
                app.wait_for_status(*id, "sent").await;
            }
            assert_eq!(
                app.mailbox.wait_for_n("alex@example.com", 6).await.len(),
                6,
                "threads = {threads}"
            );
            let page = app.sign_in(&browser, "alex@example.com").await;
            assert_eq!(page.status, 200, "threads = {threads}: {}", page.body);
        }
    }

    async fn an_smtp_outage_defers_the_email_until_the_server_is_back(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| c.mail.retry_delays_seconds = vec![0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
            .start()
            .await;
        app.smtp().set_mode(SmtpMode::Down);
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let deferred = app.wait_for_status(id, "deferred").await;
        assert!(deferred.last_error.unwrap().contains("could not connect"));
        let first = &app.attempts(id).await[0];
        assert_eq!(first.outcome, "deferred");
        assert_eq!(first.smtp_code, None);
        assert!(first.detail.contains("Connection refused"), "{}", first.detail);

        app.smtp().set_mode(SmtpMode::Accept);
        let sent = app.wait_for_status(id, "sent").await;
        let attempts = app.attempts(id).await;
        assert!(attempts.len() >= 2);
        assert_eq!(sent.attempts as usize, attempts.len());
        let last = attempts.last().unwrap();
        assert_eq!(last.outcome, "sent");
        assert_eq!(last.smtp_code, Some(250));
        assert!(last.detail.starts_with("250 2.0.0 Ok"), "{}", last.detail);
        assert!(attempts[..attempts.len() - 1].iter().all(|a| a.outcome == "deferred"));
        assert_eq!(app.mailbox.wait_for_n("alex@example.com", 1).await.len(), 1);
        assert!(!sent.has_sealed_token);
    }

    async fn an_smtp_5xx_fails_at_once_with_the_reply_recorded(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        app.smtp().set_mode(SmtpMode::RejectRcpt {
            code: 550,
            message: "5.1.1 <alex@example.com>: Recipient address rejected: User unknown".into(),
        });
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let failed = app.wait_for_status(id, "failed").await;
        assert!(failed.last_error.unwrap().contains("Recipient address rejected"));
        // No retry follows a permanent failure.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let attempts = app.attempts(id).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, "failed");
        assert_eq!(attempts[0].smtp_code, Some(550));
        assert!(attempts[0].detail.contains("5.1.1 <alex@example.com>: Recipient address rejected: User unknown"), "{}", attempts[0].detail);
        assert!(!app.store().delivery(id).await.unwrap().unwrap().has_sealed_token);
    }

    async fn temporary_refusals_are_retried_on_schedule_then_fail(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| c.mail.retry_delays_seconds = vec![0.2, 0.3, 0.4])
            .start()
            .await;
        app.smtp().set_mode(SmtpMode::RejectData { code: 451, message: "4.3.0 Try again later".into() });
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let failed = app.wait_for_status(id, "failed").await;
        assert!(failed.last_error.as_deref().unwrap().starts_with("gave up after 4 attempts"), "{:?}", failed.last_error);
        let attempts = app.attempts(id).await;
        let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["deferred", "deferred", "deferred", "failed"]);
        assert!(attempts.iter().all(|a| a.smtp_code == Some(451)));
        // The retries waited (about) the configured delays.
        for (pair, delay) in attempts.windows(2).zip([0.2, 0.3, 0.4]) {
            let gap = (pair[1].started_at - pair[0].finished_at).num_milliseconds();
            assert!(gap as f64 >= delay * 1000.0 - 50.0, "gap {gap} ms < {delay} s");
        }
        assert!(app.mailbox.to("alex@example.com").is_empty());
    }

    async fn a_link_that_expires_before_delivery_is_not_sent(backend: Backend) {
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| c.mail.retry_delays_seconds = vec![3600.0])
            .start()
            .await;
        app.smtp().set_mode(SmtpMode::Down);
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        app.wait_for_status(id, "deferred").await;
        app.smtp().set_mode(SmtpMode::Accept);
        app.clock.advance(Span::minutes(61));
        let outcome = app.app().deliver(id).await.unwrap();
        assert_eq!(outcome, DeliverOutcome::Failed { error: "link expired before delivery".into() });
        let failed = app.store().delivery(id).await.unwrap().unwrap();
        assert_eq!(failed.last_error.as_deref(), Some("link expired before delivery"));
        assert!(!failed.has_sealed_token);
        assert!(app.mailbox.to("alex@example.com").is_empty());
    }

    async fn the_sending_try_is_recorded_on_the_delivery_row(backend: Backend) {
        // One try that sends the email: its history shows it with the server's reply, and it
        // costs no attempt row (issue 10: one row fewer per email).
        let app = Setup::new(backend).with_smtp().start().await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let sent = app.wait_for_status(id, "sent").await;
        let history = app.attempts(id).await;
        assert_eq!(history.len(), 1);
        let only = &history[0];
        assert_eq!((only.attempt, only.outcome.as_str(), only.smtp_code), (1, "sent", Some(250)));
        assert!(only.detail.starts_with("250 2.0.0 Ok"), "{}", only.detail);
        assert!(!only.worker.is_empty());
        assert_eq!(Some(only.finished_at), sent.sent_at);
        assert!(only.started_at <= only.finished_at);
        let rows = app
            .count(
                "SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = $1",
                &[latchkey::store::Value::I64(id)],
            )
            .await;
        assert_eq!(rows, 0);
    }

    async fn a_sending_try_that_lost_its_row_to_another_worker_is_still_recorded(backend: Backend) {
        use latchkey::store::{AttemptRecord, ClaimRules, Finish, FinishItem};
        // Two workers hold the same row (the broker redelivered it while the first was still
        // sending); both send. The second records the outcome on the row; the first finds the
        // row moved on, and its try must not vanish from the history.
        let app = Setup::new(backend).without_workers().start().await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let store = app.store();
        let now = app.clock_now();
        let rules = ClaimRules {
            now,
            lease_until: now + Span::minutes(5),
            hold_until: None,
        };
        let first = store.claim_deliveries(&[(id, false)], rules).await.unwrap()[0].clone().unwrap();
        let second = store.claim_deliveries(&[(id, true)], rules).await.unwrap()[0].clone().unwrap();
        let sent = |claimed, worker: &str| FinishItem {
            claimed,
            attempt: Some(AttemptRecord {
                started_at: now,
                finished_at: now,
                smtp_code: Some(250),
                detail: format!("250 2.0.0 Ok: queued by {worker}"),
                worker: worker.to_string(),
            }),
            finish: Finish::Sent,
            now,
        };
        assert_eq!(store.finish_deliveries(&[sent(second, "w2")]).await.unwrap().written, vec![true]);
        assert_eq!(store.finish_deliveries(&[sent(first, "w1")]).await.unwrap().written, vec![false]);
        let mut workers: Vec<String> = app.attempts(id).await.into_iter().map(|a| a.worker).collect();
        workers.sort();
        assert_eq!(workers, ["w1", "w2"]);
    }

    async fn the_relay_leaves_a_row_to_the_worker_that_holds_it_until_its_lease_ends(backend: Backend) {
        // The claim keeps its lease in the row without moving the row's relay time, so the
        // relay must itself skip a row a live worker holds, whatever its relay time says. (An
        // SMTP dialogue allowed a minute is longer than a fresh row's relay delay: the worker
        // cannot hold the row by its message alone, and claims it with a lease.)
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| c.mail.smtp_timeout_seconds = 60)
            .start()
            .await;
        app.smtp().set_mode(SmtpMode::StallData);
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        app.smtp()
            .wait_for_stalled(1, WAIT)
            .await
            .expect("the worker reaches DATA");
        assert_eq!(app.delivery_status(id).await, "sending");

        // Past the relay time of a queued row (60 s), inside the lease (300 s).
        app.clock.advance(Span::minutes(2));
        assert_eq!(app.app().relay_once().await.unwrap().published, 0);
        // Past the lease: the worker is taken to have died, and the row is published again.
        app.clock.advance(Span::minutes(4));
        assert_eq!(app.app().relay_once().await.unwrap().published, 1);
    }

    async fn a_fresh_email_is_taken_without_a_write_and_a_late_or_repeated_one_with_a_lease(backend: Backend) {
        // Most emails are sent within milliseconds of their row's write, on their message's
        // first delivery: the unacknowledged message holds the row (the broker gives it to
        // another consumer only if this one dies, and the relay publishes it again only at its
        // relay time), so the claim reads the row and writes nothing. Whatever else may already
        // have a copy of the message is claimed with a lease, as before.
        use latchkey::store::{AttemptRecord, ClaimRules, Finish, FinishItem};
        let (app, ids) = links_left_queued(backend, 4).await;
        let store = app.store();
        let now = app.clock_now();
        let rules = |now: chrono::DateTime<chrono::Utc>, margin: Span| ClaimRules {
            now,
            lease_until: now + Span::minutes(5),
            hold_until: Some(now + margin),
        };
        let status = |id: i64| {
            let store = app.store().clone();
            async move { store.delivery(id).await.unwrap().unwrap() }
        };

        // Fresh, on its first delivery, its relay time (60 s away) beyond the margin: held.
        let held = store.claim_deliveries(&[(ids[0], false)], rules(now, Span::seconds(30))).await.unwrap()[0]
            .clone()
            .expect("taken");
        assert_eq!(held.held_until, Some(held.created_at + Span::seconds(60)));
        let row = status(ids[0]).await;
        assert_eq!(row.status.as_str(), "queued");
        assert_eq!(row.updated_at, row.created_at, "the claim wrote nothing");
        // Its outcome is recorded all the same.
        let sent = FinishItem {
            claimed: held,
            attempt: Some(AttemptRecord {
                started_at: now,
                finished_at: now,
                smtp_code: Some(250),
                detail: "250 2.0.0 Ok".into(),
                worker: "w1".into(),
            }),
            finish: Finish::Sent,
            now,
        };
        assert_eq!(store.finish_deliveries(&[sent]).await.unwrap().written, vec![true]);
        let row = status(ids[0]).await;
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));

        // A message the broker delivered again (its consumer died): leased.
        let again = store.claim_deliveries(&[(ids[1], true)], rules(now, Span::seconds(30))).await.unwrap()[0]
            .clone()
            .expect("taken");
        assert_eq!(again.held_until, None);
        assert_eq!(status(ids[1]).await.status.as_str(), "sending");

        // Its relay time nearer than the margin: leased.
        let late = store.claim_deliveries(&[(ids[2], false)], rules(now, Span::seconds(61))).await.unwrap()[0]
            .clone()
            .expect("taken");
        assert_eq!(late.held_until, None);
        assert_eq!(status(ids[2]).await.status.as_str(), "sending");

        // Published again by the relay (so a second copy of its message may be about): leased,
        // though its new relay time is a minute away.
        let later = now + Span::seconds(61);
        let step = store.take_relay_batch(later, later + Span::minutes(1), 10).await.unwrap();
        assert_eq!(step.publish.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ids[3]]);
        let relayed = store.claim_deliveries(&[(ids[3], false)], rules(later, Span::seconds(30))).await.unwrap()[0]
            .clone()
            .expect("taken");
        assert_eq!(relayed.held_until, None);
        assert_eq!(status(ids[3]).await.status.as_str(), "sending");
    }

    async fn a_held_row_is_left_to_its_worker_and_a_send_that_starts_late_takes_a_lease(backend: Backend) {
        // One email a second for the storefront: the second waits for the sending limit after
        // its claim. The clock moves 40 s meanwhile, so its send would end nearer its relay time
        // than the margin (5 s of SMTP dialogue + 30 s): it claims the row with a lease first.
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| {
                c.mail.per_storefront_per_second = 1;
                c.sign_in.per_account_max = 100;
            })
            .start()
            .await;
        app.smtp().set_mode(SmtpMode::StallData);
        let browser = app.browser();
        let first = app.request_link(&browser, "alex@example.com").await;
        app.smtp().wait_for_stalled(1, WAIT).await.expect("the first email reaches DATA");
        assert_eq!(app.delivery_status(first).await, "queued");
        let second = app.request_link(&browser, "alex@example.com").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.clock.advance(Span::seconds(40));
        app.smtp().wait_for_stalled(2, WAIT).await.expect("the second email reaches DATA");
        assert_eq!(app.delivery_status(second).await, "sending");
        assert_eq!(app.delivery_status(first).await, "queued");
        // The first row's relay time (60 s) has not come, the second is leased: nothing to relay.
        assert_eq!(app.app().relay_once().await.unwrap().published, 0);

        // The stalled dialogues time out; the retries go through, one email each.
        app.smtp().set_mode(SmtpMode::Accept);
        for id in [first, second] {
            let sent = app.wait_for_status(id, "sent").await;
            assert_eq!(sent.attempts, 2);
        }
        assert_eq!(app.mailbox.wait_for_n("alex@example.com", 2).await.len(), 2);
    }

    async fn the_relay_looks_at_each_delivery_once_and_publishes_only_those_still_waiting(backend: Backend) {
        // An email's outcome keeps its relay time (so PostgreSQL updates the row in place); the
        // relay walks the rows whose time has come from where it last looked, passing over the
        // sent and failed ones, in steps, and gives the waiting ones a new time.
        use latchkey::store::{AttemptRecord, ClaimRules, Finish, FinishItem};
        let (app, ids) = links_left_queued(backend, 7).await;
        // A worker sends four and fails one; two stay queued (their publish was lost).
        let now = app.clock_now();
        let rules = ClaimRules { now, lease_until: now + Span::minutes(5), hold_until: None };
        let claimed = app.store().claim_deliveries(
            &ids[..5].iter().map(|id| (*id, false)).collect::<Vec<_>>(),
            rules,
        ).await.unwrap();
        let finished: Vec<FinishItem> = claimed.into_iter().enumerate().map(|(n, c)| FinishItem {
            claimed: c.expect("claimed"),
            attempt: Some(AttemptRecord {
                started_at: now,
                finished_at: now,
                smtp_code: Some(if n == 2 { 550 } else { 250 }),
                detail: "reply".into(),
                worker: "test".into(),
            }),
            finish: if n == 2 { Finish::Failed { error: "refused".into() } } else { Finish::Sent },
            now,
        }).collect();
        assert_eq!(app.store().finish_deliveries(&finished).await.unwrap().written, vec![true; 5]);
        assert_eq!(app.store().pending_deliveries().await.unwrap(), 2);

        // Before their relay time nothing is looked at.
        let step = app.store().take_relay_batch(now, now + Span::minutes(1), 3).await.unwrap();
        assert_eq!((step.looked_at, step.publish.len()), (0, 0));

        // Past it: three steps of at most three rows pass all seven; the two queued are published.
        let later = now + Span::seconds(61);
        let mut looked = Vec::new();
        let mut published = Vec::new();
        for _ in 0..4 {
            let step = app.store().take_relay_batch(later, later + Span::minutes(1), 3).await.unwrap();
            looked.push(step.looked_at);
            published.extend(step.publish.iter().map(|p| p.id));
        }
        assert_eq!(looked, vec![3, 3, 1, 0]);
        published.sort_unstable();
        assert_eq!(published, ids[5..].to_vec());
        assert_eq!(app.store().pending_deliveries().await.unwrap(), 2);

        // The two waiting rows come round again when their new relay time comes; the others never.
        app.clock.advance(Span::seconds(125));
        let report = app.app().relay_once().await.unwrap();
        assert_eq!(report.published, 2);
        for id in &ids[..5] {
            let status = app.store().delivery(*id).await.unwrap().unwrap().status;
            assert!(status.is_final(), "{id}: {status:?}");
        }
    }

    async fn a_write_that_commits_late_is_still_relayed(backend: Backend) {
        // The relay has already passed the relay time of a row committed after it: moving the
        // row's relay time on (as the writer does when its write took half the relay delay)
        // puts it back in the relay's path.
        let app = Setup::new(backend).without_workers().start().await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        let now = app.clock_now();
        let later = now + Span::seconds(61);
        // The relay passes the row's time (the row is published) and moves on past it.
        let step = app.store().take_relay_batch(later, later + Span::minutes(1), 100).await.unwrap();
        assert_eq!(step.publish.len(), 1);
        let step = app.store().take_relay_batch(later + Span::seconds(61), later + Span::minutes(2), 100).await.unwrap();
        assert_eq!(step.publish.len(), 1);
        // A time behind the relay's place is never looked at again...
        let far = later + Span::minutes(10);
        app.store().relay_later(id, now, far).await.unwrap();
        let step = app.store().take_relay_batch(far, far + Span::minutes(1), 100).await.unwrap();
        assert_eq!(step.publish.len(), 0);
        // ...a time ahead of it is.
        app.store().relay_later(id, far + Span::seconds(1), far).await.unwrap();
        let step = app.store().take_relay_batch(far + Span::seconds(2), far + Span::minutes(1), 100).await.unwrap();
        assert_eq!(step.publish.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id]);
    }

    async fn a_delivery_already_handled_is_skipped(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let id = app.request_link(&app.browser(), "alex@example.com").await;
        app.wait_for_status(id, "sent").await;
        // A duplicate message (relay and broker both delivered it) changes nothing.
        assert_eq!(app.app().deliver(id).await.unwrap(), DeliverOutcome::Skipped);
        assert_eq!(app.attempts(id).await.len(), 1);
        assert_eq!(app.mailbox.wait_for_n("alex@example.com", 1).await.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batched_statements_run_with_generic_plans_and_the_rest_with_custom_ones() {
    // The sign-in path's batches (issuing, claims, outcomes, the relay) take arrays, whose
    // custom plans PostgreSQL would make anew on every execution; the console's queries need
    // plans made for their values. So the two run on pools set up differently.
    let app = Setup::new(Backend::Postgres).with_smtp().start().await;
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    let setting = |db: &'static str| {
        let store = app.store().clone();
        async move {
            let database = if db == "batches" {
                store.batches()
            } else {
                store.db()
            };
            let mut conn = database.conn().await.unwrap();
            conn.query("SELECT current_setting('plan_cache_mode')", &[])
                .await
                .unwrap()[0]
                .string(0)
        }
    };
    assert_eq!(setting("batches").await, "force_generic_plan");
    assert_eq!(setting("db").await, "auto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_sends_what_an_embedded_node_left_queued_when_it_stopped() {
    // A node stops (or crashes) after writing the delivery row but before its in-process queue
    // delivered it. The next start's relay finds the row and sends it.
    let mut app = Setup::new(Backend::Embedded)
        .without_workers()
        .start()
        .await;
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    assert_eq!(app.delivery_status(id).await, "queued");
    let config = app.config.clone();
    app.app.take().unwrap().stop();

    let clock = latchkey::domain::ManualClock::new();
    clock.advance(Span::minutes(2));
    let restarted = latchkey::app::App::start(
        config,
        latchkey::app::AppOptions {
            web: false,
            workers: Some(true),
            bounces: None,
            clock: std::sync::Arc::new(clock),
            listener: None,
        },
    )
    .unwrap();
    let report = restarted.relay_once().await.unwrap();
    assert_eq!(report.published, 1);
    app.mailbox.wait_for("alex@example.com").await;
    restarted.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_sends_what_the_broker_never_got() {
    let app = Setup::new(Backend::Postgres)
        .with_broker_proxy()
        .start()
        .await;
    let proxy = app.broker_proxy.clone().unwrap();
    let browser = app.browser();
    proxy.set_down(true);
    // A web node stays ready (the relay covers the outage); its readiness names the broker.
    let ready = browser.get_url(&app.ops_url("/readyz")).await;
    assert_eq!(ready.status, 200);
    assert_ne!(
        serde_json::from_str::<serde_json::Value>(&ready.body).unwrap()["queue"],
        "ok"
    );

    // The customer still gets the page: the row is written; the publish fails.
    let id = app.request_link(&browser, "alex@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.delivery_status(id).await, "queued");
    assert!(app.mailbox.to("alex@example.com").is_empty());

    proxy.set_down(false);
    wait_for_queue_ready(&app, &browser, "the broker connection never came back").await;
    // Nothing is sent until the relay notices the row has waited too long.
    app.clock.advance(Span::seconds(61));
    let report = app.app().relay_once().await.unwrap();
    assert_eq!(report.published, 1);
    app.wait_for_status(id, "sent").await;
    assert_eq!(app.mailbox.wait_for_n("alex@example.com", 1).await.len(), 1);
}

/// The AMQP URL of the test broker with its address replaced by `127.0.0.1:{port}`, and
/// the broker's own address.
async fn broker_via(port: u16) -> (String, std::net::SocketAddr) {
    let mut uri: lapin::uri::AMQPUri = amqp_url().parse().expect("an AMQP URL");
    let broker = tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
        .await
        .expect("the broker's address")
        .next()
        .expect("an address");
    uri.authority.host = "127.0.0.1".into();
    uri.authority.port = port;
    (uri.to_string(), broker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_broker_connection_moves_on_to_the_next_node() {
    // Two "nodes": two proxies in front of the one test broker, listed in the queue URL.
    let (_, broker) = broker_via(0).await;
    let first = latchkey_testkit::TcpProxy::start(broker).await.unwrap();
    let second = latchkey_testkit::TcpProxy::start(broker).await.unwrap();
    let nodes = format!(
        "{},{}",
        broker_via(first.port()).await.0,
        broker_via(second.port()).await.0
    );
    let app = Setup::new(Backend::Postgres)
        .config(move |c| c.queue_url = nodes.into())
        .start()
        .await;
    let browser = app.browser();
    let id = app.request_link(&browser, "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    assert!(
        first.connections_opened() >= 2,
        "publisher and worker on the first node"
    );
    assert_eq!(
        second.connections_opened(),
        0,
        "the second node is not needed yet"
    );

    // The first node goes away: its connections drop, and it closes every new one.
    first.set_down(true);
    wait_for_queue_ready(
        &app,
        &browser,
        "the publisher never reached the second node",
    )
    .await;
    // Published and consumed on the second node, with no help from the relay.
    let id = app.request_link(&browser, "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    assert_eq!(app.mailbox.wait_for_n("alex@example.com", 2).await.len(), 2);
    assert!(
        second.connections_opened() >= 2,
        "publisher and worker moved over"
    );
    assert_eq!(first.active_connections(), 0);
}

/// Waits until the node's `/readyz` says its queue connection is up again.
async fn wait_for_queue_ready(app: &TestApp, browser: &Browser, what_failed: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ready = browser.get_url(&app.ops_url("/readyz")).await;
        if serde_json::from_str::<serde_json::Value>(&ready.body).unwrap()["queue"] == "ok" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what_failed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An application without mail workers, and `n` sign-in links Alex asked for: their rows stay
/// `queued` for the test to claim, finish and relay by hand.
async fn links_left_queued(backend: Backend, n: usize) -> (TestApp, Vec<i64>) {
    let app = Setup::new(backend)
        .without_workers()
        .config(|c| c.sign_in.per_account_max = 100)
        .start()
        .await;
    let browser = app.browser();
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(app.request_link(&browser, "alex@example.com").await);
    }
    (app, ids)
}

fn spawn_worker(app: &TestApp) -> Child {
    app.command(&["worker"])
        .spawn()
        .expect("start a latchkey worker process")
}

/// A worker killed by SIGKILL in the middle of an SMTP dialogue: with `held` its claim wrote
/// nothing (the row stays `queued`, held by the unacknowledged message); otherwise the worker
/// was allowed an SMTP dialogue longer than a fresh row's relay delay, so it leased the row.
async fn worker_killed_mid_send(held: bool) {
    let app = Setup::new(Backend::Postgres)
        .without_workers()
        .start()
        .await;
    let smtp = app.smtp().clone();
    smtp.set_mode(SmtpMode::StallData);
    let mut first = if held {
        spawn_worker(&app)
    } else {
        app.command(&["worker"])
            .env("LATCHKEY_MAIL__SMTP_TIMEOUT_SECONDS", "60")
            .spawn()
            .expect("start a latchkey worker process")
    };

    let id = app.request_link(&app.browser(), "alex@example.com").await;
    smtp.wait_for_stalled(1, WAIT)
        .await
        .expect("the worker reaches DATA");
    assert_eq!(
        app.delivery_status(id).await,
        if held { "queued" } else { "sending" }
    );

    // SIGKILL: no chance to acknowledge or update the row.
    first.kill().unwrap();
    first.wait().unwrap();
    smtp.set_mode(SmtpMode::Accept);

    // The broker hands the unacknowledged message to the next worker, which may take the row
    // although its lease (5 minutes) has not run out: the message says its consumer died.
    let mut second = spawn_worker(&app);
    let sent = app.wait_for_status(id, "sent").await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(sent.attempts, 1);
    assert_eq!(app.attempts(id).await.len(), 1);
    assert_eq!(
        smtp.messages_to("alex@example.com").len(),
        1,
        "exactly one email arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_loses_nothing() {
    worker_killed_mid_send(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_of_a_leased_row_loses_nothing() {
    worker_killed_mid_send(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_queue() {
    let app = TestApp::start(Backend::Postgres).await;
    let queue = latchkey::queue::rabbit::RabbitQueue::new(
        &amqp_url(),
        &app.config.queue.prefix,
        false,
        Duration::from_secs(5),
    );
    // Declares the topology (the app's worker may not have subscribed yet).
    assert_eq!(queue.dead_letters().await.unwrap(), 0);
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            app.config.queue.prefix.clone().into(),
            lapin::options::BasicPublishOptions::default(),
            b"this is not a delivery",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if queue.dead_letters().await.unwrap() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the poison message never reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The worker carries on.
    let id = app.request_link(&app.browser(), "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_shows_try_again_and_loses_nothing() {
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
    assert_eq!(during.status, 503);
    assert!(during.text().contains("Please try again in a minute"));
    // A storefront not looked up yet cannot be: the page says so in the visitor's language.
    let french = Browser::with_accept_language(&app.url(""), "fr-CA");
    let unknown = french.get("/s/elsewhere/sign-in").await;
    assert_eq!(unknown.status, 503);
    assert!(
        unknown.body.contains("<html lang=\"fr-CA\">"),
        "{}",
        unknown.body
    );
    assert!(
        unknown
            .text()
            .contains("Veuillez réessayer dans une minute"),
        "{}",
        unknown.text()
    );
    assert_eq!(browser.get_url(&app.ops_url("/readyz")).await.status, 503);
    proxy.set_down(false);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let after = browser
            .submit_followed(
                &page,
                "form[action$='/sign-in']",
                &[("email", "alex@example.com")],
            )
            .await;
        if after.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {}",
            after.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = app.latest_delivery_to("alex@example.com").await.id;
    app.wait_for_status(id, "sent").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries", &[]).await, 1);
}

/// Sends six emails under one sending limit of 2 per second; the attempts must spread over
/// at least 1.5 s (two at once, then one every half second).
async fn six_emails_under_a_limit(tweak: fn(&mut latchkey::config::Config)) {
    let app = Setup::new(Backend::Embedded)
        .config(move |c| {
            c.mail.global_per_second = 10_000;
            c.mail.per_domain_per_second = 10_000;
            c.mail.per_storefront_per_second = 10_000;
            tweak(c);
        })
        .start()
        .await;
    let browser = app.browser();
    let mut ids = Vec::new();
    for email in ["alex@example.com", "sam@example.com"] {
        for _ in 0..3 {
            ids.push(app.request_link(&browser, email).await);
        }
    }
    let mut started = Vec::new();
    for id in ids {
        app.wait_for_status(id, "sent").await;
        started.push(app.attempts(id).await[0].started_at);
    }
    started.sort();
    let spread = (*started.last().unwrap() - started[0]).num_milliseconds();
    assert!(
        spread >= 1_500,
        "six sends took only {spread} ms under a limit of 2/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_sending_limit_holds() {
    six_emails_under_a_limit(|c| c.mail.global_per_second = 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_domain_sending_limit_holds() {
    six_emails_under_a_limit(|c| c.mail.per_domain_per_second = 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_storefront_sending_limit_holds() {
    six_emails_under_a_limit(|c| c.mail.per_storefront_per_second = 2).await;
}
