//! Tests for the test tools themselves: `SmtpSink` (driven by lettre's SMTP
//! client and by raw TCP) and `TcpProxy`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use latchkey_testkit::{SmtpMode, SmtpSink, TcpProxy};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(2);

fn mailer(port: u16) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(WAIT))
        .build()
}

fn simple(to: &str) -> Message {
    Message::builder()
        .from("noreply@latchkey.test".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Hello")
        .body(String::from("Hello there.\n"))
        .unwrap()
}

#[tokio::test]
async fn multipart_message_arrives_decoded() {
    let sink = SmtpSink::start().await.unwrap();
    let url = format!(
        "https://portal.latchkey.test/auth/magic-link?token={}&next=%2Faccount%2Fbookings",
        "Zx9-".repeat(30)
    );
    let text = format!(
        "Hello Alice,\n\nSign in with this link:\n{url}\n.dotted line\n\nIt expires in 15 minutes.\n"
    );
    let html = format!(
        "<html><body><p>Hello Alice,</p><p><a href=\"{}\">Sign in</a></p>\
         <p><a href='https://help.latchkey.test/'>Help</a></p></body></html>",
        url.replace('&', "&amp;")
    );
    let email = Message::builder()
        .from("Latchkey <noreply@latchkey.test>".parse().unwrap())
        .to("Alice Example <alice@example.com>".parse().unwrap())
        .cc("bob@example.com".parse().unwrap())
        .subject("Your sign-in link — Latchkey")
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .header(ContentTransferEncoding::QuotedPrintable)
                        .body(text),
                )
                .singlepart(SinglePart::html(html)),
        )
        .unwrap();
    mailer(sink.port()).send(email).await.unwrap();

    let got = sink.wait_for_to("ALICE@example.com", WAIT).await.unwrap();
    assert_eq!(got.mail_from, "noreply@latchkey.test");
    assert_eq!(got.rcpt_to, ["alice@example.com", "bob@example.com"]);
    assert_eq!(
        got.subject().as_deref(),
        Some("Your sign-in link — Latchkey")
    );
    assert_eq!(got.from().as_deref(), Some("noreply@latchkey.test"));
    assert_eq!(
        got.header("from").as_deref(),
        Some("Latchkey <noreply@latchkey.test>")
    );
    assert_eq!(got.to(), ["alice@example.com"]);

    // The raw message really is quoted-printable with soft line breaks.
    let raw = String::from_utf8_lossy(&got.data);
    assert!(raw.contains("Content-Transfer-Encoding: quoted-printable"));
    assert!(raw.contains("=\r\n"), "no soft line break in:\n{raw}");
    assert!(!raw.contains(&url));

    let body = got.text_body();
    assert!(body.contains(&url), "URL not decoded in:\n{body}");
    assert!(body.contains("\n.dotted line"), "dot-stuffing not undone");
    assert!(got.html_body().unwrap().contains(">Sign in</a>"));
    assert_eq!(got.links(), [url.as_str(), "https://help.latchkey.test/"]);

    assert_eq!(sink.count(), 1);
    assert_eq!(sink.received_total(), 1);
    assert_eq!(sink.messages_to("Bob@Example.com").len(), 1);
    assert!(sink.messages_to("carol@example.com").is_empty());
    assert_eq!(
        sink.first_received_at("bob@example.com"),
        Some(got.received_at)
    );
    sink.clear();
    assert_eq!(sink.count(), 0);
    assert!(sink.messages().is_empty());
    assert_eq!(sink.received_total(), 1);
}

#[tokio::test]
async fn reject_rcpt_is_a_permanent_error_with_the_text() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = mailer(sink.port());
    sink.set_mode(SmtpMode::RejectRcpt {
        code: 550,
        message: "5.1.1 <nobody@example.com>: Recipient address rejected: User unknown".into(),
    });
    let err = mailer.send(simple("nobody@example.com")).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().unwrap().to_string(), "550");
    assert!(
        err.to_string()
            .contains("5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"),
        "{err}"
    );
    assert_eq!(sink.count(), 0);

    sink.set_mode(SmtpMode::Accept);
    mailer.send(simple("somebody@example.com")).await.unwrap();
    sink.wait_for_count(1, WAIT).await.unwrap();
}

#[tokio::test]
async fn reject_data_451_is_a_transient_error() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_mode(SmtpMode::RejectData {
        code: 451,
        message: "4.3.0 Try again later".into(),
    });
    let err = mailer(sink.port())
        .send(simple("alice@example.com"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().unwrap().to_string(), "451");
    assert!(err.to_string().contains("4.3.0 Try again later"), "{err}");
    assert_eq!(sink.count(), 0);
    assert!(sink.first_received_at("alice@example.com").is_none());
}

#[tokio::test]
async fn down_refuses_and_closes_then_comes_back_on_the_same_port() {
    let sink = SmtpSink::start().await.unwrap();
    let addr = sink.addr();
    let mailer = mailer(sink.port());
    mailer.send(simple("before@example.com")).await.unwrap();

    // An idle connection, open before going down.
    let mut idle = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let mut greeting = String::new();
    idle.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 ") && greeting.contains("ESMTP"));

    sink.set_mode(SmtpMode::Down);
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(mailer.send(simple("during@example.com")).await.is_err());

    sink.set_mode(SmtpMode::Accept);
    assert_eq!(sink.addr(), addr);
    // The pooled connection is dead; lettre notices and reconnects.
    mailer.send(simple("after@example.com")).await.unwrap();
    let got = sink.wait_for_to("after@example.com", WAIT).await.unwrap();
    assert_eq!(got.rcpt_to, ["after@example.com"]);
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn stall_data_holds_the_send_and_counts_it() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = mailer(sink.port());
    sink.set_mode(SmtpMode::StallData);
    let send = tokio::time::timeout(
        Duration::from_millis(300),
        mailer.send(simple("stuck@example.com")),
    )
    .await;
    assert!(send.is_err(), "the send finished: {send:?}");
    sink.wait_for_stalled(1, WAIT).await.unwrap();
    assert_eq!(sink.stalled_count(), 1);
    assert_eq!(sink.count(), 0);

    sink.set_mode(SmtpMode::Accept);
    mailer.send(simple("unstuck@example.com")).await.unwrap();
    sink.wait_for_to("unstuck@example.com", WAIT).await.unwrap();
    assert!(sink.messages_to("stuck@example.com").is_empty());
}

#[tokio::test]
async fn two_hundred_concurrent_messages_all_arrive() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = mailer(sink.port());
    let sends = (0..200).map(|i| {
        let mailer = mailer.clone();
        tokio::spawn(async move { mailer.send(simple(&format!("user{i}@example.com"))).await })
    });
    for result in futures::future::join_all(sends).await {
        result.unwrap().unwrap();
    }
    let messages = sink.wait_for_count(200, WAIT).await.unwrap();
    assert_eq!(messages.len(), 200);
    for i in 0..200 {
        assert!(
            sink.first_received_at(&format!("user{i}@example.com"))
                .is_some()
        );
    }
    assert_eq!(sink.received_total(), 200);
    assert!(sink.connections_accepted() > 1);
}

#[tokio::test]
async fn counting_only_keeps_counts_and_first_arrivals() {
    let sink = SmtpSink::start_counting_only().await.unwrap();
    let mailer = mailer(sink.port());
    for i in 0..3 {
        mailer
            .send(simple(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    mailer.send(simple("u0@example.com")).await.unwrap();
    assert!(sink.wait_for_count(4, WAIT).await.unwrap().is_empty());
    assert!(sink.messages().is_empty());
    assert_eq!(sink.received_total(), 4);
    assert_eq!(sink.first_arrivals().len(), 3);
    assert!(sink.first_received_at("U1@example.com").is_some());
}

#[tokio::test]
async fn delay_postpones_the_data_reply() {
    let sink = SmtpSink::start()
        .await
        .unwrap()
        .with_delay(Duration::from_millis(150));
    let started = std::time::Instant::now();
    mailer(sink.port())
        .send(simple("slow@example.com"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn waiting_times_out_with_a_description() {
    let sink = SmtpSink::start().await.unwrap();
    let err = sink
        .wait_for_to("nobody@example.com", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nobody@example.com"), "{err}");
    assert!(
        sink.wait_for_count(1, Duration::from_millis(50))
            .await
            .is_err()
    );
}

/// Reads SMTP replies until one with a final line (`NNN `) starting with
/// `last` (or end of stream); returns the code of each complete reply.
async fn reply_codes(reader: &mut (impl AsyncBufReadExt + Unpin), last: &str) -> Vec<String> {
    let mut codes = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 {
            return codes;
        }
        if line.as_bytes().get(3) == Some(&b' ') {
            codes.push(line[..3].to_owned());
            if line.starts_with(last) {
                return codes;
            }
        }
    }
}

#[tokio::test]
async fn raw_pipelined_session() {
    let sink = SmtpSink::start().await.unwrap();
    let (read, mut write) = TcpStream::connect(sink.addr()).await.unwrap().into_split();
    let mut read = BufReader::new(read);

    // Everything up to DATA in one write; lower case; one bare LF.
    write
        .write_all(
            b"MAIL FROM:<early@x.test>\r\nehlo client.test\r\nmail from:<a@x.test> BODY=8BITMIME SMTPUTF8\r\n\
              rcpt to:<b@x.test>\nRCPT TO: <C@x.test>\r\nDATA\r\n",
        )
        .await
        .unwrap();
    let codes = reply_codes(&mut read, "354").await;
    assert_eq!(codes, ["220", "503", "250", "250", "250", "250", "354"]);

    write
        .write_all(
            b"Subject: raw\r\n\r\n..starts with a dot\r\n.\r\nVRFY b\r\nXYZZY\r\nRCPT TO:<d@x.test>\r\n\
              NOOP\r\nRSET\r\nDATA\r\nQUIT\r\n",
        )
        .await
        .unwrap();
    let codes = reply_codes(&mut read, "221").await;
    assert_eq!(
        codes,
        ["250", "252", "502", "503", "250", "250", "503", "221"]
    );
    let mut rest = Vec::new();
    assert_eq!(read.read_to_end(&mut rest).await.unwrap(), 0);

    let got = sink.wait_for_count(1, WAIT).await.unwrap().remove(0);
    assert_eq!(got.mail_from, "a@x.test");
    assert_eq!(got.rcpt_to, ["b@x.test", "C@x.test"]);
    assert_eq!(got.data, b"Subject: raw\r\n\r\n.starts with a dot\r\n");
    assert_eq!(sink.messages_to("c@X.test").len(), 1);
}

#[tokio::test]
async fn dropping_the_sink_closes_the_port() {
    let sink = SmtpSink::start().await.unwrap();
    let addr = sink.addr();
    drop(sink);
    assert!(eventually_refused(addr).await);
}

// ---- TcpProxy ----

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Writes `msg` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await??;
    Ok(buf)
}

/// Whether the connection was closed (end of stream or error) within `WAIT`.
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 16];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Whether connecting to `addr` is refused within `WAIT`.
async fn eventually_refused(addr: SocketAddr) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return true,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

#[tokio::test]
async fn proxy_forwards_cuts_and_restores() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut live, b"ping").await.unwrap(), b"ping");
    assert_eq!(proxy.connections_opened(), 1);
    assert_eq!(proxy.active_connections(), 1);

    proxy.set_down(true);
    assert!(proxy.is_down());
    assert!(is_closed(&mut live).await, "live connection survived");

    // While down, connections are accepted and closed at once: no data flows.
    if let Ok(mut during) = TcpStream::connect(proxy.addr()).await {
        let _ = during.write_all(b"ping").await;
        assert!(is_closed(&mut during).await, "data flowed while down");
    }
    assert_eq!(proxy.connections_opened(), 1);

    proxy.set_down(false);
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut after, b"pong").await.unwrap(), b"pong");
    assert_eq!(proxy.connections_opened(), 2);
}

#[tokio::test]
async fn proxy_closes_when_dropped() {
    let proxy = TcpProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let mut live = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut live, b"ping").await.unwrap(), b"ping");
    drop(proxy);
    assert!(is_closed(&mut live).await);
    assert!(eventually_refused(addr).await);
}

#[tokio::test]
async fn proxy_closes_the_client_when_the_target_is_unreachable() {
    // Bind then drop a listener to get an address where nothing listens.
    let target = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = TcpProxy::start(target).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(is_closed(&mut client).await);
}
