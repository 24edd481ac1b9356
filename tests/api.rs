//! The integration API (`/api/v1`) through HTTP as the operator's systems call it, on both
//! backends: API keys, upserts by reference, storefront sign-up, booking confirmations and
//! portal links that arrive at a real SMTP server and sign the customer in, the delivery log,
//! tenant isolation, and the OpenAPI document, which must be valid and match what the server
//! does in both directions (every documented operation answers only documented statuses with
//! the documented shapes, checked by a JSON Schema validator, and every route of the server is
//! documented).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde_json::{Value, json};
use support::*;

// ---------------------------------------------------------------------------------------------
// Calling the API
// ---------------------------------------------------------------------------------------------

/// A caller of the API with one `Authorization` header (or none).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
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

    /// The media type of the answer, without parameters.
    fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    #[track_caller]
    fn json(&self) -> Value {
        assert_eq!(
            self.media_type(),
            "application/json",
            "a JSON answer ({}): {}",
            self.status,
            self.text
        );
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The body of an answer with this status.
    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.json()
    }

    /// An error answer: JSON `{code, message}` (and only the documented extra fields).
    #[track_caller]
    fn error(&self, status: u16, code: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.len() > 10, "a sentence for a person: {body}");
        for key in body.as_object().unwrap().keys() {
            assert!(
                [
                    "code",
                    "message",
                    "fields",
                    "sign_in_url",
                    "sign_in_link_sent"
                ]
                .contains(&key.as_str()),
                "unexpected {key} in {body}"
            );
        }
        assert_eq!(
            self.header("cache-control").as_deref(),
            Some("no-store"),
            "API answers are not cached"
        );
        body
    }

    /// A 422 `validation` answer; returns the names of the fields it lists.
    #[track_caller]
    fn invalid(&self) -> Vec<String> {
        let body = self.error(422, "validation");
        let fields = body["fields"]
            .as_object()
            .expect("`fields` lists the problems");
        assert!(!fields.is_empty(), "{body}");
        assert!(
            fields
                .values()
                .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        );
        fields.keys().cloned().collect()
    }
}

impl Api {
    fn new(app: &TestApp, key: &str) -> Self {
        Self::with_auth(app, Some(format!("Bearer {key}")))
    }

    fn with_auth(app: &TestApp, auth: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.app().url(),
            auth,
        }
    }

    fn anonymous(app: &TestApp) -> Self {
        Self::with_auth(app, None)
    }

    /// `path` is relative to `/api/v1` unless it starts with `/api/` itself.
    async fn send(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
        self.send_with(method, path, body, &[]).await
    }

    /// [`Api::send`] with more request headers.
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("/api/") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        };
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(method.clone(), &url);
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    async fn put(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("PUT", path, Some(("application/json", bytes)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("POST", path, Some(("application/json", bytes)))
            .await
    }

    async fn post_empty(&self, path: &str) -> Reply {
        self.send("POST", path, None).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    async fn put_pdf(&self, path: &str, pdf: &[u8]) -> Reply {
        self.send("PUT", path, Some(("application/pdf", pdf.to_vec())))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

async fn storefront_id(app: &TestApp, slug: &str) -> i64 {
    app.store()
        .storefront_by_slug(slug)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no storefront {slug}"))
        .id
}

/// A new API key of a storefront, as `latchkey admin api-key` makes it: (id, key).
async fn new_key(app: &TestApp, slug: &str, name: &str) -> (i64, String) {
    let sf = storefront_id(app, slug).await;
    let (key, hash, prefix) = latchkey::usecases::api_keys::new_api_key();
    let id = app
        .store()
        .create_api_key(sf, name, &hash, &prefix, Utc::now())
        .await
        .unwrap();
    (id, key)
}

async fn key(app: &TestApp, slug: &str) -> String {
    new_key(app, slug, "Test integration").await.1
}

async fn revoked_key(app: &TestApp, slug: &str) -> String {
    let (id, key) = new_key(app, slug, "Old integration").await;
    let sf = storefront_id(app, slug).await;
    assert!(
        app.store()
            .revoke_api_key(sf, id, Utc::now())
            .await
            .unwrap()
    );
    key
}

/// A second storefront, `other`.
async fn other_storefront(app: &TestApp) -> i64 {
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
        .unwrap()
}

fn facility_body(name: &str) -> Value {
    json!({
        "name": name,
        "address": "1 Test Road, Portland, ME 04101",
        "phone": "+1 207-555-0100",
        "email": "desk@test.example",
    })
}

fn contact_body(facility: &str, full_name: &str, email: &str) -> Value {
    json!({ "facility": facility, "full_name": full_name, "email": email, "phone": "+1 207-555-0101" })
}

fn rental_body(contact: &str, label: &str) -> Value {
    json!({
        "contact": contact,
        "label": label,
        "status": "upcoming",
        "starts_on": "2031-07-04",
        "ends_on": "2031-07-06",
        "rate": { "amount_minor": 8900, "currency": "usd", "period": "day" },
        "delivery": { "status": "scheduled", "tracking_url": "https://track.example/C22" },
    })
}

fn invoice_body(contact: &str, rental: Option<&str>, number: &str, status: &str) -> Value {
    json!({
        "contact": contact,
        "rental": rental,
        "number": number,
        "description": "Monthly rent",
        "amount_minor": 12900,
        "currency": "USD",
        "issued_on": "2031-07-01",
        "due_on": "2031-07-15",
        "status": status,
    })
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {text}\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
        .into_bytes()
}

/// Row counts of every table the API writes, to show that refused calls change nothing.
async fn counts(app: &TestApp) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for table in [
        "facilities",
        "contacts",
        "rentals",
        "invoices",
        "agreements",
        "accounts",
        "deliveries",
        "sign_in_tokens",
        "audit_log",
    ] {
        let n = app
            .count(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await;
        out.insert(table, n);
    }
    out
}

/// Every row of a storefront's records, as text, to show that nothing of it changed.
async fn records_of(app: &TestApp, storefront: i64) -> Vec<String> {
    // Columns with their kind: integer, string, timestamp, bytes.
    let tables = [
        (
            "facilities f",
            "f.id:i f.external_ref:s f.name:s f.address:s f.phone:s f.email:s f.updated_at:t",
        ),
        (
            "contacts f",
            "f.id:i f.external_ref:s f.facility_id:i f.account_id:i f.full_name:s f.email:s f.updated_at:t",
        ),
        (
            "rentals f",
            "f.id:i f.external_ref:s f.contact_id:i f.label:s f.status:s f.updated_at:t",
        ),
        (
            "invoices f",
            "f.id:i f.external_ref:s f.contact_id:i f.rental_id:i f.number:s f.status:s f.paid_at:t f.updated_at:t",
        ),
        (
            "accounts f",
            "f.id:i f.email:s f.full_name:s f.updated_at:t",
        ),
        (
            "agreements g JOIN rentals f ON f.id = g.rental_id",
            "g.id:i g.rental_id:i g.file_name:s g.body:b",
        ),
    ];
    let mut out = Vec::new();
    for (from, columns) in tables {
        let columns: Vec<(&str, &str)> = columns
            .split(' ')
            .map(|c| c.split_once(':').unwrap())
            .collect();
        let list: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let sql = format!(
            "SELECT {} FROM {from} WHERE f.storefront_id = $1 ORDER BY 1",
            list.join(", ")
        );
        for row in app.rows(&sql, &[storefront.into()]).await {
            let values: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match *kind {
                    "i" => format!("{:?}", row.opt_i64(i)),
                    "s" => format!("{:?}", row.opt_string(i)),
                    "t" => format!("{:?}", row.opt_ts(i)),
                    _ => format!("{:?}", row.opt_bytes(i)),
                })
                .collect();
            out.push(format!("{from}: {}", values.join(", ")));
        }
    }
    assert!(!out.is_empty());
    out
}

async fn account_id(app: &TestApp, storefront: i64, email: &str) -> i64 {
    app.rows(
        "SELECT id FROM accounts WHERE storefront_id = $1 AND email = $2",
        &[storefront.into(), email.into()],
    )
    .await[0]
        .i64(0)
}

/// Follows a magic link as a browser does: the landing page, then its form; returns the
/// redirect after sign-in.
async fn open_link(browser: &Browser, link: &str) -> Page {
    let landing = browser.get_url(link).await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    let signed_in = browser.submit(&landing, "form", &[]).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    signed_in
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document, and the JSON Schema validator that checks answers against it
// ---------------------------------------------------------------------------------------------

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The formats the validator checks, and OpenAPI's integer formats (annotations).
const FORMATS: [&str; 6] = ["date-time", "date", "email", "uri", "int64", "int32"];

/// Where the validator finds the document, so a schema's `$ref`s to its components resolve.
const DOC_URI: &str = "urn:latchkey:openapi";

struct Doc {
    root: Value,
    registry: jsonschema::Registry<'static>,
}

impl Doc {
    fn new(root: Value) -> Doc {
        let registry = jsonschema::Registry::new()
            .add(DOC_URI, root.clone())
            .expect("a URI")
            .prepare()
            .expect("the document is a JSON Schema resource");
        Doc { root, registry }
    }

    async fn fetch(app: &TestApp) -> Doc {
        let reply = Api::anonymous(app).get("/openapi.json").await;
        Doc::new(reply.expect(200))
    }

    fn target(&self, reference: &str) -> Option<&Value> {
        reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer))
    }

    /// Follows `$ref`s to the object they name.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    value = self
                        .target(r)
                        .unwrap_or_else(|| panic!("$ref {r} names nothing"))
                }
                None => return value,
            }
        }
        panic!("a $ref cycle");
    }

    fn valid(&self, schema: &Value, value: &Value) -> bool {
        self.errors(schema, value).is_empty()
    }

    /// What is wrong with `value` under `schema` (a schema of the document), as the
    /// `jsonschema` crate sees it (JSON Schema 2020-12, as OpenAPI 3.1 uses it, formats too).
    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let validator = jsonschema::draft202012::options()
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&in_document(schema))
            .unwrap_or_else(|e| panic!("not a schema ({e}): {schema}"));
        validator
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    fn operations(&self) -> Vec<Op<'_>> {
        let mut out = Vec::new();
        for (path, item) in self.root["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                if HTTP_METHODS.contains(&method.as_str()) {
                    out.push(Op {
                        path,
                        method,
                        item,
                        op,
                    });
                }
            }
        }
        out
    }
}

/// One operation of the document.
struct Op<'a> {
    path: &'a str,
    method: &'a str,
    item: &'a Value,
    op: &'a Value,
}

impl Op<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.path)
    }

    fn id(&self) -> &str {
        self.op["operationId"].as_str().unwrap_or_default()
    }

    /// Its parameters (the path item's and its own), resolved.
    fn params<'d>(&'d self, doc: &'d Doc) -> Vec<&'d Value> {
        let mut all: Vec<&Value> = Vec::new();
        for list in [&self.item["parameters"], &self.op["parameters"]] {
            for p in list.as_array().into_iter().flatten() {
                all.push(doc.resolve(p));
            }
        }
        all
    }

    fn params_in<'d>(&'d self, doc: &'d Doc, location: &str) -> Vec<&'d Value> {
        self.params(doc)
            .into_iter()
            .filter(|p| p["in"] == location)
            .collect()
    }

    fn secured(&self, doc: &Doc) -> bool {
        let security = self.op.get("security").or(doc.root.get("security"));
        security.and_then(Value::as_array).is_some_and(|reqs| {
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        })
    }

    /// The path with each path parameter given by `value`.
    fn path_with(&self, doc: &Doc, value: impl Fn(&Value) -> String) -> String {
        let mut path = self.path.to_string();
        for p in self.params_in(doc, "path") {
            let name = p["name"].as_str().unwrap();
            path = path.replace(&format!("{{{name}}}"), &value(p));
        }
        assert!(
            !path.contains('{'),
            "{}: a path parameter is not declared",
            self.name()
        );
        path
    }

    /// The path with the documented examples, and every query parameter's example.
    fn example_path(&self, doc: &Doc) -> String {
        let path = self.path_with(doc, example_of);
        let query: Vec<(String, String)> = self
            .params_in(doc, "query")
            .into_iter()
            .filter(|p| p.get("example").is_some() || p["schema"].get("example").is_some())
            .map(|p| (p["name"].as_str().unwrap().to_string(), example_of(p)))
            .collect();
        with_query(path, &query)
    }

    /// The path naming records that do not exist.
    fn unknown_path(&self, doc: &Doc) -> String {
        self.path_with(doc, |p| match doc.resolve(&p["schema"])["type"].as_str() {
            Some("integer") => "987654".to_string(),
            _ => "NO-SUCH-REF".to_string(),
        })
    }

    /// The request body's media type and the documented example.
    fn body(&self, doc: &Doc) -> Option<(String, Vec<u8>)> {
        let body = doc.resolve(self.op.get("requestBody")?);
        let (media, content) = body["content"].as_object()?.iter().next()?;
        let example = content
            .get("example")
            .unwrap_or_else(|| panic!("{}: the request body has no example", self.name()));
        let bytes = match example {
            Value::String(s) if media != "application/json" => s.clone().into_bytes(),
            other => serde_json::to_vec(other).unwrap(),
        };
        Some((media.clone(), bytes))
    }

    fn documented_statuses(&self) -> BTreeSet<u16> {
        self.op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect()
    }

    async fn call(&self, api: &Api, path: &str, body: Option<(String, Vec<u8>)>) -> Reply {
        self.call_with(api, path, body, &[]).await
    }

    async fn call_with(
        &self,
        api: &Api,
        path: &str,
        body: Option<(String, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        api.send_with(
            self.method,
            path,
            body.as_ref().map(|(m, b)| (m.as_str(), b.clone())),
            headers,
        )
        .await
    }

    /// Checks that an answer is documented: its status, its headers, its media type and, for
    /// JSON, that the body matches the documented schema. Returns the status.
    #[track_caller]
    fn check(&self, doc: &Doc, reply: &Reply, what: &str) -> u16 {
        let name = self.name();
        let responses = &self.op["responses"];
        let response = responses
            .get(reply.status.to_string())
            .or_else(|| responses.get("default"))
            .unwrap_or_else(|| {
                panic!(
                    "{name} ({what}) answered {}, which is not documented: {}",
                    reply.status, reply.text
                )
            });
        let response = doc.resolve(response);
        for header in response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            assert!(
                reply.header(header).is_some(),
                "{name} ({what}): {} lacks the documented header {header}",
                reply.status
            );
        }
        let Some(content) = response["content"].as_object() else {
            assert!(
                reply.text.is_empty(),
                "{name} ({what}): {} has a body but none is documented",
                reply.status
            );
            return reply.status;
        };
        let media = reply.media_type();
        let documented = content.get(&media).unwrap_or_else(|| {
            panic!(
                "{name} ({what}): {} answered {media}, documented: {:?}",
                reply.status,
                content.keys().collect::<Vec<_>>()
            )
        });
        if media == "application/json" {
            let body = reply.json();
            let errors = doc.errors(&documented["schema"], &body);
            assert!(
                errors.is_empty(),
                "{name} ({what}): the {} body does not match the documented schema:\n{}\n{body:#}",
                reply.status,
                errors.join("\n")
            );
        }
        reply.status
    }
}

fn example_of(param: &Value) -> String {
    let example = param
        .get("example")
        .or_else(|| param["schema"].get("example"))
        .unwrap_or_else(|| panic!("parameter {} has no example", param["name"]));
    match example {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn with_query(path: String, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path;
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        ser.append_pair(k, v);
    }
    format!("{path}?{}", ser.finish())
}

/// A schema of the document with its `$ref`s made absolute, to compile it on its own.
fn in_document(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) if r.starts_with('#') => {
                        (k.clone(), Value::String(format!("{DOC_URI}{r}")))
                    }
                    _ => (k.clone(), in_document(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(in_document).collect()),
        other => other.clone(),
    }
}

/// Every string of an `enum` in a schema and the schemas it names or combines.
fn enum_strings(doc: &Doc, schema: &Value, out: &mut Vec<String>) {
    let schema = doc.resolve(schema);
    for v in schema["enum"].as_array().into_iter().flatten() {
        if let Some(s) = v.as_str()
            && !out.iter().any(|o| o == s)
        {
            out.push(s.to_string());
        }
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            enum_strings(doc, sub, out);
        }
    }
    for sub in schema["properties"].as_object().into_iter().flatten() {
        enum_strings(doc, sub.1, out);
    }
}

/// Every `$ref` in a JSON value, with where it is.
fn refs(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((
                        at.clone(),
                        v.as_str().unwrap_or("(not a string)").to_string(),
                    ));
                } else {
                    refs(v, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every schema in the document (components, parameters, media types), recursively.
fn schemas<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    fn visit<'a>(s: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        out.push((at.clone(), s));
        subschemas(s, at, out);
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "schema" {
                    visit(v, format!("{at}/schema"), out);
                } else if k == "schemas" && at == "/components" {
                    for (name, s) in v.as_object().unwrap() {
                        visit(s, format!("{at}/schemas/{name}"), out);
                    }
                } else {
                    schemas(v, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                schemas(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn subschemas<'a>(s: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    let mut push = |sub: &'a Value, at: String| {
        out.push((at.clone(), sub));
        subschemas(sub, at, out);
    };
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, sub) in s[key].as_array().into_iter().flatten().enumerate() {
            push(sub, format!("{at}/{key}/{i}"));
        }
    }
    for (name, sub) in s["properties"].as_object().into_iter().flatten() {
        push(sub, format!("{at}/properties/{name}"));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = s.get(key).filter(|v| v.is_object()) {
            push(sub, format!("{at}/{key}"));
        }
    }
}

/// A document path with its parameters as `{}`.
fn shape(path: &str) -> String {
    regex::Regex::new(r"\{[^}]*\}")
        .unwrap()
        .replace_all(path, "{}")
        .into_owned()
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_openapi_3() {
    let app = TestApp::start(Backend::Embedded).await;
    let reply = Api::anonymous(&app).get("/openapi.json").await;
    assert_eq!(reply.status, 200, "served without a key");
    let doc = Doc::new(reply.json());
    let root = &doc.root;
    let version = root["openapi"].as_str().expect("an `openapi` version");
    assert!(
        version.starts_with("3.0.") || version.starts_with("3.1."),
        "OpenAPI 3.x, not {version}"
    );
    assert!(
        root["info"]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(
        root["info"]["version"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(root["servers"][0]["url"], "/api/v1");

    // Every $ref resolves, and every component is used.
    let mut all_refs = Vec::new();
    refs(root, String::new(), &mut all_refs);
    assert!(all_refs.len() > 20, "{all_refs:?}");
    for (at, r) in &all_refs {
        assert!(
            r.starts_with("#/") && doc.target(r).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }
    let used: BTreeSet<&str> = all_refs.iter().map(|(_, r)| r.as_str()).collect();
    for (kind, items) in root["components"].as_object().unwrap() {
        if kind == "securitySchemes" {
            continue;
        }
        for name in items.as_object().unwrap().keys() {
            let r = format!("#/components/{kind}/{name}");
            assert!(used.contains(r.as_str()), "{r} is never used");
        }
    }

    // Every operation: a unique operationId, declared tags, known security schemes, path
    // parameters that match the template, and documented responses.
    let declared_tags: BTreeSet<&str> = root["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let schemes = root["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = BTreeSet::new();
    let ops = doc.operations();
    assert!(ops.len() >= 10, "every endpoint is documented");
    for (path, item) in root["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for key in item.as_object().unwrap().keys() {
            assert!(
                HTTP_METHODS.contains(&key.as_str())
                    || ["parameters", "summary", "description", "servers"].contains(&key.as_str()),
                "{path}: {key} is not part of a path item"
            );
        }
    }
    let template_param = regex::Regex::new(r"\{([^}]+)\}").unwrap();
    for op in &ops {
        let name = op.name();
        assert!(
            ids.insert(op.id().to_string()) && !op.id().is_empty(),
            "{name}: operationId"
        );
        assert!(
            op.op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: summary"
        );
        for tag in op.op["tags"].as_array().into_iter().flatten() {
            assert!(
                declared_tags.contains(tag.as_str().unwrap()),
                "{name}: tag {tag}"
            );
        }
        for req in op.op["security"].as_array().into_iter().flatten() {
            for scheme in req.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{name}: security {scheme}");
            }
        }
        let template: BTreeSet<String> = template_param
            .captures_iter(op.path)
            .map(|c| c[1].to_string())
            .collect();
        let mut declared = BTreeSet::new();
        for p in op.params(&doc) {
            let pname = p["name"].as_str().expect("a parameter name");
            let location = p["in"].as_str().expect("a parameter location");
            assert!(
                ["path", "query", "header", "cookie"].contains(&location),
                "{name}: {pname} in {location}"
            );
            assert!(p["schema"].is_object(), "{name}: {pname} has a schema");
            if location == "path" {
                assert_eq!(
                    p["required"], true,
                    "{name}: path parameter {pname} is required"
                );
                declared.insert(pname.to_string());
            }
            // Examples match their schemas.
            if p.get("example").is_some() {
                let example = &p["example"];
                let errors = doc.errors(&p["schema"], example);
                assert!(errors.is_empty(), "{name}: example of {pname}: {errors:?}");
            }
        }
        assert_eq!(template, declared, "{name}: path parameters");
        if let Some(body) = op.op.get("requestBody") {
            let body = doc.resolve(body);
            let content = body["content"].as_object().expect("request content");
            assert!(!content.is_empty(), "{name}: request body content");
            for (media, m) in content {
                assert!(m["schema"].is_object(), "{name}: {media} schema");
                if let Some(example) = m.get("example") {
                    let errors = doc.errors(&m["schema"], example);
                    assert!(errors.is_empty(), "{name}: the {media} example: {errors:?}");
                }
            }
        }
        let responses = op.op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{name}: no responses");
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{name}: no success response"
        );
        for (status, response) in responses {
            assert!(
                status == "default" || status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{name}: response key {status}"
            );
            let response = doc.resolve(response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name}: {status} has a description"
            );
            for (media, m) in response["content"].as_object().into_iter().flatten() {
                assert!(m["schema"].is_object(), "{name}: {status} {media} schema");
            }
            if status.starts_with('4') || status.starts_with('5') {
                // Error answers are the Error schema: `{code, message}` with one of the codes
                // the schema lists, and nothing undocumented beside them.
                let schema = &response["content"]["application/json"]["schema"];
                assert!(schema.is_object(), "{name}: {status} is not JSON");
                let mut codes = Vec::new();
                enum_strings(&doc, schema, &mut codes);
                assert!(!codes.is_empty(), "{name}: {status} lists no codes");
                for code in &codes {
                    let candidates = [
                        json!({ "code": code, "message": "A sentence." }),
                        json!({ "code": code, "message": "A sentence.", "fields": { "name": "Required." } }),
                        json!({ "code": code, "message": "A sentence.", "sign_in_url": "http://127.0.0.1/s/demo/sign-in" }),
                        json!({ "code": code, "message": "A sentence.", "sign_in_url": "http://127.0.0.1/s/demo/sign-in", "sign_in_link_sent": true }),
                    ];
                    assert!(
                        candidates.iter().any(|c| doc.valid(schema, c)),
                        "{name}: {status} is not an Error with code {code}"
                    );
                }
                assert!(
                    !doc.valid(
                        schema,
                        &json!({ "code": codes[0], "message": "A sentence.", "stack": "…" })
                    ),
                    "{name}: {status} allows undocumented fields"
                );
                assert!(
                    !doc.valid(schema, &json!({ "code": codes[0] })),
                    "{name}: {status} does not require a message"
                );
            }
        }
        if op.secured(&doc) {
            assert!(
                responses.contains_key("401"),
                "{name}: a key may be refused"
            );
        }
    }

    // The schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect: `nullable` is OpenAPI 3.0
    // only), with sound types, compiling patterns, known formats, and required fields that
    // exist.
    let mut all = Vec::new();
    schemas(root, String::new(), &mut all);
    assert!(all.len() > 50, "{}", all.len());
    for (at, s) in all {
        let Some(s) = s.as_object() else {
            assert!(s.is_boolean(), "{at}: a schema is an object");
            continue;
        };
        if let Err(e) = jsonschema::meta::validate(&Value::Object(s.clone())) {
            panic!("{at}: not a JSON Schema: {e}");
        }
        assert!(
            !s.contains_key("nullable"),
            "{at}: nullable is OpenAPI 3.0 only"
        );
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{at}: pattern {pattern}: {e}"));
        }
        if let Some(format) = s.get("format").and_then(Value::as_str) {
            assert!(FORMATS.contains(&format), "{at}: format {format}");
        }
        // (An object schema's own required fields; a part of an allOf may require what
        // another part defines.)
        if let (Some(required), Some(properties), Some("object")) = (
            s.get("required").and_then(Value::as_array),
            s.get("properties").and_then(Value::as_object),
            s.get("type").and_then(Value::as_str),
        ) {
            for r in required {
                assert!(
                    properties.contains_key(r.as_str().unwrap()),
                    "{at}: required {r} is not a property"
                );
            }
        }
        if let Some(Value::Array(values)) = s.get("enum") {
            assert!(!values.is_empty(), "{at}: empty enum");
        }
    }

    // The error codes the document lists are the server's (`ErrorCode::ALL`), all of them but
    // the 405 of a path's other methods, which the description covers.
    let error = doc.resolve(&root["components"]["schemas"]["Error"]);
    assert_eq!(error["required"], json!(["code", "message"]));
    let mut documented = Vec::new();
    for op in &ops {
        for (status, response) in op.op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &doc.resolve(response)["content"]["application/json"]["schema"];
                enum_strings(&doc, schema, &mut documented);
            }
        }
    }
    let documented: BTreeSet<String> = documented.into_iter().collect();
    let server: BTreeSet<String> = latchkey::http::api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert!(server.len() >= 15, "{server:?}");
    let undocumented: Vec<_> = server.difference(&documented).collect();
    assert_eq!(
        undocumented,
        ["method_not_allowed"],
        "codes the document never lists"
    );
    let unknown: Vec<_> = documented.difference(&server).collect();
    assert!(
        unknown.is_empty(),
        "the document lists codes the server never uses: {unknown:?}"
    );
}

/// The order of the walk: records before what names them and reads them back, sends before the
/// log reads them.
const WALK_ORDER: [&str; 32] = [
    "getOpenApi",
    "putFacility",
    "listFacilities",
    "getFacility",
    "putContact",
    "listContacts",
    "getContact",
    "putRental",
    "listRentals",
    "getRental",
    "putInvoice",
    "listInvoices",
    "getInvoice",
    "putRentalAgreement",
    "createAccount",
    "listAccounts",
    "getAccount",
    "sendBookingConfirmation",
    "resendPortalLink",
    "listDeliveries",
    "getDelivery",
    // Webhooks (issue 11): create before the reads of `/webhooks/1`, delete last.
    "listWebhookEndpoints",
    "createWebhookEndpoint",
    "getWebhookEndpoint",
    "updateWebhookEndpoint",
    "sendWebhookTest",
    "listWebhookDeliveries",
    "deleteWebhookEndpoint",
    "listSuppressions",
    "getSuppression",
    // Sender settings (issue 11): last, so the emails above go out as before.
    "getSender",
    "updateSender",
];

both_backends! {
    async fn every_documented_operation_answers_as_documented(backend: Backend) {
        let app = TestApp::start(backend).await;
        let doc = Doc::fetch(&app).await;
        let key = key(&app, "demo").await;
        let api = Api::new(&app, &key);
        let revoked = Api::new(&app, &revoked_key(&app, "demo").await);
        // What no example makes: a rental whose contact has no portal account.
        api.put("/contacts/CON-UNLINKED", &contact_body("FAC-DT", "Una Linked", "una@example.com")).await.expect(201);
        api.put("/rentals/RNT-UNLINKED", &rental_body("CON-UNLINKED", "Unit Z-01")).await.expect(201);
        // ...and a suppression (the bounce listener's doing), the documented example's id 1.
        let demo_sf = storefront_id(&app, "demo").await;
        let suppressed = app.rows(
            "INSERT INTO suppressions (storefront_id, address_key, email, reason, detail, created_at)
             VALUES ($1, 'gone@example.com', 'gone@example.com', 'hard_bounce', '550 5.1.1 User unknown', $2) RETURNING id",
            &[demo_sf.into(), chrono::Utc::now().into()],
        ).await[0].i64(0);
        assert_eq!(suppressed, 1);

        let mut ops = doc.operations();
        ops.sort_by_key(|op| WALK_ORDER.iter().position(|id| *id == op.id()).unwrap_or(usize::MAX));
        let mut seen: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        let mut record = |op: &Op, status: u16| {
            seen.entry(op.name()).or_default().insert(status);
        };

        // 1. With a valid key, the documented examples: a success, documented.
        for op in &ops {
            let reply = op.call(&api, &op.example_path(&doc), op.body(&doc)).await;
            assert!(
                (200..300).contains(&reply.status),
                "{} with its documented example answered {}: {}",
                op.name(), reply.status, reply.text
            );
            record(op, op.check(&doc, &reply, "the example"));
        }
        // 2. The same again: upserts replace (200), a second sign-up finds the email taken
        //    (409), a second resend is inside the cooldown (429).
        for op in &ops {
            let reply = op.call(&api, &op.example_path(&doc), op.body(&doc)).await;
            record(op, op.check(&doc, &reply, "the example again"));
        }
        // 3. Without a key, with keys that are not keys, with a revoked key, and with input that
        //    provokes each documented error.
        let well_formed_unknown = format!("Bearer lk_{}", "A".repeat(43));
        for op in &ops {
            let name = op.name();
            let example = op.example_path(&doc);
            let before = counts(&app).await;
            let no_key = op.call(&Api::anonymous(&app), &example, op.body(&doc)).await;
            if !op.secured(&doc) {
                assert_eq!(no_key.status, 200, "{name} needs no key");
                continue;
            }
            assert_eq!(no_key.status, 401, "{name} without a key: {}", no_key.text);
            record(op, op.check(&doc, &no_key, "no key"));
            for auth in [well_formed_unknown.as_str(), "Bearer not-a-key", "Basic dXNlcjpwYXNzd29yZA==", "Bearer"] {
                let reply = op.call(&Api::with_auth(&app, Some(auth.to_string())), &example, op.body(&doc)).await;
                assert_eq!(reply.status, 401, "{name} with {auth}: {}", reply.text);
                op.check(&doc, &reply, auth);
            }
            let reply = op.call(&revoked, &example, op.body(&doc)).await;
            assert_eq!(reply.status, 401, "{name} with a revoked key: {}", reply.text);
            reply.error(401, "api_key_revoked");
            record(op, op.check(&doc, &reply, "a revoked key"));
            assert_eq!(counts(&app).await, before, "{name}: refused keys change nothing");

            for status in op.documented_statuses() {
                let (what, path, body): (&str, String, Option<(String, Vec<u8>)>) = match status {
                    400 => {
                        let (media, _) = op.body(&doc).unwrap_or_else(|| panic!("{name}: 400 without a body?"));
                        if media == "application/json" {
                            ("malformed JSON", example.clone(), Some((media, b"{\"name\": ".to_vec())))
                        } else {
                            ("the wrong content type", example.clone(), Some(("text/plain".into(), b"hello".to_vec())))
                        }
                    }
                    404 => {
                        let path = op.unknown_path(&doc);
                        assert_ne!(path, op.path_with(&doc, example_of), "{name}: 404 documented but the path names nothing");
                        ("an unknown id", path, op.body(&doc))
                    }
                    413 => {
                        let (media, _) = op.body(&doc).unwrap_or_else(|| panic!("{name}: 413 without a body?"));
                        ("a body over the limit", example.clone(), Some((media, vec![b' '; 5 * 1024 * 1024 + 1])))
                    }
                    422 => match op.body(&doc) {
                        Some((media, _)) if media == "application/json" => ("missing fields", example.clone(), Some((media, b"{}".to_vec()))),
                        Some((media, _)) => ("a body that is not what it says", example.clone(), Some((media, b"not really".to_vec()))),
                        None if !op.params_in(&doc, "query").is_empty() => {
                            ("an unknown parameter", format!("{}?bogus=1", op.path_with(&doc, example_of)), None)
                        }
                        None if op.id() == "sendBookingConfirmation" => {
                            ("a rental of an unlinked contact", op.path_with(&doc, |_| "RNT-UNLINKED".into()), None)
                        }
                        // Its Idempotency-Key's 422s, below.
                        None if op.method == "post" => continue,
                        None => panic!("{name}: the test does not know how to provoke its documented 422"),
                    },
                    // Seen above; the coverage check below makes sure.
                    s if s < 400 || [401, 409, 429].contains(&s) || s >= 500 => continue,
                    other => panic!("{name}: the test does not know how to provoke its documented {other}"),
                };
                let before = counts(&app).await;
                let reply = op.call(&api, &path, body).await;
                assert_eq!(reply.status, status, "{name} with {what}: {}", reply.text);
                record(op, op.check(&doc, &reply, what));
                assert_eq!(counts(&app).await, before, "{name} with {what} changed something");
            }
        }
        // 4. Every POST (and PATCH) with an Idempotency-Key: a repeat gets the first answer again (when it is
        //    kept), the key with another request is refused, a malformed key is refused, and a
        //    key whose first request is still running answers 409.
        let sf = storefront_id(&app, "demo").await;
        for op in ops.iter().filter(|op| op.method == "post" || op.method == "patch") {
            let name = op.name();
            let example = op.example_path(&doc);
            let key = unique("key");
            let first = op.call_with(&api, &example, op.body(&doc), &[("idempotency-key", &key)]).await;
            record(op, op.check(&doc, &first, "an Idempotency-Key"));
            let before = counts(&app).await;
            let again = op.call_with(&api, &example, op.body(&doc), &[("idempotency-key", &key)]).await;
            record(op, op.check(&doc, &again, "the Idempotency-Key again"));
            // An answer that asks to try again is not kept: the repeat runs again (and a 429's
            // seconds to wait may have moved on).
            let kept = first.status != 429 && first.status < 500;
            assert_eq!(again.header("idempotent-replayed").is_some(), kept, "{name}: {}", first.status);
            assert_eq!(again.status, first.status, "{name}: {}", again.text);
            if kept {
                assert_eq!(again.text, first.text, "{name}: the first answer again");
                assert_eq!(counts(&app).await, before, "{name}: a repeat does nothing");
            }
            let other = if op.params_in(&doc, "path").is_empty() {
                (example.clone(), Some(("application/json".to_string(), b"{}".to_vec())))
            } else {
                (op.unknown_path(&doc), op.body(&doc))
            };
            let before = counts(&app).await;
            if kept {
                let reused = op.call_with(&api, &other.0, other.1.clone(), &[("idempotency-key", &key)]).await;
                reused.error(422, "idempotency_key_reused");
                record(op, op.check(&doc, &reused, "the Idempotency-Key with another request"));
            }
            let malformed = op.call_with(&api, &example, op.body(&doc), &[("idempotency-key", "two words")]).await;
            assert_eq!(malformed.invalid(), ["Idempotency-Key"], "{name}");
            record(op, op.check(&doc, &malformed, "a malformed Idempotency-Key"));
            let running = unique("key");
            let now = app.clock_now();
            app.store()
                .db()
                .execute(
                    "INSERT INTO idempotency_keys (storefront_id, idempotency_key, fingerprint, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[sf.into(), running.as_str().into(), b"another request".as_slice().into(), now.into(), (now + chrono::Duration::hours(24)).into()],
                )
                .await
                .unwrap();
            let in_use = op.call_with(&api, &example, op.body(&doc), &[("idempotency-key", &running)]).await;
            in_use.error(409, "idempotency_key_in_use");
            record(op, op.check(&doc, &in_use, "an Idempotency-Key in use"));
            assert_eq!(counts(&app).await, before, "{name}: refused keys change nothing");
        }

        // Every documented status but 5xx was answered at least once.
        for op in &ops {
            let documented: BTreeSet<u16> = op.documented_statuses().into_iter().filter(|s| *s < 500).collect();
            let answered = seen.remove(&op.name()).unwrap_or_default();
            let missing: Vec<_> = documented.difference(&answered).collect();
            assert!(missing.is_empty(), "{}: documented {missing:?} never answered (answered {answered:?})", op.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_server_is_documented() {
    let app = TestApp::start(Backend::Embedded).await;
    let doc = Doc::fetch(&app).await;
    let api = Api::new(&app, &key(&app, "demo").await);
    let documented: BTreeSet<(String, String)> = doc
        .operations()
        .iter()
        .map(|op| (op.method.to_ascii_uppercase(), shape(op.path)))
        .collect();
    let routes: BTreeSet<(String, String)> = latchkey::http::api::served_routes()
        .into_iter()
        .map(|(method, path)| (method, shape(&path)))
        .collect();
    assert_eq!(
        routes, documented,
        "the routes the server serves and the paths of the served document differ"
    );

    // The routes are what the server answers: each exists (it answers something other than
    // the catch-all 404)...
    for (method, path) in &routes {
        let concrete = path.replace("{}", "1");
        let reply = api.send(method, &concrete, None).await;
        let message = reply.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !(reply.status == 404 && message.contains("no such endpoint")),
            "{method} {concrete}: {}",
            reply.text
        );
    }
    // ...each documented path with another method is 405, JSON...
    for path in routes.iter().map(|(_, p)| p).collect::<BTreeSet<_>>() {
        let concrete = path.replace("{}", "1");
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            if routes.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let reply = api.send(method, &concrete, None).await;
            reply.error(405, "method_not_allowed");
        }
    }
    // ...and anything else under /api is a JSON 404, never a portal page.
    for path in [
        "/facility",
        "/facilities/FAC-DT/rentals",
        "/accounts/1/contacts",
        "/suppression",
        "/invoices/INV-1042/payments",
        "/deliveries/1/attempts",
        "/openapi.yaml",
        "/api/v2/facilities/FAC-DT",
        "/api/",
        "/api/v1",
    ] {
        let reply = api.get(path).await;
        let body = reply.error(404, "not_found");
        assert!(
            body["message"].as_str().unwrap().contains("openapi.json"),
            "{body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and bodies
// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn keys_that_are_missing_unknown_or_revoked_are_refused(backend: Backend) {
        let app = TestApp::start(backend).await;
        let (key_id, key) = new_key(&app, "demo", "Warehouse system").await;
        let revoked = revoked_key(&app, "demo").await;
        let body = facility_body("Harborview, Airport");
        let before = counts(&app).await;

        let none = Api::anonymous(&app).put("/facilities/FAC-AP", &body).await;
        none.error(401, "unauthorized");
        assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer realm=\"latchkey\""));
        for auth in [
            format!("Bearer lk_{}", "A".repeat(43)),
            format!("Bearer {}", &key[..key.len() - 1]),
            format!("Bearer {key}x"),
            format!("Basic {key}"),
            key.clone(),
            "Bearer".to_string(),
            "Bearer ".to_string(),
        ] {
            let reply = Api::with_auth(&app, Some(auth.clone())).put("/facilities/FAC-AP", &body).await;
            reply.error(401, "unauthorized");
            assert!(reply.header("www-authenticate").unwrap().contains("invalid_token"), "{auth}");
        }
        let reply = Api::new(&app, &revoked).put("/facilities/FAC-AP", &body).await;
        let err = reply.error(401, "api_key_revoked");
        assert!(err["message"].as_str().unwrap().contains("revoked"));
        assert!(reply.header("www-authenticate").unwrap().contains("invalid_token"));
        assert_eq!(counts(&app).await, before, "refused calls change nothing");
        let unused = app.rows("SELECT last_used_at FROM api_keys WHERE id = $1", &[key_id.into()]).await;
        assert_eq!(unused[0].opt_ts(0), None);

        // The scheme is case-insensitive; the key works and its use is recorded.
        let ok = Api::with_auth(&app, Some(format!("bearer {key}"))).put("/facilities/FAC-AP", &body).await;
        ok.expect(201);
        let used = app.rows("SELECT last_used_at FROM api_keys WHERE id = $1", &[key_id.into()]).await;
        assert!(used[0].opt_ts(0).is_some(), "last_used_at is recorded");
        // Revoking it ends it at once.
        let sf = storefront_id(&app, "demo").await;
        assert!(app.store().revoke_api_key(sf, key_id, Utc::now()).await.unwrap());
        Api::new(&app, &key).put("/facilities/FAC-AP", &body).await.error(401, "api_key_revoked");
    }

    async fn bad_bodies_and_bad_fields_get_a_clear_error_and_change_nothing(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, &key(&app, "demo").await);
        let before = counts(&app).await;
        let json = |body: &str| Some(("application/json", body.as_bytes().to_vec()));

        // 400: not JSON, not an object, not sent as JSON.
        for body in ["{\"name\": ", "", "   ", "[]", "null", "\"FAC\"", "42", "{\"name\": \"a\"} trailing"] {
            let reply = api.send("PUT", "/facilities/FAC-X", json(body)).await;
            reply.error(400, "bad_json");
        }
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let body = content_type.map(|ct| (ct, br#"{"name": "Harborview"}"#.to_vec()));
            api.send("PUT", "/facilities/FAC-X", body).await.error(400, "bad_json");
        }
        // The content type's case and parameters do not matter (the body is read, then found
        // to lack the name).
        let reply = api.send("PUT", "/facilities/FAC-X", Some(("Application/JSON; charset=utf-8", b"{}".to_vec()))).await;
        assert_eq!(reply.invalid(), ["name"]);

        // 413: over a megabyte of JSON.
        let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024));
        api.send("PUT", "/facilities/FAC-X", json(&huge)).await.error(413, "too_large");
        // An agreement over 5 MiB.
        let mut big_pdf = pdf("big");
        big_pdf.resize(5 * 1024 * 1024 + 1, b' ');
        api.put_pdf("/rentals/RNT-DT-B112/agreement", &big_pdf).await.error(413, "too_large");

        // 422: every invalid field is listed, nested ones dotted.
        let reply = api.put("/facilities/FAC-X", &json!({
            "name": "Harborview\r\nBcc: victim@example.com",
            "address": 5,
            "phone": "call us",
            "email": "desk@example.com\r\nBcc: victim@example.com",
            "nmae": "typo",
        })).await;
        assert_eq!(reply.invalid(), ["address", "email", "name", "nmae", "phone"]);
        for name in ["", "   ", "a\u{202E}b", "zero\u{200B}width", "tab\there", "line\u{2028}separator", "para\u{2029}graph", &"x".repeat(201)] {
            let reply = api.put("/facilities/FAC-X", &json!({ "name": name })).await;
            assert_eq!(reply.invalid(), ["name"], "{name:?}");
        }
        for bad_ref in ["bad%20ref", "caf%C3%A9", "a:b", &"R".repeat(101)] {
            let reply = api.put(&format!("/facilities/{bad_ref}"), &facility_body("Harborview")).await;
            assert_eq!(reply.invalid(), ["ref"], "{bad_ref}");
        }
        let reply = api.put("/contacts/CON-X", &json!({ "facility": "FAC/DT", "full_name": "A", "email": "nope" })).await;
        assert_eq!(reply.invalid(), ["email", "facility"]);
        let reply = api.put("/rentals/RNT-X", &json!({
            "contact": "CON-DT-1001",
            "label": "Unit X",
            "status": "rented",
            "starts_on": "2025-02-30",
            "ends_on": "01/03/2025",
            "rate": { "amount_minor": -1, "currency": "US", "period": "year", "extra": true },
            "delivery": { "status": "lost", "tracking_url": "javascript:alert(1)" },
        })).await;
        assert_eq!(reply.invalid(), [
            "delivery.status", "delivery.tracking_url", "ends_on", "rate.amount_minor",
            "rate.currency", "rate.extra", "rate.period", "starts_on", "status",
        ]);
        let mut backwards = rental_body("CON-DT-1001", "Unit X");
        backwards["ends_on"] = json!("2031-07-01");
        assert_eq!(api.put("/rentals/RNT-X", &backwards).await.invalid(), ["ends_on"]);
        let mut no_rate = rental_body("CON-DT-1001", "Unit X");
        no_rate["rate"] = json!("89.00");
        assert_eq!(api.put("/rentals/RNT-X", &no_rate).await.invalid(), ["rate"]);
        let mut invoice = invoice_body("CON-DT-1001", None, "INV-X", "due");
        invoice["amount_minor"] = json!(129.5);
        invoice["currency"] = json!(840);
        assert_eq!(api.put("/invoices/INV-X", &invoice).await.invalid(), ["amount_minor", "currency", "status"]);
        let mut invoice = invoice_body("CON-DT-1001", None, "INV-X", "pending");
        invoice["due_on"] = json!("2031-06-30");
        assert_eq!(api.put("/invoices/INV-X", &invoice).await.invalid(), ["due_on"]);
        // A rental of another contact (Sam's unit on Alex's invoice).
        let foreign = invoice_body("CON-DT-1001", Some("RNT-DT-C03"), "INV-X", "pending");
        assert_eq!(api.put("/invoices/INV-X", &foreign).await.invalid(), ["rental"]);
        // References that name nothing.
        api.put("/contacts/CON-X", &contact_body("FAC-NOPE", "A B", "ab@example.com")).await.error(422, "unknown_facility");
        api.put("/rentals/RNT-X", &rental_body("CON-NOPE", "Unit X")).await.error(422, "unknown_contact");
        api.put("/invoices/INV-X", &invoice_body("CON-NOPE", None, "INV-X", "pending")).await.error(422, "unknown_contact");
        api.put("/invoices/INV-X", &invoice_body("CON-DT-1001", Some("RNT-NOPE"), "INV-X", "pending")).await.error(422, "unknown_rental");
        // Agreements: a PDF, sent as one, with a plain file name.
        api.send("PUT", "/rentals/RNT-DT-B112/agreement", json("{}")).await.error(400, "bad_content_type");
        assert_eq!(api.put_pdf("/rentals/RNT-DT-B112/agreement", b"<html>not a pdf</html>").await.invalid(), ["body"]);
        for name in ["../../etc/passwd.pdf", "agreement.exe", ".pdf", "a%0D%0ABcc.pdf"] {
            let reply = api.put_pdf(&format!("/rentals/RNT-DT-B112/agreement?file_name={name}"), &pdf("x")).await;
            assert_eq!(reply.invalid(), ["file_name"], "{name}");
        }
        assert_eq!(api.put_pdf("/rentals/RNT-DT-B112/agreement?size=3", &pdf("x")).await.invalid(), ["size"]);
        api.put_pdf("/rentals/RNT-NOPE/agreement", &pdf("x")).await.error(404, "not_found");
        // Sign-up.
        let reply = api.post("/accounts", &json!({
            "email": "not-an-email",
            "full_name": "Eve\nBcc: victim@example.com",
            "phone": "12",
            "contacts": "CON-DT-1002",
        })).await;
        assert_eq!(reply.invalid(), ["contacts", "email", "full_name", "phone"]);
        let reply = api.post("/accounts", &json!({
            "email": "eve@example.com\r\nBcc: victim@example.com",
            "full_name": "Eve",
            "contacts": ["CON-DT-1002", "bad ref"],
        })).await;
        assert_eq!(reply.invalid(), ["contacts[1]", "email"]);
        assert_eq!(api.post("/accounts", &json!({})).await.invalid(), ["email", "full_name"]);

        assert_eq!(counts(&app).await, before, "nothing was written");
    }
}

// ---------------------------------------------------------------------------------------------
// Upserts
// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn upserts_are_idempotent_by_the_operators_reference(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, &key(&app, "demo").await);

        // Facility: created once, then replaced in place; a field left out is cleared.
        let first = api.put("/facilities/FAC-AP", &facility_body("Harborview, Airport")).await.expect(201);
        let after_create = counts(&app).await;
        let again = api.put("/facilities/FAC-AP", &facility_body("Harborview, Airport")).await.expect(200);
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["created_at"], first["created_at"]);
        assert_eq!(counts(&app).await, after_create, "a repeated PUT creates nothing");
        let changed = api.put("/facilities/FAC-AP", &json!({ "name": "  Harborview, Airport Road  ", "phone": "+1 207-555-0199" })).await.expect(200);
        assert_eq!(changed["id"], first["id"]);
        assert_eq!(changed["ref"], "FAC-AP");
        assert_eq!(changed["name"], "Harborview, Airport Road", "trimmed");
        assert_eq!(changed["phone"], "+1 207-555-0199");
        assert_eq!(changed.get("address"), Some(&Value::Null), "left out, so cleared");
        assert_eq!(changed.get("email"), Some(&Value::Null));
        let stored = app.rows("SELECT name, address FROM facilities WHERE external_ref = 'FAC-AP'", &[]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].string(0), "Harborview, Airport Road");
        assert_eq!(stored[0].string(1), "");

        // A reference sent percent-encoded is the same reference.
        let encoded = api.put("/facilities/FAC%2DAP", &facility_body("Harborview, Airport")).await.expect(200);
        assert_eq!(encoded["id"], first["id"]);
        assert_eq!(encoded["ref"], "FAC-AP");

        // Contact: idempotent; moves between facilities; keeps its portal account.
        let contact = api.put("/contacts/CON-AP-1", &contact_body("FAC-AP", "Jordan Lee", "jordan@example.com")).await.expect(201);
        assert_eq!(contact["account_id"], Value::Null);
        assert_eq!(api.put("/contacts/CON-AP-1", &contact_body("FAC-AP", "Jordan Lee", "jordan@example.com")).await.expect(200)["id"], contact["id"]);
        let account = api.post("/accounts", &json!({ "email": "jordan@example.com", "full_name": "Jordan Lee", "contacts": ["CON-AP-1"] })).await.expect(201);
        let moved = api.put("/contacts/CON-AP-1", &contact_body("FAC-MR", "Jordan A. Lee", "jordan.lee@example.com")).await.expect(200);
        assert_eq!(moved["id"], contact["id"]);
        assert_eq!(moved["facility"], "FAC-MR");
        assert_eq!(moved["full_name"], "Jordan A. Lee");
        assert_eq!(moved["email"], "jordan.lee@example.com");
        assert_eq!(moved["account_id"], account["id"], "an upsert never unlinks the account");
        assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE external_ref = 'CON-AP-1'", &[]).await, 1);

        // Rental: its facility is its contact's; changing the contact moves it.
        let rental = api.put("/rentals/RNT-AP-1", &rental_body("CON-AP-1", "6-seat cart #22")).await.expect(201);
        assert_eq!(rental["facility"], "FAC-MR");
        assert_eq!(rental["rate"], json!({ "amount_minor": 8900, "currency": "USD", "period": "day" }));
        assert_eq!(rental["delivery"], json!({ "status": "scheduled", "tracking_url": "https://track.example/C22" }));
        assert_eq!(rental["has_agreement"], false);
        let same = api.put("/rentals/RNT-AP-1", &rental_body("CON-AP-1", "6-seat cart #22")).await.expect(200);
        assert_eq!(same["id"], rental["id"]);
        let mut update = rental_body("CON-DT-1001", "Unit B-220, 10×15");
        update["status"] = json!("active");
        update["ends_on"] = Value::Null;
        update.as_object_mut().unwrap().remove("delivery");
        let updated = api.put("/rentals/RNT-AP-1", &update).await.expect(200);
        assert_eq!(updated["id"], rental["id"]);
        assert_eq!(updated["contact"], "CON-DT-1001");
        assert_eq!(updated["facility"], "FAC-DT");
        assert_eq!(updated["label"], "Unit B-220, 10×15");
        assert_eq!(updated["status"], "active");
        assert_eq!(updated["ends_on"], Value::Null);
        assert_eq!(updated["delivery"], Value::Null);
        let stored = app.rows("SELECT label, status, facility_id, delivery_status FROM rentals WHERE external_ref = 'RNT-AP-1'", &[]).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].string(0), "Unit B-220, 10×15");
        assert_eq!(stored[0].opt_string(3), None);

        // Invoice: idempotent; one paid stays paid when a later PUT says pending; void clears it.
        let invoice = api.put("/invoices/INV-AP-1", &invoice_body("CON-DT-1001", Some("RNT-AP-1"), "INV-2001", "pending")).await.expect(201);
        assert_eq!(invoice["paid_at"], Value::Null);
        assert_eq!(invoice["facility"], "FAC-DT");
        let before = counts(&app).await;
        assert_eq!(api.put("/invoices/INV-AP-1", &invoice_body("CON-DT-1001", Some("RNT-AP-1"), "INV-2001", "pending")).await.expect(200)["id"], invoice["id"]);
        assert_eq!(counts(&app).await, before);
        let paid = api.put("/invoices/INV-AP-1", &invoice_body("CON-DT-1001", Some("RNT-AP-1"), "INV-2001", "paid")).await.expect(200);
        assert_eq!(paid["status"], "paid");
        let paid_at = paid["paid_at"].as_str().expect("paid_at").to_string();
        let mut still = invoice_body("CON-DT-1001", None, "INV-2001", "pending");
        still["amount_minor"] = json!(13900);
        let still = api.put("/invoices/INV-AP-1", &still).await.expect(200);
        assert_eq!(still["status"], "paid", "the customer paid it: it stays paid");
        assert_eq!(still["paid_at"], paid_at.as_str());
        assert_eq!(still["amount_minor"], 13900, "the other fields are replaced");
        assert_eq!(still["rental"], Value::Null);
        let void = api.put("/invoices/INV-AP-1", &invoice_body("CON-DT-1001", None, "INV-2001", "void")).await.expect(200);
        assert_eq!(void["status"], "void");
        assert_eq!(void["paid_at"], Value::Null);
        assert_eq!(app.count("SELECT COUNT(*) FROM invoices WHERE external_ref = 'INV-AP-1'", &[]).await, 1);

        // Agreement: the first is created, the next replaces it; the customer downloads the new one.
        let stored = api.put_pdf("/rentals/RNT-AP-1/agreement", &pdf("first")).await.expect(201);
        assert_eq!(stored["rental"], "RNT-AP-1");
        assert_eq!(stored["rental_id"], rental["id"]);
        assert_eq!(stored["file_name"], "agreement-RNT-AP-1.pdf");
        assert_eq!(stored["size"], pdf("first").len());
        let second = pdf("second, signed");
        let replaced = api.put_pdf("/rentals/RNT-AP-1/agreement?file_name=B-220.pdf", &second).await.expect(200);
        assert_eq!(replaced["file_name"], "B-220.pdf");
        assert_eq!(replaced["size"], second.len());
        let rental_id = rental["id"].as_i64().unwrap();
        assert_eq!(app.count("SELECT COUNT(*) FROM agreements WHERE rental_id = $1", &[rental_id.into()]).await, 1);
        assert_eq!(api.put("/rentals/RNT-AP-1", &update).await.expect(200)["has_agreement"], true);
        let customer = app.browser();
        app.sign_in(&customer, "alex@example.com").await;
        let download = customer.get(&format!("/s/demo/rentals/{rental_id}/agreement.pdf")).await;
        assert_eq!(download.status, 200);
        assert_eq!(download.body.as_bytes(), second.as_slice());

        // Concurrent PUTs of one new reference: one creates, the others replace, one row.
        let calls = (0..8).map(|i| {
            let api = api.clone();
            async move { api.put("/facilities/FAC-RACE", &facility_body(&format!("Race {i}"))).await }
        });
        let replies = futures::future::join_all(calls).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 7, "{statuses:?}");
        let ids: BTreeSet<i64> = replies.iter().map(|r| r.json()["id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(app.count("SELECT COUNT(*) FROM facilities WHERE external_ref = 'FAC-RACE'", &[]).await, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation
// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn a_key_reaches_nothing_of_another_storefront(backend: Backend) {
        let app = TestApp::start(backend).await;
        let other = other_storefront(&app).await;
        let demo = storefront_id(&app, "demo").await;
        let a = Api::new(&app, &key(&app, "demo").await);
        let b = Api::new(&app, &key(&app, "other").await);

        // Storefront B's records, some with references the demo storefront uses too.
        let b_downtown = b.put("/facilities/FAC-DT", &facility_body("Other, Downtown")).await.expect(201);
        let b_facility = b.put("/facilities/FAC-B", &facility_body("Other, B")).await.expect(201);
        b.put("/contacts/CON-B", &contact_body("FAC-B", "Bea Other", "bea@example.com")).await.expect(201);
        b.put("/contacts/CON-DT-1001", &contact_body("FAC-DT", "Alex at Other", "alex@example.com")).await.expect(201);
        let b_rental = b.put("/rentals/RNT-B", &rental_body("CON-B", "Kayak #3")).await.expect(201);
        b.put("/invoices/INV-B", &invoice_body("CON-B", Some("RNT-B"), "B-1", "pending")).await.expect(201);
        b.put_pdf("/rentals/RNT-B/agreement", &pdf("B's")).await.expect(201);
        // The same address as the demo's Alex is a separate account on B.
        let b_alex = b.post("/accounts", &json!({ "email": "alex@example.com", "full_name": "Alex at Other", "contacts": ["CON-DT-1001"] })).await.expect(201);
        let b_bea = b.post("/accounts", &json!({ "email": "bea@example.com", "full_name": "Bea Other", "contacts": ["CON-B"] })).await.expect(201);
        let b_delivery = b.post_empty(&format!("/accounts/{}/portal-link", b_bea["id"])).await.expect(202)["delivery_id"].as_i64().unwrap();
        let b_booking = b.post_empty("/rentals/RNT-B/booking-confirmation").await.expect(202)["delivery_id"].as_i64().unwrap();
        let b_records = records_of(&app, other).await;
        let b_deliveries = b.get("/deliveries").await.expect(200);
        let b_ids: Vec<i64> = b_deliveries["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
        assert_eq!(b_ids, [b_booking, b_delivery]);

        // With A's key, B's ids and references are not found...
        let before = counts(&app).await;
        a.post_empty("/rentals/RNT-B/booking-confirmation").await.error(404, "not_found");
        a.put_pdf("/rentals/RNT-B/agreement", &pdf("A's?")).await.error(404, "not_found");
        for account in [&b_alex, &b_bea] {
            a.post_empty(&format!("/accounts/{}/portal-link", account["id"])).await.error(404, "not_found");
        }
        for id in [b_delivery, b_booking] {
            a.get(&format!("/deliveries/{id}")).await.error(404, "not_found");
        }
        a.get("/deliveries?facility=FAC-B").await.error(422, "unknown_facility");
        let a_list = a.get("/deliveries").await.expect(200);
        assert_eq!(a_list["data"], json!([]), "A has sent nothing; B's emails are not listed");
        // ...and inside a body, they are references that name nothing.
        a.put("/contacts/CON-A", &contact_body("FAC-B", "Ann", "ann@example.com")).await.error(422, "unknown_facility");
        a.put("/rentals/RNT-A", &rental_body("CON-B", "Unit A")).await.error(422, "unknown_contact");
        a.put("/invoices/INV-A", &invoice_body("CON-B", None, "A-1", "pending")).await.error(422, "unknown_contact");
        a.put("/invoices/INV-A", &invoice_body("CON-DT-1001", Some("RNT-B"), "A-1", "pending")).await.error(422, "unknown_rental");
        a.post("/accounts", &json!({ "email": "bea@example.com", "full_name": "Bea", "contacts": ["CON-B"] })).await.error(422, "unknown_contact");
        assert_eq!(counts(&app).await, before, "refused calls change nothing");

        // A's upserts with B's references create A's own records and leave B's alone.
        let demo_downtown = a.put("/facilities/FAC-DT", &facility_body("Harborview Self Storage, Downtown")).await.expect(200);
        assert_ne!(demo_downtown["id"], b_downtown["id"]);
        let a_facility = a.put("/facilities/FAC-B", &facility_body("Harborview, B Street")).await.expect(201);
        assert_ne!(a_facility["id"], b_facility["id"]);
        a.put("/contacts/CON-B", &contact_body("FAC-B", "Ann Demo", "ann@example.com")).await.expect(201);
        let a_rental = a.put("/rentals/RNT-B", &rental_body("CON-B", "Unit B-1")).await.expect(201);
        assert_ne!(a_rental["id"], b_rental["id"]);
        a.put("/invoices/INV-B", &invoice_body("CON-B", Some("RNT-B"), "A-1", "paid")).await.expect(201);
        a.put_pdf("/rentals/RNT-B/agreement", &pdf("A's own")).await.expect(201);
        let a_ann = a.post("/accounts", &json!({ "email": "bea@example.com", "full_name": "Ann Demo", "contacts": ["CON-B"] })).await.expect(201);
        assert_ne!(a_ann["id"], b_bea["id"]);
        assert_eq!(records_of(&app, other).await, b_records, "nothing of B changed");
        assert_eq!(app.count("SELECT COUNT(*) FROM facilities WHERE storefront_id = $1", &[demo.into()]).await, 3);

        // B's key still sees exactly B's records (a repeat is a replace of B's own).
        assert_eq!(b.put("/facilities/FAC-B", &facility_body("Other, B")).await.expect(200)["id"], b_facility["id"]);
        let b_after = b.get("/deliveries").await.expect(200);
        assert_eq!(b_after["data"].as_array().unwrap().len(), 2);
        // And B's key does not reach A's account.
        b.post_empty(&format!("/accounts/{}/portal-link", a_ann["id"])).await.error(404, "not_found");
        let alex = account_id(&app, demo, "alex@example.com").await;
        b.post_empty(&format!("/accounts/{alex}/portal-link")).await.error(404, "not_found");
    }
}

// ---------------------------------------------------------------------------------------------
// Customers: sign-up, booking confirmation, portal link
// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn a_taken_email_at_sign_up_is_sent_a_sign_in_link_within_the_usual_limits(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let api = Api::new(&app, &key(&app, "demo").await);
        let taken = json!({ "email": "ALEX@example.com", "full_name": "Alex Again" });

        // 409 email_taken, and the address is sent a sign-in link at once: the answer says so.
        let err = api.post("/accounts", &taken).await.error(409, "email_taken");
        assert_eq!(err["sign_in_link_sent"], true, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(message.starts_with("You already have an account: we have sent you a sign-in link."), "{message}");
        assert_eq!(err["sign_in_url"], app.url("/s/demo/sign-in").as_str());

        // The link arrives at the test's SMTP server and signs the customer in. No browser
        // asked for it, so the email carries no sign-in code.
        let mail = app.mailbox.wait_for("alex@example.com").await;
        let text = mail.text_body();
        assert!(
            !text.lines().any(|l| l.trim().len() == 6 && l.trim().bytes().all(|b| b.is_ascii_digit())),
            "no code: {text}"
        );
        let browser = app.browser();
        let landing = browser.get_url(&sign_in_link(&mail)).await;
        let signed_in = browser.submit(&landing, "form", &[]).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(browser.follow(&signed_in).await.h1(), "Hi, Alex");
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts WHERE email_key = 'alex@example.com'", &[]).await, 1);

        // The usual limits hold: 5 links per 15 minutes from one client, the sign-up caller
        // counted as one. The sixth is recorded as suppressed and the answer says none was
        // sent, and tells the customer to ask for a link on the portal.
        for n in 2..=5 {
            let err = api.post("/accounts", &taken).await.error(409, "email_taken");
            assert_eq!(err["sign_in_link_sent"], true, "link {n}: {err}");
        }
        app.mailbox.wait_for_n("alex@example.com", 5).await;
        let err = api.post("/accounts", &taken).await.error(409, "email_taken");
        assert_eq!(err["sign_in_link_sent"], false, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(!message.contains("we have sent"), "{message}");
        assert!(message.contains(&app.url("/s/demo/sign-in")), "{message}");
        let suppressed = app
            .count("SELECT COUNT(*) FROM deliveries WHERE recipient = 'alex@example.com' AND status = 'suppressed'", &[])
            .await;
        assert_eq!(suppressed, 1);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(app.mailbox.to("alex@example.com").len(), 5, "nothing more was sent");

        // After the window, a taken address is sent a link again.
        app.clock.advance(chrono::Duration::minutes(16));
        let err = api.post("/accounts", &taken).await.error(409, "email_taken");
        assert_eq!(err["sign_in_link_sent"], true, "{err}");
        app.mailbox.wait_for_n("alex@example.com", 6).await;
    }

    async fn sign_up_creates_the_account_and_a_taken_email_is_409_with_sign_in_advice(backend: Backend) {
        let app = TestApp::start(backend).await;
        let api = Api::new(&app, &key(&app, "demo").await);
        let demo = storefront_id(&app, "demo").await;
        api.put("/contacts/CON-J-1", &contact_body("FAC-DT", "Jordan Lee", "jordan@example.com")).await.expect(201);
        api.put("/contacts/CON-J-2", &contact_body("FAC-MR", "Jordan Lee", "jordan@example.com")).await.expect(201);
        let mut cart = rental_body("CON-J-2", "6-seat cart #22");
        cart["status"] = json!("active");
        api.put("/rentals/RNT-J-2", &cart).await.expect(201);

        let created = api.post("/accounts", &json!({
            "email": "Jordan.Lee@Example.com",
            "full_name": "  Jordan Lee ",
            "phone": "+1 207-555-0199",
            "contacts": ["CON-J-1", "CON-J-2", "CON-J-1"],
        })).await.expect(201);
        let id = created["id"].as_i64().unwrap();
        assert!(created["email"].as_str().unwrap().eq_ignore_ascii_case("jordan.lee@example.com"));
        assert_eq!(created["full_name"], "Jordan Lee");
        assert_eq!(created["phone"], "+1 207-555-0199");
        assert_eq!(created["contacts"], json!(["CON-J-1", "CON-J-2"]));
        let linked = app.rows("SELECT external_ref FROM contacts WHERE account_id = $1 ORDER BY external_ref", &[id.into()]).await;
        assert_eq!(linked.iter().map(|r| r.string(0)).collect::<Vec<_>>(), ["CON-J-1", "CON-J-2"]);
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries", &[]).await, 0, "sign-up emails nothing");
        let audit = app.store().audit_entries(Some(demo), 10).await.unwrap();
        assert_eq!(audit[0].action, "api_create_account");
        assert_eq!(audit[0].details["account_id"], id);
        assert_eq!(audit[0].details["api_key"], "Test integration");
        assert_eq!(audit[0].details["contacts"], json!(["CON-J-1", "CON-J-2"]));
        // The customer signs in to the portal with a magic link and sees the rental.
        let browser = app.browser();
        let dashboard = app.sign_in(&browser, "jordan.lee@example.com").await;
        assert_eq!(dashboard.h1(), "Hi, Jordan");
        assert!(dashboard.text().contains("6-seat cart #22"), "{}", dashboard.text());

        // The address is taken (in any case): 409 email_taken, and the address is sent a
        // sign-in link to the portal at once (the answer says so).
        let before = counts(&app).await;
        for email in ["alex@example.com", "ALEX@Example.COM", "jordan.lee@example.com"] {
            let reply = api.post("/accounts", &json!({ "email": email, "full_name": "Someone Else" })).await;
            let err = reply.error(409, "email_taken");
            assert_eq!(err["sign_in_link_sent"], true, "{err}");
            let message = err["message"].as_str().unwrap();
            let lower = message.to_lowercase();
            assert!(lower.contains("sign in") && lower.contains("portal") && lower.contains("link"), "{message}");
            let sign_in_url = app.url("/s/demo/sign-in");
            assert_eq!(err["sign_in_url"], sign_in_url.as_str());
            assert!(message.contains(&sign_in_url), "{message}");
        }
        let sign_in = app.browser().get("/s/demo/sign-in").await;
        assert_eq!(sign_in.status, 200);
        assert!(sign_in.text().contains("Customer portal"));

        // A contact that is linked already: 409 conflict, and no account is left behind.
        let reply = api.post("/accounts", &json!({ "email": "casey@example.com", "full_name": "Casey", "contacts": ["CON-J-1"] })).await;
        let err = reply.error(409, "conflict");
        assert!(err["message"].as_str().unwrap().contains("CON-J-1"));
        // An unknown contact after a good one: 422, all or nothing.
        api.put("/contacts/CON-C-1", &contact_body("FAC-DT", "Casey", "casey@example.com")).await.expect(201);
        let before_unknown = counts(&app).await;
        let err = api.post("/accounts", &json!({ "email": "casey@example.com", "full_name": "Casey", "contacts": ["CON-C-1", "CON-NOPE"] })).await.error(422, "unknown_contact");
        assert!(err["message"].as_str().unwrap().contains("CON-NOPE"));
        assert_eq!(counts(&app).await, before_unknown);
        assert_eq!(app.count("SELECT COUNT(*) FROM contacts WHERE external_ref = 'CON-C-1' AND account_id IS NULL", &[]).await, 1);
        assert_eq!(before_unknown["accounts"], before["accounts"], "nothing was created");
        // The account, its contacts and its audit entry are one transaction: when the entry
        // cannot be written, no account is left behind to make the retry a 409.
        app.store().db().execute("ALTER TABLE audit_log RENAME TO audit_log_away", &[]).await.unwrap();
        let casey_signs_up = json!({ "email": "casey@example.com", "full_name": "Casey", "contacts": ["CON-C-1"] });
        api.post("/accounts", &casey_signs_up).await.error(500, "internal");
        app.store().db().execute("ALTER TABLE audit_log_away RENAME TO audit_log", &[]).await.unwrap();
        assert_eq!(counts(&app).await, before_unknown, "nothing of the failed sign-up stayed");
        // So the address is still free.
        let casey = api.post("/accounts", &casey_signs_up).await.expect(201);
        assert_eq!(casey["contacts"], json!(["CON-C-1"]));
        assert_eq!(casey["phone"], Value::Null);
    }
}

both_backends! {
    async fn booking_confirmation_arrives_and_its_link_signs_in_on_the_rental(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let api = Api::new(&app, &key(&app, "demo").await);
        api.put("/contacts/CON-MR-3001", &contact_body("FAC-MR", "Jordan Lee", "jordan@example.com")).await.expect(201);
        let rental = api.put("/rentals/RNT-MR-C22", &rental_body("CON-MR-3001", "6-seat cart #22")).await.expect(201);
        let rental_id = rental["id"].as_i64().unwrap();

        // Without a portal account there is nobody to send it to.
        let before = counts(&app).await;
        let err = api.post_empty("/rentals/RNT-MR-C22/booking-confirmation").await.error(422, "not_linked");
        assert!(err["message"].as_str().unwrap().contains("/api/v1/accounts"));
        api.post_empty("/rentals/RNT-NOPE/booking-confirmation").await.error(404, "not_found");
        api.post_empty("/rentals/bad%20ref/booking-confirmation").await.error(404, "not_found");
        assert_eq!(counts(&app).await, before);

        let account = api.post("/accounts", &json!({ "email": "jordan@example.com", "full_name": "Jordan Lee", "contacts": ["CON-MR-3001"] })).await.expect(201);
        let queued = api.post_empty("/rentals/RNT-MR-C22/booking-confirmation").await.expect(202);
        assert_eq!(queued["account_id"], account["id"]);
        let delivery_id = queued["delivery_id"].as_i64().unwrap();

        let mail = app.smtp().wait_for_to("jordan@example.com", WAIT).await.expect("the booking confirmation arrives");
        assert_eq!(mail.subject().unwrap(), "Your booking with Harborview Rentals is confirmed: 6-seat cart #22");
        let text = mail.text_body();
        for expected in ["View Your Booking", "6-seat cart #22", "Harborview Carts, Marina", "Jordan"] {
            assert!(text.contains(expected), "the email lacks {expected}:\n{text}");
        }
        let html = mail.html_body().expect("an HTML part");
        let link = sign_in_link(&mail);
        assert!(html.contains("View Your Booking"), "{html}");
        assert!(html.contains(&link.replace('&', "&amp;")), "the button is the link");

        // The link signs the customer in, landing on that rental's page.
        let browser = app.browser();
        let signed_in = open_link(&browser, &link).await;
        assert_eq!(signed_in.location().as_deref(), Some(format!("/s/demo/rentals/{rental_id}").as_str()));
        let page = browser.follow(&signed_in).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.h1(), "6-seat cart #22");
        assert!(page.text().contains("Harborview Carts, Marina"));
        // It works once.
        assert_eq!(app.browser().get_url(&link).await.status, 410);

        // The delivery log has it, sent, with its attempt.
        app.wait_for_status(delivery_id, "sent").await;
        let detail = api.get(&format!("/deliveries/{delivery_id}")).await.expect(200);
        assert_eq!(detail["delivery"]["kind"], "booking_confirmation");
        assert_eq!(detail["delivery"]["recipient"], "jordan@example.com");
        assert_eq!(detail["delivery"]["status"], "sent");
        assert_eq!(detail["attempts"][0]["outcome"], "sent");
        assert_eq!(detail["attempts"][0]["smtp_code"], 250);
        // In the rental's facility's Emails tab.
        let marina = api.get("/deliveries?facility=FAC-MR").await.expect(200);
        assert_eq!(marina["data"][0]["id"], delivery_id);
    }

    async fn booking_confirmation_is_sent_once_per_cooldown_however_often_it_is_retried(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let api = Api::new(&app, &key(&app, "demo").await);
        api.put("/contacts/CON-MR-4001", &contact_body("FAC-MR", "Robin Park", "robin@example.com")).await.expect(201);
        api.put("/rentals/RNT-MR-C7", &rental_body("CON-MR-4001", "4-seat cart #7")).await.expect(201);
        api.put("/rentals/RNT-MR-C8", &rental_body("CON-MR-4001", "4-seat cart #8")).await.expect(201);
        let account = api.post("/accounts", &json!({ "email": "robin@example.com", "full_name": "Robin Park", "contacts": ["CON-MR-4001"] })).await.expect(201);
        let account_id = account["id"].as_i64().unwrap();
        let bookings = || async {
            app.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'booking_confirmation' AND account_id = $1", &[account_id.into()]).await
        };
        let links = || async {
            app.count("SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1", &[account_id.into()]).await
        };
        let cooldown = |reply: &Reply| -> i64 {
            let body = reply.error(429, "cooldown");
            assert!(body["message"].as_str().unwrap().contains("booking confirmation"), "{body}");
            let retry: i64 = reply.header("retry-after").expect("a Retry-After header").parse().unwrap();
            assert!((1..=300).contains(&retry), "{retry}");
            retry
        };

        // An operator's retry loop firing at once: one confirmation, the others are refused.
        let calls = (0..8).map(|_| {
            let api = api.clone();
            async move { api.post_empty("/rentals/RNT-MR-C7/booking-confirmation").await }
        });
        let replies = futures::future::join_all(calls).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
        for reply in replies.iter().filter(|r| r.status == 429) {
            cooldown(reply);
        }
        let sent = replies.iter().find(|r| r.status == 202).unwrap().json();
        assert_eq!(sent["account_id"], account_id);
        let first = sent["delivery_id"].as_i64().unwrap();
        app.wait_for_status(first, "sent").await;
        assert_eq!(bookings().await, 1, "one delivery row");
        assert_eq!(links().await, 1, "one magic link");
        assert_eq!(app.smtp().messages_to("robin@example.com").len(), 1, "one email");

        // A retry a moment later is refused too, and sends nothing.
        let before = counts(&app).await;
        app.clock.advance(chrono::Duration::minutes(4));
        let retry = cooldown(&api.post_empty("/rentals/RNT-MR-C7/booking-confirmation").await);
        assert!(retry <= 60, "a minute of the cooldown is left, not {retry} s");
        assert_eq!(counts(&app).await, before, "a refused confirmation changes nothing");

        // The cooldown is the rental's: another rental of the same customer is confirmed.
        let other = api.post_empty("/rentals/RNT-MR-C8/booking-confirmation").await.expect(202);
        assert_eq!(other["account_id"], account_id);
        app.smtp().wait_for_count(2, WAIT).await.expect("the other rental's confirmation arrives");

        // Once the cooldown is over, the first rental's confirmation is sent again.
        app.clock.advance(chrono::Duration::seconds(retry));
        let again = api.post_empty("/rentals/RNT-MR-C7/booking-confirmation").await.expect(202);
        assert_ne!(again["delivery_id"].as_i64().unwrap(), first);
        app.smtp().wait_for_count(3, WAIT).await.expect("the second confirmation arrives");
        let subjects: Vec<String> = app.smtp().messages_to("robin@example.com").iter().map(|m| m.subject().unwrap()).collect();
        assert_eq!(subjects.iter().filter(|s| s.ends_with("4-seat cart #7")).count(), 2, "{subjects:?}");
        assert_eq!(bookings().await, 3);
        assert_eq!(links().await, 3);
        // And the cooldown holds again from then.
        cooldown(&api.post_empty("/rentals/RNT-MR-C7/booking-confirmation").await);
        assert_eq!(bookings().await, 3);
    }

    async fn resending_the_portal_link_signs_the_customer_in_once_per_cooldown(backend: Backend) {
        let app = Setup::new(backend).with_smtp().start().await;
        let (key_id, key) = new_key(&app, "demo", "Front desk system").await;
        let api = Api::new(&app, &key);
        let demo = storefront_id(&app, "demo").await;
        let alex = account_id(&app, demo, "alex@example.com").await;

        let queued = api.post_empty(&format!("/accounts/{alex}/portal-link")).await.expect(202);
        let delivery_id = queued["delivery_id"].as_i64().unwrap();
        let mail = app.smtp().wait_for_to("alex@example.com", WAIT).await.expect("the link arrives");
        let browser = app.browser();
        let signed_in = open_link(&browser, &sign_in_link(&mail)).await;
        let dashboard = browser.follow(&signed_in).await;
        assert_eq!(dashboard.h1(), "Hi, Alex");
        app.wait_for_status(delivery_id, "sent").await;
        let detail = api.get(&format!("/deliveries/{delivery_id}")).await.expect(200);
        assert_eq!(detail["delivery"]["kind"], "sign_in");

        // Once per cooldown.
        let reply = api.post_empty(&format!("/accounts/{alex}/portal-link")).await;
        reply.error(429, "cooldown");
        let retry: i64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=300).contains(&retry), "{retry}");
        assert_eq!(app.count("SELECT COUNT(*) FROM deliveries", &[]).await, 1);
        app.clock.advance(chrono::Duration::minutes(6));
        api.post_empty(&format!("/accounts/{alex}/portal-link")).await.expect(202);
        app.smtp().wait_for_count(2, WAIT).await.expect("the second link arrives");

        // Recorded with the key's name.
        let audit = app.store().audit_entries(Some(demo), 10).await.unwrap();
        let resends: Vec<_> = audit.iter().filter(|e| e.action == "resend_portal_link").collect();
        assert_eq!(resends.len(), 2);
        assert!(
            resends.iter().all(|e| e.details["api_key_id"] == key_id
                && e.details["api_key"] == "Front desk system"
                && e.details["account_id"] == alex),
            "{resends:?}"
        );

        // Ids that are not the storefront's accounts.
        for id in ["987654", "0", "-1", "abc", "1.0", "99999999999999999999"] {
            api.post_empty(&format!("/accounts/{id}/portal-link")).await.error(404, "not_found");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery log
// ---------------------------------------------------------------------------------------------

both_backends! {
    async fn deliveries_list_with_the_emails_tab_filters_and_read_with_attempts(backend: Backend) {
        use latchkey_testkit::SmtpMode;
        let app = Setup::new(backend)
            .with_smtp()
            .config(|c| {
                c.sign_in.per_account_max = 1;
                c.mail.retry_delays_seconds = vec![600.0];
            })
            .start()
            .await;
        let api = Api::new(&app, &key(&app, "demo").await);
        let smtp = app.smtp().clone();
        let customer = app.browser();
        let sent = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(sent, "sent").await;
        smtp.set_mode(SmtpMode::RejectRcpt { code: 550, message: "5.1.1 <sam@example.com>: Recipient address rejected".into() });
        let failed = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(failed, "failed").await;
        let suppressed = app.request_link(&customer, "sam@example.com").await;
        app.wait_for_status(suppressed, "suppressed").await;
        smtp.set_mode(SmtpMode::Accept);
        app.clock.advance(chrono::Duration::minutes(16));
        smtp.set_mode(SmtpMode::Down);
        let deferred = app.request_link(&customer, "alex@example.com").await;
        app.wait_for_status(deferred, "deferred").await;
        smtp.set_mode(SmtpMode::Accept);

        let ids = |page: &Value| -> Vec<i64> {
            page["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect()
        };
        let all = api.get("/deliveries").await.expect(200);
        assert_eq!(ids(&all), [deferred, suppressed, failed, sent], "newest first");
        assert_eq!(all["next"], Value::Null);
        let field = |name: &str| -> Vec<Value> { all["data"].as_array().unwrap().iter().map(|d| d[name].clone()).collect() };
        assert_eq!(field("status"), [json!("deferred"), json!("suppressed"), json!("failed"), json!("sent")]);
        assert_eq!(field("recipient"), [json!("alex@example.com"), json!("sam@example.com"), json!("sam@example.com"), json!("alex@example.com")]);
        assert_eq!(field("attempts"), [json!(1), json!(0), json!(1), json!(1)]);
        assert!(field("kind").iter().all(|k| k == "sign_in"));
        assert!(field("subject").iter().all(|s| s == "Your sign-in link for Harborview Rentals"));
        let errors = field("last_error");
        assert!(errors[0].as_str().unwrap().contains("could not connect"), "{errors:?}");
        assert!(errors[1].as_str().unwrap().contains("sign-in links in 15 minutes"), "{errors:?}");
        assert!(errors[2].as_str().unwrap().contains("Recipient address rejected"), "{errors:?}");
        assert_eq!(errors[3], Value::Null);
        assert!(all["data"][3]["sent_at"].is_string() && all["data"][0]["sent_at"].is_null());

        // The Emails tab's filters: status, recipient (whole, any case), facility.
        assert_eq!(ids(&api.get("/deliveries?status=failed").await.expect(200)), [failed]);
        assert_eq!(ids(&api.get("/deliveries?recipient=SAM%40Example.com").await.expect(200)), [suppressed, failed]);
        assert_eq!(ids(&api.get("/deliveries?recipient=sam").await.expect(200)), Vec::<i64>::new(), "whole addresses only");
        assert_eq!(ids(&api.get("/deliveries?facility=FAC-DT").await.expect(200)), [deferred, suppressed, failed, sent]);
        assert_eq!(ids(&api.get("/deliveries?facility=FAC-MR").await.expect(200)), [deferred, sent], "Sam has no marina contact");
        assert_eq!(ids(&api.get("/deliveries?facility=FAC-MR&status=sent&recipient=alex%40example.com").await.expect(200)), [sent]);
        assert_eq!(ids(&api.get("/deliveries?status=queued").await.expect(200)), Vec::<i64>::new());
        assert_eq!(ids(&api.get("/deliveries?status=&recipient=").await.expect(200)).len(), 4, "empty values are no filter");

        // Paging by cursor.
        let mut pages = Vec::new();
        let mut path = "/deliveries?limit=1".to_string();
        loop {
            let page = api.get(&path).await.expect(200);
            pages.push(ids(&page));
            match page["next"].as_str() {
                Some(next) => path = format!("/deliveries?limit=1&before={next}"),
                None => break,
            }
            assert!(pages.len() <= 4, "paging ends");
        }
        assert_eq!(pages.concat(), [deferred, suppressed, failed, sent]);
        let sams = api.get("/deliveries?recipient=sam%40example.com&limit=1").await.expect(200);
        assert_eq!(ids(&sams), [suppressed]);
        let rest = api.get(&format!("/deliveries?recipient=sam%40example.com&limit=1&before={}", sams["next"].as_str().unwrap())).await.expect(200);
        assert_eq!(ids(&rest), [failed]);
        assert_eq!(rest["next"], Value::Null);

        // One delivery with every attempt.
        let detail = api.get(&format!("/deliveries/{failed}")).await.expect(200);
        assert_eq!(detail["delivery"]["id"], failed);
        assert_eq!(detail["delivery"]["status"], "failed");
        let attempts = detail["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["attempt"], 1);
        assert_eq!(attempts[0]["outcome"], "failed");
        assert_eq!(attempts[0]["smtp_code"], 550);
        assert!(attempts[0]["detail"].as_str().unwrap().contains("5.1.1 <sam@example.com>: Recipient address rejected"));
        let detail = api.get(&format!("/deliveries/{suppressed}")).await.expect(200);
        assert_eq!(detail["attempts"], json!([]));
        // The deferred one goes out later: two attempts, in order.
        app.clock.advance(chrono::Duration::minutes(11));
        app.app().deliver(deferred).await.unwrap();
        let detail = api.get(&format!("/deliveries/{deferred}")).await.expect(200);
        assert_eq!(detail["delivery"]["status"], "sent");
        assert_eq!(detail["delivery"]["attempts"], 2);
        let outcomes: Vec<&Value> = detail["attempts"].as_array().unwrap().iter().map(|a| &a["outcome"]).collect();
        assert_eq!(outcomes, [&json!("deferred"), &json!("sent")]);
        assert_eq!(detail["attempts"][1]["attempt"], 2);
        assert_eq!(detail["attempts"][0]["smtp_code"], Value::Null);
        assert_eq!(detail["attempts"][1]["smtp_code"], 250);

        // Unknown ids, and parameters that are not right.
        for id in ["987654", "0", "abc", "-3"] {
            api.get(&format!("/deliveries/{id}")).await.error(404, "not_found");
        }
        for (query, field) in [
            ("status=bogus", "status"),
            ("status=SENT", "status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=ten", "limit"),
            ("before=abc", "before"),
            ("before=0", "before"),
            ("facility=FAC%2FDT", "facility"),
            ("recipient=a%0Ab%40example.com", "recipient"),
            ("statsu=sent", "statsu"),
            ("status=sent&status=failed", "status"),
            ("recipient=%FF", "query"),
        ] {
            let reply = api.get(&format!("/deliveries?{query}")).await;
            assert_eq!(reply.invalid(), [field], "{query}");
        }
        api.get("/deliveries?facility=FAC-NOPE").await.error(422, "unknown_facility");
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies without a length
// ---------------------------------------------------------------------------------------------

/// Sends a raw HTTP/1.1 request and reads the whole answer (the request asks to close).
async fn raw_http(app: &TestApp, head: &str, body_chunks: &[Vec<u8>]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.config.listen)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body_chunks {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers")
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

both_backends! {
    async fn a_chunked_body_over_the_limit_is_413_and_changes_nothing(backend: Backend) {
        let app = TestApp::start(backend).await;
        let key = key(&app, "demo").await;
        let before = counts(&app).await;
        let head = |path: &str, content_type: &str| format!(
            "PUT /api/v1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            app.config.listen
        );
        // Two MiB of JSON in 64 KiB chunks, no Content-Length: cut off at 1 MiB.
        let mut chunks = vec![b"{\"name\": \"".to_vec()];
        chunks.extend((0..32).map(|_| vec![b'x'; 64 * 1024]));
        chunks.push(b"\"}".to_vec());
        let answer = raw_http(&app, &head("/facilities/FAC-BIG", "application/json"), &chunks).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(400)]);
        assert!(answer.contains("\"code\":\"too_large\""), "{answer}");
        // A chunked body under the limit is read whole.
        let small = vec![b"{\"name\": ".to_vec(), b"\"Harborview, Chunked\"}".to_vec()];
        let answer = raw_http(&app, &head("/facilities/FAC-CHUNKED", "application/json"), &small).await;
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        // Six MiB of PDF: over the agreement's 5 MiB.
        let mut pdf_chunks = vec![pdf("big")];
        pdf_chunks.extend((0..96).map(|_| vec![b' '; 64 * 1024]));
        let answer = raw_http(&app, &head("/rentals/RNT-DT-B112/agreement", "application/pdf"), &pdf_chunks).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(400)]);
        let mut after = counts(&app).await;
        *after.get_mut("facilities").unwrap() -= 1;
        assert_eq!(after, before, "only the small one was written");
    }
}
