//! TokenIssuer: issues sign-in links (applying the per-account limit) and redeems them.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Duration, Utc};

use super::mailer::{Enqueue, Mailer};
use super::spawn_work;
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::mail::sign_in_subject;
use crate::metrics::OutcomeLabel;
use crate::services::Services;
use crate::store::{
    Account, DeliveryKind, IssueOutcome, LinkFor, LinkLimit, NewDelivery, NewSignInLink,
    RequestedBy, Storefront, Unmatched,
};

pub struct TokenIssuer {
    svc: Arc<Services>,
    mailer: Addr<Mailer>,
}

impl TokenIssuer {
    pub fn new(svc: Arc<Services>, mailer: Addr<Mailer>) -> Self {
        Self { svc, mailer }
    }
}

impl Actor for TokenIssuer {
    type Context = Context<Self>;
}

/// A customer asks for a link on the sign-in page. The answer is the same whether or not
/// the address has an account.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct RequestLink {
    pub storefront: Arc<Storefront>,
    pub email: EmailAddress,
    /// Where to land after signing in (a path inside the storefront, already checked).
    pub redirect: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
}

/// Is this token good for a sign-in page? (GET never consumes it.)
#[derive(Message)]
#[rtype(result = "Result<bool, AppError>")]
pub struct CheckToken {
    pub storefront_id: i64,
    pub token: OpaqueToken,
}

/// Consume the token and start a session.
#[derive(Message)]
#[rtype(result = "Result<Option<RedeemedSession>, AppError>")]
pub struct Redeem {
    pub storefront_id: i64,
    pub token: OpaqueToken,
}

#[derive(Debug)]
pub struct RedeemedSession {
    pub account_id: i64,
    pub redirect: Option<String>,
    /// The session id for the cookie (only its hash is stored).
    pub session: OpaqueToken,
    pub expires_at: DateTime<Utc>,
}

/// Issues a link (for an address or an account) and hands the delivery to the Mailer.
pub(crate) async fn issue_link(
    svc: &Services,
    mailer: &Addr<Mailer>,
    storefront: &Storefront,
    who: LinkFor<'_>,
    requested_by: RequestedBy,
    redirect: Option<String>,
    unmatched: Option<Unmatched>,
) -> Result<IssueOutcome, AppError> {
    let now = svc.now();
    let cfg = &svc.config;
    let token = OpaqueToken::generate();
    let expires_at = now + Duration::minutes(cfg.sign_in.link_ttl_minutes as i64);
    // Customers' own requests count against the per-account limit.
    let limit = (requested_by == RequestedBy::Customer).then(|| LinkLimit {
        max: cfg.sign_in.per_account_max,
        window: Duration::minutes(cfg.sign_in.per_account_window_minutes as i64),
    });
    let sealed = svc.keys.seal_token(&token);
    let make = |account: &Account| NewSignInLink {
        token_hash: token.hash(),
        requested_by,
        redirect_path: redirect,
        expires_at,
        limit,
        delivery: NewDelivery {
            storefront_id: storefront.id,
            account_id: Some(account.id),
            kind: DeliveryKind::SignIn,
            recipient: account.email.clone(),
            subject: sign_in_subject(&storefront.name),
            payload: serde_json::json!({ "first_name": account.first_name() }),
            sealed_token: Some(sealed),
            link_expires_at: Some(expires_at),
            facility_ids: Vec::new(),
            relay_after: cfg.relay_after(),
            suppressed_reason: None,
        },
    };
    let outcome = svc
        .store
        .issue_sign_in_link(storefront.id, who, make, unmatched, now)
        .await?;
    let label = match outcome {
        IssueOutcome::NoAccount => "no_account",
        IssueOutcome::Queued { delivery_id, .. } => {
            mailer.do_send(Enqueue { delivery_id });
            "queued"
        }
        IssueOutcome::Suppressed {
            delivery_id,
            account_id,
        } => {
            svc.metrics
                .sends
                .get_or_create(&crate::metrics::StatusLabel {
                    status: "suppressed",
                })
                .inc();
            tracing::info!(
                delivery_id,
                account_id,
                "sign-in link suppressed by the per-account limit"
            );
            "suppressed"
        }
    };
    svc.metrics
        .sign_in_requests
        .get_or_create(&OutcomeLabel { outcome: label })
        .inc();
    Ok(outcome)
}

impl Handler<RequestLink> for TokenIssuer {
    type Result = ResponseFuture<Result<(), AppError>>;

    fn handle(&mut self, msg: RequestLink, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        let mailer = self.mailer.clone();
        spawn_work(async move {
            let unmatched = Unmatched {
                email_hash: svc.keys.address_hash(&msg.email.key()),
                client_ip: msg.client_ip.map(|ip| ip.to_string()),
            };
            issue_link(
                &svc,
                &mailer,
                &msg.storefront,
                LinkFor::Email(&msg.email),
                RequestedBy::Customer,
                msg.redirect,
                Some(unmatched),
            )
            .await
            .map(|_| ())
        })
    }
}

impl Handler<CheckToken> for TokenIssuer {
    type Result = ResponseFuture<Result<bool, AppError>>;

    fn handle(&mut self, msg: CheckToken, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            Ok(svc
                .store
                .live_token(msg.storefront_id, &msg.token.hash(), svc.now())
                .await?
                .is_some())
        })
    }
}

impl Handler<Redeem> for TokenIssuer {
    type Result = ResponseFuture<Result<Option<RedeemedSession>, AppError>>;

    fn handle(&mut self, msg: Redeem, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            let now = svc.now();
            let session = OpaqueToken::generate();
            let expires_at = now + Duration::hours(svc.config.sign_in.session_hours as i64);
            let redeemed = svc
                .store
                .redeem_sign_in_token(
                    msg.storefront_id,
                    &msg.token.hash(),
                    &session.hash(),
                    expires_at,
                    now,
                )
                .await?;
            Ok(redeemed.map(|r| RedeemedSession {
                account_id: r.account_id,
                redirect: r.redirect_path,
                session,
                expires_at,
            }))
        })
    }
}
