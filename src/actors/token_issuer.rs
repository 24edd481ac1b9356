//! TokenIssuer: issues sign-in links (applying the per-client limit and the per-account
//! ceiling, SPEC §8), customers' through a group-commit batcher. Checking and redeeming links
//! is request work, in [`crate::usecases::sign_in`]; this actor's only callers are there and
//! in [`crate::usecases::support`].

use std::sync::Arc;

use actix::prelude::*;
use chrono::Duration;

use super::batch::Batcher;
use super::spawn_work;
use crate::crypto::DeviceClaim;
use crate::domain::emails::{BookedRental, EmailData, Greeting};
use crate::domain::{EmailAddress, OpaqueToken};
use crate::error::AppError;
use crate::mail::sign_in_subject;
use crate::metrics::OutcomeLabel;
use crate::services::Services;
use crate::store::{
    IssueOutcome, LinkEmail, LinkFor, LinkLimit, LinkRequest, RequestedBy, Storefront,
    SuppressedBy, Unmatched, Window,
};

pub struct TokenIssuer {
    svc: Arc<Services>,
    links: LinkWriter,
}

/// Writes link requests to the database in batches (see [`super::batch`]) and publishes the
/// new deliveries ([`Services::write_then_enqueue`]).
#[derive(Clone)]
pub struct LinkWriter {
    svc: Arc<Services>,
    batcher: Batcher<LinkRequest, IssueOutcome>,
}

impl LinkWriter {
    pub fn new(svc: Arc<Services>) -> Self {
        let batcher = {
            let svc = svc.clone();
            Batcher::new(64, 4, move |requests: Vec<LinkRequest>| {
                let svc = svc.clone();
                async move { Ok(svc.store.issue_sign_in_links(&requests, svc.now()).await?) }
            })
        };
        Self { svc, batcher }
    }

    /// Writes the request (in a batch with others) and publishes its delivery. Publishing and
    /// logging happen here, in the caller's task and span, not in the batch's.
    pub async fn issue(&self, request: LinkRequest) -> Result<IssueOutcome, AppError> {
        let requested_by = request.requested_by;
        let outcome = self
            .svc
            .write_then_enqueue(self.batcher.submit(request))
            .await?;
        record(&self.svc, requested_by, outcome);
        Ok(outcome)
    }
}

/// Counts the outcome of a link request.
fn record(svc: &Services, requested_by: RequestedBy, outcome: IssueOutcome) {
    let label = match outcome {
        IssueOutcome::NoAccount => "no_account",
        IssueOutcome::Queued { .. } => "queued",
        IssueOutcome::Suppressed { account_id, by } => {
            svc.metrics
                .sends
                .get_or_create(&crate::metrics::StatusLabel {
                    status: "suppressed",
                })
                .inc();
            match by {
                SuppressedBy::Limit => tracing::info!(
                    account_id,
                    requested_by = requested_by.as_str(),
                    "sign-in link suppressed by a sign-in limit"
                ),
                SuppressedBy::List => tracing::info!(
                    account_id,
                    requested_by = requested_by.as_str(),
                    "sign-in link not sent: the address is on the suppression list"
                ),
            }
            "suppressed"
        }
    };
    svc.metrics
        .sign_in_requests
        .get_or_create(&OutcomeLabel { outcome: label })
        .inc();
}

impl TokenIssuer {
    pub fn new(svc: Arc<Services>) -> Self {
        Self {
            links: LinkWriter::new(svc.clone()),
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
            // Customers' own requests are limited (see `RequestLink`).
            limit: None,
            email: LinkEmail::SignIn,
            subject: sign_in_subject(&storefront.name),
            facility_ids: Vec::new(),
            relay_after: cfg.relay_after(),
            unmatched: None,
            code_binding: None,
        }
    }
}

/// The limits of a sign-in request from this client (a customer's, or a staff member's on the
/// console).
pub fn sign_in_limit(
    svc: &Services,
    client_ip: Option<std::net::IpAddr>,
    device: Option<DeviceClaim>,
) -> LinkLimit {
    let cfg = &svc.config.sign_in;
    LinkLimit {
        per_client: Window {
            max: cfg.per_account_max,
            window: Duration::minutes(cfg.per_account_window_minutes as i64),
        },
        ceiling: Window {
            max: cfg.account_ceiling_max,
            window: Duration::minutes(cfg.account_ceiling_window_minutes as i64),
        },
        ip_bucket: svc.keys.client_bucket(client_ip),
        device,
    }
}

impl Actor for TokenIssuer {
    type Context = Context<Self>;
}

/// A customer asks for a link on the sign-in page (or signs up again through the API with a
/// taken address). The portal answers the same whether or not the address has an account;
/// the outcome is for the API's answer.
#[derive(Message)]
#[rtype(result = "Result<IssueOutcome, AppError>")]
pub struct RequestLink {
    pub storefront: Arc<Storefront>,
    pub email: EmailAddress,
    /// Where to land after signing in (a path inside the storefront, already checked).
    pub redirect: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
    /// The browser's device cookie for this storefront, if it carries one.
    pub device: Option<DeviceClaim>,
    /// The random value of the asking browser's sign-in cookie: the link's code then works
    /// in that browser only (SPEC §11).
    pub binding: Option<Vec<u8>>,
}

impl Handler<RequestLink> for TokenIssuer {
    type Result = ResponseFuture<Result<IssueOutcome, AppError>>;

    fn handle(&mut self, msg: RequestLink, _: &mut Context<Self>) -> Self::Result {
        let mut request = Self::link_request(
            &self.svc,
            &msg.storefront,
            LinkFor::Email(msg.email.clone()),
            RequestedBy::Customer,
            msg.redirect,
        );
        request.code_binding = msg
            .binding
            .as_deref()
            .map(|b| self.svc.keys.sign_in_binding(b));
        request.limit = Some(sign_in_limit(&self.svc, msg.client_ip, msg.device));
        request.unmatched = Some(Unmatched {
            email_hash: self.svc.keys.address_hash(&msg.email.key()),
            client_ip: msg.client_ip.map(|ip| ip.to_string()),
        });
        let links = self.links.clone();
        Box::pin(async move { links.issue(request).await })
    }
}

/// Issue a link for a known account: staff resending the portal link, or a booking
/// confirmation (whose link lands on the rental).
#[derive(Message)]
#[rtype(result = "Result<IssueOutcome, AppError>")]
pub struct IssueLink {
    pub storefront: Arc<Storefront>,
    pub account_id: i64,
    pub requested_by: RequestedBy,
    pub redirect: Option<String>,
    /// For a booking confirmation: the email's subject, template data and the rental's facility.
    pub booking: Option<BookingEmail>,
}

#[derive(Debug, Clone)]
pub struct BookingEmail {
    pub subject: String,
    pub rental: BookedRental,
    pub facility_id: i64,
}

impl Handler<IssueLink> for TokenIssuer {
    type Result = ResponseFuture<Result<IssueOutcome, AppError>>;

    fn handle(&mut self, msg: IssueLink, _: &mut Context<Self>) -> Self::Result {
        let mut request = Self::link_request(
            &self.svc,
            &msg.storefront,
            LinkFor::Account(msg.account_id),
            msg.requested_by,
            msg.redirect,
        );
        if let Some(booking) = msg.booking {
            request.email = LinkEmail::BookingConfirmation(booking.rental);
            request.subject = booking.subject;
            request.facility_ids = vec![booking.facility_id];
        }
        let links = self.links.clone();
        Box::pin(async move { links.issue(request).await })
    }
}

/// A staff member asks for a console link (the answer is the same either way).
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct RequestStaffLink {
    pub email: EmailAddress,
    pub client_ip: Option<std::net::IpAddr>,
    /// The browser's console device cookie, if it carries one.
    pub device: Option<DeviceClaim>,
}

impl Handler<RequestStaffLink> for TokenIssuer {
    type Result = ResponseFuture<Result<(), AppError>>;

    fn handle(&mut self, msg: RequestStaffLink, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            let now = svc.now();
            let cfg = &svc.config;
            let token = OpaqueToken::generate();
            let expires_at = now + Duration::minutes(cfg.sign_in.link_ttl_minutes as i64);
            let sealed = svc.keys.seal_token(&token);
            let delivery = |staff: &crate::store::StaffUser| {
                crate::store::NewDelivery::new(
                    staff.storefront_id.unwrap_or(0),
                    None,
                    staff.email.clone(),
                    crate::mail::staff_sign_in_subject(&cfg.console_from_name),
                    EmailData::StaffSignIn(Greeting {
                        first_name: crate::store::first_name(&staff.full_name, &staff.email),
                        code: false,
                        sent_by_staff: false,
                    }),
                    cfg.relay_after(),
                )
                .with_link(sealed, expires_at)
            };
            let limit = sign_in_limit(&svc, msg.client_ip, msg.device);
            svc.write_then_enqueue(svc.store.issue_staff_link(
                &msg.email,
                &token.hash(),
                expires_at,
                &limit,
                delivery,
                now,
            ))
            .await?;
            Ok(())
        })
    }
}
