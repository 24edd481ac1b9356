//! Group commit in the application: requests that arrive while a batch is being written wait
//! for the next batch and are written together, in one transaction. Under load a link request,
//! a claim or a delivery outcome costs a fraction of a database round trip and of a WAL flush;
//! with no load a request goes alone at once, so nothing waits for a timer.
//!
//! The queue in front of the batches is bounded ([`Batcher::with_capacity`], by default
//! [`DEFAULT_CAPACITY`] items): when the database falls that far behind, `submit` answers
//! [`AppError::Unavailable`] at once (a "try again" page, 503 on the API) instead of letting
//! the backlog, and the memory it holds, grow without end.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::AppError;

type Reply<O> = oneshot::Sender<Result<O, AppError>>;

/// How many items may wait for a batch: many full batches' worth.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Collects items and runs them in batches of at most `max_batch`, with at most `max_in_flight`
/// batches running at once. `run` returns one result per item, in order.
pub struct Batcher<I, O> {
    tx: mpsc::Sender<(I, Reply<O>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub fn new<F, Fut>(max_batch: usize, max_in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, AppError>> + Send + 'static,
    {
        Self::with_capacity(DEFAULT_CAPACITY, max_batch, max_in_flight, run)
    }

    /// As [`Batcher::new`], with at most `capacity` items waiting for a batch.
    pub fn with_capacity<F, Fut>(
        capacity: usize,
        max_batch: usize,
        max_in_flight: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, AppError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<(I, Reply<O>)>(capacity.max(1));
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Wait for a free slot before taking more: whatever arrives meanwhile joins.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
                    let n = items.len();
                    match run(items).await {
                        Ok(results) if results.len() == n => {
                            for (reply, result) in replies.into_iter().zip(results) {
                                let _ = reply.send(Ok(result));
                            }
                        }
                        Ok(results) => {
                            for reply in replies {
                                let _ = reply.send(Err(AppError::Internal(anyhow::anyhow!(
                                    "a batch of {n} returned {} results",
                                    results.len()
                                ))));
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, items = n, "batch failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.duplicate()));
                            }
                        }
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Adds an item to the next batch and waits for its result; [`AppError::Unavailable`] at
    /// once when the queue is full.
    pub async fn submit(&self, item: I) -> Result<O, AppError> {
        let (reply, result) = oneshot::channel();
        self.tx.try_send((item, reply)).map_err(|e| match e {
            TrySendError::Full(_) => {
                AppError::Unavailable("too much work is waiting for the database".into())
            }
            TrySendError::Closed(_) => {
                AppError::Internal(anyhow::anyhow!("the batcher has stopped"))
            }
        })?;
        result
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the batch was dropped")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn items_arriving_during_a_batch_go_together_in_the_next() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::new(100, 1, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(items.into_iter().map(|i| i * 2).collect())
            }
        });
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.submit(1).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let rest: Vec<_> = (2..=6)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        for (i, h) in rest.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().unwrap(), (i as u32 + 2) * 2);
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_recovers() {
        let gate = Arc::new(Semaphore::new(0));
        let held = gate.clone();
        // Batches of one, one at a time, each waiting on the gate; two items may queue.
        let batcher = Batcher::with_capacity(2, 1, 1, move |items: Vec<u32>| {
            let held = held.clone();
            async move {
                let _ = held.acquire().await.unwrap();
                Ok(items)
            }
        });
        let mut waiting = Vec::new();
        let mut refused = None;
        for i in 1..20u32 {
            let b = batcher.clone();
            let h = tokio::spawn(async move { b.submit(i).await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            if h.is_finished() {
                refused = Some(h.await.unwrap());
                break;
            }
            waiting.push((i, h));
        }
        // The running batch, the item waiting for a slot, and the two queued ones.
        assert!(
            matches!(refused, Some(Err(AppError::Unavailable(_)))),
            "{refused:?}"
        );
        assert_eq!(waiting.len(), 4);
        gate.add_permits(100);
        for (i, h) in waiting {
            let got = tokio::time::timeout(Duration::from_secs(5), h).await;
            assert_eq!(got.unwrap().unwrap().unwrap(), i);
        }
        let again = tokio::time::timeout(Duration::from_secs(5), batcher.submit(99)).await;
        assert_eq!(again.unwrap().unwrap(), 99);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_items() {
        let batcher: Batcher<u32, u32> = Batcher::new(10, 2, |_| async {
            Err(AppError::Unavailable("database down".into()))
        });
        let err = batcher.submit(1).await.unwrap_err();
        assert!(matches!(err, AppError::Unavailable(m) if m == "database down"));
    }
}
