//! The integration API's read-back and `Idempotency-Key`, on both backends: the lists of
//! facilities, contacts, rentals, invoices and accounts page through every record of the
//! storefront exactly once, within their limits; nothing of another storefront is readable;
//! the suppression list pages the same way and reads back one suppression, in force or lifted;
//! an invoice paid through the portal reads back paid with its Checkout; and a POST repeated
//! with its `Idempotency-Key` gets its first answer without a second effect, also when the
//! repeats race, while the same key with another request is refused.

mod support;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use support::*;

/// A caller of the API with one storefront's key.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    #[track_caller]
    fn error(&self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "{body}");
        body
    }

    fn replayed(&self) -> bool {
        self.header("idempotent-replayed").as_deref() == Some("true")
    }
}

impl Api {
    async fn new(app: &TestApp, slug: &str) -> Self {
        let sf = app
            .store()
            .storefront_by_slug(slug)
            .await
            .unwrap()
            .unwrap()
            .id;
        let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
        app.store()
            .create_api_key(sf, "Read-back test", &hash, &prefix, Utc::now())
            .await
            .unwrap();
        Self {
            http: reqwest::Client::new(),
            base: app.app().url(),
            key,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).unwrap());
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let resp = req.send().await.unwrap();
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, None).await
    }

    async fn put(&self, path: &str, body: &Value) -> Value {
        let reply = self.send("PUT", path, Some(body), None).await;
        assert!(
            [200, 201].contains(&reply.status),
            "PUT {path}: {}",
            reply.text
        );
        serde_json::from_str(&reply.text).unwrap()
    }

    async fn post(&self, path: &str, body: Option<&Value>, key: Option<&str>) -> Reply {
        self.send("POST", path, body, key).await
    }

    /// Every record of a list, page by page (`limit` a page): the ids in the order listed,
    /// and the pages' sizes.
    async fn walk(&self, list: &str, limit: usize) -> (Vec<i64>, Vec<usize>) {
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..100 {
            let query = match &before {
                Some(b) => format!("{list}?limit={limit}&before={b}"),
                None => format!("{list}?limit={limit}"),
            };
            let page = self.get(&query).await.expect(200);
            let data = page["data"].as_array().unwrap();
            sizes.push(data.len());
            ids.extend(data.iter().map(|r| r["id"].as_i64().unwrap()));
            match page["next"].as_str() {
                Some(next) => before = Some(next.to_string()),
                None => return (ids, sizes),
            }
        }
        panic!("{list} never ended");
    }
}

async fn storefront_id(app: &TestApp, slug: &str) -> i64 {
    app.store()
        .storefront_by_slug(slug)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// The storefront's ids of a table, newest first.
async fn ids_of(app: &TestApp, table: &str, storefront: i64) -> Vec<i64> {
    app.rows(
        &format!("SELECT id FROM {table} WHERE storefront_id = $1 ORDER BY id DESC"),
        &[storefront.into()],
    )
    .await
    .iter()
    .map(|r| r.i64(0))
    .collect()
}

/// A second storefront, `other`, with a key of its own.
async fn other_storefront(app: &TestApp) -> Api {
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
    Api::new(app, "other").await
}

fn facility(name: &str) -> Value {
    json!({ "name": name, "phone": "+1 207-555-0100" })
}

fn contact(facility: &str, n: usize) -> Value {
    json!({ "facility": facility, "full_name": format!("Customer {n}"), "email": format!("c{n}@example.com") })
}

fn rental(contact: &str, label: &str) -> Value {
    json!({
        "contact": contact,
        "label": label,
        "status": "active",
        "starts_on": "2031-07-04",
        "rate": { "amount_minor": 8900, "currency": "USD", "period": "month" },
    })
}

fn invoice(contact: &str, number: &str) -> Value {
    json!({
        "contact": contact,
        "number": number,
        "description": "Monthly rent",
        "amount_minor": 12900,
        "currency": "USD",
        "issued_on": "2031-07-01",
        "due_on": "2031-07-15",
        "status": "pending",
    })
}

fn sign_up(email: &str) -> Value {
    json!({ "email": email, "full_name": "Jordan Lee" })
}

/// Makes `n` more of every record in the storefront of `api`, under references starting
/// with `tag`.
async fn fill(api: &Api, tag: &str, n: usize) {
    api.put(
        &format!("/facilities/FAC-{tag}"),
        &facility("Harborview, Airport"),
    )
    .await;
    for i in 0..n {
        api.put(
            &format!("/facilities/FAC-{tag}-{i}"),
            &facility(&format!("Site {i}")),
        )
        .await;
        let c = format!("CON-{tag}-{i}");
        api.put(
            &format!("/contacts/{c}"),
            &contact(&format!("FAC-{tag}"), i),
        )
        .await;
        api.put(
            &format!("/rentals/RNT-{tag}-{i}"),
            &rental(&c, &format!("Unit {i}")),
        )
        .await;
        api.put(
            &format!("/invoices/INV-{tag}-{i}"),
            &invoice(&c, &format!("INV-{tag}-{i}")),
        )
        .await;
        api.post(
            "/accounts",
            Some(&sign_up(&format!("{tag}-{i}@example.com").to_lowercase())),
            None,
        )
        .await
        .expect(201);
    }
}

const LISTS: [(&str, &str); 5] = [
    ("/facilities", "facilities"),
    ("/contacts", "contacts"),
    ("/rentals", "rentals"),
    ("/invoices", "invoices"),
    ("/accounts", "accounts"),
];

/// Puts `email` on a storefront's suppression list (as a bounce report would); its id.
async fn suppress(app: &TestApp, storefront: i64, email: &str, reason: &str) -> i64 {
    let address = latchkey::domain::EmailAddress::parse(email).unwrap();
    app.rows(
        "INSERT INTO suppressions (storefront_id, address_key, email, reason, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            storefront.into(),
            address.key().into(),
            email.into(),
            reason.into(),
            "550 5.1.1 User unknown".into(),
            Utc::now().into(),
        ],
    )
    .await[0]
        .i64(0)
}

both_backends! {
    async fn lists_page_through_every_record_once_within_the_limit(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, "demo").await;
        fill(&api, "P", 7).await;
        let sf = storefront_id(&app, "demo").await;
        for (list, table) in LISTS {
            let all = ids_of(&app, table, sf).await;
            assert!(all.len() >= 8, "{table}: {}", all.len());
            for limit in [1, 3, all.len(), all.len() + 5] {
                let (ids, sizes) = api.walk(list, limit).await;
                assert_eq!(ids, all, "{list} with limit {limit}: every record once, newest first");
                assert!(sizes.iter().all(|s| *s <= limit), "{list}: {sizes:?} over {limit}");
                assert!(sizes[..sizes.len() - 1].iter().all(|s| *s == limit), "{list}: {sizes:?}");
            }
            // The default page is 50.
            let page = api.get(list).await.expect(200);
            assert_eq!(page["data"].as_array().unwrap().len(), all.len().min(50));
        }

        // A record written while a client pages is not listed twice nor makes one skipped:
        // the pages go on from the cursor, and the new record heads the next first page.
        let first = api.get("/facilities?limit=4").await.expect(200);
        api.put("/facilities/FAC-NEW", &facility("Harborview, New")).await;
        let next = first["next"].as_str().unwrap();
        let rest = api.get(&format!("/facilities?limit=100&before={next}")).await.expect(200);
        let mut seen: Vec<i64> = first["data"].as_array().unwrap().iter().chain(rest["data"].as_array().unwrap()).map(|f| f["id"].as_i64().unwrap()).collect();
        let all = ids_of(&app, "facilities", sf).await;
        assert_eq!(seen.len(), all.len() - 1);
        seen.insert(0, all[0]);
        assert_eq!(seen, all);
        assert_eq!(api.get("/facilities?limit=1").await.expect(200)["data"][0]["ref"], "FAC-NEW");

        // The records read as their upserts answered, and the list shows them the same way.
        let put = api.put("/rentals/RNT-P-1", &rental("CON-P-1", "Unit 1")).await;
        let got = api.get("/rentals/RNT-P-1").await.expect(200);
        assert_eq!(got, put);
        let listed = api.get("/rentals?limit=100").await.expect(200);
        assert!(listed["data"].as_array().unwrap().contains(&got));
        for (path, field, value) in [
            ("/facilities/FAC-P-2", "name", json!("Site 2")),
            ("/contacts/CON-P-2", "full_name", json!("Customer 2")),
            ("/invoices/INV-P-2", "status", json!("pending")),
            ("/invoices/INV-P-2", "paid_at", Value::Null),
            ("/invoices/INV-P-2", "checkout_session_id", Value::Null),
        ] {
            assert_eq!(api.get(path).await.expect(200)[field], value, "{path} {field}");
        }
        // An account with its contacts (the demo's Alex has two).
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let account = api.get(&format!("/accounts/{alex}")).await.expect(200);
        assert_eq!(account["email"], "alex@example.com");
        assert_eq!(account["contacts"], json!(["CON-DT-1001", "CON-MR-2001"]));
        let accounts = api.get("/accounts?limit=100").await.expect(200);
        assert!(accounts["data"].as_array().unwrap().contains(&account));

        // Bad paging is refused, with the parameter named.
        for query in ["limit=0", "limit=101", "limit=ten", "before=abc", "before=-4", "status=paid", "limit=2&limit=3"] {
            for (list, _) in LISTS {
                let body = api.get(&format!("{list}?{query}")).await.error(422, "validation");
                assert!(body["fields"].as_object().is_some_and(|f| !f.is_empty()), "{list}?{query}: {body}");
            }
        }
        // Each answer carries its request id.
        assert!(api.get("/facilities").await.header("x-request-id").is_some_and(|id| !id.is_empty()));
    }

    async fn suppressions_page_read_back_and_stay_in_their_storefront(backend: Backend) {
        let app = TestApp::start(backend).await;
        let demo = Api::new(&app, "demo").await;
        let other = other_storefront(&app).await;
        let demo_sf = storefront_id(&app, "demo").await;
        let other_sf = storefront_id(&app, "other").await;
        let mut mine = Vec::new();
        for n in 0..7 {
            let reason = if n % 2 == 0 { "hard_bounce" } else { "complaint" };
            mine.push(suppress(&app, demo_sf, &format!("gone{n}@example.com"), reason).await);
        }
        let theirs = [
            suppress(&app, other_sf, "gone0@example.com", "hard_bounce").await,
            suppress(&app, other_sf, "elsewhere@example.com", "complaint").await,
        ];
        mine.reverse();
        for limit in [1, 3, 7, 12] {
            let (ids, sizes) = demo.walk("/suppressions", limit).await;
            assert_eq!(ids, mine, "limit {limit}: every suppression once, newest first");
            assert!(sizes.iter().all(|s| *s <= limit), "{sizes:?}");
        }
        let (other_ids, _) = other.walk("/suppressions", 5).await;
        let mut expected = theirs.to_vec();
        expected.reverse();
        assert_eq!(other_ids, expected);

        // One suppression, as listed.
        let one = demo.get(&format!("/suppressions/{}", mine[0])).await.expect(200);
        assert_eq!(one["email"], "gone6@example.com");
        assert_eq!(one["reason"], "hard_bounce");
        assert_eq!(one["detail"], "550 5.1.1 User unknown");
        assert_eq!((one["delivery_id"].clone(), one["lifted_at"].clone(), one["lifted_by"].clone()), (Value::Null, Value::Null, Value::Null));
        let listed = demo.get("/suppressions?limit=1").await.expect(200);
        assert_eq!(listed["data"][0], one);

        // Another storefront's key reads none of them, and the same 404 as for no such id.
        for id in &mine {
            other.get(&format!("/suppressions/{id}")).await.error(404, "not_found");
        }
        for id in theirs {
            demo.get(&format!("/suppressions/{id}")).await.error(404, "not_found");
        }
        for path in ["/suppressions/987654", "/suppressions/0", "/suppressions/x"] {
            demo.get(path).await.error(404, "not_found");
        }

        // Lifted, it leaves the list and reads back lifted.
        app.store().lift_suppression(demo_sf, mine[1], "owner@demo.example", None, Utc::now()).await.unwrap().expect("lifted");
        let (ids, _) = demo.walk("/suppressions", 2).await;
        assert_eq!(ids, [&mine[..1], &mine[2..]].concat());
        let lifted = demo.get(&format!("/suppressions/{}", mine[1])).await.expect(200);
        assert!(lifted["lifted_at"].is_string(), "{lifted}");
        assert_eq!(lifted["lifted_by"], "owner@demo.example");

        for query in ["limit=0", "limit=101", "before=abc", "reason=complaint"] {
            demo.get(&format!("/suppressions?{query}")).await.error(422, "validation");
        }
    }

    async fn another_storefronts_records_are_never_read(backend: Backend) {
        let app = TestApp::start(backend).await;
        let demo = Api::new(&app, "demo").await;
        let other = other_storefront(&app).await;
        fill(&other, "O", 3).await;
        // The same reference in both storefronts names each its own.
        demo.put("/facilities/FAC-O", &facility("Demo's own")).await;
        let o_account = other.post("/accounts", Some(&sign_up("jordan@example.com")), None).await.expect(201);

        for path in ["/facilities/FAC-O-0", "/contacts/CON-O-0", "/rentals/RNT-O-0", "/invoices/INV-O-0", &format!("/accounts/{}", o_account["id"])] {
            other.get(path).await.expect(200);
            let body = demo.get(path).await.error(404, "not_found");
            assert!(!body["message"].as_str().unwrap().contains("other"), "{body}");
        }
        assert_eq!(demo.get("/facilities/FAC-O").await.expect(200)["name"], "Demo's own");
        assert_eq!(other.get("/facilities/FAC-O").await.expect(200)["name"], "Harborview, Airport");
        // Unknown and malformed references and ids are the same 404.
        for path in ["/facilities/FAC-NOPE", "/facilities/bad%20ref", "/accounts/987654", "/accounts/0", "/accounts/x"] {
            demo.get(path).await.error(404, "not_found");
        }

        let demo_sf = storefront_id(&app, "demo").await;
        let other_sf = storefront_id(&app, "other").await;
        for (list, table) in LISTS {
            let (demo_ids, _) = demo.walk(list, 5).await;
            let (other_ids, _) = other.walk(list, 5).await;
            assert_eq!(demo_ids, ids_of(&app, table, demo_sf).await, "{list}");
            assert_eq!(other_ids, ids_of(&app, table, other_sf).await, "{list}");
            let mixed: BTreeSet<_> = demo_ids.iter().filter(|id| other_ids.contains(id)).collect();
            assert!(mixed.is_empty(), "{list}: {mixed:?} listed for both");
            // A cursor from the other storefront's list pages the caller's own records only.
            let cursor = other_ids.last().unwrap() + 1;
            let page = demo.get(&format!("{list}?before={cursor}&limit=100")).await.expect(200);
            for r in page["data"].as_array().unwrap() {
                assert!(demo_ids.contains(&r["id"].as_i64().unwrap()), "{list}: {r}");
            }
        }
    }

    async fn an_idempotency_key_repeat_returns_the_first_answer_and_creates_one_account(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, "demo").await;
        let accounts = || app.count("SELECT COUNT(*) FROM accounts WHERE email = 'jordan@example.com'", &[]);
        let audit = || app.count("SELECT COUNT(*) FROM audit_log", &[]);

        let first = api.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-1")).await;
        let created = first.expect(201);
        assert!(!first.replayed());
        let audit_after = audit().await;
        for _ in 0..2 {
            let again = api.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-1")).await;
            assert_eq!(again.expect(201), created, "the first answer, again");
            assert!(again.replayed());
            assert_eq!(again.header("cache-control").as_deref(), Some("no-store"));
            assert!(again.header("x-request-id").is_some_and(|id| !id.is_empty()));
            assert_ne!(again.header("x-request-id"), first.header("x-request-id"));
        }
        assert_eq!(accounts().await, 1, "one account");
        assert_eq!(audit().await, audit_after, "no second sign-up");

        // The same key with another body is refused and does nothing.
        let reused = api.post("/accounts", Some(&sign_up("casey@example.com")), Some("signup-1")).await;
        let body = reused.error(422, "idempotency_key_reused");
        assert!(body["message"].as_str().unwrap().contains("Idempotency-Key"), "{body}");
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts WHERE email = 'casey@example.com'", &[]).await, 0);
        // ...so does the same body on another operation.
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        api.post(&format!("/accounts/{alex}/portal-link"), None, Some("signup-1")).await.error(422, "idempotency_key_reused");

        // Without a key, each POST runs: the second sign-up finds the address taken.
        api.post("/accounts", Some(&sign_up("jordan@example.com")), None).await.error(409, "email_taken");
        // A new key runs the request again; its answer (the 409) is kept for its repeats too.
        let taken = api.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-2")).await;
        taken.error(409, "email_taken");
        let taken_again = api.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-2")).await;
        assert_eq!((taken_again.status, &taken_again.text), (409, &taken.text));
        assert!(taken_again.replayed());

        // Keys are per storefront: another storefront's key of the same name is its own.
        let other = other_storefront(&app).await;
        let theirs = other.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-1")).await;
        assert!(!theirs.replayed());
        assert_ne!(theirs.expect(201)["id"], created["id"]);

        // After 24 hours the key is forgotten: the same request runs again.
        app.clock.advance(Duration::hours(24) + Duration::seconds(1));
        let later = api.post("/accounts", Some(&sign_up("jordan@example.com")), Some("signup-1")).await;
        later.error(409, "email_taken");
        assert!(!later.replayed());
        assert_eq!(accounts().await, 2, "demo's and other's");
        // Expired keys are swept as new ones are claimed.
        let expired = app.count("SELECT COUNT(*) FROM idempotency_keys WHERE expires_at <= $1", &[app.clock_now().into()]).await;
        assert_eq!(expired, 0);
    }

    async fn concurrent_repeats_of_a_key_run_once(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, "demo").await;
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let app = &app;
        let deliveries = || async move {
            app.count("SELECT COUNT(*) FROM deliveries WHERE account_id = $1", &[alex.into()]).await
        };
        let before = deliveries().await;
        let link = format!("/accounts/{alex}/portal-link");
        let sign_ups = (0..8).map(|_| {
            let api = api.clone();
            async move { api.post("/accounts", Some(&sign_up("riley@example.com")), Some("race-1")).await }
        });
        let links = (0..8).map(|_| {
            let (api, link) = (api.clone(), link.clone());
            async move { api.post(&link, None, Some("race-2")).await }
        });
        let (sign_ups, links) = tokio::join!(futures::future::join_all(sign_ups), futures::future::join_all(links));
        for (replies, success) in [(&sign_ups, 201), (&links, 202)] {
            let ran: Vec<_> = replies.iter().filter(|r| r.status == success && !r.replayed()).collect();
            assert_eq!(ran.len(), 1, "exactly one ran: {replies:?}");
            for r in replies.iter() {
                match r.status {
                    s if s == success => assert_eq!(r.text, ran[0].text),
                    409 => {
                        r.error(409, "idempotency_key_in_use");
                        assert!(r.header("retry-after").is_some());
                    }
                    other => panic!("{other}: {}", r.text),
                }
            }
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts WHERE email = 'riley@example.com'", &[]).await, 1);
        assert_eq!(deliveries().await, before + 1, "one portal link");
        // Once the first answered, every repeat gets its answer.
        let late = api.post(&link, None, Some("race-2")).await;
        assert_eq!(late.status, 202);
        assert!(late.replayed());
        assert_eq!(deliveries().await, before + 1);
    }

    async fn answers_that_ask_to_retry_are_not_kept_and_abandoned_keys_are_taken_over(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, "demo").await;
        let alex = app.rows("SELECT id FROM accounts WHERE email = 'alex@example.com'", &[]).await[0].i64(0);
        let link = format!("/accounts/{alex}/portal-link");
        api.post(&link, None, Some("link-1")).await.expect(202);
        // Inside the cooldown: 429, not kept, so the retry with the key runs again...
        let cooled = api.post(&link, None, Some("link-2")).await;
        cooled.error(429, "cooldown");
        let again = api.post(&link, None, Some("link-2")).await;
        again.error(429, "cooldown");
        assert!(!again.replayed());
        // ...and once the cooldown is over, it sends.
        app.clock.advance(Duration::seconds(301));
        let sent = api.post(&link, None, Some("link-2")).await;
        sent.expect(202);
        assert!(!sent.replayed());
        assert!(api.post(&link, None, Some("link-2")).await.replayed());

        // A claim left without an answer (its process stopped) holds the key two minutes,
        // then the next repeat runs.
        let sf = storefront_id(&app, "demo").await;
        for (key, age) in [("left-1", 30), ("left-2", 121)] {
            let created = app.clock_now() - Duration::seconds(age);
            app.store().db().execute(
                "INSERT INTO idempotency_keys (storefront_id, idempotency_key, fingerprint, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[sf.into(), key.into(), b"x".as_slice().into(), created.into(), (created + Duration::hours(24)).into()],
            ).await.unwrap();
        }
        api.post("/accounts", Some(&sign_up("left@example.com")), Some("left-1")).await.error(409, "idempotency_key_in_use");
        let taken_over = api.post("/accounts", Some(&sign_up("left@example.com")), Some("left-2")).await;
        taken_over.expect(201);
        assert!(api.post("/accounts", Some(&sign_up("left@example.com")), Some("left-2")).await.replayed());

        // A key that is not one is refused before anything runs.
        let before = app.count("SELECT COUNT(*) FROM accounts", &[]).await;
        for bad in ["two words", &"k".repeat(256)] {
            let body = api.post("/accounts", Some(&sign_up("bad@example.com")), Some(bad)).await.error(422, "validation");
            assert!(body["fields"]["Idempotency-Key"].is_string(), "{body}");
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts", &[]).await, before);
    }

    async fn an_invoice_reads_back_paid_with_its_checkout_after_the_customer_pays(backend: Backend) {
        let app = Setup::new(backend).with_stripe().start().await;
        let api = Api::new(&app, "demo").await;
        let unpaid = api.get("/invoices/INV-1042").await.expect(200);
        assert_eq!((unpaid["status"].as_str(), &unpaid["paid_at"]), (Some("pending"), &Value::Null));
        assert_eq!(unpaid["checkout_session_id"], Value::Null);
        assert_eq!(unpaid["payment_intent_id"], Value::Null);

        // Alex presses Pay and completes the Checkout; Stripe's webhook says so.
        let browser = app.browser();
        app.sign_in(&browser, "alex@example.com").await;
        let id = app.invoice_id("INV-1042").await;
        let billing = browser.get("/s/demo/billing?status=pending").await;
        let redirect = browser.submit(&billing, &format!("form[action='/s/demo/billing/invoices/{id}/pay']"), &[]).await;
        let session = redirect.location().unwrap().rsplit('/').next().unwrap().to_string();
        let open = api.get("/invoices/INV-1042").await.expect(200);
        assert_eq!(open["status"], "pending");
        assert_eq!(open["checkout_session_id"], session.as_str());
        let event = app.fake_stripe().complete_checkout(&session);
        assert_eq!(app.send_webhook(&event).await.status(), 200);

        let paid = api.get("/invoices/INV-1042").await.expect(200);
        assert_eq!(paid["status"], "paid");
        assert_eq!(paid["checkout_session_id"], session.as_str());
        let stored = app.rows("SELECT paid_at, payment_intent_id FROM invoices WHERE id = $1", &[id.into()]).await;
        let paid_at = chrono::DateTime::parse_from_rfc3339(paid["paid_at"].as_str().expect("paid_at")).unwrap();
        assert_eq!(paid_at.timestamp(), stored[0].ts(0).timestamp());
        let intent = stored[0].opt_string(1).expect("the PaymentIntent is noted");
        assert_eq!(paid["payment_intent_id"], intent.as_str());
        // The list shows it the same way.
        let list = api.get("/invoices?limit=100").await.expect(200);
        assert!(list["data"].as_array().unwrap().contains(&paid));
    }
}
