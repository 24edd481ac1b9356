//! The application-level error the actors return and the HTTP layer turns into a page (or
//! JSON for the API) in one place.

use crate::queue::QueueError;
use crate::store::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A dependency (database, broker) is down: the user is asked to try again shortly.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Anything else unexpected: logged with context, shown as "something went wrong".
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The same error for another waiter (a failed batch fails each of its items).
    pub fn duplicate(&self) -> AppError {
        match self {
            AppError::Unavailable(m) => AppError::Unavailable(m.clone()),
            AppError::Internal(e) => AppError::Internal(anyhow::anyhow!("{e:#}")),
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => AppError::Unavailable(format!("database: {m}")),
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        AppError::Unavailable(e.to_string())
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        AppError::Internal(anyhow::anyhow!("actor mailbox: {e}"))
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(anyhow::anyhow!("task failed: {e}"))
    }
}
