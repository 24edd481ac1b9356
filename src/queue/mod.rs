//! The mail queue: RabbitMQ in production ([`rabbit::RabbitQueue`]), an in-process queue on
//! the embedded default ([`local::LocalQueue`]). Messages carry only a delivery id: the
//! delivery row in the database is the source of truth, and the relay republishes rows the
//! broker never got.

pub mod local;
pub mod rabbit;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::Instrument;

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

/// Hands freshly written deliveries to the queue. The writer does not wait for the broker: the
/// row is already committed `queued`, so if the broker is down, or [`Publisher::MAX_IN_FLIGHT`]
/// publishes are already under way (a slow broker), the publish is skipped and the relay takes
/// the row later. The work waiting here never grows without bound, and the publish runs in the
/// caller's span (its log lines carry the request's id).
#[derive(Clone)]
pub struct Publisher {
    queue: Arc<dyn MailQueue>,
    in_flight: Arc<Semaphore>,
}

impl Publisher {
    /// How many fresh deliveries may be on their way to the broker at once. Each is a small
    /// task waiting for the broker's confirm, so the bound is about a broker that stopped
    /// answering, not about load: at 2,000 links/s with confirms taking 100 ms (a busy broker
    /// batching its disk writes) 200 are in flight, and a publish skipped here waits a minute
    /// for the relay (`mail.relay_after_seconds`).
    pub const MAX_IN_FLIGHT: usize = 4096;

    /// The pauses before each further try of a publish the broker did not take; after the last,
    /// the relay publishes the row.
    pub const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(200), Duration::from_secs(1)];

    pub fn new(queue: Arc<dyn MailQueue>) -> Self {
        Self {
            queue,
            in_flight: Arc::new(Semaphore::new(Self::MAX_IN_FLIGHT)),
        }
    }

    /// Publishes the delivery in the background (fire and forget, see the type's header).
    pub fn enqueue(&self, delivery_id: i64) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::debug!(
                delivery_id,
                "too many publishes under way; the relay will publish it"
            );
            return;
        };
        let queue = self.queue.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                let msg = MailMessage { delivery_id };
                // A publish the broker did not take (it went away, or refused the message) is
                // tried again shortly:
                // the queue then connects to the next node of a cluster (whose queue may need
                // a moment to elect a new leader), and the email does not wait a minute for the
                // relay. A copy that did reach the broker is harmless (a worker takes a row
                // only while it waits).
                let mut result = queue.publish(msg).await;
                for pause in Self::RETRY_PAUSES {
                    // Unavailable (the connection went) or refused (not confirmed, or returned
                    // unroutable while a new leader is elected): the broker does not have it.
                    let Err(e) = &result else {
                        break;
                    };
                    tracing::debug!(delivery_id, error = %e, "publish failed; trying again");
                    tokio::time::sleep(pause).await;
                    result = queue.publish(msg).await;
                }
                if let Err(e) = result {
                    tracing::warn!(delivery_id, error = %e, "could not publish; the relay will retry");
                }
            }
            .in_current_span(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A queue whose first `failures` publishes fail as if the broker had gone away or refused them.
    struct Flaky {
        failures: Mutex<u32>,
        published: Mutex<Vec<i64>>,
        tried: Mutex<u32>,
    }

    #[async_trait]
    impl MailQueue for Flaky {
        async fn publish(&self, msg: MailMessage) -> Result<(), QueueError> {
            *self.tried.lock().unwrap() += 1;
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                // Alternately gone and refusing (returned unroutable while a leader is elected).
                return Err(if (*failures).is_multiple_of(2) {
                    QueueError::Refused("not confirmed by the broker".into())
                } else {
                    QueueError::Unavailable("connection reset".into())
                });
            }
            self.published.lock().unwrap().push(msg.delivery_id);
            Ok(())
        }
        async fn publish_delayed(&self, msg: MailMessage, _: Duration) -> Result<(), QueueError> {
            self.publish(msg).await
        }
        async fn subscribe(&self, _: u16) -> Result<BoxStream<'static, Job>, QueueError> {
            Err(QueueError::Unavailable("not for this test".into()))
        }
        async fn depth(&self) -> Result<u64, QueueError> {
            Ok(0)
        }
        async fn check(&self) -> Result<(), QueueError> {
            Ok(())
        }
        fn name(&self) -> &'static str {
            "flaky"
        }
    }

    async fn enqueue_with(failures: u32) -> (Vec<i64>, u32) {
        let queue = Arc::new(Flaky {
            failures: Mutex::new(failures),
            published: Mutex::new(Vec::new()),
            tried: Mutex::new(0),
        });
        let publisher = Publisher::new(queue.clone());
        publisher.enqueue(7);
        // The publish runs in the background; it is done when its permit is back.
        let _all = publisher
            .in_flight
            .acquire_many(Publisher::MAX_IN_FLIGHT as u32)
            .await
            .unwrap();
        let published = queue.published.lock().unwrap().clone();
        let tried = *queue.tried.lock().unwrap();
        (published, tried)
    }

    #[tokio::test]
    async fn a_publish_the_broker_dropped_is_tried_again_before_the_relay_is_left_with_it() {
        assert_eq!(enqueue_with(0).await, (vec![7], 1));
        assert_eq!(enqueue_with(1).await, (vec![7], 2));
        assert_eq!(enqueue_with(2).await, (vec![7], 3));
        // Still down after the last pause: left to the relay.
        assert_eq!(enqueue_with(3).await, (vec![], 3));
    }
}
