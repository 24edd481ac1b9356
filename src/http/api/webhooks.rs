//! Webhook endpoints of the storefront (SPEC §9): list, create (the signing secret is in the
//! create answer only), read, change, delete, send a test event, and an endpoint's recent
//! deliveries with every try. Another storefront's endpoint answers 404.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use warp::reply::Response;

use super::error_doc::{self, BadJson, Internal, TooLarge, Unauthorized, Unavailable};
use super::fields::{Id, Timestamp, enum_schema, parse_id};
use super::idempotency::IdempotencyHeader;
use super::input::{FromJson, Problems, Request};
use super::{Caller, json_response};
use crate::http::HttpState;
use crate::http::api::error::ApiError;
use crate::store::{WebhookDelivery, WebhookEndpoint};
use crate::usecases::support::Actor;
use crate::usecases::webhooks::{self, EndpointChange, NewEndpoint, WebhookError};

/// An event type an endpoint can subscribe to.
pub struct EventTypeName;

impl PartialSchema for EventTypeName {
    fn schema() -> RefOr<Schema> {
        enum_schema(webhooks::event_type_names())
    }
}

impl ToSchema for EventTypeName {}

/// A list of event type names.
#[derive(Debug, Clone)]
pub struct EventTypeList(Vec<String>);

impl FromJson for EventTypeList {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        let Some(items) = value.as_array() else {
            p.add(name, "Must be an array of event types.");
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let Some(s) = item.as_str() else {
                p.add(name, "Must be an array of event types.");
                return None;
            };
            out.push(s.to_string());
        }
        Some(Self(out))
    }
}

/// A URL, a description: plain text.
#[derive(Debug, Clone)]
pub struct Text(String);

impl FromJson for Text {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        match value.as_str() {
            Some(s) => Some(Self(s.to_string())),
            None => {
                p.add(name, "Must be a string.");
                None
            }
        }
    }
}

/// true or false.
#[derive(Debug, Clone, Copy)]
pub struct Flag(bool);

impl FromJson for Flag {
    fn read(value: &Value, name: &str, p: &mut Problems) -> Option<Self> {
        match value.as_bool() {
            Some(b) => Some(Self(b)),
            None => {
                p.add(name, "Must be true or false.");
                None
            }
        }
    }
}

/// A new webhook endpoint.
#[derive(ToSchema)]
#[schema(as = WebhookEndpointInput)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// Where events are posted: http:// or https://, not on loopback or a private network.
    #[schema(value_type = String, max_length = 2048)]
    url: Text,
    /// The event types to send (at least one).
    #[schema(value_type = Vec<EventTypeName>, min_items = 1)]
    event_types: EventTypeList,
    /// For people (at most 200 characters).
    #[schema(value_type = Option<String>, max_length = 200)]
    description: Option<Text>,
    /// Default true.
    #[schema(value_type = Option<bool>)]
    enabled: Option<Flag>,
}

impl Request for CreateInput {
    fn read(o: &mut super::input::Object, p: &mut Problems) -> Option<Self> {
        let url = o.required("url", p);
        let event_types = o.required("event_types", p);
        let description = o.optional("description", p);
        let enabled = o.optional("enabled", p);
        Some(Self {
            url: url?,
            event_types: event_types?,
            description,
            enabled,
        })
    }
}

/// A change to an endpoint: only the fields given change (at least one).
#[derive(ToSchema)]
#[schema(as = WebhookEndpointChange)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    #[schema(value_type = Option<String>, max_length = 2048)]
    url: Option<Text>,
    #[schema(value_type = Option<Vec<EventTypeName>>, min_items = 1)]
    event_types: Option<EventTypeList>,
    #[schema(value_type = Option<String>, max_length = 200)]
    description: Option<Text>,
    /// false disables the endpoint (no more events); true enables it again and forgets its failures.
    #[schema(value_type = Option<bool>)]
    enabled: Option<Flag>,
}

impl Request for UpdateInput {
    fn read(o: &mut super::input::Object, p: &mut Problems) -> Option<Self> {
        let read = Self {
            url: o.optional("url", p),
            event_types: o.optional("event_types", p),
            description: o.optional("description", p),
            enabled: o.optional("enabled", p),
        };
        if read.url.is_none()
            && read.event_types.is_none()
            && read.description.is_none()
            && read.enabled.is_none()
            && p.is_empty()
        {
            p.add(
                "enabled",
                "Give at least one of url, event_types, description and enabled.",
            );
            return None;
        }
        Some(read)
    }
}

/// A webhook endpoint (its secret is only in the create answer).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
#[serde(deny_unknown_fields)]
pub struct EndpointView {
    id: i64,
    url: String,
    #[schema(value_type = Vec<EventTypeName>)]
    event_types: Vec<&'static str>,
    description: String,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[schema(required = true)]
    disabled_at: Option<Timestamp>,
    /// Why it was disabled: by whom, or after how long failing.
    #[schema(required = true)]
    disabled_reason: Option<String>,
    /// The start of the current run of failed deliveries; null after a success.
    #[schema(required = true)]
    failing_since: Option<Timestamp>,
}

impl From<&WebhookEndpoint> for EndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url.clone(),
            event_types: e.event_types.names(),
            description: e.description.clone(),
            enabled: e.enabled,
            created_at: e.created_at.into(),
            updated_at: e.updated_at.into(),
            disabled_at: e.disabled_at.map(Timestamp::from),
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.first_failure_at.map(Timestamp::from),
        }
    }
}

/// A new endpoint with its signing secret.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointCreated)]
#[serde(deny_unknown_fields)]
pub struct CreatedView {
    endpoint: EndpointView,
    /// The signing secret (`whsec_…`): shown this once; keep it to verify `Latchkey-Signature`.
    secret: String,
}

/// The storefront's endpoints.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
#[serde(deny_unknown_fields)]
pub struct ListView {
    /// Oldest first.
    data: Vec<EndpointView>,
}

/// One try at posting an event.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookAttempt)]
#[serde(deny_unknown_fields)]
pub struct AttemptView {
    #[schema(minimum = 1)]
    attempt: i64,
    started_at: Timestamp,
    #[schema(minimum = 0)]
    duration_ms: i64,
    /// The endpoint's HTTP status; null when there was no answer.
    #[schema(required = true)]
    http_status: Option<i64>,
    /// The connection error, timeout or refused target; null when the endpoint answered.
    #[schema(required = true)]
    error: Option<String>,
    /// The start of the endpoint's answer.
    response_excerpt: String,
}

/// Where an event delivery stands.
pub struct WebhookStatus;

impl PartialSchema for WebhookStatus {
    fn schema() -> RefOr<Schema> {
        enum_schema(["pending", "sending", "delivered", "failed"])
    }
}

impl ToSchema for WebhookStatus {}

/// One event to one endpoint, with every try.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
#[serde(deny_unknown_fields)]
pub struct DeliveryView {
    id: i64,
    /// The event's `id` (`evt_…`).
    event_id: String,
    /// The event's `type` (or `ping`).
    event_type: String,
    #[schema(value_type = WebhookStatus)]
    status: String,
    #[schema(minimum = 0)]
    attempts: i64,
    #[schema(required = true)]
    last_error: Option<String>,
    created_at: Timestamp,
    /// When the next try is due (while pending).
    next_attempt_at: Timestamp,
    #[schema(required = true)]
    delivered_at: Option<Timestamp>,
    tries: Vec<AttemptView>,
}

impl From<&WebhookDelivery> for DeliveryView {
    fn from(d: &WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_public_id.clone(),
            event_type: d.event_type.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            created_at: d.created_at.into(),
            next_attempt_at: d.next_attempt_at.into(),
            delivered_at: d.delivered_at.map(Timestamp::from),
            tries: d
                .tries
                .iter()
                .map(|t| AttemptView {
                    attempt: t.attempt,
                    started_at: t.started_at.into(),
                    duration_ms: t.duration_ms,
                    http_status: t.http_status,
                    error: t.error.clone(),
                    response_excerpt: t.response_excerpt.clone(),
                })
                .collect(),
        }
    }
}

/// An endpoint's recent deliveries.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryList)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesView {
    /// Newest first, at most 50.
    data: Vec<DeliveryView>,
}

/// The test event on its way.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookTestQueued)]
#[serde(deny_unknown_fields)]
pub struct TestQueued {
    /// The delivery of the `ping` event (GET /webhooks/{id}/deliveries).
    delivery_id: i64,
}

fn actor(caller: &Caller) -> Actor<'_> {
    Actor::ApiKey {
        id: caller.key.id,
        name: &caller.key.name,
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Your storefront has no webhook endpoint with this id.".into())
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid(field, problem) => ApiError::field(field, problem),
            WebhookError::NotFound => not_found(),
            WebhookError::App(e) => e.into(),
        }
    }
}

fn endpoint_id(raw: &str) -> Result<i64, ApiError> {
    parse_id(raw).ok_or_else(not_found)
}

fn read<T: Request>(body: &Value) -> Result<T, ApiError> {
    let mut p = Problems::default();
    let input = T::from_body(body, &mut p)?;
    match (input, p.is_empty()) {
        (Some(input), true) => Ok(input),
        _ => Err(p.into_error()),
    }
}

/// List webhook endpoints
#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "listWebhookEndpoints",
    tag = "Webhooks",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The storefront's endpoints.", body = ListView),
        (status = 401, response = Unauthorized),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list(state: &HttpState, caller: &Caller) -> Result<Response, ApiError> {
    let endpoints = webhooks::list(&state.svc, caller.storefront.id).await?;
    let view = ListView {
        data: endpoints.iter().map(EndpointView::from).collect(),
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// Create a webhook endpoint
///
/// Events of the types listed are posted to `url` as JSON `{id, type, created, storefront, data}`, signed in the `Latchkey-Signature` header (`t={unix time},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`). The answer carries the signing secret, shown this once. A URL whose host is (or resolves to) loopback or a private network is refused (422).
#[utoipa::path(
    post,
    path = "/webhooks",
    operation_id = "createWebhookEndpoint",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(IdempotencyHeader),
    request_body(
        content = CreateInput,
        content_type = "application/json",
        example = json!({
            "url": "https://books.example.com/hooks/latchkey",
            "event_types": ["invoice.paid", "delivery.bounced"],
            "description": "Accounting"
        }),
    ),
    responses(
        (status = 201, description = "The endpoint and its secret.", body = CreatedView),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 413, response = TooLarge),
        (status = 422, description = "`validation`: invalid fields (a refused URL, an unknown event type) or `Idempotency-Key`; `idempotency_key_reused`: the key was sent with another request. Nothing was created.", body = inline(error_doc::InvalidOrKeyRefused)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create(state: &HttpState, caller: &Caller, body: Value) -> Result<Response, ApiError> {
    let input: CreateInput = read(&body)?;
    let created = webhooks::create(
        &state.svc,
        caller.storefront.id,
        NewEndpoint {
            url: input.url.0,
            event_types: input.event_types.0,
            description: input.description.map(|d| d.0).unwrap_or_default(),
            enabled: input.enabled.is_none_or(|f| f.0),
        },
        actor(caller),
    )
    .await?;
    let view = CreatedView {
        endpoint: EndpointView::from(&created.endpoint),
        secret: created.secret,
    };
    Ok(json_response(StatusCode::CREATED, &view))
}

/// One webhook endpoint
#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    operation_id = "getWebhookEndpoint",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(("id" = inline(Id), Path, description = "The endpoint's id.", example = 1)),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointView),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no endpoint with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let endpoint = webhooks::get(&state.svc, caller.storefront.id, endpoint_id(id)?).await?;
    Ok(json_response(
        StatusCode::OK,
        &EndpointView::from(&endpoint),
    ))
}

/// Change a webhook endpoint
///
/// Only the fields given change. `enabled: false` disables it; `enabled: true` enables it again (after it was disabled for failing, too) and forgets its failures.
#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    operation_id = "updateWebhookEndpoint",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The endpoint's id.", example = 1),
        IdempotencyHeader,
    ),
    request_body(
        content = UpdateInput,
        content_type = "application/json",
        example = json!({"enabled": false}),
    ),
    responses(
        (status = 200, description = "The endpoint as changed.", body = EndpointView),
        (status = 400, response = BadJson),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no endpoint with this id.", body = inline(error_doc::NotFound)),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 413, response = TooLarge),
        (status = 422, description = "`validation`: invalid fields or `Idempotency-Key`; `idempotency_key_reused`: the key was sent with another request. Nothing was changed.", body = inline(error_doc::InvalidOrKeyRefused)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn update(
    state: &HttpState,
    caller: &Caller,
    id: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let id = endpoint_id(id)?;
    let input: UpdateInput = read(&body)?;
    let endpoint = webhooks::update(
        &state.svc,
        caller.storefront.id,
        id,
        EndpointChange {
            url: input.url.map(|t| t.0),
            event_types: input.event_types.map(|t| t.0),
            description: input.description.map(|t| t.0),
            enabled: input.enabled.map(|f| f.0),
        },
        actor(caller),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &EndpointView::from(&endpoint),
    ))
}

/// Delete a webhook endpoint
///
/// With its deliveries; events not delivered yet are not sent.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    operation_id = "deleteWebhookEndpoint",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(("id" = inline(Id), Path, description = "The endpoint's id.", example = 1)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no endpoint with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    webhooks::delete(
        &state.svc,
        caller.storefront.id,
        endpoint_id(id)?,
        actor(caller),
    )
    .await?;
    let mut resp = Response::new(Vec::<u8>::new().into());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// Send a test event
///
/// Posts a `ping` event to the endpoint (enabled or not), signed like every event; its delivery and tries are listed with the endpoint's deliveries.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    operation_id = "sendWebhookTest",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(
        ("id" = inline(Id), Path, description = "The endpoint's id.", example = 1),
        IdempotencyHeader,
    ),
    responses(
        (status = 202, description = "The test event is on its way.", body = TestQueued),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no endpoint with this id.", body = inline(error_doc::NotFound)),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this `Idempotency-Key` is still running.", body = inline(error_doc::KeyInUse),
            headers(("Retry-After" = inline(error_doc::RetryAfter), description = "Seconds to wait before retrying."))),
        (status = 422, description = "`validation`: the `Idempotency-Key` is not a key; `idempotency_key_reused`: it was sent with another request.", body = inline(error_doc::KeyRefused)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn test(state: &HttpState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let delivery_id = webhooks::send_test(
        &state.svc,
        caller.storefront.id,
        endpoint_id(id)?,
        actor(caller),
    )
    .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &TestQueued { delivery_id },
    ))
}

/// An endpoint's recent deliveries
///
/// The newest 50 events sent to the endpoint, each with every try: when, how long, the HTTP status or the connection error, and the start of the answer. Tries after a failure follow after 1 minute, 5 minutes, 30 minutes, 2, 6 and 12 hours, then every 12 hours, for up to 3 days; an endpoint failing for 3 days is disabled and the storefront's owners are emailed.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "Webhooks",
    security(("apiKey" = [])),
    params(("id" = inline(Id), Path, description = "The endpoint's id.", example = 1)),
    responses(
        (status = 200, description = "The deliveries, newest first.", body = DeliveriesView),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Your storefront has no endpoint with this id.", body = inline(error_doc::NotFound)),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn deliveries(
    state: &HttpState,
    caller: &Caller,
    id: &str,
) -> Result<Response, ApiError> {
    let list = webhooks::deliveries(&state.svc, caller.storefront.id, endpoint_id(id)?, 50).await?;
    let view = DeliveriesView {
        data: list.iter().map(DeliveryView::from).collect(),
    };
    Ok(json_response(StatusCode::OK, &view))
}
