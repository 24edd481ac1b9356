//! The storefront's sender settings: the name and address its emails come from, the Reply-To
//! address and DKIM signing, read (`GET /sender`) and changed (`PATCH /sender`, with
//! `Idempotency-Key` like every POST, and audited). The DKIM private key goes in and is never
//! shown back: answers say whether DKIM works and give the DNS record to publish.

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use warp::reply::Response;

use super::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use super::fields::Title;
use super::idempotency::IdempotencyHeader;
use super::input::{FromJson, Object, Problems, Request};
use super::{Caller, json_response};
use crate::domain::EmailAddress;
use crate::domain::dkim::{DkimKey, DnsName};
use crate::http::HttpState;
use crate::http::api::error::ApiError;
use crate::usecases::sender::{self, DkimChange, SenderChange, SenderError, SenderView};

/// The longest private key accepted (an RSA 4096 PEM is about 3.3 KB).
const KEY_MAX: usize = 16 * 1024;

/// A DNS name (DKIM domain or selector).
#[derive(Debug, Clone)]
pub struct DnsNameField(DnsName);

impl FromJson for DnsNameField {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value {
            Value::String(s) => DnsName::parse(s).map_err(|e| format!("{}.", capitalized(&e))),
            _ => Err("Must be a string.".into()),
        };
        read.map(Self).map_err(|e| p.add(name, e)).ok()
    }
}

impl PartialSchema for DnsNameField {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(253))
            .pattern(Some(
                "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$",
            ))
            .description(Some(
                "A DNS name: dot-separated labels of letters, digits and hyphens (kept in lower case).",
            ))
            .into()
    }
}

impl ToSchema for DnsNameField {}

/// A DKIM private key in PEM, checked by loading it.
#[derive(Debug, Clone)]
pub struct PrivateKeyPem(DkimKey);

impl FromJson for PrivateKeyPem {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let read = match value {
            Value::String(s) if s.len() > KEY_MAX => {
                Err(format!("Too long for a key (at most {KEY_MAX} bytes)."))
            }
            // The problem never repeats the key.
            Value::String(s) => DkimKey::parse(s).map_err(|e| format!("{}.", capitalized(&e))),
            _ => Err("Must be a string.".into()),
        };
        read.map(Self).map_err(|e| p.add(name, e)).ok()
    }
}

impl PartialSchema for PrivateKeyPem {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(KEY_MAX))
            .write_only(true)
            .description(Some(
                "The private key in PEM: RSA (`BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`, at least 1024 bits, 2048 recommended) or Ed25519 (`BEGIN PRIVATE KEY`). Stored encrypted with the server's secret key; never shown back.",
            ))
            .into()
    }
}

impl ToSchema for PrivateKeyPem {}

fn capitalized(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// DKIM signing to set or change: the first time all three fields, later any of them.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = SenderDkimInput)]
#[serde(deny_unknown_fields)]
pub struct DkimInput {
    /// The signing domain (`d=`): the sender address's domain or a parent of it.
    domain: Option<DnsNameField>,
    /// The selector (`s=`): the public key is published at `{selector}._domainkey.{domain}`.
    selector: Option<DnsNameField>,
    private_key: Option<PrivateKeyPem>,
}

impl Request for DkimInput {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        Some(Self {
            domain: o.optional("domain", p),
            selector: o.optional("selector", p),
            private_key: o.optional("private_key", p),
        })
    }
}

impl FromJson for DkimInput {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        <Self as Request>::nested(value, name, p)
    }
}

/// A change of the sender settings: what is left out stays as it is. (This documents the
/// body; `Read` reads it, telling a field left out from one set to `null`.)
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = SenderInput)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The sender name of every email (`From: "name" <address>`).
    from_name: Option<Title>,
    /// The sender address. Refused if the DKIM domain is not its domain or a parent of it.
    from_email: Option<EmailAddress>,
    /// Where replies go; `null` removes it.
    #[schema(nullable)]
    reply_to: Option<EmailAddress>,
    /// DKIM signing; `null` stops signing and deletes the key.
    #[schema(nullable)]
    dkim: Option<DkimInput>,
}

struct Read {
    from_name: Option<Title>,
    from_email: Option<EmailAddress>,
    reply_to: Option<Option<EmailAddress>>,
    dkim: Option<Option<DkimInput>>,
}

impl Request for Read {
    fn read(o: &mut Object, p: &mut Problems) -> Option<Self> {
        Some(Self {
            from_name: o.optional("from_name", p),
            from_email: o.optional("from_email", p),
            reply_to: o.nullable("reply_to", p),
            dkim: o.nullable("dkim", p),
        })
    }
}

/// The DNS TXT record that publishes the DKIM public key.
#[derive(Serialize, ToSchema)]
#[schema(as = DkimDnsRecord)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    /// `{selector}._domainkey.{domain}`
    name: String,
    /// Always `TXT`.
    #[serde(rename = "type")]
    record_type: String,
    /// `v=DKIM1; k=rsa|ed25519; p=…` (a DNS provider may need a long value split into strings of at most 255 characters).
    value: String,
}

/// DKIM signing as set up.
#[derive(Serialize, ToSchema)]
#[schema(as = SenderDkim)]
#[serde(deny_unknown_fields)]
pub struct DkimView {
    domain: String,
    selector: String,
    /// Whether a private key is stored (it is never shown back).
    private_key_set: bool,
    /// `rsa` or `ed25519`.
    #[schema(required = true)]
    algorithm: Option<String>,
    #[schema(required = true)]
    dns_record: Option<DnsRecord>,
    /// `active`: emails are signed. `misconfigured`: the key cannot be used (see `problem`), and emails fail until it is set again.
    status: String,
    /// Why DKIM is misconfigured.
    #[schema(required = true)]
    problem: Option<String>,
}

/// The storefront's sender settings.
#[derive(Serialize, ToSchema)]
#[schema(as = Sender)]
#[serde(deny_unknown_fields)]
pub struct View {
    from_name: String,
    #[schema(format = "email")]
    from_email: String,
    #[schema(required = true, format = "email")]
    reply_to: Option<String>,
    /// `null` when emails are not DKIM-signed.
    #[schema(required = true)]
    dkim: Option<DkimView>,
}

impl From<SenderView> for View {
    fn from(v: SenderView) -> Self {
        Self {
            from_name: v.from_name,
            from_email: v.from_email,
            reply_to: v.reply_to,
            dkim: v.dkim.map(|d| DkimView {
                domain: d.domain,
                selector: d.selector,
                private_key_set: true,
                algorithm: d.algorithm.map(|a| a.as_str().to_string()),
                dns_record: d.record.map(|r| DnsRecord {
                    name: r.name,
                    record_type: "TXT".into(),
                    value: r.value,
                }),
                status: if d.problem.is_some() {
                    "misconfigured"
                } else {
                    "active"
                }
                .into(),
                problem: d.problem,
            }),
        }
    }
}

/// Read the sender settings
///
/// The name and address your storefront's emails come from, the Reply-To address, and DKIM signing with the DNS record to publish. The private key is never shown.
#[utoipa::path(
    get,
    path = "/sender",
    operation_id = "getSender",
    tag = "Sender",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The sender settings.", body = View),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller) -> Result<Response, ApiError> {
    let view = sender::read(&state.svc, caller.storefront.id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Your storefront no longer exists.".into()))?;
    Ok(json_response(StatusCode::OK, &View::from(view)))
}

/// Change the sender settings
///
/// Changes what is given and leaves the rest (all or nothing). DKIM: the first time give `domain`, `selector` and `private_key`; later any of them (a new selector for the same key, a new key under the same selector); `"dkim": null` stops signing and deletes the key. The DKIM domain must be the sender address's domain or a parent of it. Publish the answer's `dns_record` before emails are signed with a new key or selector, or receivers will fail the signature. Recorded in the audit log with the API key's name (never the key).
#[utoipa::path(
    patch,
    path = "/sender",
    operation_id = "updateSender",
    tag = "Sender",
    security(("apiKey" = [])),
    params(IdempotencyHeader),
    request_body(
        content = Input,
        content_type = "application/json",
        // A real (throwaway, published) Ed25519 key, so the example works as sent.
        example = json!({
            "from_name": "Harborview Rentals",
            "reply_to": "office@harborview.example",
            "dkim": {
                "domain": "harborview.example",
                "selector": "portal2026",
                "private_key": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAB+7BN4SRyoOo6bFcrcY1bWAYHTZi63juiuRnzYu5M5\n-----END PRIVATE KEY-----\n"
            }
        }),
    ),
    responses(
        (status = 200, description = "The sender settings as they are now.", body = View),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 413, response = TooLarge),
        (status = 422, description = "Nothing to change (an empty object), invalid fields (a private key that does not load, a DKIM domain that does not fit the sender address, DKIM fields missing the first time) or `Idempotency-Key`, or `idempotency_key_reused`: the key was sent with another request. Nothing was changed.", body = inline(error_doc::InvalidOrKeyRefused)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn patch(state: &HttpState, caller: &Caller, body: Value) -> Result<Response, ApiError> {
    let mut p = Problems::default();
    let read = Read::from_body(&body, &mut p)?;
    let (Some(read), true) = (read, p.is_empty()) else {
        return Err(p.into_error());
    };
    let change = SenderChange {
        from_name: read.from_name.map(Title::into_string),
        from_email: read.from_email,
        reply_to: read.reply_to,
        dkim: match read.dkim {
            None => DkimChange::Keep,
            Some(None) => DkimChange::Remove,
            Some(Some(d)) => DkimChange::Set {
                domain: d.domain.map(|n| n.0),
                selector: d.selector.map(|n| n.0),
                key: d.private_key.map(|k| k.0),
            },
        },
    };
    if change.is_empty() {
        // Most likely a client bug (a misspelt field is refused as unknown already); nothing
        // to change is not worth an audit entry.
        return Err(ApiError::field(
            "body",
            "Give at least one of from_name, from_email, reply_to, dkim.",
        ));
    }
    let audit = json!({ "api_key_id": caller.key.id, "api_key": caller.key.name });
    let view = sender::apply(
        &state.svc,
        caller.storefront.id,
        &change,
        ("api_sender_changed", audit),
    )
    .await
    .map_err(|e| match e {
        SenderError::Invalid { field, problem } => ApiError::field(field, problem),
        SenderError::Gone => ApiError::NotFound("Your storefront no longer exists.".into()),
        SenderError::Db(e) => e.into(),
    })?;
    Ok(json_response(StatusCode::OK, &View::from(view)))
}
