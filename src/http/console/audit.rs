//! The audit log: every storefront's for platform support, one storefront's for its owner.

use askama::Template;
use http::StatusCode;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::store::Role;
use crate::usecases::support;

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: ConsoleCommon,
    entries: Vec<Entry>,
}

/// An audit entry as the log reads: when, the sentence, and the raw record on demand.
struct Entry {
    /// `2026-03-05T14:02:09Z`, for `<time datetime>`.
    at: String,
    time: String,
    sentence: String,
    /// Who, as recorded (with the staff member's address), and the action's name.
    actor: String,
    action: String,
    /// The details, pretty-printed JSON.
    details: String,
}

/// `GET /console/audit` (platform support) or `/console/s/{slug}/audit` (support or the owner).
pub(super) async fn audit(c: &mut Console, slug: Option<&str>) -> Response {
    let (staff, scope) = match slug {
        Some(slug) => match c.storefront(slug).await {
            Ok((staff, sf)) => (staff, Some(sf.id)),
            Err(resp) => return resp,
        },
        None => match c.staff().await {
            Ok(staff) => (staff, None),
            Err(resp) => return resp,
        },
    };
    let allowed = match scope {
        None => staff.role == Role::Support,
        Some(_) => matches!(staff.role, Role::Support | Role::Owner),
    };
    if !allowed {
        return c.forbidden();
    }
    match support::audit_log(&c.state.svc, scope, 200).await {
        Ok(entries) => {
            let page = AuditPage {
                c: c.common(),
                entries: entries
                    .into_iter()
                    .map(|e| Entry {
                        at: e
                            .created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        time: crate::display::timestamp(e.created_at),
                        sentence: crate::display::audit_sentence(&e.actor, &e.action, &e.details),
                        details: serde_json::to_string_pretty(&e.details)
                            .unwrap_or_else(|_| e.details.to_string()),
                        actor: e.actor,
                        action: e.action,
                    })
                    .collect(),
            };
            c.page(StatusCode::OK, &page)
        }
        Err(e) => c.failed(&e),
    }
}
