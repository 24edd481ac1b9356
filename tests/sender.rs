//! Sender settings and DKIM (SPEC §9): `latchkey admin storefront` and `PATCH /api/v1/sender`
//! set the key, which is stored sealed (no PEM in the row); the emails the test's SMTP server
//! receives carry a DKIM-Signature that verifies with the published public key (checked here
//! by an RFC 6376 verifier of the test's own, not by the signer); the API never shows the key,
//! refuses bad keys and misaligned domains, is scoped to its storefront and takes part in
//! `Idempotency-Key`; a key sealed under another secret fails the email with a clear reason and
//! shows as misconfigured; a plaintext key of an earlier version is sealed at start.

mod support;

use std::process::{Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use latchkey_testkit::ReceivedEmail;
use serde_json::{Value, json};
use support::*;

/// The bounce domain of the VERP envelope senders.
const BOUNCE_DOMAIN: &str = "bounces.latchkey.test";

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/dkim/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

/// The base64 lines of a PEM (what must never show up anywhere).
fn pem_body(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_string)
        .collect()
}

fn latchkey(app: &TestApp, args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = app.command(args);
    if let Some(secret) = secret {
        cmd.env("LATCHKEY_SECRET_KEY", secret);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("latchkey runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

async fn api_key(app: &TestApp, slug: &str) -> String {
    let sf = app.store().storefront_by_slug(slug).await.unwrap().unwrap();
    let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
    app.store()
        .create_api_key(sf.id, "Test integration", &hash, &prefix, Utc::now())
        .await
        .unwrap();
    key
}

struct Api<'a> {
    app: &'a TestApp,
    key: String,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        body: Option<&Value>,
        idem: Option<&str>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .request(method, self.app.url("/api/v1/sender"))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        // A PEM as JSON would carry it (the problems may name the markers, never a key).
        for secret in ["KEY-----\\n", "private_key\":\"-"] {
            assert!(!text.contains(secret), "an answer shows the key: {text}");
        }
        for key in ["ed25519.pem", "rsa2048.pkcs8.pem", "rsa2048.pkcs1.pem"] {
            for line in pem_body(&fixture(key)) {
                assert!(!text.contains(&line), "an answer shows the key: {text}");
            }
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn get(&self) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::GET, None, None).await;
        (s, v)
    }

    async fn patch(&self, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::PATCH, Some(&body), None).await;
        (s, v)
    }
}

async fn api<'a>(app: &'a TestApp, slug: &str) -> Api<'a> {
    Api {
        app,
        key: api_key(app, slug).await,
        http: reqwest::Client::new(),
    }
}

/// The demo storefront's raw DKIM columns: (sealed, plaintext).
async fn raw_key_columns(app: &TestApp) -> (Option<Vec<u8>>, Option<String>) {
    let rows = app
        .rows(
            "SELECT dkim_key_sealed, dkim_private_key FROM storefronts WHERE slug = 'demo'",
            &[],
        )
        .await;
    (rows[0].opt_bytes(0), rows[0].opt_string(1))
}

fn assert_sealed(sealed: &[u8], pem: &str) {
    assert!(sealed.len() > 28, "a sealed key is stored");
    let as_text = String::from_utf8_lossy(sealed);
    assert!(!as_text.contains("BEGIN"), "PEM in the row");
    assert!(!as_text.contains("PRIVATE"), "PEM in the row");
    for line in pem_body(pem) {
        assert!(!as_text.contains(&line[..20]), "key material in the row");
    }
}

/// Sends a sign-in link to the demo's customer and returns the email received (envelope and
/// raw message).
async fn sign_in_email(app: &TestApp) -> ReceivedEmail {
    app.app().services.storefronts.clear();
    let before = app.mailbox.to("alex@example.com").len();
    let browser = app.browser();
    let id = app.request_link(&browser, "alex@example.com").await;
    app.wait_for_status(id, "sent").await;
    app.mailbox.nth("alex@example.com", before + 1).await
}

/// [`sign_in_email`]'s raw message.
async fn signed_in_email(app: &TestApp) -> Vec<u8> {
    sign_in_email(app).await.data
}

// ---------------------------------------------------------------------------------------------
// An RFC 6376 verifier, independent of the signer: canonicalization (simple and relaxed), the
// body hash, the header hash and the signature (rsa-sha256; ed25519-sha256 as RFC 8463 has it).
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Verified {
    tags: Vec<(String, String)>,
}

impl Verified {
    fn tag(&self, name: &str) -> &str {
        &self.tags.iter().find(|(n, _)| n == name).unwrap().1
    }
}

fn split_headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split_inclusive("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            out.last_mut().unwrap().1.push_str(line);
        } else {
            let name = line.split(':').next().unwrap().to_string();
            out.push((name, line.to_string()));
        }
    }
    out
}

fn relaxed_header(raw: &str) -> String {
    let (name, value) = raw.split_once(':').unwrap();
    let unfolded = value.replace("\r\n", "");
    let value = unfolded
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}\r\n", name.trim().to_ascii_lowercase(), value)
}

fn canon_body(body: &str, relaxed: bool) -> String {
    let mut lines: Vec<String> = body
        .split("\r\n")
        .map(|l| {
            if relaxed {
                let mut s = String::new();
                let mut ws = false;
                for c in l.chars() {
                    if c == ' ' || c == '\t' {
                        ws = true;
                    } else {
                        if ws {
                            s.push(' ');
                        }
                        ws = false;
                        s.push(c);
                    }
                }
                s
            } else {
                l.to_string()
            }
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return if relaxed {
            String::new()
        } else {
            "\r\n".into()
        };
    }
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

/// The DKIM-Signature header with the value of its `b=` tag removed.
fn without_b(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let colon = raw.find(':').unwrap();
    let mut i = colon + 1;
    while i + 1 < bytes.len() {
        let preceded = raw[colon + 1..i]
            .trim_end_matches([' ', '\t', '\r', '\n'])
            .chars()
            .last();
        if bytes[i] == b'b' && bytes[i + 1] == b'=' && matches!(preceded, None | Some(';')) {
            let end = raw[i..]
                .find(';')
                .map(|e| i + e)
                .unwrap_or(raw.trim_end_matches("\r\n").len());
            return format!("{}{}{}", &raw[..i + 2], "", &raw[end..]);
        }
        i += 1;
    }
    panic!("no b= tag in {raw}");
}

fn verify_dkim(raw: &[u8], public_key: &str) -> Result<Verified, String> {
    let raw = std::str::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no header/body split")?;
    let headers = split_headers(&format!("{head}\r\n"));
    let sig = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"))
        .ok_or("no DKIM-Signature")?
        .1
        .clone();
    let value = sig.split_once(':').unwrap().1.replace("\r\n", "");
    let tags: Vec<(String, String)> = value
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(n, v)| {
            (
                n.trim().to_string(),
                v.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect();
    let v = Verified { tags };
    let (hc, bc) = v.tag("c").split_once('/').unwrap_or((v.tag("c"), "simple"));
    // The body hash.
    let canon = canon_body(body, bc == "relaxed");
    let bh = STANDARD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canon.as_bytes(),
    ));
    if bh != v.tag("bh") {
        return Err(format!("body hash differs: {bh} != {}", v.tag("bh")));
    }
    // The signed headers, each taken from the bottom up, then the signature's own.
    let mut data = String::new();
    let mut used = vec![false; headers.len()];
    for name in v.tag("h").split(':') {
        if let Some(i) = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].0.trim().eq_ignore_ascii_case(name.trim()))
        {
            used[i] = true;
            data.push_str(&if hc == "relaxed" {
                relaxed_header(&headers[i].1)
            } else {
                headers[i].1.clone()
            });
        }
    }
    let unsigned = without_b(&sig);
    let unsigned = if hc == "relaxed" {
        relaxed_header(&unsigned)
    } else {
        unsigned
    };
    data.push_str(unsigned.trim_end_matches("\r\n"));
    let signature = STANDARD.decode(v.tag("b")).map_err(|e| e.to_string())?;
    let public = STANDARD.decode(public_key).map_err(|e| e.to_string())?;
    let ok = match v.tag("a") {
        "rsa-sha256" => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPublicKey::from_public_key_der(&public).map_err(|e| e.to_string())?;
            ring::signature::RsaPublicKeyComponents {
                n: key.n().to_bytes_be(),
                e: key.e().to_bytes_be(),
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                data.as_bytes(),
                &signature,
            )
            .is_ok()
        }
        "ed25519-sha256" => {
            let hash = ring::digest::digest(&ring::digest::SHA256, data.as_bytes());
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
                .verify(hash.as_ref(), &signature)
                .is_ok()
        }
        other => return Err(format!("unknown algorithm {other}")),
    };
    if ok {
        Ok(v)
    } else {
        Err("the signature does not verify".into())
    }
}

// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn the_admin_command_stores_the_key_sealed_and_emails_are_signed(backend: Backend) {
        // With a bounce domain, so the emails carry a VERP envelope sender as in production.
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| c.bounces.domain = Some(BOUNCE_DOMAIN.into()))
            .start()
            .await;
        let pem = fixture("rsa2048.pkcs8.pem");
        let public = fixture("rsa2048.pkcs8.pub.b64");
        let out = ok(latchkey(&app, &[
            "admin", "storefront", "--slug", "demo",
            "--dkim-domain", "harborview.example",
            "--dkim-selector", "portal2026",
            "--dkim-private-key-file", &fixture_path("rsa2048.pkcs8.pem"),
            "--reply-to", "office@harborview.example",
        ], None));
        // The DNS record to publish, with the public key openssl derives from the same file.
        assert!(
            out.contains(&format!(
                "portal2026._domainkey.harborview.example IN TXT \"v=DKIM1; k=rsa; p={}\"",
                public.trim()
            )),
            "{out}"
        );
        assert!(!out.contains("PRIVATE"), "{out}");
        // Stored sealed: no PEM, no key material, no plaintext column.
        let (sealed, plaintext) = raw_key_columns(&app).await;
        assert_sealed(&sealed.expect("a sealed key"), &pem);
        assert_eq!(plaintext, None);
        // Everything else of the storefront stayed as it was.
        let sf = app.store().storefront_by_slug("demo").await.unwrap().unwrap();
        assert_eq!(sf.name, "Harborview Rentals");
        assert_eq!(sf.from_email.as_str(), "portal@harborview.example");
        assert_eq!(sf.reply_to.as_deref(), Some("office@harborview.example"));
        // The email is signed, and the signature verifies with the published key.
        let email = sign_in_email(&app).await;
        let raw = email.data.clone();
        let v = verify_dkim(&raw, public.trim()).unwrap_or_else(|e| panic!("{e}:\n{}", String::from_utf8_lossy(&raw)));
        assert_eq!((v.tag("d"), v.tag("s"), v.tag("a")), ("harborview.example", "portal2026", "rsa-sha256"));
        // relaxed/relaxed over the headers that reach the receiver as signed (not Content-Type,
        // which lettre keeps out of the signer's sight).
        assert_eq!(v.tag("c"), "relaxed/relaxed");
        assert_eq!(
            v.tag("h").to_ascii_lowercase(),
            "from:to:subject:date:message-id:reply-to:mime-version"
        );
        // VERP: the envelope sender is the delivery's bounce address, and the Return-Path header
        // a receiving server adds on top with it leaves the signature intact.
        assert!(
            email.mail_from.starts_with("bounces+") && email.mail_from.ends_with(&format!("@{BOUNCE_DOMAIN}")),
            "{}",
            email.mail_from
        );
        assert!(!String::from_utf8_lossy(&raw).contains("bounces+"), "VERP is the envelope's only");
        let delivered = [format!("Return-Path: <{}>\r\n", email.mail_from).into_bytes(), raw.clone()].concat();
        verify_dkim(&delivered, public.trim()).unwrap_or_else(|e| panic!("{e} with a Return-Path"));
        // Not with another key (the verifier is no rubber stamp).
        assert!(verify_dkim(&raw, fixture("rsa2048.pkcs1.pub.b64").trim()).is_err());
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Reply-To: office@harborview.example"), "{text}");

        // An Ed25519 key replaces it; the selector stays.
        let out = ok(latchkey(&app, &[
            "admin", "storefront", "--slug", "demo",
            "--dkim-private-key-file", &fixture_path("ed25519.pem"),
        ], None));
        assert!(out.contains(&format!("k=ed25519; p={}", fixture("ed25519.pub.b64").trim())), "{out}");
        let raw = signed_in_email(&app).await;
        let v = verify_dkim(&raw, fixture("ed25519.pub.b64").trim()).unwrap();
        assert_eq!((v.tag("s"), v.tag("a")), ("portal2026", "ed25519-sha256"));

        // Mistakes: one clear line, nothing changed.
        let garbage = app.dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n").unwrap();
        for (args, says) in [
            (vec!["--dkim-private-key-file", garbage.to_str().unwrap()], "--dkim-private-key-file"),
            (vec!["--dkim-private-key-file", "/nowhere/key.pem"], "cannot read"),
            (vec!["--dkim-domain", "other.example"], "--dkim-domain"),
            (vec!["--from-email", "portal@elsewhere.example"], "--from-email"),
            (vec!["--dkim-selector", "bad_selector"], "--dkim-selector"),
        ] {
            let err = failed(latchkey(&app, &[&["admin", "storefront", "--slug", "demo"], &args[..]].concat(), None));
            assert!(err.contains(says), "{args:?}: {err}");
        }
        let sf = app.store().storefront_by_slug("demo").await.unwrap().unwrap();
        assert_eq!(sf.from_email.as_str(), "portal@harborview.example");
        assert_eq!(sf.dkim.as_ref().unwrap().selector, "portal2026");
        // A new storefront without DKIM fields needs them all at once.
        let err = failed(latchkey(&app, &[
            "admin", "storefront", "--slug", "lakeside", "--name", "Lakeside", "--from-email",
            "hi@lakeside.example", "--rent-url", "https://lakeside.example/",
            "--dkim-selector", "s1",
        ], None));
        assert!(err.contains("--dkim-domain"), "{err}");
        assert!(app.store().storefront_by_slug("lakeside").await.unwrap().is_none());

        // Removing DKIM: emails go out unsigned, the key is gone from the row.
        let out = ok(latchkey(&app, &["admin", "storefront", "--slug", "demo", "--remove-dkim", "--no-reply-to"], None));
        assert!(out.contains("DKIM: off"), "{out}");
        assert_eq!(raw_key_columns(&app).await, (None, None));
        let raw = signed_in_email(&app).await;
        assert!(!String::from_utf8_lossy(&raw).contains("DKIM-Signature"));
        assert!(!String::from_utf8_lossy(&raw).contains("Reply-To"));
    }

    async fn the_api_sets_the_key_never_shows_it_and_is_scoped(backend: Backend) {
        let app = TestApp::start_with(Setup::new(backend).with_smtp()).await;
        let demo = api(&app, "demo").await;
        let (status, body) = demo.get().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({
            "from_name": "Harborview Rentals",
            "from_email": "portal@harborview.example",
            "reply_to": null,
            "dkim": null,
        }));
        // The first time, DKIM needs all three fields.
        let (status, body) = demo.patch(json!({"dkim": {"domain": "harborview.example", "private_key": fixture("ed25519.pem")}})).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["fields"]["dkim.selector"].is_string(), "{body}");
        // A key that does not load, a domain that does not fit, a bad selector: 422, by field.
        for (dkim, field) in [
            (json!({"domain": "harborview.example", "selector": "s1", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}), "dkim.private_key"),
            (json!({"domain": "harborview.example", "selector": "s1", "private_key": fixture("ed25519.pem").replace("PRIVATE", "PUBLIC")}), "dkim.private_key"),
            (json!({"domain": "other.example", "selector": "s1", "private_key": fixture("ed25519.pem")}), "dkim.domain"),
            (json!({"domain": "harborview.example", "selector": "s 1", "private_key": fixture("ed25519.pem")}), "dkim.selector"),
            (json!({"domain": "harborview.example", "selector": "s1", "private_key": fixture("ed25519.pem"), "typo": 1}), "dkim.typo"),
        ] {
            let (status, body) = demo.patch(json!({"dkim": dkim})).await;
            assert_eq!(status, 422, "{field}: {body}");
            assert!(body["fields"][field].is_string(), "{field}: {body}");
        }
        let (status, body) = demo.patch(json!({})).await;
        assert_eq!((status, body["fields"]["body"].is_string()), (422, true), "{body}");
        let (status, body) = demo.patch(json!({"from_email": "not an address"})).await;
        assert_eq!((status, body["fields"]["from_email"].is_string()), (422, true), "{body}");
        assert_eq!(raw_key_columns(&app).await, (None, None), "nothing was stored");

        // Set, with an Idempotency-Key: the repeat is the first answer, once in the audit log.
        let patch = json!({
            "from_name": "Harborview Portal",
            "reply_to": "office@harborview.example",
            "dkim": {"domain": "Harborview.Example", "selector": "api2026", "private_key": fixture("ed25519.pem")},
        });
        let (status, first, _) = demo.send(reqwest::Method::PATCH, Some(&patch), Some("sender-1")).await;
        assert_eq!(status, 200, "{first}");
        let public = fixture("ed25519.pub.b64");
        assert_eq!(first["dkim"], json!({
            "domain": "harborview.example",
            "selector": "api2026",
            "private_key_set": true,
            "algorithm": "ed25519",
            "dns_record": {
                "name": "api2026._domainkey.harborview.example",
                "type": "TXT",
                "value": format!("v=DKIM1; k=ed25519; p={}", public.trim()),
            },
            "status": "active",
            "problem": null,
        }));
        assert_eq!(first["from_name"], "Harborview Portal");
        assert_eq!(first["reply_to"], "office@harborview.example");
        let (status, again, headers) = demo.send(reqwest::Method::PATCH, Some(&patch), Some("sender-1")).await;
        assert_eq!((status, &again), (200, &first));
        assert_eq!(headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
        let audited = app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'api_sender_changed'", &[]).await;
        assert_eq!(audited, 1);
        let details = app.rows("SELECT details FROM audit_log WHERE action = 'api_sender_changed'", &[]).await[0].string(0);
        assert!(details.contains("Test integration") && details.contains("dkim.private_key"), "{details}");
        assert!(!details.contains("BEGIN"), "{details}");
        let (sealed, _) = raw_key_columns(&app).await;
        assert_sealed(&sealed.unwrap(), &fixture("ed25519.pem"));
        let (status, read) = demo.get().await;
        assert_eq!((status, &read), (200, &first));

        // The email is signed with it.
        let raw = signed_in_email(&app).await;
        let v = verify_dkim(&raw, public.trim()).unwrap();
        assert_eq!((v.tag("d"), v.tag("s")), ("harborview.example", "api2026"));
        assert!(String::from_utf8_lossy(&raw).contains("From: \"Harborview Portal\" <portal@harborview.example>"));

        // A later change may leave the key as it is (a new selector for the same key).
        let (status, body) = demo.patch(json!({"dkim": {"selector": "api2027"}})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["dkim"]["dns_record"]["name"], "api2027._domainkey.harborview.example");
        assert_eq!(body["dkim"]["status"], "active");
        // The next email is signed under the new selector (the worker keeps no stale signer).
        let raw = signed_in_email(&app).await;
        let v = verify_dkim(&raw, public.trim()).unwrap();
        assert_eq!(v.tag("s"), "api2027");
        // A sender address the DKIM domain does not fit is refused.
        let (status, body) = demo.patch(json!({"from_email": "portal@elsewhere.example"})).await;
        assert_eq!((status, body["fields"]["from_email"].is_string()), (422, true), "{body}");
        // A subdomain sender fits its parent's DKIM domain.
        let (status, body) = demo.patch(json!({"from_email": "portal@mail.harborview.example"})).await;
        assert_eq!(status, 200, "{body}");

        // Another storefront's key sees and changes only its own.
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
        let other = api(&app, "other").await;
        let (status, body) = other.get().await;
        assert_eq!((status, &body["dkim"], &body["from_email"]), (200, &Value::Null, &json!("portal@other.example")));
        let (status, body) = other.patch(json!({"dkim": null, "from_name": "Other Two"})).await;
        assert_eq!(status, 200, "{body}");
        let (_, read) = demo.get().await;
        assert_eq!(read["dkim"]["selector"], "api2027", "the demo's DKIM stays");
        assert_eq!(read["from_name"], "Harborview Portal");

        // `null` removes the reply-to address and DKIM.
        let (status, body) = demo.patch(json!({"reply_to": null, "dkim": null})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((&body["reply_to"], &body["dkim"]), (&Value::Null, &Value::Null));
        assert_eq!(raw_key_columns(&app).await, (None, None));

        // The document describes both operations.
        let doc = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap().text().await.unwrap();
        let doc: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc["paths"]["/sender"]["get"]["operationId"], "getSender");
        assert_eq!(doc["paths"]["/sender"]["patch"]["operationId"], "updateSender");
    }

    async fn a_key_sealed_under_another_secret_fails_emails_with_a_clear_reason(backend: Backend) {
        let app = TestApp::start_with(Setup::new(backend).with_smtp()).await;
        // The command runs with another secret key than the application's.
        ok(latchkey(&app, &[
            "admin", "storefront", "--slug", "demo",
            "--dkim-domain", "harborview.example",
            "--dkim-selector", "portal2026",
            "--dkim-private-key-file", &fixture_path("ed25519.pem"),
        ], Some("another-secret-key-that-is-long-enough-for-this")));
        app.app().services.storefronts.clear();
        // The API says so, and still shows the record (public by nature).
        let demo = api(&app, "demo").await;
        let (status, body) = demo.get().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["dkim"]["status"], "misconfigured", "{body}");
        let problem = body["dkim"]["problem"].as_str().unwrap();
        assert!(problem.contains("secret key"), "{problem}");
        assert_eq!(
            body["dkim"]["dns_record"]["value"],
            format!("v=DKIM1; k=ed25519; p={}", fixture("ed25519.pub.b64").trim())
        );
        // So does the command line (with the application's secret).
        let out = ok(latchkey(&app, &["admin", "storefront", "--slug", "demo"], None));
        assert!(out.contains("DKIM is misconfigured"), "{out}");
        // So does the console, on the storefront's page.
        let demo_id = app.store().storefront_by_slug("demo").await.unwrap().unwrap().id;
        let owner = "olivia@harborview.example";
        app.store()
            .create_staff(
                Some(demo_id),
                &latchkey::domain::EmailAddress::parse(owner).unwrap(),
                "Olivia Owner",
                latchkey::store::Role::Owner,
                Utc::now(),
            )
            .await
            .unwrap();
        let staff = app.browser();
        let page = staff.get("/console/sign-in").await;
        let sent = staff
            .submit_followed(&page, "form[action='/console/sign-in']", &[("email", owner)])
            .await;
        assert_eq!(sent.status, 200);
        let link = app
            .mailbox
            .wait_for(owner)
            .await
            .links()
            .into_iter()
            .find(|l| l.contains("/console/auth/"))
            .expect("a console link");
        let landing = staff.get_url(&link).await;
        let signed_in = staff.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303);
        let page = staff.get("/console/s/demo").await;
        assert_eq!(page.status, 200);
        let text = page.text();
        assert!(text.contains("DKIM is misconfigured") && text.contains("secret key"), "{text}");

        // The email fails with the reason, nothing is sent, the application keeps running.
        let browser = app.browser();
        let id = app.request_link(&browser, "alex@example.com").await;
        let d = app.wait_for_status(id, "failed").await;
        let reason = d.last_error.unwrap_or_default();
        assert!(reason.contains("DKIM") && reason.contains("secret key"), "{reason}");
        assert!(app.mailbox.to("alex@example.com").is_empty());
        // Setting the key again (with the application's secret) mends it.
        let (status, body) = demo.patch(json!({"dkim": {"private_key": fixture("ed25519.pem")}})).await;
        assert_eq!((status, &body["dkim"]["status"]), (200, &json!("active")), "{body}");
        let raw = signed_in_email(&app).await;
        verify_dkim(&raw, fixture("ed25519.pub.b64").trim()).unwrap();
        let page = staff.get("/console/s/demo").await;
        assert!(!page.text().contains("DKIM is misconfigured"));
    }

    async fn a_plaintext_key_of_an_earlier_version_is_sealed_at_start(backend: Backend) {
        let app = TestApp::start_with(Setup::new(backend).with_smtp()).await;
        let pem = fixture("rsa2048.pkcs1.pem");
        app.store()
            .db()
            .execute(
                "UPDATE storefronts SET dkim_domain = 'harborview.example', dkim_selector = 'old', dkim_private_key = $1 WHERE slug = 'demo'",
                &[pem.as_str().into()],
            )
            .await
            .unwrap();
        // Any start of the binary seals it (here `latchkey admin storefronts`).
        ok(latchkey(&app, &["admin", "storefronts"], None));
        let (sealed, plaintext) = raw_key_columns(&app).await;
        assert_eq!(plaintext, None);
        assert_sealed(&sealed.unwrap(), &pem);
        let raw = signed_in_email(&app).await;
        let v = verify_dkim(&raw, fixture("rsa2048.pkcs1.pub.b64").trim()).unwrap();
        assert_eq!(v.tag("s"), "old");
    }
}
