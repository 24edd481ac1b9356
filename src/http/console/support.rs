//! The support tools on a customer's record: link an unlinked contact to the account, and merge
//! another account into it (a preview of what moves first, then the confirmation). Support
//! staff only; each is written to the audit log with the change ([`crate::usecases::support`]).

use askama::Template;
use http::StatusCode;
use warp::reply::Response;

use super::{Console, ConsoleCommon};
use crate::http::frame::{Body, see_other};
use crate::store::Role;
use crate::usecases::support::{self, MergeAsk, MergeOutcome};

#[derive(Template)]
#[template(path = "console/merge.html")]
struct MergePage {
    c: ConsoleCommon,
    slug: String,
    ask: MergeAsk,
    /// Why the preview is shown again (a confirmation that no longer holds).
    refused: bool,
}

/// `POST /console/s/{slug}/customers/{id}/link`: links `contact_id` to the account.
pub(super) async fn link(c: &mut Console, slug: &str, account_id: i64, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_support).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(contact_id) = form
        .get("contact_id")
        .and_then(|v| v.trim().parse::<i64>().ok())
    else {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Choose a contact",
            "Pick the contact to link.",
            None,
        );
    };
    match support::link_contact(&c.state.svc, sf.id, contact_id, account_id, &staff).await {
        Ok(Some(_)) => see_other(&format!(
            "/console/s/{}/customers/{account_id}?done=linked",
            sf.slug
        )),
        Ok(None) => c.not_found(),
        Err(e) => c.failed(&e),
    }
}

/// `POST /console/s/{slug}/customers/{id}/merge`: with `other_account_id` alone, the preview
/// of what merging that account into this one moves (nothing changes); with the preview's
/// `issued` and `confirm` as well, the merge. A confirmation that no longer holds (forged,
/// older than 15 minutes, or the accounts changed since) merges nothing and answers 409 with
/// the preview again.
pub(super) async fn merge(c: &mut Console, slug: &str, survivor: i64, body: Body) -> Response {
    let (form, staff, sf) = match c.action(slug, body, Role::can_support).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(merged) = form
        .get("other_account_id")
        .map(|v| v.trim().trim_start_matches('#'))
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Which account?",
            "Enter the number of the account to merge into this one.",
            None,
        );
    };
    if merged == survivor {
        return c.message(
            StatusCode::BAD_REQUEST,
            "Same account",
            "An account cannot be merged into itself.",
            None,
        );
    }
    let svc = &c.state.svc;
    let (status, ask, refused) = match form.get("confirm") {
        None => match support::preview_merge(svc, sf.id, survivor, merged, &staff).await {
            Ok(Some(ask)) => (StatusCode::OK, ask, false),
            Ok(None) => return c.not_found(),
            Err(e) => return c.failed(&e),
        },
        Some(tag) => {
            let issued = form
                .get("issued")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            match support::merge_accounts(svc, sf.id, survivor, merged, &staff, issued, tag).await {
                Ok(MergeOutcome::Merged(..)) => {
                    return see_other(&format!(
                        "/console/s/{}/customers/{survivor}?done=merged&merged={merged}",
                        sf.slug
                    ));
                }
                Ok(MergeOutcome::Refused(ask)) => (StatusCode::CONFLICT, ask, true),
                Ok(MergeOutcome::NotFound) => return c.not_found(),
                Err(e) => return c.failed(&e),
            }
        }
    };
    let page = MergePage {
        c: c.common(),
        slug: sf.slug.clone(),
        ask,
        refused,
    };
    c.page(status, &page)
}
