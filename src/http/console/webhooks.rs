//! A storefront's Webhooks page (SPEC §9): its endpoints with their state, and for owners and
//! managers a form to add one (URL and event types; the signing secret is shown once, on the
//! page that answers the form), enable, disable, delete, and **Send test event**. Each
//! endpoint's page lists its recent deliveries with every try: when, the event, the HTTP status
//! or the error, and when the next try is due. Platform support sees all of it without the
//! buttons; front-desk staff do not see it (a URL may carry the operator's own credentials).
//! Every change is audited by the use cases ([`crate::usecases::webhooks`]).

use askama::Template;
use http::StatusCode;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::display;
use crate::domain::events::EventType;
use crate::http::frame::{Body, Form, see_other};
use crate::store::{Role, Storefront, WebhookDelivery, WebhookEndpoint};
use crate::usecases::support::Actor;
use crate::usecases::webhooks::{self, EndpointChange, NewEndpoint, WebhookError};

/// How many deliveries an endpoint's page shows.
const RECENT: i64 = 25;

/// An endpoint as the console lists it.
struct EndpointRow {
    id: i64,
    url: String,
    description: String,
    event_types: String,
    /// `enabled`, `disabled` or `failing`.
    state: &'static str,
    /// Why it is disabled, or since when it fails.
    state_detail: String,
    created: String,
}

fn endpoint_row(e: &WebhookEndpoint) -> EndpointRow {
    let (state, state_detail) = match (e.enabled, e.first_failure_at) {
        (false, _) => ("disabled", e.disabled_reason.clone().unwrap_or_default()),
        (true, Some(since)) => (
            "failing",
            format!("failing since {}", display::timestamp(since)),
        ),
        (true, None) => ("enabled", String::new()),
    };
    EndpointRow {
        id: e.id,
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.names().join(", "),
        state,
        state_detail,
        created: display::day(e.created_at),
    }
}

/// One try, as the endpoint's page lists it.
struct TryRow {
    time: String,
    event: String,
    event_id: String,
    attempt: i64,
    http_status: String,
    error: String,
    duration_ms: i64,
    /// The delivery's next try (on its newest try while it waits), else empty.
    next_retry: String,
    status: String,
}

/// Every try of the deliveries, newest first; a delivery not tried yet shows as one row.
fn try_rows(deliveries: &[WebhookDelivery]) -> Vec<TryRow> {
    let mut rows = Vec::new();
    for d in deliveries {
        let waiting = d.status == "pending";
        let next = |newest: bool| {
            if waiting && newest {
                display::timestamp(d.next_attempt_at)
            } else {
                String::new()
            }
        };
        if d.tries.is_empty() {
            rows.push(TryRow {
                time: display::timestamp(d.created_at),
                event: d.event_type.clone(),
                event_id: d.event_public_id.clone(),
                attempt: 0,
                http_status: String::new(),
                error: String::new(),
                duration_ms: 0,
                next_retry: next(true),
                status: d.status.clone(),
            });
            continue;
        }
        let newest = d.tries.len() - 1;
        for (i, t) in d.tries.iter().enumerate().rev() {
            rows.push(TryRow {
                time: display::timestamp(t.started_at),
                event: d.event_type.clone(),
                event_id: d.event_public_id.clone(),
                attempt: t.attempt,
                http_status: t.http_status.map(|s| s.to_string()).unwrap_or_default(),
                error: t.error.clone().unwrap_or_default(),
                duration_ms: t.duration_ms,
                next_retry: next(i == newest),
                status: if i == newest {
                    d.status.clone()
                } else {
                    "failed try".into()
                },
            });
        }
    }
    rows
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    rows: Vec<EndpointRow>,
    can_manage: bool,
    /// Every type an endpoint may subscribe to, with whether the form had it ticked.
    types: Vec<(&'static str, bool)>,
    url: String,
    description: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
struct EndpointPage {
    c: ConsoleCommon,
    slug: String,
    storefront: String,
    e: EndpointRow,
    can_manage: bool,
    /// The signing secret, on the page that answers the creation only.
    secret: Option<String>,
    tries: Vec<TryRow>,
    notice: Option<String>,
}

fn all_types(ticked: impl Fn(&str) -> bool) -> Vec<(&'static str, bool)> {
    EventType::SUBSCRIBABLE
        .iter()
        .map(|t| (t.as_str(), ticked(t.as_str())))
        .collect()
}

/// The checkbox of an event type in the add form.
fn type_field(name: &str) -> String {
    format!("type.{name}")
}

fn list_url(sf: &Storefront) -> String {
    format!("/console/s/{}/webhooks", sf.slug)
}

fn endpoint_url(sf: &Storefront, id: i64) -> String {
    format!("/console/s/{}/webhooks/{id}", sf.slug)
}

/// A storefront page for a role that may see webhooks (403 for the others).
async fn viewer(
    c: &mut Console,
    slug: &str,
) -> Result<(Role, std::sync::Arc<Storefront>), Response> {
    let (staff, sf) = c.storefront(slug).await?;
    if !staff.role.can_see_webhooks() {
        return Err(c.forbidden());
    }
    Ok((staff.role, sf))
}

/// `GET /console/s/{slug}/webhooks` (`?deleted=` names what was deleted).
pub(super) async fn page(c: &mut Console, slug: &str, query: &str) -> Response {
    let (role, sf) = match viewer(c, slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = q
        .get("deleted")
        .map(|url| format!("The endpoint {url} was deleted."));
    list_page(c, &sf, role, StatusCode::OK, notice, None, &Form::default()).await
}

async fn list_page(
    c: &mut Console,
    sf: &Storefront,
    role: Role,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    form: &Form,
) -> Response {
    let endpoints = match webhooks::list(&c.state.svc, sf.id).await {
        Ok(list) => list,
        Err(e) => return c.failed(&e),
    };
    let page = WebhooksPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        rows: endpoints.iter().map(endpoint_row).collect(),
        can_manage: role.can_manage_webhooks(),
        types: all_types(|name| form.get(&type_field(name)).is_some()),
        url: form.get("url").unwrap_or_default().to_string(),
        description: form.get("description").unwrap_or_default().to_string(),
        error,
        notice,
    };
    c.page(status, &page)
}

/// `POST /console/s/{slug}/webhooks`: adds an endpoint and answers its page with the signing
/// secret, shown this once (never in a URL); a refused URL or no event type shows the form
/// again with the reason.
pub(super) async fn create(c: &mut Console, slug: &str, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_manage_webhooks).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let new = NewEndpoint {
        url: form.get("url").unwrap_or_default().to_string(),
        event_types: EventType::SUBSCRIBABLE
            .iter()
            .map(|t| t.as_str())
            .filter(|name| form.get(&type_field(name)).is_some())
            .map(String::from)
            .collect(),
        description: form.get("description").unwrap_or_default().to_string(),
        enabled: true,
    };
    match webhooks::create(&c.state.svc, sf.id, new, Actor::Staff(&staff)).await {
        Ok(created) => {
            let page = EndpointPage {
                c: c.common(),
                slug: sf.slug.clone(),
                storefront: sf.name.clone(),
                e: endpoint_row(&created.endpoint),
                can_manage: true,
                secret: Some(created.secret),
                tries: Vec::new(),
                notice: Some("The endpoint was added.".into()),
            };
            c.page(StatusCode::CREATED, &page)
        }
        Err(WebhookError::Invalid(field, problem)) => {
            let error = match field {
                "url" => format!("The URL is refused: {problem}."),
                "event_types" => "Choose at least one event type.".to_string(),
                _ => format!("The {field} is refused: {problem}."),
            };
            list_page(
                c,
                &sf,
                staff.role,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(error),
                &form,
            )
            .await
        }
        Err(WebhookError::NotFound) => c.not_found(),
        Err(WebhookError::App(e)) => c.failed(&e),
    }
}

/// `GET /console/s/{slug}/webhooks/{id}`: the endpoint and its recent tries (`?done=` says
/// what was just done).
pub(super) async fn endpoint(c: &mut Console, slug: &str, id: i64, query: &str) -> Response {
    let (role, sf) = match viewer(c, slug).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let svc = &c.state.svc;
    let found = match webhooks::get(svc, sf.id, id).await {
        Ok(e) => webhooks::deliveries(svc, sf.id, id, RECENT)
            .await
            .map(|d| (e, d)),
        Err(e) => Err(e),
    };
    let (endpoint, deliveries) = match found {
        Ok(x) => x,
        Err(WebhookError::NotFound | WebhookError::Invalid(..)) => return c.not_found(),
        Err(WebhookError::App(e)) => return c.failed(&e),
    };
    let q = Form::parse(query.as_bytes()).unwrap_or_default();
    let notice = match q.get("done") {
        Some("enabled") => Some("The endpoint is enabled; its past failures are forgotten."),
        Some("disabled") => Some("The endpoint is disabled: no event is sent to it."),
        Some("test") => Some("A test event (ping) is on its way; reload to see its try."),
        _ => None,
    };
    let page = EndpointPage {
        c: c.common(),
        slug: sf.slug.clone(),
        storefront: sf.name.clone(),
        e: endpoint_row(&endpoint),
        can_manage: role.can_manage_webhooks(),
        secret: None,
        tries: try_rows(&deliveries),
        notice: notice.map(String::from),
    };
    c.page(StatusCode::OK, &page)
}

/// What a button on an endpoint's page does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointAction {
    Enable,
    Disable,
    Delete,
    Test,
}

impl EndpointAction {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            "delete" => Self::Delete,
            "test" => Self::Test,
            _ => return None,
        })
    }
}

/// `POST /console/s/{slug}/webhooks/{id}/{enable|disable|delete|test}`.
pub(super) async fn act(
    c: &mut Console,
    slug: &str,
    id: i64,
    action: EndpointAction,
    body: Body,
) -> Response {
    let (_, staff, sf) = match c.action(slug, body, Role::can_manage_webhooks).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let svc = &c.state.svc;
    let actor = Actor::Staff(&staff);
    let enabled = |on: bool| EndpointChange {
        enabled: Some(on),
        ..EndpointChange::default()
    };
    let done = match action {
        EndpointAction::Enable => webhooks::update(svc, sf.id, id, enabled(true), actor)
            .await
            .map(|_| see_other(&format!("{}?done=enabled", endpoint_url(&sf, id)))),
        EndpointAction::Disable => webhooks::update(svc, sf.id, id, enabled(false), actor)
            .await
            .map(|_| see_other(&format!("{}?done=disabled", endpoint_url(&sf, id)))),
        EndpointAction::Test => webhooks::send_test(svc, sf.id, id, actor)
            .await
            .map(|_| see_other(&format!("{}?done=test", endpoint_url(&sf, id)))),
        EndpointAction::Delete => match webhooks::get(svc, sf.id, id).await {
            Ok(e) => webhooks::delete(svc, sf.id, id, actor).await.map(|()| {
                see_other(&format!(
                    "{}?deleted={}",
                    list_url(&sf),
                    percent_encoding::utf8_percent_encode(
                        &e.url,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ))
            }),
            Err(e) => Err(e),
        },
    };
    match done {
        Ok(resp) => resp,
        Err(WebhookError::NotFound | WebhookError::Invalid(..)) => c.not_found(),
        Err(WebhookError::App(e)) => c.failed(&e),
    }
}
