//! Appends envelopes to partition streams: plain `XADD` without an
//! idempotency key, the `append_once` script with one. All messages of one
//! call go out as one pipeline (one round trip); concurrent calls share the
//! pool's connections, where fred pipelines them further.
//!
//! An append that waits for replicas (`waitReplicas`) goes out with its
//! `WAIT` on a connection of its own ([`WaitConnections`]): `WAIT` blocks
//! the connection it is sent on until the replicas confirm or it times out,
//! and on a shared connection every other namespace's appends, rate-limit
//! and claim commands would queue behind it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fred::error::{Error, ErrorKind};
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::{
    BackendError, IdempotencyClaim, LogProducer, LogSettings, OutgoingMessage, PublishError,
    PublishOutcome,
};
use wal_core::idempotency::{IdempotencyRecord, RecordState};
use wal_core::keys::NamespaceKeys;
use wal_core::Durability;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wal_redis::{backend_error, run_pipeline, trim_args, Command, LuaScript, RedisConnection};

/// Most connections held for appends that wait for replicas; more such
/// appends at once wait for one to be free.
const MAX_WAIT_CONNECTIONS: usize = 32;

/// The Redis Streams [`LogProducer`].
#[derive(Clone)]
pub struct RedisStreamProducer {
    conn: RedisConnection,
    append_once: LuaScript,
    waiters: Arc<WaitConnections>,
}

impl RedisStreamProducer {
    /// A producer over `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            waiters: Arc::new(WaitConnections::new(conn.clone())),
            conn,
            append_once: LuaScript::new(include_str!("scripts/append_once.lua")),
        }
    }

    /// The connection this producer appends through.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }
}

/// Dedicated connections for appends that wait for replicas: each such
/// append and its `WAIT` hold one to themselves; idle ones are kept for the
/// next, and closed with the producer.
struct WaitConnections {
    conn: RedisConnection,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

impl WaitConnections {
    fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_WAIT_CONNECTIONS)),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connected client of our own (opened when none is idle).
    async fn checkout(&self) -> Result<(Client, OwnedSemaphorePermit), BackendError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BackendError::Unavailable("producer closed".into()))?;
        let reuse = {
            let mut idle = self.idle();
            std::iter::from_fn(|| idle.pop()).find(|c| c.is_connected())
        };
        let client = match reuse {
            Some(c) => c,
            None => {
                self.conn.connected_client()?;
                let client = self.conn.pool().next().clone_new();
                client.init().await.map_err(backend_error)?;
                client
            }
        };
        Ok((client, permit))
    }

    /// Gives `client` back for the next append.
    fn checkin(&self, client: Client) {
        self.idle().push(client);
    }
}

impl Drop for WaitConnections {
    fn drop(&mut self) {
        let clients: Vec<Client> = self.idle().drain(..).collect();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for c in clients {
                    let _ = c.quit().await;
                }
            });
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The publish error for a failed command that was sent on a connection
/// that looked healthy: a timeout or a broken connection leaves the outcome
/// unknown; an error reply from Redis means nothing was written.
fn publish_error(e: &Error) -> PublishError {
    match e.kind() {
        ErrorKind::Timeout | ErrorKind::IO | ErrorKind::Canceled => {
            PublishError::Timeout(e.to_string())
        }
        ErrorKind::Backpressure => PublishError::Unavailable(e.to_string()),
        _ => PublishError::Rejected(e.to_string()),
    }
}

/// Reads the reply of `append_once`: `{1, entry id}` or `{0, record}`.
/// A duplicate of a write still waiting for its replicas is `Unknown` here;
/// the `WAIT` that follows may make it `True`.
fn script_outcome(v: Value, claim: &IdempotencyClaim, waits: bool) -> PublishOutcome {
    let parsed = match v {
        Value::Array(items) if items.len() == 2 => {
            let flag = items[0].as_i64();
            let text = items[1].as_string();
            flag.zip(text)
        }
        _ => None,
    };
    match parsed {
        Some((1, entry)) => PublishOutcome::Appended {
            position: entry,
            durability: Durability::True,
        },
        Some((0, raw)) => match IdempotencyRecord::decode(&raw) {
            // Pending, and replicas are no longer asked for: the primary has it.
            Some(record) if record.state == RecordState::Pending && !waits => {
                match record.outcome_for(&claim.fingerprint) {
                    PublishOutcome::Duplicate { original, .. } => PublishOutcome::Duplicate {
                        original,
                        durability: Durability::True,
                    },
                    other => other,
                }
            }
            Some(record) => record.outcome_for(&claim.fingerprint),
            None => PublishOutcome::Failed(PublishError::Rejected(
                "unreadable idempotency record".into(),
            )),
        },
        _ => PublishOutcome::Failed(PublishError::Rejected("unexpected script reply".into())),
    }
}

impl RedisStreamProducer {
    /// One command per message, in one pipeline: `XADD` (trimming as the
    /// namespace's retention says), or `append_once.lua` with a key.
    async fn append_pipeline(
        &self,
        client: &Client,
        settings: &LogSettings,
        batch: &[OutgoingMessage],
    ) -> Vec<Result<Value, Error>> {
        let keys = NamespaceKeys::new(&settings.namespace);
        let (cap_kind, threshold) = trim_args(settings.retention, now_ms());
        let dedup_ms = settings.dedup_window.as_millis().max(1).to_string();
        let waits = if settings.wait_replicas > 0 { "1" } else { "0" };
        let items = batch
            .iter()
            .map(|msg| {
                let stream = keys.stream(msg.envelope.partition);
                let id = msg.envelope.id.to_string();
                let body = Value::Bytes(msg.envelope.encode().into());
                vec![match &msg.idempotency {
                    None => Command::plain(
                        "XADD",
                        vec![
                            stream.into(),
                            cap_kind.into(),
                            "~".into(),
                            threshold.as_str().into(),
                            "*".into(),
                            "id".into(),
                            id.into(),
                            "env".into(),
                            body,
                        ],
                    ),
                    Some(claim) => Command::script(
                        &self.append_once,
                        vec![stream.into(), keys.idempotency(&claim.key).into()],
                        vec![
                            cap_kind.into(),
                            threshold.as_str().into(),
                            id.into(),
                            body,
                            dedup_ms.as_str().into(),
                            claim.fingerprint.as_str().into(),
                            waits.into(),
                        ],
                    ),
                }]
            })
            .collect();
        run_pipeline(client, items).await
    }

    /// Sends `WAIT n timeout` on `client`'s connection: `Unknown` unless
    /// at least `n` replicas confirmed every earlier write in time.
    async fn wait_replicas(&self, client: &Client, settings: &LogSettings) -> Durability {
        let timeout_ms = settings.wait_timeout.as_millis() as u64;
        let opts = Options {
            max_attempts: Some(1),
            timeout: Some(settings.wait_timeout + Duration::from_secs(1)),
            ..Default::default()
        };
        let reply: Result<i64, Error> = client
            .with_options(&opts)
            .custom(
                fred::cmd!("WAIT"),
                vec![
                    Value::from(settings.wait_replicas as i64),
                    Value::from(timeout_ms as i64),
                ],
            )
            .await;
        match reply {
            Ok(n) if n >= i64::from(settings.wait_replicas) => Durability::True,
            Ok(n) => {
                tracing::warn!(
                    confirmed = n,
                    wanted = settings.wait_replicas,
                    "replicas did not confirm in time"
                );
                Durability::Unknown
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAIT failed");
                Durability::Unknown
            }
        }
    }
}

#[async_trait]
impl LogProducer for RedisStreamProducer {
    #[tracing::instrument(skip_all, fields(namespace = %settings.namespace, batch = batch.len()))]
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        if settings.wait_replicas > 0 {
            return match self.waiters.checkout().await {
                Ok((client, _permit)) => {
                    let outcomes = self.publish_on(&client, settings, batch).await;
                    self.waiters.checkin(client);
                    outcomes
                }
                Err(e) => unavailable(&batch, &e),
            };
        }
        match self.conn.connected_client() {
            Ok(client) => self.publish_on(client, settings, batch).await,
            Err(e) => unavailable(&batch, &e),
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.conn.ping().await
    }
}

/// `FALSE` for every message: Redis could not be asked.
fn unavailable(batch: &[OutgoingMessage], e: &BackendError) -> Vec<PublishOutcome> {
    let err = PublishError::Unavailable(e.to_string());
    batch
        .iter()
        .map(|_| PublishOutcome::Failed(err.clone()))
        .collect()
}

impl RedisStreamProducer {
    /// Appends `batch` on `client` (and waits for replicas there, when the
    /// namespace asks for them).
    async fn publish_on(
        &self,
        client: &Client,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        let overall = self.conn.command_timeout() + Duration::from_millis(500);
        let replies =
            match tokio::time::timeout(overall, self.append_pipeline(client, settings, &batch))
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    let err = PublishError::Timeout("no reply from Redis in time".into());
                    return batch
                        .iter()
                        .map(|_| PublishOutcome::Failed(err.clone()))
                        .collect();
                }
            };

        let waits = settings.wait_replicas > 0;
        let mut outcomes: Vec<PublishOutcome> = batch
            .iter()
            .zip(replies)
            .map(|(msg, reply)| match (reply, &msg.idempotency) {
                (Ok(v), Some(claim)) => script_outcome(v, claim, waits),
                (Ok(v), None) => match v.as_string() {
                    Some(entry) => PublishOutcome::Appended {
                        position: entry,
                        durability: Durability::True,
                    },
                    None => PublishOutcome::Failed(PublishError::Rejected(
                        "unexpected XADD reply".into(),
                    )),
                },
                (Err(e), _) => PublishOutcome::Failed(publish_error(&e)),
            })
            .collect();

        // Appends, and duplicates of appends, that replicas must confirm.
        let awaiting: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                matches!(
                    o,
                    PublishOutcome::Appended { .. }
                        | PublishOutcome::Duplicate {
                            durability: Durability::Unknown,
                            ..
                        }
                )
            })
            .map(|(i, _)| i)
            .collect();
        if waits && !awaiting.is_empty() {
            let durability = self.wait_replicas(client, settings).await;
            let keys = NamespaceKeys::new(&settings.namespace);
            let mut confirmed = Vec::new();
            for &i in &awaiting {
                match &mut outcomes[i] {
                    PublishOutcome::Appended { durability: d, .. } => *d = durability,
                    PublishOutcome::Duplicate { durability: d, .. } => *d = durability,
                    _ => {}
                }
                if let (Durability::True, Some(claim)) = (durability, &batch[i].idempotency) {
                    let id = match &outcomes[i] {
                        PublishOutcome::Duplicate { original, .. } => original.to_string(),
                        _ => batch[i].envelope.id.to_string(),
                    };
                    confirmed.push((keys.idempotency(&claim.key), id));
                }
            }
            wal_state::idempotency::records::confirm(client, confirmed).await;
        }
        outcomes
    }
}
