//! RabbitMQ through lapin: a durable queue of persistent messages, publisher confirms, manual
//! acknowledgements, prefetch equal to the worker's concurrency, delayed retries through TTL
//! queues that dead-letter back into the main queue, and a dead-letter queue for poison
//! messages. Optionally quorum queues, for a RabbitMQ cluster.
//!
//! Topology for prefix `P`:
//! - `P`: the work queue; rejected messages dead-letter to `P.dead`.
//! - `P.retry.<ms>`: one per retry delay, `x-message-ttl = ms`, dead-lettering back to `P`.
//! - `P.dead`: poison messages, for people to look at.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::{Ack, Job, MailMessage, MailQueue, QueueError};

pub struct RabbitQueue {
    uri: String,
    prefix: String,
    quorum: bool,
    connect_timeout: Duration,
    publisher: Mutex<Option<Publisher>>,
}

struct Publisher {
    _conn: Connection,
    channel: Channel,
    generation: u64,
    retry_queues: HashSet<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl RabbitQueue {
    pub fn new(uri: &str, prefix: &str, quorum: bool, connect_timeout: Duration) -> Self {
        Self {
            uri: uri.to_string(),
            prefix: prefix.to_string(),
            quorum,
            connect_timeout,
            publisher: Mutex::new(None),
        }
    }

    pub fn main_queue(&self) -> String {
        self.prefix.clone()
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    fn retry_queue(&self, delay_ms: u64) -> String {
        format!("{}.retry.{delay_ms}", self.prefix)
    }

    async fn connect(&self, role: &str) -> Result<Connection, QueueError> {
        let props = ConnectionProperties::default().with_connection_name(LongString::from(
            format!("latchkey-{role}-{}", std::process::id()),
        ));
        match tokio::time::timeout(self.connect_timeout, Connection::connect(&self.uri, props))
            .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(QueueError::Unavailable(format!(
                "no answer from the broker within {:?}",
                self.connect_timeout
            ))),
        }
    }

    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.quorum {
            args.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        args
    }

    /// Declares the work queue and the dead-letter queue (idempotent).
    async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        channel
            .queue_declare(
                ShortString::from(self.dead_queue()),
                QueueDeclareOptions::durable(),
                self.base_args(),
            )
            .await
            .map_err(unavailable)?;
        let mut args = self.base_args();
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(LongString::from(self.dead_queue())),
        );
        channel
            .queue_declare(
                ShortString::from(self.main_queue()),
                QueueDeclareOptions::durable(),
                args,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn declare_retry(&self, channel: &Channel, delay_ms: u64) -> Result<(), QueueError> {
        let mut args = self.base_args();
        args.insert(
            ShortString::from("x-message-ttl"),
            AMQPValue::LongLongInt(delay_ms as i64),
        );
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(LongString::from(self.main_queue())),
        );
        channel
            .queue_declare(
                ShortString::from(self.retry_queue(delay_ms)),
                QueueDeclareOptions::durable(),
                args,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The publishing channel, connecting (and declaring the topology) when there is none.
    async fn publisher(&self, delay_ms: Option<u64>) -> Result<(Channel, u64), QueueError> {
        let mut guard = self.publisher.lock().await;
        if let Some(p) = guard.as_ref()
            && (!p.channel.status().connected() || !p._conn.status().connected())
        {
            *guard = None;
        }
        if guard.is_none() {
            let conn = self.connect("publisher").await?;
            let channel = conn.create_channel().await.map_err(unavailable)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(unavailable)?;
            self.declare(&channel).await?;
            static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            *guard = Some(Publisher {
                _conn: conn,
                channel,
                generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                retry_queues: HashSet::new(),
            });
        }
        let p = guard.as_mut().expect("just set");
        if let Some(ms) = delay_ms
            && !p.retry_queues.contains(&ms)
        {
            self.declare_retry(&p.channel, ms).await?;
            p.retry_queues.insert(ms);
        }
        Ok((p.channel.clone(), p.generation))
    }

    /// Forgets a broken publishing connection so the next publish reconnects.
    async fn reset(&self, generation: u64) {
        let mut guard = self.publisher.lock().await;
        if guard.as_ref().is_some_and(|p| p.generation == generation) {
            *guard = None;
        }
    }

    async fn publish_to(
        &self,
        queue: String,
        msg: MailMessage,
        delay_ms: Option<u64>,
    ) -> Result<(), QueueError> {
        let (channel, generation) = self.publisher(delay_ms).await?;
        let result = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    ShortString::from(queue),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &msg.encode(),
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type(ShortString::from("application/json")),
                )
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            if confirm.is_ack() && confirm.take_message().is_none() {
                Ok(())
            } else {
                Err(QueueError::Refused("not confirmed by the broker".into()))
            }
        }
        .await;
        if matches!(result, Err(QueueError::Unavailable(_))) {
            self.reset(generation).await;
        }
        result
    }

    /// Deletes this prefix's queues (tests clean up after themselves with it).
    pub async fn delete_all(&self, retry_delays: &[Duration]) -> Result<(), QueueError> {
        let conn = self.connect("admin").await?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        let mut names = vec![self.main_queue(), self.dead_queue()];
        names.extend(
            retry_delays
                .iter()
                .map(|d| self.retry_queue(d.as_millis() as u64)),
        );
        for name in names {
            let _ = channel
                .queue_delete(ShortString::from(name), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, ShortString::from("bye")).await;
        Ok(())
    }

    /// How many messages sit in the dead-letter queue.
    pub async fn dead_letters(&self) -> Result<u64, QueueError> {
        let (channel, _) = self.publisher(None).await?;
        let q = channel
            .queue_declare(
                ShortString::from(self.dead_queue()),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(q.message_count() as u64)
    }
}

struct RabbitAck {
    acker: lapin::Acker,
}

#[async_trait]
impl Ack for RabbitAck {
    async fn ack(self: Box<Self>) {
        if let Err(e) = self.acker.ack(BasicAckOptions::default()).await {
            tracing::debug!(error = %e, "ack failed (the broker will redeliver)");
        }
    }

    async fn dead_letter(self: Box<Self>) {
        if let Err(e) = self
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
        {
            tracing::debug!(error = %e, "reject failed");
        }
    }

    async fn requeue(self: Box<Self>) {
        if let Err(e) = self
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
        {
            tracing::debug!(error = %e, "nack failed");
        }
    }
}

#[async_trait]
impl MailQueue for RabbitQueue {
    async fn publish(&self, msg: MailMessage) -> Result<(), QueueError> {
        self.publish_to(self.main_queue(), msg, None).await
    }

    async fn publish_delayed(&self, msg: MailMessage, delay: Duration) -> Result<(), QueueError> {
        let ms = (delay.as_millis() as u64).max(1);
        self.publish_to(self.retry_queue(ms), msg, Some(ms)).await
    }

    async fn subscribe(&self, prefetch: u16) -> Result<BoxStream<'static, Job>, QueueError> {
        let conn = self.connect("worker").await?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        self.declare(&channel).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                ShortString::from(self.main_queue()),
                ShortString::from(format!("latchkey-worker-{}", std::process::id())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        // The connection and channel live as long as the stream.
        let keep = std::sync::Arc::new((conn, channel));
        Ok(consumer
            .take_while(|d| futures::future::ready(d.is_ok()))
            .filter_map(move |d| {
                let _keep = keep.clone();
                futures::future::ready(d.ok().map(|d| Job {
                    message: MailMessage::decode(&d.data),
                    redelivered: d.redelivered,
                    ack: Box::new(RabbitAck { acker: d.acker }) as Box<dyn Ack>,
                }))
            })
            .boxed())
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let (channel, generation) = self.publisher(None).await?;
        match channel
            .queue_declare(
                ShortString::from(self.main_queue()),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        {
            Ok(q) => Ok(q.message_count() as u64),
            Err(e) => {
                self.reset(generation).await;
                Err(unavailable(e))
            }
        }
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.depth().await.map(|_| ())
    }

    fn name(&self) -> &'static str {
        "rabbitmq"
    }
}
