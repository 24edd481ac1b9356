//! The actors: [`TokenIssuer`] (the group-committed sign-in link batcher), [`SessionKeeper`]
//! (session sweeps), [`Mailer`] (sends for the worker loop) and BillingSync (Stripe retries and
//! reconciliation): only what needs a mailbox or a timer. Requests reach them through the use
//! cases (`crate::usecases`), which are their only callers besides the actors' own timers.
//!
//! An actor's mailbox handles one message at a time, so no handler waits on I/O inside it:
//! each returns a `ResponseFuture` whose work runs as a task on the multi-threaded tokio
//! runtime. The mailbox only dispatches, which is why concurrent requests never queue up
//! behind each other (the benchmark measures it). Timers live in `started`.
//!
//! Messages travel in the sender's span ([`send`] wraps them in [`InSpan`]), and the work a
//! handler spawns runs in it too, so every log line a request causes carries its request id.
//! No mailbox grows without bound: nothing uses `do_send` (which ignores the capacity), so a
//! mailbox holds at most its capacity (actix's 16) plus one message per sender waiting on
//! [`send`] (the architecture test in `crates/archcheck` refuses `do_send`), and the senders are themselves bounded: request tasks (`max_connections`), mail
//! worker slots (`mail.concurrency`) and the actors' own timers. Fresh deliveries reach the
//! broker through [`crate::queue::Publisher`], not a mailbox.

pub mod batch;
pub mod billing_sync;
pub mod consumer;
pub mod mailer;
pub mod session_keeper;
pub mod token_issuer;
pub mod webhooks;

use std::future::Future;

use actix::dev::ResponseFuture;
use tracing::Instrument;

use crate::error::AppError;

pub use mailer::{Deliver, DeliverOutcome, Mailer, RelayOnce, RelayReport};
pub use session_keeper::{SessionKeeper, Sweep};
pub use token_issuer::{BookingEmail, IssueLink, RequestLink, RequestStaffLink, TokenIssuer};

/// Runs a handler's work as a task on the tokio runtime, so the mailbox is free at once. The
/// task runs in the current span (the sender's, see [`InSpan`]).
pub(crate) fn spawn_work<T: Send + 'static, E: From<tokio::task::JoinError> + Send + 'static>(
    work: impl Future<Output = Result<T, E>> + Send + 'static,
) -> ResponseFuture<Result<T, E>> {
    Box::pin(async move { tokio::spawn(work.in_current_span()).await? })
}

/// A message with the span of whoever sent it: the handler runs in it, and so does the
/// future it returns.
pub struct InSpan<M> {
    span: tracing::Span,
    msg: M,
}

impl<M: actix::Message> actix::Message for InSpan<M> {
    type Result = M::Result;
}

/// Sends a message in the current span, waiting for room in the mailbox when it is full.
pub async fn send<A, M>(addr: &actix::Addr<A>, msg: M) -> Result<M::Result, actix::MailboxError>
where
    A: actix::Actor + actix::Handler<InSpan<M>>,
    A::Context: actix::dev::ToEnvelope<A, InSpan<M>>,
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    addr.send(InSpan {
        span: tracing::Span::current(),
        msg,
    })
    .await
}

/// Sends a message (see [`send`]) and flattens the mailbox error into the handler's own error.
pub async fn ask<A, M, T>(addr: &actix::Addr<A>, msg: M) -> Result<T, AppError>
where
    A: actix::Actor + actix::Handler<InSpan<M>>,
    A::Context: actix::dev::ToEnvelope<A, InSpan<M>>,
    M: actix::Message<Result = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
{
    send(addr, msg).await?
}

/// The messages each actor takes in the sender's span ([`InSpan`]); every handler listed
/// returns a `ResponseFuture`, which runs in that span too.
macro_rules! traced {
    ($($actor:ty: $($msg:ty),+;)*) => {
        $($(impl actix::Handler<InSpan<$msg>> for $actor {
            type Result = <$actor as actix::Handler<$msg>>::Result;

            fn handle(&mut self, m: InSpan<$msg>, ctx: &mut actix::Context<Self>) -> Self::Result {
                let InSpan { span, msg } = m;
                let work = span.in_scope(|| <Self as actix::Handler<$msg>>::handle(self, msg, ctx));
                Box::pin(work.instrument(span))
            }
        })+)*
    };
}

traced! {
    TokenIssuer: RequestLink, IssueLink, RequestStaffLink;
    SessionKeeper: Sweep;
    Mailer: Deliver, RelayOnce;
    billing_sync::BillingSync: billing_sync::RetryEvents, billing_sync::Reconcile;
    webhooks::WebhookSender: webhooks::DeliverWebhook, webhooks::RelayWebhooks;
}

/// Stops an actor (at shutdown, so it is dropped while the runtime still runs).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

macro_rules! stoppable {
    ($($actor:ty),*) => {
        $(impl actix::Handler<Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: Stop, ctx: &mut actix::Context<Self>) {
                actix::ActorContext::stop(ctx);
            }
        })*
    };
}

stoppable!(
    TokenIssuer,
    SessionKeeper,
    Mailer,
    billing_sync::BillingSync,
    webhooks::WebhookSender
);

/// The running actors' addresses.
#[derive(Clone)]
pub struct Actors {
    pub token_issuer: actix::Addr<TokenIssuer>,
    pub session_keeper: actix::Addr<SessionKeeper>,
    pub mailer: actix::Addr<Mailer>,
    pub billing_sync: actix::Addr<billing_sync::BillingSync>,
    pub webhooks: actix::Addr<webhooks::WebhookSender>,
}

impl Actors {
    /// Stops every actor and waits until they are gone.
    pub async fn stop(&self) {
        let _ = self.token_issuer.send(Stop).await;
        let _ = self.session_keeper.send(Stop).await;
        let _ = self.mailer.send(Stop).await;
        let _ = self.billing_sync.send(Stop).await;
        let _ = self.webhooks.send(Stop).await;
        for _ in 0..100 {
            if !self.token_issuer.connected()
                && !self.session_keeper.connected()
                && !self.mailer.connected()
                && !self.billing_sync.connected()
                && !self.webhooks.connected()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
