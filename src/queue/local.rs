//! The in-process queue of the embedded default: a channel, with retries scheduled on timers.
//! Nothing survives a restart, which is fine: the relay finds every row not yet final.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Mutex, mpsc};

use super::{Ack, Job, MailMessage, MailQueue, QueueError};

pub struct LocalQueue {
    tx: mpsc::UnboundedSender<LocalItem>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<LocalItem>>>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            depth: Arc::default(),
        }
    }

    fn push(&self, item: LocalItem) -> Result<(), QueueError> {
        self.depth
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tx
            .send(item)
            .map_err(|_| QueueError::Unavailable("the in-process queue is closed".into()))
    }
}

struct LocalAck {
    tx: mpsc::UnboundedSender<LocalItem>,
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
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tx.send(LocalItem {
                    msg,
                    redelivered: true,
                });
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
            depth.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send(LocalItem {
                msg,
                redelivered: false,
            });
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
