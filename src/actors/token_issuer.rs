//! TokenIssuer: issues sign-in links (applying the per-account limit) and redeems them.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Duration, Utc};

use super::batch::Batcher;
use super::mailer::{Enqueue, Mailer};
use super::spawn_work;
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::mail::sign_in_subject;
use crate::metrics::OutcomeLabel;
use crate::services::Services;
use crate::store::{
    DeliveryKind, IssueOutcome, LinkFor, LinkLimit, LinkRequest, RequestedBy, Storefront, Unmatched,
};

pub struct TokenIssuer {
    svc: Arc<Services>,
    links: LinkWriter,
}

/// Writes link requests to the database in batches (see [`super::batch`]) and hands the new
/// deliveries to the Mailer.
#[derive(Clone)]
pub struct LinkWriter {
    batcher: Batcher<LinkRequest, IssueOutcome>,
}

impl LinkWriter {
    pub fn new(svc: Arc<Services>, mailer: Addr<Mailer>) -> Self {
        let batcher = Batcher::new(64, 4, move |requests: Vec<LinkRequest>| {
            let svc = svc.clone();
            let mailer = mailer.clone();
            async move {
                let outcomes = svc.store.issue_sign_in_links(&requests, svc.now()).await?;
                for (request, outcome) in requests.iter().zip(&outcomes) {
                    record(&svc, &mailer, request, *outcome);
                }
                Ok(outcomes)
            }
        });
        Self { batcher }
    }

    pub async fn issue(&self, request: LinkRequest) -> Result<IssueOutcome, AppError> {
        self.batcher.submit(request).await
    }
}

/// Publishes a queued delivery and counts the outcome.
fn record(svc: &Services, mailer: &Addr<Mailer>, request: &LinkRequest, outcome: IssueOutcome) {
    let label = match outcome {
        IssueOutcome::NoAccount => "no_account",
        IssueOutcome::Queued { delivery_id, .. } => {
            mailer.do_send(Enqueue { delivery_id });
            "queued"
        }
        IssueOutcome::Suppressed { account_id } => {
            svc.metrics
                .sends
                .get_or_create(&crate::metrics::StatusLabel {
                    status: "suppressed",
                })
                .inc();
            tracing::info!(
                account_id,
                requested_by = request.requested_by.as_str(),
                "sign-in link suppressed by the per-account limit"
            );
            "suppressed"
        }
    };
    svc.metrics
        .sign_in_requests
        .get_or_create(&OutcomeLabel { outcome: label })
        .inc();
}

impl TokenIssuer {
    pub fn new(svc: Arc<Services>, mailer: Addr<Mailer>) -> Self {
        Self {
            links: LinkWriter::new(svc.clone(), mailer),
            svc,
        }
    }

    /// A link request for this storefront with a fresh token.
    pub fn link_request(
        svc: &Services,
        storefront: &Storefront,
        who: LinkFor,
        requested_by: RequestedBy,
        redirect: Option<String>,
    ) -> LinkRequest {
        let now = svc.now();
        let cfg = &svc.config;
        let token = OpaqueToken::generate();
        LinkRequest {
            storefront_id: storefront.id,
            who,
            token_hash: token.hash(),
            sealed_token: svc.keys.seal_token(&token),
            requested_by,
            redirect_path: redirect,
            expires_at: now + Duration::minutes(cfg.sign_in.link_ttl_minutes as i64),
            // Customers' own requests count against the per-account limit.
            limit: (requested_by == RequestedBy::Customer).then(|| LinkLimit {
                max: cfg.sign_in.per_account_max,
                window: Duration::minutes(cfg.sign_in.per_account_window_minutes as i64),
            }),
            kind: DeliveryKind::SignIn,
            subject: sign_in_subject(&storefront.name),
            payload: serde_json::Map::new(),
            facility_ids: Vec::new(),
            relay_after: cfg.relay_after(),
            unmatched: None,
        }
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

impl Handler<RequestLink> for TokenIssuer {
    type Result = ResponseFuture<Result<(), AppError>>;

    fn handle(&mut self, msg: RequestLink, _: &mut Context<Self>) -> Self::Result {
        let mut request = Self::link_request(
            &self.svc,
            &msg.storefront,
            LinkFor::Email(msg.email.clone()),
            RequestedBy::Customer,
            msg.redirect,
        );
        request.unmatched = Some(Unmatched {
            email_hash: self.svc.keys.address_hash(&msg.email.key()),
            client_ip: msg.client_ip.map(|ip| ip.to_string()),
        });
        let links = self.links.clone();
        Box::pin(async move { links.issue(request).await.map(|_| ()) })
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
