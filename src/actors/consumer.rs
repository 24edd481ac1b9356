//! The consuming side of a queue, shared by the mail and the webhook workers: `concurrency`
//! messages in flight, each handed to its actor and acknowledged by what the actor answered;
//! reconnecting with growing pauses when the broker goes away; and on shutdown no new message
//! taken, the ones in flight finished (for up to `grace`) while the consumer's channel is
//! still open, so their acknowledgements reach the broker. Messages the broker had not handed
//! over stay in the queue; those it had prefetched go back when the channel closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Semaphore, watch};

use crate::error::AppError;
use crate::queue::{Job, MailMessage, MailQueue};

/// What the handler's actor answered for one message: `Err` when the actor is gone.
pub type Handled = Result<Result<(), AppError>, actix::MailboxError>;

/// Consumes `queue` until `shutdown` turns true. `what` names the worker in its logs
/// (`"mail"`, `"webhook"`); `handle` gets each readable message and whether the broker
/// delivered it before.
pub async fn consume<H, Fut>(
    queue: Arc<dyn MailQueue>,
    what: &'static str,
    concurrency: u16,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(MailMessage, bool) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Handled> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let mut backoff = Duration::from_millis(200);
    'consume: loop {
        if *shutdown.borrow() {
            break;
        }
        match queue.subscribe(concurrency).await {
            Ok(mut jobs) => {
                backoff = Duration::from_millis(200);
                tracing::info!(queue = queue.name(), concurrency, "{what} worker consuming");
                loop {
                    // A free slot first, then a message: a message taken is always handled.
                    let slot = tokio::select! {
                        slot = slots.clone().acquire_owned() => slot,
                        _ = stopped(&mut shutdown) => {
                            finish_in_flight(what, &slots, concurrency, grace).await;
                            break 'consume;
                        }
                    };
                    let Ok(slot) = slot else { break 'consume };
                    let job = tokio::select! {
                        job = jobs.next() => job,
                        _ = stopped(&mut shutdown) => {
                            drop(slot);
                            finish_in_flight(what, &slots, concurrency, grace).await;
                            break 'consume;
                        }
                    };
                    let Some(job) = job else { break };
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        handle_job(what, job, handle).await;
                        drop(slot);
                    });
                }
                tracing::warn!("lost the {what} queue; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot consume the {what} queue; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut shutdown) => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::info!("{what} worker stopped");
}

/// Waits until every slot is free again: each message in flight has been handled and
/// acknowledged (the consumer, and so its channel, is still open meanwhile).
async fn finish_in_flight(what: &str, slots: &Arc<Semaphore>, concurrency: u16, grace: Duration) {
    let busy = concurrency as usize - slots.available_permits();
    if busy == 0 {
        return;
    }
    tracing::info!(
        in_flight = busy,
        "{what} worker stopping: finishing the messages in flight"
    );
    if tokio::time::timeout(grace, slots.acquire_many(concurrency as u32))
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = concurrency as usize - slots.available_permits(),
            "{what} messages still in flight after the grace period"
        );
    }
}

async fn handle_job<H, Fut>(what: &str, job: Job, handle: H)
where
    H: Fn(MailMessage, bool) -> Fut,
    Fut: Future<Output = Handled>,
{
    let Some(message) = job.message else {
        tracing::warn!("poison {what} message: to the dead-letter queue");
        job.ack.dead_letter().await;
        return;
    };
    let id = message.delivery_id;
    match handle(message, job.redelivered).await {
        Ok(Ok(())) => job.ack.ack().await,
        Ok(Err(AppError::Unavailable(e))) => {
            tracing::warn!(queue = what, delivery_id = id, error = %e, "cannot deliver now; requeueing");
            tokio::time::sleep(Duration::from_secs(1)).await;
            job.ack.requeue().await;
        }
        Ok(Err(e)) => {
            // The row stays `sending`; the relay takes it again when the lease ends.
            tracing::error!(queue = what, delivery_id = id, error = %e, "delivery crashed");
            job.ack.ack().await;
        }
        Err(e) => {
            tracing::error!(queue = what, error = %e, "the {what} actor is unavailable");
            job.ack.requeue().await;
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
