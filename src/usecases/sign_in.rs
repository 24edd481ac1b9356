//! Magic-link sign-in for customers (on a storefront's portal) and staff (on the console):
//! asking for a link, checking one (a GET never consumes it), redeeming it into a session, and
//! checking and ending sessions (SPEC §8).
//!
//! Customers' link requests go through the TokenIssuer, whose batcher writes them in group
//! commits; everything else here is one query or one transaction, run in the caller's task.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::actors::{Actors, RequestLink, RequestStaffLink, ask};
use crate::crypto::DeviceClaim;
use crate::domain::{EmailAddress, OpaqueToken, TokenHash};
use crate::error::AppError;
use crate::services::Services;
use crate::store::{
    Account, Audience, IssueOutcome, SessionInfo, StaffSession, StaffUser, Storefront,
};

/// A link redeemed: the session started for the browser.
#[derive(Debug)]
pub struct RedeemedSession {
    /// The account (or, on the console, the staff user) signed in.
    pub account_id: i64,
    /// Where to land (a path inside the storefront, checked when the link was asked for).
    pub redirect: Option<String>,
    /// The session id for the cookie (only its hash is stored).
    pub session: OpaqueToken,
    pub expires_at: DateTime<Utc>,
}

/// Who asks for a link, and from where (the limits of SPEC §8 count per client).
pub struct LinkAsked {
    pub email: EmailAddress,
    /// Where to land after signing in (a path inside the storefront, already checked).
    pub next: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// The browser's device cookie, if it carries one.
    pub device: Option<DeviceClaim>,
    /// The random value of the sign-in cookie set with this request (customers only): the
    /// email's code signs in only the browser holding it (SPEC §11).
    pub binding: Option<Vec<u8>>,
}

/// A customer asks for a sign-in link. The answer is the same whether or not the address has
/// an account (the link, if any, is written and published by the TokenIssuer's batcher).
pub async fn request_link(
    actors: &Actors,
    storefront: &Arc<Storefront>,
    asked: LinkAsked,
) -> Result<(), AppError> {
    let request = RequestLink {
        storefront: storefront.clone(),
        email: asked.email,
        redirect: asked.next,
        client_ip: asked.client_ip,
        device: asked.device,
        binding: asked.binding,
    };
    ask(&actors.token_issuer, request).await.map(|_| ())
}

/// A sign-up through the API with an address that has an account on the storefront: that
/// address gets a sign-in link (SPEC §11), held to the usual limits like a request from the
/// sign-in page (counted for the account in the bucket of a client with no known address,
/// and in its ceiling). Returns whether a link was sent.
pub async fn link_for_taken_address(
    actors: &Actors,
    storefront: &Arc<Storefront>,
    email: EmailAddress,
) -> Result<bool, AppError> {
    let request = RequestLink {
        storefront: storefront.clone(),
        email,
        redirect: None,
        client_ip: None,
        device: None,
        binding: None,
    };
    let outcome = ask(&actors.token_issuer, request).await?;
    Ok(matches!(outcome, IssueOutcome::Queued { .. }))
}

/// Whether a customer's link is live (unused, unexpired) on this storefront.
pub async fn link_is_live(
    svc: &Services,
    storefront_id: i64,
    token: &OpaqueToken,
) -> Result<bool, AppError> {
    Ok(svc
        .store
        .live_token(Audience::Customer(storefront_id), &token.hash(), svc.now())
        .await?
        .is_some())
}

/// The account a live link signs in to, when it is not `current_account_id` (the browser
/// opening it is signed in to another account).
pub async fn other_link_owner(
    svc: &Services,
    storefront_id: i64,
    current_account_id: i64,
    token: &OpaqueToken,
) -> Result<Option<Account>, AppError> {
    let Some(live) = svc
        .store
        .live_token(Audience::Customer(storefront_id), &token.hash(), svc.now())
        .await?
    else {
        return Ok(None);
    };
    if live.subject_id == current_account_id {
        return Ok(None);
    }
    Ok(svc.store.account(storefront_id, live.subject_id).await?)
}

/// Consumes a customer's link and starts a session; `None` when the link is not live.
pub async fn redeem(
    svc: &Services,
    storefront_id: i64,
    token: &OpaqueToken,
) -> Result<Option<RedeemedSession>, AppError> {
    redeem_hash(svc, storefront_id, &token.hash()).await
}

/// Consumes the customer's link with this token hash and starts a session.
async fn redeem_hash(
    svc: &Services,
    storefront_id: i64,
    token_hash: &TokenHash,
) -> Result<Option<RedeemedSession>, AppError> {
    let now = svc.now();
    let session = OpaqueToken::generate();
    let expires_at = now + Duration::hours(svc.config.sign_in.session_hours as i64);
    let redeemed = svc
        .store
        .redeem_token(
            Audience::Customer(storefront_id),
            token_hash,
            &session.hash(),
            expires_at,
            now,
        )
        .await?;
    Ok(redeemed.map(|r| RedeemedSession {
        account_id: r.subject_id,
        redirect: r.redirect_path,
        session,
        expires_at,
    }))
}

/// Codes a link takes: the fifth wrong one uses it up (SPEC §11). With a 6-digit code that
/// leaves a guesser 5 in 10^6, and only in the browser that asked.
pub const CODE_TRIES: i64 = 5;

/// A customer types the sign-in code of the link sent to `email`, in the browser whose
/// sign-in cookie holds `binding` (`None`: it has none, and nothing is tried). The try is
/// counted on each live link of the address asked for in this browser, then the code is
/// compared (in constant time) with each one's; a match uses that link up (code and link
/// both) and starts a session, and a wrong fifth try uses its link up. Links asked for in
/// other browsers are never tried nor counted. `None` when it does not sign in; an unknown
/// address answers the same.
pub async fn redeem_code(
    svc: &Services,
    storefront_id: i64,
    email: &EmailAddress,
    binding: Option<&[u8]>,
    code: &str,
) -> Result<Option<RedeemedSession>, AppError> {
    let Some(binding) = binding else {
        return Ok(None);
    };
    let now = svc.now();
    let binding = svc.keys.sign_in_binding(binding);
    let tried = svc
        .store
        .try_sign_in_code(storefront_id, &email.key(), &binding, CODE_TRIES, now)
        .await?;
    if let Some(hit) = tried
        .iter()
        .find(|t| svc.keys.sign_in_code_matches(&t.token_hash, code))
    {
        return redeem_hash(svc, storefront_id, &hit.token_hash).await;
    }
    let spent: Vec<TokenHash> = tried
        .into_iter()
        .filter(|t| t.tries >= CODE_TRIES)
        .map(|t| t.token_hash)
        .collect();
    if !spent.is_empty() {
        svc.store.end_code_links(storefront_id, &spent, now).await?;
    }
    Ok(None)
}

/// The customer's session behind a cookie value, on this storefront.
pub async fn session(
    svc: &Services,
    storefront_id: i64,
    cookie: &str,
) -> Result<Option<SessionInfo>, AppError> {
    let Ok(token) = OpaqueToken::parse(cookie) else {
        return Ok(None);
    };
    Ok(svc
        .store
        .session(storefront_id, &token.hash(), svc.now())
        .await?)
}

/// Signs out: ends the session behind the cookie value.
pub async fn end_session(svc: &Services, storefront_id: i64, cookie: &str) -> Result<(), AppError> {
    if let Ok(token) = OpaqueToken::parse(cookie) {
        svc.store
            .delete_session(Audience::Customer(storefront_id), &token.hash())
            .await?;
    }
    Ok(())
}

/// Ends every session of an account ("sign out everywhere"); returns how many ended.
pub async fn end_account_sessions(svc: &Services, account_id: i64) -> Result<u64, AppError> {
    Ok(svc.store.delete_account_sessions(account_id).await?)
}

/// A staff member asks for a console link (the answer is the same either way).
pub async fn request_staff_link(actors: &Actors, asked: LinkAsked) -> Result<(), AppError> {
    let request = RequestStaffLink {
        email: asked.email,
        client_ip: asked.client_ip,
        device: asked.device,
    };
    ask(&actors.token_issuer, request).await
}

/// Whether a console link is live.
pub async fn staff_link_is_live(svc: &Services, token: &OpaqueToken) -> Result<bool, AppError> {
    Ok(svc
        .store
        .live_token(Audience::Staff, &token.hash(), svc.now())
        .await?
        .is_some())
}

/// The staff user a live console link signs in, when it is not `current_staff_id`.
pub async fn other_staff_link_owner(
    svc: &Services,
    current_staff_id: i64,
    token: &OpaqueToken,
) -> Result<Option<StaffUser>, AppError> {
    let owner = svc
        .store
        .staff_token_owner(&token.hash(), svc.now())
        .await?;
    Ok(owner.filter(|link| link.id != current_staff_id))
}

/// Consumes a console link and starts the console session.
pub async fn redeem_staff(
    svc: &Services,
    token: &OpaqueToken,
) -> Result<Option<RedeemedSession>, AppError> {
    let now = svc.now();
    let session = OpaqueToken::generate();
    let expires_at = now + Duration::hours(svc.config.sign_in.session_hours as i64);
    Ok(svc
        .store
        .redeem_token(
            Audience::Staff,
            &token.hash(),
            &session.hash(),
            expires_at,
            now,
        )
        .await?
        .map(|r| RedeemedSession {
            account_id: r.subject_id,
            redirect: None,
            session,
            expires_at,
        }))
}

/// The console session behind a cookie value.
pub async fn staff_session(svc: &Services, cookie: &str) -> Result<Option<StaffSession>, AppError> {
    let Ok(token) = OpaqueToken::parse(cookie) else {
        return Ok(None);
    };
    Ok(svc.store.staff_session(&token.hash(), svc.now()).await?)
}

/// Console sign-out.
pub async fn end_staff_session(svc: &Services, cookie: &str) -> Result<(), AppError> {
    if let Ok(token) = OpaqueToken::parse(cookie) {
        svc.store
            .delete_session(Audience::Staff, &token.hash())
            .await?;
    }
    Ok(())
}
