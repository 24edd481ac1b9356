//! The mail queue: RabbitMQ in production ([`rabbit::RabbitQueue`]), an in-process queue on
//! the embedded default ([`local::LocalQueue`]). Messages carry only a delivery id: the
//! delivery row in the database is the source of truth, and the relay republishes rows the
//! broker never got.

pub mod local;
pub mod rabbit;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused the message: {0}")]
    Refused(String),
}

/// The body of a queue message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MailMessage {
    pub delivery_id: i64,
}

impl MailMessage {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialisable")
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// What a worker does with a message once it has dealt with it.
#[async_trait]
pub trait Ack: Send {
    /// Done (the delivery row is updated).
    async fn ack(self: Box<Self>);
    /// Not processable (poison): to the dead-letter queue.
    async fn dead_letter(self: Box<Self>);
    /// Could not be handled now (database down): back on the queue.
    async fn requeue(self: Box<Self>);
}

/// One message handed to a worker.
pub struct Job {
    /// `None` when the body is not a mail message (poison).
    pub message: Option<MailMessage>,
    /// The broker delivered it before and its consumer died without acknowledging it.
    pub redelivered: bool,
    pub ack: Box<dyn Ack>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("message", &self.message)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

#[async_trait]
pub trait MailQueue: Send + Sync + 'static {
    /// Publishes for immediate delivery; returns once the broker has confirmed it.
    async fn publish(&self, msg: MailMessage) -> Result<(), QueueError>;
    /// Publishes for delivery after `delay` (a retry).
    async fn publish_delayed(&self, msg: MailMessage, delay: Duration) -> Result<(), QueueError>;
    /// Starts consuming with at most `prefetch` unacknowledged messages. The stream ends when
    /// the connection is lost; the caller subscribes again.
    async fn subscribe(&self, prefetch: u16) -> Result<BoxStream<'static, Job>, QueueError>;
    /// Messages waiting in the broker, when it can tell.
    async fn depth(&self) -> Result<u64, QueueError>;
    /// For `/readyz`.
    async fn check(&self) -> Result<(), QueueError>;
    fn name(&self) -> &'static str;
}
