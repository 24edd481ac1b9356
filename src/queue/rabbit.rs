//! RabbitMQ through lapin: a durable queue of persistent messages, publisher confirms, manual
//! acknowledgements, prefetch equal to the worker's concurrency, delayed retries through TTL
//! queues that dead-letter back into the main queue, and a dead-letter queue for poison
//! messages. Optionally quorum queues, for a RabbitMQ cluster.
//!
//! Topology for prefix `P`:
//! - `P`: the work queue; rejected messages dead-letter to `P.dead`.
//! - `P.retry.<ms>`: one per retry delay, `x-message-ttl = ms`, dead-lettering back to `P`.
//! - `P.dead`: poison messages, for people to look at.
//!
//! The broker may be several nodes (a cluster): every connection, the publisher's and each
//! consumer's, goes to one node at a time ([`Nodes`]), starting with the one that answered
//! last; a node that refuses, or whose connection drops, is passed over for the next in the
//! list. lapin reports a dropped connection by putting the connection in its error state
//! (`status().connected()` turns false), failing whatever waits on it (publisher confirms
//! included) and ending each consumer's stream with an error followed by the end of the
//! stream; the publisher notices the first two, the workers' loop the last one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::domain::SecretUrl;

pub struct RabbitQueue {
    nodes: Arc<Nodes>,
    prefix: String,
    quorum: bool,
    connect_timeout: Duration,
    heartbeat: Duration,
    publisher: Mutex<Option<Publisher>>,
}

/// The AMQP heartbeat asked for unless a node's URL names one (`?heartbeat=`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

struct Publisher {
    _conn: Connection,
    channel: Channel,
    generation: u64,
    /// The node it is connected to.
    node: usize,
    retry_queues: HashSet<u64>,
}

/// The broker's nodes, and which one a new connection tries first: the one that answered
/// last, then the others in the order listed. A node whose connection dropped is passed
/// over: the next connection starts with the node after it (a node that is back is used
/// again when its turn comes, not sought out). With one node, that node is always first.
#[derive(Debug)]
pub struct Nodes {
    urls: Vec<SecretUrl>,
    first: AtomicUsize,
}

impl Nodes {
    /// # Panics
    /// When `urls` is empty (the configuration never lets that through).
    pub fn new(urls: Vec<SecretUrl>) -> Self {
        assert!(!urls.is_empty(), "a RabbitMQ queue needs at least one node");
        Self {
            urls,
            first: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The nodes (by index) in the order a new connection tries them.
    pub fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        let first = self.first.load(Ordering::Relaxed) % n;
        (0..n).map(|k| (first + k) % n).collect()
    }

    /// A connection to `node` was made: later ones try it first.
    pub fn connected(&self, node: usize) {
        self.first.store(node, Ordering::Relaxed);
    }

    /// The connection to `node` dropped: later ones start with the next node. Several
    /// connections losing the same node move on once, not once each.
    pub fn lost(&self, node: usize) {
        let next = (node + 1) % self.urls.len();
        if self
            .first
            .compare_exchange(node, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                lost = %self.describe(node),
                next = %self.describe(next),
                "lost the connection to a RabbitMQ node; connecting to the next"
            );
        }
    }

    /// "node 2 of 3 (amqp://user:***@host:5672/%2f)", or the URL alone for a single node.
    fn describe(&self, node: usize) -> String {
        if self.urls.len() == 1 {
            self.urls[node].redacted()
        } else {
            format!(
                "node {} of {} ({})",
                node + 1,
                self.urls.len(),
                self.urls[node].redacted()
            )
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl RabbitQueue {
    /// One broker at `uri`.
    pub fn new(uri: &str, prefix: &str, quorum: bool, connect_timeout: Duration) -> Self {
        Self::with_nodes(vec![SecretUrl::new(uri)], prefix, quorum, connect_timeout)
    }

    /// A broker reached through any of `nodes` (the nodes of a cluster, tried in turn).
    pub fn with_nodes(
        nodes: Vec<SecretUrl>,
        prefix: &str,
        quorum: bool,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            nodes: Arc::new(Nodes::new(nodes)),
            prefix: prefix.to_string(),
            quorum,
            connect_timeout,
            heartbeat: DEFAULT_HEARTBEAT,
            publisher: Mutex::new(None),
        }
    }

    /// The AMQP heartbeat to ask for (the broker may lower it). lapin notices a connection
    /// that went silent after two heartbeats, also when the socket's end went unnoticed (a
    /// node killed under load): the heartbeat bounds how long a worker waits on a dead node.
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
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

    /// A connection to the first node that takes one (see [`Nodes`]), and that node's index.
    async fn connect(&self, role: &str) -> Result<(Connection, usize), QueueError> {
        let mut failures = Vec::new();
        for node in self.nodes.order() {
            match self.connect_to(node, role).await {
                Ok(conn) => {
                    self.nodes.connected(node);
                    if !failures.is_empty() {
                        tracing::warn!(
                            role,
                            node = %self.nodes.describe(node),
                            passed_over = %failures.join("; "),
                            "connected to another RabbitMQ node"
                        );
                    }
                    return Ok((conn, node));
                }
                Err(e) => failures.push(match e {
                    QueueError::Unavailable(why) | QueueError::Refused(why)
                        if self.nodes.len() > 1 =>
                    {
                        format!("{}: {why}", self.nodes.describe(node))
                    }
                    QueueError::Unavailable(why) | QueueError::Refused(why) => why,
                }),
            }
        }
        Err(QueueError::Unavailable(if self.nodes.len() > 1 {
            format!("no RabbitMQ node answered: {}", failures.join("; "))
        } else {
            failures.join("; ")
        }))
    }

    async fn connect_to(&self, node: usize, role: &str) -> Result<Connection, QueueError> {
        let props = ConnectionProperties::default().with_connection_name(LongString::from(
            format!("latchkey-{role}-{}", std::process::id()),
        ));
        let mut uri: lapin::uri::AMQPUri = self.nodes.urls[node]
            .expose()
            .parse()
            .map_err(|e| QueueError::Unavailable(format!("not an AMQP URL: {e}")))?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(self.heartbeat.as_secs().clamp(1, u16::MAX as u64) as u16);
        }
        match tokio::time::timeout(self.connect_timeout, Connection::connect_uri(uri, props)).await
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
            if !p._conn.status().connected() {
                self.nodes.lost(p.node);
            }
            *guard = None;
        }
        if guard.is_none() {
            let (conn, node) = self.connect("publisher").await?;
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
                node,
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

    /// Forgets a broken publishing connection so the next publish reconnects (to the next
    /// node, when its connection is what broke).
    /// `suspect`: the connection looks open but stopped answering.
    async fn reset(&self, generation: u64, suspect: bool) {
        let mut guard = self.publisher.lock().await;
        if let Some(p) = guard.as_ref().filter(|p| p.generation == generation) {
            if suspect || !p._conn.status().connected() {
                self.nodes.lost(p.node);
            }
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
        let confirmed = async {
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
        };
        // A confirmation that does not come means a connection that is gone without lapin
        // knowing yet: give up on it and reconnect (`Publisher` tries again; if that fails too,
        // the row stays `queued` for the relay).
        let Ok(result) = tokio::time::timeout(self.connect_timeout, confirmed).await else {
            self.reset(generation, true).await;
            return Err(QueueError::Unavailable(format!(
                "no confirmation from the broker within {:?}",
                self.connect_timeout
            )));
        };
        match &result {
            Err(QueueError::Unavailable(_)) => self.reset(generation, false).await,
            // A quorum queue refuses (nacks) while it has no leader within reach; its channel
            // may go on refusing after the leader moved: start again on a fresh connection.
            Err(QueueError::Refused(_)) => self.reset(generation, true).await,
            Ok(()) => {}
        }
        result
    }

    /// Deletes this prefix's queues (tests clean up after themselves with it).
    pub async fn delete_all(&self, retry_delays: &[Duration]) -> Result<(), QueueError> {
        let (conn, _) = self.connect("admin").await?;
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
        let (conn, node) = self.connect("worker").await?;
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
        let keep = Arc::new((conn, channel));
        let status = keep.0.status().clone();
        let nodes = self.nodes.clone();
        // lapin ends a consumer's stream with an error, then the end, when its connection
        // drops (or the broker cancels the consumer): the worker subscribes again, starting
        // with the next node if this one's connection is gone.
        let lost = futures::stream::once(async move {
            if !status.connected() {
                nodes.lost(node);
            }
        })
        .filter_map(|()| futures::future::ready(None));
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
            .chain(lost)
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
                self.reset(generation, false).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Nodes {
        Nodes::new(
            (1..=n)
                .map(|i| SecretUrl::new(format!("amqp://lk:pw@rabbit{i}:5672/%2f")))
                .collect(),
        )
    }

    #[test]
    fn connections_try_the_nodes_in_the_order_listed() {
        assert_eq!(nodes(3).order(), [0, 1, 2]);
    }

    #[test]
    fn a_lost_node_is_tried_last() {
        let n = nodes(3);
        n.lost(0);
        assert_eq!(n.order(), [1, 2, 0]);
        n.lost(1);
        assert_eq!(n.order(), [2, 0, 1]);
        n.lost(2);
        assert_eq!(n.order(), [0, 1, 2], "round the list and back to the first");
    }

    #[test]
    fn connections_losing_the_same_node_move_on_once() {
        let n = nodes(3);
        n.lost(0);
        n.lost(0);
        assert_eq!(n.order(), [1, 2, 0]);
        // A connection on another node than the current first one changes nothing either.
        n.lost(2);
        assert_eq!(n.order(), [1, 2, 0]);
    }

    #[test]
    fn the_node_that_answered_is_tried_first() {
        let n = nodes(3);
        n.connected(2);
        assert_eq!(n.order(), [2, 0, 1]);
    }

    #[test]
    fn a_single_node_is_always_the_one() {
        let n = nodes(1);
        assert_eq!(n.order(), [0]);
        n.lost(0);
        assert_eq!(n.order(), [0]);
        assert_eq!(n.describe(0), "amqp://lk:***@rabbit1:5672/%2f");
    }

    #[test]
    fn nodes_are_described_without_their_passwords() {
        let n = nodes(3);
        assert_eq!(
            n.describe(1),
            "node 2 of 3 (amqp://lk:***@rabbit2:5672/%2f)"
        );
    }

    #[tokio::test]
    async fn a_connection_moves_on_past_nodes_that_refuse() {
        // Two ports nobody listens on: both are tried, in order, and both named.
        let closed = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (a, b) = (closed(), closed());
        let queue = RabbitQueue::with_nodes(
            vec![
                SecretUrl::new(format!("amqp://lk:pw@127.0.0.1:{a}/%2f")),
                SecretUrl::new(format!("amqp://lk:pw@127.0.0.1:{b}/%2f")),
            ],
            "latchkey.unit",
            true,
            Duration::from_secs(5),
        );
        let Err(QueueError::Unavailable(why)) = queue.connect("unit").await else {
            panic!("connected to a closed port");
        };
        assert!(
            why.starts_with("no RabbitMQ node answered: node 1 of 2"),
            "{why}"
        );
        assert!(why.contains("; node 2 of 2"), "{why}");
        assert!(!why.contains(":pw@"), "{why}");
    }
}
