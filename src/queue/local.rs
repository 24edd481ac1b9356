//! The in-process queue of the embedded default: a channel, with retries scheduled on timers.
//! Nothing survives a restart, which is fine: the relay finds every row not yet final.
//!
//! The channel is bounded ([`DEFAULT_CAPACITY`] messages). When it is full, `publish` fails
//! as a broker outage does ([`QueueError::Unavailable`]), and a retry or requeue that finds it
//! full is dropped: either way the delivery row keeps its relay time, and the relay publishes
//! it again once there is room. Memory stays bounded however far the workers fall behind.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc};

use super::{Ack, Job, MailMessage, MailQueue, QueueError};

/// How many messages wait in the in-process queue at most.
pub const DEFAULT_CAPACITY: usize = 10_000;

pub struct LocalQueue {
    tx: mpsc::Sender<LocalItem>,
    rx: Arc<Mutex<mpsc::Receiver<LocalItem>>>,
    depth: Arc<std::sync::atomic::AtomicI64>,
}

struct LocalItem {
    msg: MailMessage,
    redelivered: bool,
}

impl Default for LocalQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalQueue {
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A queue that holds at most `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            depth: Arc::default(),
        }
    }

    fn push(&self, item: LocalItem) -> Result<(), QueueError> {
        offer(&self.tx, &self.depth, item)
    }
}

/// Puts a message on the queue if there is room.
fn offer(
    tx: &mpsc::Sender<LocalItem>,
    depth: &std::sync::atomic::AtomicI64,
    item: LocalItem,
) -> Result<(), QueueError> {
    match tx.try_send(item) {
        Ok(()) => {
            depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Err(TrySendError::Full(_)) => Err(QueueError::Unavailable(
            "the in-process queue is full; the relay will publish it again".into(),
        )),
        Err(TrySendError::Closed(_)) => Err(QueueError::Unavailable(
            "the in-process queue is closed".into(),
        )),
    }
}

struct LocalAck {
    tx: mpsc::Sender<LocalItem>,
    depth: Arc<std::sync::atomic::AtomicI64>,
    msg: Option<MailMessage>,
}

#[async_trait]
impl Ack for LocalAck {
    async fn ack(self: Box<Self>) {}

    async fn dead_letter(self: Box<Self>) {
        tracing::warn!(message = ?self.msg, "dropping a message that cannot be processed");
    }

    async fn requeue(self: Box<Self>) {
        if let Some(msg) = self.msg {
            let tx = self.tx.clone();
            let depth = self.depth.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let item = LocalItem {
                    msg,
                    redelivered: true,
                };
                if let Err(e) = offer(&tx, &depth, item) {
                    tracing::debug!(delivery_id = msg.delivery_id, error = %e, "requeue dropped");
                }
            });
        }
    }
}

#[async_trait]
impl MailQueue for LocalQueue {
    async fn publish(&self, msg: MailMessage) -> Result<(), QueueError> {
        self.push(LocalItem {
            msg,
            redelivered: false,
        })
    }

    async fn publish_delayed(&self, msg: MailMessage, delay: Duration) -> Result<(), QueueError> {
        let tx = self.tx.clone();
        let depth = self.depth.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let item = LocalItem {
                msg,
                redelivered: false,
            };
            if let Err(e) = offer(&tx, &depth, item) {
                tracing::debug!(delivery_id = msg.delivery_id, error = %e, "retry dropped");
            }
        });
        Ok(())
    }

    async fn subscribe(&self, _prefetch: u16) -> Result<BoxStream<'static, Job>, QueueError> {
        let rx = self.rx.clone();
        let tx = self.tx.clone();
        let depth = self.depth.clone();
        Ok(futures::stream::unfold((), move |()| {
            let rx = rx.clone();
            let tx = tx.clone();
            let depth = depth.clone();
            async move {
                let item = rx.lock().await.recv().await?;
                depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                Some((
                    Job {
                        message: Some(item.msg),
                        redelivered: item.redelivered,
                        ack: Box::new(LocalAck {
                            tx,
                            depth: depth.clone(),
                            msg: Some(item.msg),
                        }),
                    },
                    (),
                ))
            }
        })
        .boxed())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self.depth.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64)
    }

    async fn check(&self) -> Result<(), QueueError> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
