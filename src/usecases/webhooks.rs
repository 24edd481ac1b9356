//! A storefront's webhook endpoints as the operator manages them, through the integration API
//! and the console's Webhooks page: create one (its signing secret generated here, sealed with
//! the server key and shown once, in the answer), change its URL, event types or state, delete
//! it, send it a test event, and read its recent deliveries with every try. Every change is
//! written to the audit log with it. A target on loopback or a private network is refused
//! unless `webhooks.allow_private_targets`.

use crate::domain::events::{EventType, EventTypes, WebhookUrl};
use crate::error::AppError;
use crate::services::Services;
use crate::store::{
    NewWebhookEndpoint, WebhookActor, WebhookDelivery, WebhookEndpoint, WebhookEndpointChange,
};
use crate::webhooks::{check_target, new_secret};

use super::support::Actor;

/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 200;
/// How many endpoints a storefront may have.
pub const MAX_ENDPOINTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A field is not acceptable: (field, what is wrong).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<crate::store::DbError> for WebhookError {
    fn from(e: crate::store::DbError) -> Self {
        WebhookError::App(e.into())
    }
}

/// What creating an endpoint asks for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
}

/// What changing an endpoint asks for (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// Every type an endpoint may subscribe to, by name.
pub fn event_type_names() -> Vec<&'static str> {
    EventType::SUBSCRIBABLE.iter().map(|t| t.as_str()).collect()
}

fn actor_of<'a>(actor: &Actor<'a>) -> WebhookActor<'a> {
    match *actor {
        Actor::Staff(s) => WebhookActor::Staff(s),
        Actor::ApiKey { name, .. } => WebhookActor::ApiKey(name),
    }
}

async fn target(svc: &Services, raw: &str) -> Result<WebhookUrl, WebhookError> {
    let url = WebhookUrl::parse(raw).map_err(|e| WebhookError::Invalid("url", e.to_string()))?;
    check_target(&url, svc.config.webhooks.allow_private_targets)
        .await
        .map_err(|e| WebhookError::Invalid("url", e.to_string()))?;
    Ok(url)
}

fn types(names: &[String]) -> Result<EventTypes, WebhookError> {
    EventTypes::parse(names.iter().map(String::as_str))
        .map_err(|e| WebhookError::Invalid("event_types", e))
}

fn description(text: &str) -> Result<String, WebhookError> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(WebhookError::Invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters, no control characters"),
        ));
    }
    Ok(text.to_string())
}

pub async fn create(
    svc: &Services,
    storefront_id: i64,
    new: NewEndpoint,
    actor: Actor<'_>,
) -> Result<CreatedEndpoint, WebhookError> {
    let url = target(svc, &new.url).await?;
    let event_types = types(&new.event_types)?;
    let description = description(&new.description)?;
    if svc.store.webhook_endpoints(storefront_id).await?.len() >= MAX_ENDPOINTS {
        return Err(WebhookError::Invalid(
            "url",
            format!("a storefront may have at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let secret = new_secret();
    let endpoint = svc
        .store
        .create_webhook_endpoint(
            &NewWebhookEndpoint {
                storefront_id,
                url: url.as_str().to_string(),
                secret_sealed: svc.keys.seal_secret(&secret),
                event_types,
                description,
                enabled: new.enabled,
            },
            actor_of(&actor),
            svc.now(),
        )
        .await?;
    Ok(CreatedEndpoint { endpoint, secret })
}

pub async fn list(svc: &Services, storefront_id: i64) -> Result<Vec<WebhookEndpoint>, AppError> {
    Ok(svc.store.webhook_endpoints(storefront_id).await?)
}

/// One endpoint of the storefront (another storefront's is `NotFound`).
pub async fn get(
    svc: &Services,
    storefront_id: i64,
    id: i64,
) -> Result<WebhookEndpoint, WebhookError> {
    svc.store
        .webhook_endpoint(storefront_id, id)
        .await?
        .ok_or(WebhookError::NotFound)
}

pub async fn update(
    svc: &Services,
    storefront_id: i64,
    id: i64,
    change: EndpointChange,
    actor: Actor<'_>,
) -> Result<WebhookEndpoint, WebhookError> {
    // Another storefront's endpoint is not found before anything about the input is said.
    get(svc, storefront_id, id).await?;
    let url = match &change.url {
        Some(raw) => Some(target(svc, raw).await?.as_str().to_string()),
        None => None,
    };
    let event_types = change.event_types.as_deref().map(types).transpose()?;
    let description = change.description.as_deref().map(description).transpose()?;
    let change = WebhookEndpointChange {
        url,
        event_types,
        description,
        enabled: change.enabled,
    };
    svc.store
        .update_webhook_endpoint(storefront_id, id, &change, actor_of(&actor), svc.now())
        .await?
        .ok_or(WebhookError::NotFound)
}

pub async fn delete(
    svc: &Services,
    storefront_id: i64,
    id: i64,
    actor: Actor<'_>,
) -> Result<(), WebhookError> {
    if svc
        .store
        .delete_webhook_endpoint(storefront_id, id, actor_of(&actor), svc.now())
        .await?
    {
        Ok(())
    } else {
        Err(WebhookError::NotFound)
    }
}

/// Sends the endpoint a `ping` event (enabled or not); answers the delivery's id.
pub async fn send_test(
    svc: &Services,
    storefront_id: i64,
    id: i64,
    actor: Actor<'_>,
) -> Result<i64, WebhookError> {
    let delivery = svc
        .store
        .send_webhook_test(storefront_id, id, actor_of(&actor), svc.now())
        .await?
        .ok_or(WebhookError::NotFound)?;
    svc.events_written();
    Ok(delivery)
}

/// The endpoint's newest deliveries, each with its tries.
pub async fn deliveries(
    svc: &Services,
    storefront_id: i64,
    id: i64,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, WebhookError> {
    get(svc, storefront_id, id).await?;
    Ok(svc
        .store
        .webhook_deliveries(storefront_id, id, limit.clamp(1, 100))
        .await?)
}
