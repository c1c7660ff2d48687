//! Batches settlements: entries handled at about the same time are settled
//! in one Redis pipeline. Each caller waits for its own result, so an entry
//! counts as in flight until its acknowledgement is recorded.

use tokio::sync::{mpsc, oneshot};
use wal_core::backend::BackendError;
use wal_state::{RedisSchedule, Settlement};

/// Most settlements sent in one pipeline.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Vec<String>, BackendError>>;

/// Handle to the settling task.
#[derive(Clone)]
pub struct Settler {
    tx: mpsc::Sender<(Settlement, Reply)>,
}

impl Settler {
    /// Starts the settling task over `schedule`.
    pub fn spawn(schedule: RedisSchedule) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let task = tokio::spawn(run(schedule, rx));
        (Self { tx }, task)
    }

    /// Records `settlement` (see [`RedisSchedule::settle`]); the DLQ entry ids written.
    pub async fn settle(&self, settlement: Settlement) -> Result<Vec<String>, BackendError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((settlement, reply))
            .await
            .map_err(|_| BackendError::Unavailable("settler stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(BackendError::Unavailable("settler stopped".into())))
    }
}

async fn run(schedule: RedisSchedule, mut rx: mpsc::Receiver<(Settlement, Reply)>) {
    let mut batch: Vec<Settlement> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Some((s, r)) = rx.recv().await {
        batch.push(s);
        replies.push(r);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((s, r)) => {
                    batch.push(s);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        match schedule.settle(&batch).await {
            Ok(results) => {
                for (reply, result) in replies.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(BackendError::Unavailable(e.to_string())));
                }
            }
        }
        batch.clear();
    }
}
