//! The SMTP client (`mail::smtp::SmtpPool`) against a real SMTP server on a local port
//! ([`SmtpSink`]): with a server that offers `PIPELINING` an email costs two round trips
//! (MAIL, RCPT and DATA together, then the content) instead of four; a server that does not
//! offer it gets one command at a time; a refusal inside a pipelined group is the email's
//! answer, and the next email still goes out.

use std::time::Duration;

use latchkey::config::{SmtpSettings, SmtpTls};
use latchkey::mail::smtp::SmtpPool;
use latchkey::mail::transport::Transport;
use latchkey_testkit::{SmtpMode, SmtpSink};
use lettre::address::Envelope;

/// Round trips before the first email: the greeting, lettre's EHLO and the pool's own EHLO
/// (lettre does not keep the `PIPELINING` keyword, so the pool asks once per connection).
const SETUP_ROUND_TRIPS: u64 = 3;

fn pool(sink: &SmtpSink) -> SmtpPool {
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
    };
    SmtpPool::new(settings, "portal.latchkey.test", 1, Duration::from_secs(5))
}

fn envelope(to: &str) -> Envelope {
    Envelope::new(
        Some("bounces+1@bounces.latchkey.test".parse().unwrap()),
        vec![to.parse().unwrap()],
    )
    .unwrap()
}

fn message(to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Harbor Storage <portal@harbor.test>\r\nTo: {to}\r\nSubject: Sign in\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n.hidden line\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_server_that_offers_pipelining_gets_each_email_in_two_round_trips() {
    let sink = SmtpSink::start().await.unwrap();
    let pool = pool(&sink);
    let emails = 5;
    for i in 0..emails {
        let to = format!("guest{i}@example.com");
        // Non-ASCII content goes with BODY=8BITMIME, as lettre sends it.
        let raw = message(&to, &format!("Connexion à votre espace n° {i}"));
        let reply = pool.send(&envelope(&to), &raw, i).await.unwrap();
        assert_eq!(reply.code, Some(250), "{}", reply.detail);
    }
    let received = sink
        .wait_for_count(emails as usize, Duration::from_secs(5))
        .await
        .unwrap();
    for (i, email) in received.iter().enumerate() {
        let to = format!("guest{i}@example.com");
        assert_eq!(email.mail_from, "bounces+1@bounces.latchkey.test");
        assert_eq!(email.mail_parameters, vec!["BODY=8BITMIME"]);
        assert_eq!(email.rcpt_to, vec![to.clone()]);
        // Byte for byte, dot-stuffing undone.
        let sent = message(&to, &format!("Connexion à votre espace n° {i}"));
        assert_eq!(email.data.trim_ascii_end(), sent.trim_ascii_end());
    }
    assert_eq!(sink.connections_accepted(), 1);
    let writes = sink.reply_writes();
    assert!(
        writes <= SETUP_ROUND_TRIPS + 2 * emails as u64,
        "{writes} round trips for {emails} emails: commands were not pipelined"
    );
}

#[tokio::test]
async fn a_server_without_pipelining_gets_one_command_at_a_time() {
    let sink = SmtpSink::builder()
        .without_pipelining()
        .start()
        .await
        .unwrap();
    let pool = pool(&sink);
    let emails = 3;
    for i in 0..emails {
        let to = format!("guest{i}@example.com");
        let raw = message(&to, "Sign in to Harbor Storage");
        let reply = pool.send(&envelope(&to), &raw, i).await.unwrap();
        assert_eq!(reply.code, Some(250), "{}", reply.detail);
    }
    let received = sink
        .wait_for_count(emails as usize, Duration::from_secs(5))
        .await
        .unwrap();
    // ASCII content goes without BODY=8BITMIME.
    assert!(received.iter().all(|e| e.mail_parameters.is_empty()));
    assert_eq!(sink.improper_pipelining(), 0);
    assert_eq!(sink.connections_accepted(), 1);
    // MAIL, RCPT, DATA and the content, each waited for.
    assert_eq!(sink.reply_writes(), SETUP_ROUND_TRIPS + 4 * emails as u64);
}

#[tokio::test]
async fn a_refusal_inside_a_pipelined_group_is_the_answer_and_the_next_email_goes_out() {
    let sink = SmtpSink::start().await.unwrap();
    let pool = pool(&sink);
    let raw = message("sam@example.com", "Sign in");

    sink.set_mode(SmtpMode::RejectRcpt {
        code: 550,
        message: "5.1.1 <sam@example.com>: Recipient address rejected: User unknown".into(),
    });
    let refused = pool
        .send(&envelope("sam@example.com"), &raw, 1)
        .await
        .unwrap_err();
    assert!(refused.permanent, "{refused:?}");
    assert_eq!(refused.code, Some(550));
    assert!(
        refused.detail.contains("Recipient address rejected"),
        "{}",
        refused.detail
    );

    sink.set_mode(SmtpMode::RejectData {
        code: 451,
        message: "4.3.0 Try again later".into(),
    });
    let deferred = pool
        .send(&envelope("sam@example.com"), &raw, 2)
        .await
        .unwrap_err();
    assert!(!deferred.permanent, "{deferred:?}");
    assert_eq!(deferred.code, Some(451));

    // No reply left in flight is taken for the next email's: each refusal closed its
    // connection, and the next email goes out on a new one.
    sink.set_mode(SmtpMode::Accept);
    let reply = pool
        .send(&envelope("sam@example.com"), &raw, 3)
        .await
        .unwrap();
    assert_eq!(reply.code, Some(250), "{}", reply.detail);
    let received = sink
        .wait_for_count(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data.trim_ascii_end(), raw.trim_ascii_end());
    assert_eq!(sink.connections_accepted(), 3);
}
