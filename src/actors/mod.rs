//! The actors warp hands requests to: [`TokenIssuer`], [`SessionKeeper`], [`Mailer`]
//! (and, for billing, BillingSync).
//!
//! An actor's mailbox handles one message at a time, so no handler waits on I/O inside it:
//! each returns a `ResponseFuture` whose work runs as a task on the multi-threaded tokio
//! runtime. The mailbox only dispatches, which is why concurrent requests never queue up
//! behind each other (the benchmark measures it). Timers live in `started`.

pub mod batch;
pub mod billing_sync;
pub mod mailer;
pub mod session_keeper;
pub mod token_issuer;

use std::future::Future;

use actix::dev::ResponseFuture;

use crate::error::AppError;

pub use mailer::{Deliver, DeliverOutcome, Enqueue, Mailer, RelayOnce, RelayReport};
pub use session_keeper::{
    CheckSession, CheckStaffSession, EndAccountSessions, EndSession, EndStaffSession,
    SessionKeeper, Sweep,
};
pub use token_issuer::{
    BookingEmail, CheckStaffToken, CheckToken, IssueLink, Redeem, RedeemStaffToken,
    RedeemedSession, RequestLink, RequestStaffLink, TokenIssuer,
};

/// Runs a handler's work as a task on the tokio runtime, so the mailbox is free at once.
pub(crate) fn spawn_work<T: Send + 'static>(
    work: impl Future<Output = Result<T, AppError>> + Send + 'static,
) -> ResponseFuture<Result<T, AppError>> {
    Box::pin(async move { tokio::spawn(work).await? })
}

/// Sends a message and flattens the mailbox error into the handler's own error.
pub async fn ask<A, M, T>(addr: &actix::Addr<A>, msg: M) -> Result<T, AppError>
where
    A: actix::Actor + actix::Handler<M>,
    A::Context: actix::dev::ToEnvelope<A, M>,
    M: actix::Message<Result = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
{
    addr.send(msg).await?
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
    billing_sync::BillingSync
);

/// The running actors' addresses.
#[derive(Clone)]
pub struct Actors {
    pub token_issuer: actix::Addr<TokenIssuer>,
    pub session_keeper: actix::Addr<SessionKeeper>,
    pub mailer: actix::Addr<Mailer>,
    pub billing_sync: actix::Addr<billing_sync::BillingSync>,
}

impl Actors {
    /// Stops every actor and waits until they are gone.
    pub async fn stop(&self) {
        let _ = self.token_issuer.send(Stop).await;
        let _ = self.session_keeper.send(Stop).await;
        let _ = self.mailer.send(Stop).await;
        let _ = self.billing_sync.send(Stop).await;
        for _ in 0..100 {
            if !self.token_issuer.connected()
                && !self.session_keeper.connected()
                && !self.mailer.connected()
                && !self.billing_sync.connected()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
