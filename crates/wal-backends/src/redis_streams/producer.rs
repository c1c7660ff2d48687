//! Appends envelopes to partition streams: plain `XADD` without an
//! idempotency key, the `append_once` script with one. All messages of one
//! call go out as one pipeline (one round trip); concurrent calls share the
//! pool's connections, where fred pipelines them further.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fred::error::{Error, ErrorKind};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::streams::{XCap, XCapTrim};
use fred::types::Value;
use wal_core::backend::{
    BackendError, LogProducer, LogSettings, OutgoingMessage, PublishError, PublishOutcome,
    Retention,
};
use wal_core::keys::NamespaceKeys;
use wal_core::{Durability, MessageId};

use super::connection::RedisConnection;

const APPEND_ONCE_LUA: &str = include_str!("scripts/append_once.lua");

/// The Redis Streams [`LogProducer`].
#[derive(Clone)]
pub struct RedisStreamProducer {
    conn: RedisConnection,
    append_once: Script,
}

impl RedisStreamProducer {
    /// A producer over `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            append_once: Script::from_lua(APPEND_ONCE_LUA),
        }
    }

    /// The connection this producer appends through.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }
}

/// `MAXLEN ~ n` or `MINID ~ <now - age>-0`.
pub(super) fn trim_args(retention: Retention, now_ms: u64) -> (&'static str, String) {
    match retention {
        Retention::MaxLen(n) => ("MAXLEN", n.to_string()),
        Retention::MaxAge(age) => {
            let min = now_ms.saturating_sub(age.as_millis() as u64);
            ("MINID", format!("{min}-0"))
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

fn is_noscript(e: &Error) -> bool {
    e.details().starts_with("NOSCRIPT")
}

/// Reads the reply of `append_once`: `{1, entry id}` or `{0, first id}`.
fn script_outcome(v: Value) -> PublishOutcome {
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
        Some((0, first)) => match first.parse::<MessageId>() {
            Ok(original) => PublishOutcome::Duplicate { original },
            Err(_) => PublishOutcome::Failed(PublishError::Rejected(
                "idempotency record holds an invalid message id".into(),
            )),
        },
        _ => PublishOutcome::Failed(PublishError::Rejected("unexpected script reply".into())),
    }
}

impl RedisStreamProducer {
    async fn append_pipeline(
        &self,
        client: &Client,
        settings: &LogSettings,
        batch: &[OutgoingMessage],
        use_sha: bool,
    ) -> Vec<Result<Value, Error>> {
        let keys = NamespaceKeys::new(&settings.namespace);
        let (cap_kind, threshold) = trim_args(settings.retention, now_ms());
        let dedup_ms = settings.dedup_window.as_millis().max(1).to_string();
        let pipeline = client.pipeline();
        for msg in batch {
            let stream = keys.stream(msg.envelope.partition);
            let id = msg.envelope.id.to_string();
            let body = msg.envelope.encode();
            let queued: Result<(), Error> = match &msg.idempotency_key {
                None => {
                    let cap = XCap::try_from((cap_kind, XCapTrim::AlmostExact, threshold.as_str()));
                    match cap {
                        Ok(cap) => {
                            pipeline
                                .xadd::<(), _, _, _, _>(
                                    stream,
                                    false,
                                    cap,
                                    "*",
                                    vec![("id", id.into_bytes()), ("env", body)],
                                )
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
                Some(key) => {
                    // EVALSHA/EVAL as raw commands: fred's pipeline has no Lua interface.
                    let (cmd, script): (_, Value) = if use_sha {
                        (
                            fred::cmd!("EVALSHA"),
                            self.append_once.sha1().clone().into(),
                        )
                    } else {
                        (fred::cmd!("EVAL"), APPEND_ONCE_LUA.into())
                    };
                    let args: Vec<Value> = vec![
                        script,
                        2.into(),
                        stream.into(),
                        keys.idempotency(key).into(),
                        cap_kind.into(),
                        threshold.as_str().into(),
                        id.into(),
                        Value::Bytes(body.into()),
                        dedup_ms.as_str().into(),
                    ];
                    pipeline.custom::<(), Value>(cmd, args).await
                }
            };
            if let Err(e) = queued {
                tracing::error!(error = %e, "could not queue a command in the pipeline");
            }
        }
        pipeline.try_all::<Value>().await
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
        let client = match self.conn.connected_client() {
            Ok(c) => c,
            Err(e) => {
                let err = PublishError::Unavailable(e.to_string());
                return batch
                    .iter()
                    .map(|_| PublishOutcome::Failed(err.clone()))
                    .collect();
            }
        };
        let overall = self.conn.command_timeout() + Duration::from_millis(500);
        let replies = match tokio::time::timeout(
            overall,
            self.append_pipeline(client, settings, &batch, true),
        )
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

        let mut outcomes: Vec<PublishOutcome> = Vec::with_capacity(batch.len());
        let mut reload: Vec<usize> = Vec::new();
        for (i, (msg, reply)) in batch.iter().zip(replies).enumerate() {
            let outcome = match reply {
                Ok(v) if msg.idempotency_key.is_some() => script_outcome(v),
                Ok(v) => match v.as_string() {
                    Some(entry) => PublishOutcome::Appended {
                        position: entry,
                        durability: Durability::True,
                    },
                    None => PublishOutcome::Failed(PublishError::Rejected(
                        "unexpected XADD reply".into(),
                    )),
                },
                Err(e) if is_noscript(&e) => {
                    reload.push(i);
                    PublishOutcome::Failed(PublishError::Rejected("script not loaded".into()))
                }
                Err(e) => PublishOutcome::Failed(publish_error(&e)),
            };
            outcomes.push(outcome);
        }

        if !reload.is_empty() {
            // NOSCRIPT means the script did not run: sending it with EVAL is safe.
            let again: Vec<OutgoingMessage> = reload.iter().map(|&i| batch[i].clone()).collect();
            let replies = self.append_pipeline(client, settings, &again, false).await;
            for (&i, reply) in reload.iter().zip(replies) {
                outcomes[i] = match reply {
                    Ok(v) => script_outcome(v),
                    Err(e) => PublishOutcome::Failed(publish_error(&e)),
                };
            }
        }

        if settings.wait_replicas > 0
            && outcomes
                .iter()
                .any(|o| matches!(o, PublishOutcome::Appended { .. }))
        {
            let durability = self.wait_replicas(client, settings).await;
            for o in &mut outcomes {
                if let PublishOutcome::Appended { durability: d, .. } = o {
                    *d = durability;
                }
            }
        }
        outcomes
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.conn.ping().await
    }
}
