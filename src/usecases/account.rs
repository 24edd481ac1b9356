//! What a customer does to their own account (SPEC §2 and §8): saving the profile, where a new
//! email is only applied once confirmed at the new address, and confirming it; the change
//! waiting for confirmation. The portal's pages call these; the store keeps each step in one
//! transaction.

use chrono::{DateTime, Duration, Utc};

use crate::domain::emails::{EmailChanged, EmailData, FacilityContact, Greeting};
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::mail::{confirm_email_subject, email_changed_subject};
use crate::services::Services;
use crate::store::{
    Account, AccountUpdate, EmailChangeOutcome, NewDelivery, NewEmailChange, NewSession,
    PendingEmailChange, ProfileChange, Storefront,
};

/// What saving the profile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSaved {
    /// Saved; the email was unchanged.
    Saved,
    /// The other fields were saved; the new address got a confirmation link and the account
    /// keeps its old address until it is used.
    ConfirmationSent,
    /// Another account of the storefront has the new address: nothing was saved.
    EmailTaken,
    /// Too many address changes lately (the sign-in link limit): nothing was saved.
    TooManyChanges,
    NoSuchAccount,
}

/// Saves name and phone; a new address gets a single-use confirmation link (same lifetime as
/// a sign-in link) through the normal mail pipeline.
pub async fn save_profile(
    svc: &Services,
    storefront: &Storefront,
    account_id: i64,
    change: &ProfileChange,
) -> Result<ProfileSaved, AppError> {
    let now = svc.now();
    let token = OpaqueToken::generate();
    let expires_at = now + Duration::minutes(svc.config.sign_in.link_ttl_minutes as i64);
    let sealed = svc.keys.seal_token(&token);
    let confirmation = |account: &Account| {
        (
            NewEmailChange {
                token_hash: token.hash(),
                expires_at,
            },
            NewDelivery::new(
                storefront.id,
                Some(account.id),
                change.email.clone(),
                confirm_email_subject(&storefront.name),
                EmailData::ConfirmEmail(Greeting {
                    first_name: account.first_name(),
                    code: false,
                    sent_by_staff: false,
                }),
                svc.config.relay_after(),
            )
            .with_link(sealed, expires_at),
        )
    };
    // Each change emails an address of the customer's choosing: the per-account link limit
    // applies to them too.
    let limit = (
        svc.config.sign_in.per_account_max,
        Duration::minutes(svc.config.sign_in.per_account_window_minutes as i64),
    );
    let updated = svc
        .write_then_enqueue(svc.store.update_profile(
            storefront.id,
            account_id,
            change,
            limit,
            confirmation,
            now,
        ))
        .await?;
    Ok(match updated {
        AccountUpdate::Saved {
            confirmation_delivery: Some(_),
        } => ProfileSaved::ConfirmationSent,
        AccountUpdate::Saved {
            confirmation_delivery: None,
        } => ProfileSaved::Saved,
        AccountUpdate::EmailTaken => ProfileSaved::EmailTaken,
        AccountUpdate::TooManyChanges => ProfileSaved::TooManyChanges,
        AccountUpdate::NoSuchAccount => ProfileSaved::NoSuchAccount,
    })
}

/// A session started for the browser that confirmed.
#[derive(Debug)]
pub struct StartedSession {
    pub session: OpaqueToken,
    pub expires_at: DateTime<Utc>,
}

/// What using a confirmation link did.
#[derive(Debug)]
pub enum EmailConfirmed {
    /// The address switched; every session and unused sign-in link of the account ended. The
    /// confirming browser is signed in to the account (`session`), unless it is signed in to
    /// another account of the storefront, which it stays (`session` is `None`).
    Confirmed {
        account_id: i64,
        new_email: EmailAddress,
        session: Option<StartedSession>,
    },
    Expired,
    /// Another account took the address since it was asked for: nothing changed.
    Taken {
        new_email: EmailAddress,
    },
}

/// Uses a confirmation link. `browser_account` is the account the confirming browser is
/// signed in to, if any.
pub async fn confirm_email(
    svc: &Services,
    storefront: &Storefront,
    token: &OpaqueToken,
    browser_account: Option<i64>,
) -> Result<EmailConfirmed, AppError> {
    let now = svc.now();
    let hash = token.hash();
    let Some(pending) = svc
        .store
        .live_email_change(storefront.id, &hash, now)
        .await?
    else {
        return Ok(EmailConfirmed::Expired);
    };
    let facilities: Vec<FacilityContact> = svc
        .store
        .account_facilities(storefront.id, pending.account_id)
        .await?
        .into_iter()
        .map(|f| FacilityContact {
            name: f.name,
            phone: f.phone,
            email: f.email,
        })
        .collect();
    let sign_in = browser_account.is_none_or(|id| id == pending.account_id);
    let session = OpaqueToken::generate();
    let session_hash = session.hash();
    let expires_at = now + Duration::hours(svc.config.sign_in.session_hours as i64);
    let notice = |old: &Account, new_email: &EmailAddress| {
        NewDelivery::new(
            storefront.id,
            Some(old.id),
            old.email.clone(),
            email_changed_subject(&storefront.name),
            EmailData::EmailChanged(EmailChanged {
                first_name: old.first_name(),
                old_email: old.email.to_string(),
                new_email_masked: new_email.masked(),
                facilities: facilities.clone(),
            }),
            svc.config.relay_after(),
        )
    };
    let outcome = svc
        .write_then_enqueue(svc.store.confirm_email_change(
            storefront.id,
            &hash,
            sign_in.then_some(NewSession {
                hash: &session_hash,
                expires_at,
            }),
            notice,
            now,
        ))
        .await?;
    Ok(match outcome {
        EmailChangeOutcome::Confirmed {
            account_id,
            new_email,
            ..
        } => {
            tracing::info!(
                account_id,
                "email change confirmed; the account's sessions and links ended"
            );
            EmailConfirmed::Confirmed {
                account_id,
                new_email,
                session: sign_in.then_some(StartedSession {
                    session,
                    expires_at,
                }),
            }
        }
        EmailChangeOutcome::Expired => EmailConfirmed::Expired,
        EmailChangeOutcome::Taken => EmailConfirmed::Taken {
            new_email: pending.new_email,
        },
    })
}

/// The language the customer chose on the Account page (a tag of a shipped language, checked
/// by the caller), or `None` to follow the storefront's. Their emails use it too.
pub async fn set_language(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
    language: Option<&str>,
) -> Result<(), AppError> {
    Ok(svc
        .store
        .set_account_language(storefront_id, account_id, language, svc.now())
        .await?)
}

/// The address change of the account waiting for confirmation, if any.
pub async fn pending_email_change(
    svc: &Services,
    storefront_id: i64,
    account_id: i64,
) -> Result<Option<PendingEmailChange>, AppError> {
    Ok(svc
        .store
        .pending_email_change(storefront_id, account_id, svc.now())
        .await?)
}

/// The change a live confirmation link is for (`None`: used, expired or unknown).
pub async fn email_change_of_link(
    svc: &Services,
    storefront_id: i64,
    token: &OpaqueToken,
) -> Result<Option<PendingEmailChange>, AppError> {
    Ok(svc
        .store
        .live_email_change(storefront_id, &token.hash(), svc.now())
        .await?)
}
