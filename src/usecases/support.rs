//! What support does for a customer, from the operator console or through the integration
//! API: resending a customer's portal link (with its cooldown, recorded in the audit log),
//! sending a booking confirmation, linking an unlinked contact to an account and merging
//! another account into it (each written to the audit log in its own transaction), and reading
//! the audit log.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::actors::{Actors, BookingEmail, IssueLink, ask};
use crate::domain::emails::BookedRental;
use crate::error::AppError;
use crate::mail::booking_subject;
use crate::services::Services;
use crate::store::{
    Account, AuditEntry, ContactView, CooldownSlot, IssueOutcome, MergePreview, MergeReport,
    RequestedBy, StaffUser, Storefront,
};

/// Who asks: a staff member in the console, or the operator's system through an API key.
#[derive(Debug, Clone)]
pub enum Actor<'a> {
    Staff(&'a StaffUser),
    ApiKey { id: i64, name: &'a str },
}

impl Actor<'_> {
    fn staff(&self) -> Option<&StaffUser> {
        match self {
            Actor::Staff(s) => Some(s),
            Actor::ApiKey { .. } => None,
        }
    }

    fn describe(&self) -> serde_json::Value {
        match self {
            Actor::Staff(s) => serde_json::json!({ "staff_user_id": s.id }),
            Actor::ApiKey { id, name } => serde_json::json!({ "api_key_id": id, "api_key": name }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendOutcome {
    Sent {
        delivery_id: i64,
    },
    /// The last resend was too recent.
    Cooldown {
        retry_after_seconds: i64,
    },
    NoSuchAccount,
}

/// Resends an account's portal link (not counted against the customer's own limit), once per
/// cooldown, and records who did it.
pub async fn resend_portal_link(
    svc: &Services,
    actors: &Actors,
    storefront: &Arc<Storefront>,
    account_id: i64,
    actor: Actor<'_>,
) -> Result<ResendOutcome, AppError> {
    let now = svc.now();
    let cooldown = chrono::Duration::seconds(svc.config.resend_cooldown_seconds as i64);
    let Some(account) = svc.store.account(storefront.id, account_id).await? else {
        return Ok(ResendOutcome::NoSuchAccount);
    };
    let slot = CooldownSlot::LinkResend { account_id };
    if let Err(last) = svc
        .store
        .claim_cooldown(storefront.id, slot, cooldown, now)
        .await?
    {
        return Ok(ResendOutcome::Cooldown {
            retry_after_seconds: retry_after(last, cooldown, now),
        });
    }
    let issued = ask(
        &actors.token_issuer,
        IssueLink {
            storefront: storefront.clone(),
            account_id,
            requested_by: RequestedBy::Staff,
            redirect: None,
            booking: None,
        },
    )
    .await;
    let delivery_id = match issued {
        Ok(IssueOutcome::Queued { delivery_id, .. }) => delivery_id,
        other => {
            svc.store.release_cooldown(storefront.id, slot, now).await?;
            return match other {
                Err(e) => Err(e),
                Ok(_) => Ok(ResendOutcome::NoSuchAccount),
            };
        }
    };
    let mut details = actor.describe();
    details["account_id"] = account_id.into();
    details["email"] = account.email.as_str().into();
    details["delivery_id"] = delivery_id.into();
    svc.store
        .audit(
            Some(storefront.id),
            actor.staff(),
            "resend_portal_link",
            details,
            now,
        )
        .await?;
    Ok(ResendOutcome::Sent { delivery_id })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingOutcome {
    Sent {
        delivery_id: i64,
        account_id: i64,
    },
    NoSuchRental,
    /// The rental's contact is not linked to a portal account.
    NoAccount,
    /// A confirmation of this rental was sent too recently.
    Cooldown {
        retry_after_seconds: i64,
    },
}

/// Sends the booking confirmation of a rental: its details and a **View Your Booking** magic
/// link that signs the customer in on that rental. Once per cooldown per rental
/// (`resend_cooldown_seconds`), claimed before the link is issued, so that a retrying or
/// concurrent caller sends one; the slot is given back when the link could not be issued.
pub async fn send_booking_confirmation(
    svc: &Services,
    actors: &Actors,
    storefront: &Arc<Storefront>,
    rental_id: i64,
) -> Result<BookingOutcome, AppError> {
    let Some((rental, account_id)) = svc
        .store
        .rental_with_account(storefront.id, rental_id)
        .await?
    else {
        return Ok(BookingOutcome::NoSuchRental);
    };
    let Some(account_id) = account_id else {
        return Ok(BookingOutcome::NoAccount);
    };
    let now = svc.now();
    let cooldown = chrono::Duration::seconds(svc.config.resend_cooldown_seconds as i64);
    let slot = CooldownSlot::BookingConfirmation {
        rental_id: rental.id,
    };
    if let Err(last) = svc
        .store
        .claim_cooldown(storefront.id, slot, cooldown, now)
        .await?
    {
        return Ok(BookingOutcome::Cooldown {
            retry_after_seconds: retry_after(last, cooldown, now),
        });
    }
    let english = svc.languages.default_lang();
    let dates =
        crate::display::rental_period(english, rental.starts_on, rental.ends_on, now.date_naive());
    let issued = ask(
        &actors.token_issuer,
        IssueLink {
            storefront: storefront.clone(),
            account_id,
            requested_by: RequestedBy::Booking,
            redirect: Some(format!("/rentals/{}", rental.id)),
            booking: Some(BookingEmail {
                subject: booking_subject(&storefront.name, &rental.label),
                rental: BookedRental {
                    rental_id: rental.id,
                    label: rental.label.clone(),
                    facility: rental.facility_name.clone(),
                    dates,
                    starts_on: Some(rental.starts_on),
                    ends_on: rental.ends_on,
                },
                facility_id: rental.facility_id,
            }),
        },
    )
    .await;
    match issued {
        Ok(IssueOutcome::Queued {
            delivery_id,
            account_id,
        }) => Ok(BookingOutcome::Sent {
            delivery_id,
            account_id,
        }),
        other => {
            svc.store.release_cooldown(storefront.id, slot, now).await?;
            match other {
                Err(e) => Err(e),
                Ok(_) => Ok(BookingOutcome::NoAccount),
            }
        }
    }
}

/// Whole seconds until the cooldown that began at `last` ends, rounded up (a retry after that
/// long is past it), at least 1. A concurrent request may have read the clock just before the
/// claim it lost to: it is never told to wait longer than the cooldown.
fn retry_after(last: DateTime<Utc>, cooldown: chrono::Duration, now: DateTime<Utc>) -> i64 {
    let ms = (last + cooldown - now.max(last)).num_milliseconds();
    (ms + 999).div_euclid(1000).max(1)
}

/// Links a contact of the storefront to one of its accounts; `None` when either is not of
/// the storefront.
pub async fn link_contact(
    svc: &Services,
    storefront_id: i64,
    contact_id: i64,
    account_id: i64,
    by: &StaffUser,
) -> Result<Option<ContactView>, AppError> {
    Ok(svc
        .store
        .link_contact(storefront_id, contact_id, account_id, by, svc.now())
        .await?)
}

/// How long a merge's preview may be confirmed.
const MERGE_CONFIRM_SECONDS: i64 = 15 * 60;

/// A merge's preview and what its Confirm button posts back: when it was shown and the tag
/// that vouches for what it showed.
#[derive(Debug, Clone)]
pub struct MergeAsk {
    pub preview: MergePreview,
    pub issued: i64,
    pub tag: String,
}

/// What a merge's confirmation did.
#[derive(Debug, Clone)]
pub enum MergeOutcome {
    Merged(Account, MergeReport),
    /// The confirmation is not one this server made for these accounts, by this staff member,
    /// for what they hold now, in the last 15 minutes: nothing merged; here is the preview again.
    Refused(MergeAsk),
    /// Either account is not of the storefront (or they are the same account).
    NotFound,
}

/// Every value the preview showed that the merge acts on, with who was asked and when.
fn merge_shown(
    storefront_id: i64,
    survivor: i64,
    p: &MergePreview,
    by: &StaffUser,
    issued: i64,
) -> String {
    format!(
        "merge|{storefront_id}|{survivor}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{issued}",
        p.merged.id,
        p.merged.email.key(),
        p.contacts,
        p.rentals,
        p.invoices,
        p.deliveries,
        p.payment_methods,
        p.stripe_customer_moves,
        by.id
    )
}

/// What merging account `merged` into `survivor` would move, to show before asking to confirm;
/// `None` when either is not of the storefront (or they are the same account). Changes nothing.
pub async fn preview_merge(
    svc: &Services,
    storefront_id: i64,
    survivor: i64,
    merged: i64,
    by: &StaffUser,
) -> Result<Option<MergeAsk>, AppError> {
    let Some(preview) = svc
        .store
        .merge_preview(storefront_id, survivor, merged)
        .await?
    else {
        return Ok(None);
    };
    let issued = svc.now().timestamp();
    let tag =
        svc.keys
            .confirmation_tag(&merge_shown(storefront_id, survivor, &preview, by, issued));
    Ok(Some(MergeAsk {
        preview,
        issued,
        tag,
    }))
}

/// Merges account `merged` into `survivor` when the confirmation (`issued`, `tag`) is the one
/// [`preview_merge`] gave this staff member within 15 minutes and the accounts still hold what
/// it showed; otherwise nothing is merged and a fresh preview comes back.
pub async fn merge_accounts(
    svc: &Services,
    storefront_id: i64,
    survivor: i64,
    merged: i64,
    by: &StaffUser,
    issued: i64,
    tag: &str,
) -> Result<MergeOutcome, AppError> {
    let Some(preview) = svc
        .store
        .merge_preview(storefront_id, survivor, merged)
        .await?
    else {
        return Ok(MergeOutcome::NotFound);
    };
    let age = svc.now().timestamp() - issued;
    let shown = merge_shown(storefront_id, survivor, &preview, by, issued);
    if !(-60..=MERGE_CONFIRM_SECONDS).contains(&age) || !svc.keys.confirmation_valid(&shown, tag) {
        return Ok(
            match preview_merge(svc, storefront_id, survivor, merged, by).await? {
                Some(ask) => MergeOutcome::Refused(ask),
                None => MergeOutcome::NotFound,
            },
        );
    }
    Ok(
        match svc
            .store
            .merge_accounts(storefront_id, survivor, merged, by, svc.now())
            .await?
        {
            Some((account, report)) => MergeOutcome::Merged(account, report),
            None => MergeOutcome::NotFound,
        },
    )
}

/// The newest entries of the audit log: one storefront's, or every storefront's (`None`).
pub async fn audit_log(
    svc: &Services,
    storefront_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, AppError> {
    Ok(svc.store.audit_entries(storefront_id, limit).await?)
}
