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
    entries: Vec<(String, String, String, String)>,
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
                    .map(|e| {
                        (
                            crate::display::timestamp(e.created_at),
                            e.actor,
                            e.action.replace('_', " "),
                            e.details.to_string(),
                        )
                    })
                    .collect(),
            };
            c.page(StatusCode::OK, &page)
        }
        Err(e) => c.failed(&e),
    }
}
