//! SessionKeeper: checks and ends sessions, and sweeps expired tokens and sessions on a timer.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::spawn_work;
use crate::domain::OpaqueToken;
use crate::error::AppError;
use crate::services::Services;
use crate::store::SessionInfo;

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

/// The session behind a cookie value, on this storefront.
#[derive(Message)]
#[rtype(result = "Result<Option<SessionInfo>, AppError>")]
pub struct CheckSession {
    pub storefront_id: i64,
    pub cookie: String,
}

/// Sign-out: delete the session.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct EndSession {
    pub storefront_id: i64,
    pub cookie: String,
}

/// End every session of an account.
#[derive(Message)]
#[rtype(result = "Result<u64, AppError>")]
pub struct EndAccountSessions {
    pub account_id: i64,
}

/// The console session behind a console cookie value.
#[derive(Message)]
#[rtype(result = "Result<Option<crate::store::StaffSession>, AppError>")]
pub struct CheckStaffSession {
    pub cookie: String,
}

/// Console sign-out.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct EndStaffSession {
    pub cookie: String,
}

impl Handler<CheckStaffSession> for SessionKeeper {
    type Result = ResponseFuture<Result<Option<crate::store::StaffSession>, AppError>>;

    fn handle(&mut self, msg: CheckStaffSession, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            let Ok(token) = OpaqueToken::parse(&msg.cookie) else {
                return Ok(None);
            };
            Ok(svc.store.staff_session(&token.hash(), svc.now()).await?)
        })
    }
}

impl Handler<EndStaffSession> for SessionKeeper {
    type Result = ResponseFuture<Result<(), AppError>>;

    fn handle(&mut self, msg: EndStaffSession, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            if let Ok(token) = OpaqueToken::parse(&msg.cookie) {
                svc.store
                    .delete_session(crate::store::Audience::Staff, &token.hash())
                    .await?;
            }
            Ok(())
        })
    }
}

/// Delete expired tokens and sessions; returns (tokens, sessions) removed.
#[derive(Message)]
#[rtype(result = "Result<(u64, u64), AppError>")]
pub struct Sweep;

impl Handler<CheckSession> for SessionKeeper {
    type Result = ResponseFuture<Result<Option<SessionInfo>, AppError>>;

    fn handle(&mut self, msg: CheckSession, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            let Ok(token) = OpaqueToken::parse(&msg.cookie) else {
                return Ok(None);
            };
            Ok(svc
                .store
                .session(msg.storefront_id, &token.hash(), svc.now())
                .await?)
        })
    }
}

impl Handler<EndSession> for SessionKeeper {
    type Result = ResponseFuture<Result<(), AppError>>;

    fn handle(&mut self, msg: EndSession, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move {
            if let Ok(token) = OpaqueToken::parse(&msg.cookie) {
                svc.store
                    .delete_session(
                        crate::store::Audience::Customer(msg.storefront_id),
                        &token.hash(),
                    )
                    .await?;
            }
            Ok(())
        })
    }
}

impl Handler<EndAccountSessions> for SessionKeeper {
    type Result = ResponseFuture<Result<u64, AppError>>;

    fn handle(&mut self, msg: EndAccountSessions, _: &mut Context<Self>) -> Self::Result {
        let svc = self.svc.clone();
        spawn_work(async move { Ok(svc.store.delete_account_sessions(msg.account_id).await?) })
    }
}

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
