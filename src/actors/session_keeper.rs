//! SessionKeeper: sweeps expired tokens, sessions, unmatched sign-in requests and email
//! changes on a timer. Checking and ending sessions is request work, in
//! [`crate::usecases::sign_in`].

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::spawn_work;
use crate::error::AppError;
use crate::services::Services;

/// How often expired tokens and sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

pub struct SessionKeeper {
    svc: Arc<Services>,
}

impl SessionKeeper {
    pub fn new(svc: Arc<Services>) -> Self {
        Self { svc }
    }
}

impl Actor for SessionKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |_, ctx| {
            ctx.notify(Sweep);
        });
    }
}

/// Delete expired tokens and sessions; returns (tokens, sessions) removed.
#[derive(Message)]
#[rtype(result = "Result<(u64, u64), AppError>")]
pub struct Sweep;

impl Handler<Sweep> for SessionKeeper {
    type Result = ResponseFuture<Result<(u64, u64), AppError>>;

    fn handle(&mut self, _: Sweep, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            let now = svc.now();
            let tokens = svc.store.sweep_tokens(now).await?;
            let sessions = svc.store.sweep_sessions(now).await?;
            svc.store.sweep_unmatched(now).await?;
            svc.store.sweep_email_changes(now).await?;
            if tokens + sessions > 0 {
                tracing::info!(
                    tokens,
                    sessions,
                    "swept expired sign-in tokens and sessions"
                );
            }
            Ok((tokens, sessions))
        })
    }
}
