//! `Idempotency-Key` for backends that cannot check it in the same atomic
//! step as the append (Kafka, SQS): the key is claimed in Redis first
//! (`SET key <message id> NX PX <window> GET`), the message is published
//! only if the claim is new, and the claim is withdrawn when the publish
//! fails, so that the client's retry publishes again.
//!
//! The Redis Streams producer (`wal-backends`) does not need this: its
//! `append_once` script claims and appends atomically.
//!
//! Trade-off (recorded in ARCHITECTURE.md): between a claim and its
//! withdrawal, a concurrent write with the same key is told `Duplicate` of a
//! message that may end up not published; a publish whose outcome is
//! `UNKNOWN` also withdraws the claim, so a retry may publish a second copy
//! (delivered at least once, each copy with its own message id).

use std::sync::LazyLock;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use wal_core::backend::{
    BackendError, LogProducer, LogSettings, OutgoingMessage, PublishError, PublishOutcome,
};
use wal_core::keys::NamespaceKeys;
use wal_core::MessageId;

use wal_redis::{LuaScript, RedisConnection};

static WITHDRAW: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/idempotency_withdraw.lua")));

/// Wraps a [`LogProducer`] with Redis-held idempotency keys.
pub struct RedisIdempotency<P> {
    conn: RedisConnection,
    inner: P,
}

impl<P: LogProducer> RedisIdempotency<P> {
    /// `inner`, with idempotency keys kept in `conn`.
    pub fn new(conn: RedisConnection, inner: P) -> Self {
        Self { conn, inner }
    }

    /// The wrapped producer.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Claims the keys of `batch`: for each message, `None` when it has no
    /// key or the claim is new, `Some(outcome)` when it must not be published.
    async fn claim(
        &self,
        settings: &LogSettings,
        batch: &[OutgoingMessage],
    ) -> Vec<Option<PublishOutcome>> {
        if batch.iter().all(|m| m.idempotency_key.is_none()) {
            return vec![None; batch.len()];
        }
        let keys = NamespaceKeys::new(&settings.namespace);
        let window = settings.dedup_window.as_millis().max(1) as i64;
        let client = match self.conn.connected_client() {
            Ok(c) => c,
            Err(e) => {
                let err =
                    PublishError::Unavailable(format!("cannot check the Idempotency-Key: {e}"));
                return batch
                    .iter()
                    .map(|m| {
                        m.idempotency_key
                            .as_ref()
                            .map(|_| PublishOutcome::Failed(err.clone()))
                    })
                    .collect();
            }
        };
        let pipeline = client.pipeline();
        for m in batch {
            if let Some(key) = &m.idempotency_key {
                let _: Result<(), _> = pipeline
                    .set::<(), _, _>(
                        keys.idempotency(key),
                        m.envelope.id.to_string(),
                        Some(Expiration::PX(window)),
                        Some(SetOptions::NX),
                        true,
                    )
                    .await;
            }
        }
        let replies: Vec<Result<Option<String>, fred::error::Error>> = pipeline.try_all().await;
        let mut replies = replies.into_iter();
        batch
            .iter()
            .map(|m| {
                m.idempotency_key.as_ref()?;
                match replies.next() {
                    Some(Ok(None)) => None,
                    Some(Ok(Some(previous))) => Some(match previous.parse::<MessageId>() {
                        Ok(original) => PublishOutcome::Duplicate { original },
                        Err(_) => PublishOutcome::Failed(PublishError::Rejected(
                            "idempotency record holds an invalid message id".into(),
                        )),
                    }),
                    Some(Err(e)) => Some(PublishOutcome::Failed(PublishError::Unavailable(
                        format!("cannot check the Idempotency-Key: {e}"),
                    ))),
                    None => Some(PublishOutcome::Failed(PublishError::Unavailable(
                        "no reply for the Idempotency-Key".into(),
                    ))),
                }
            })
            .collect()
    }

    /// Withdraws the claims of messages whose publish failed.
    async fn withdraw(&self, settings: &LogSettings, failed: Vec<(String, String)>) {
        if failed.is_empty() {
            return;
        }
        let Ok(client) = self.conn.connected_client() else {
            return;
        };
        let keys = NamespaceKeys::new(&settings.namespace);
        // Only our own claim: the script compares the message id before deleting.
        for (key, id) in failed {
            let r = WITHDRAW
                .call(client, vec![keys.idempotency(&key).into()], vec![id.into()])
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not withdraw an idempotency claim; a retry with this key answers duplicate until it expires");
            }
        }
    }
}

#[async_trait]
impl<P: LogProducer> LogProducer for RedisIdempotency<P> {
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        let claims = self.claim(settings, &batch).await;
        let mut outcomes: Vec<Option<PublishOutcome>> = claims;
        let (to_send, keys): (Vec<OutgoingMessage>, Vec<Option<(String, String)>>) = batch
            .into_iter()
            .zip(&outcomes)
            .filter(|(_, decided)| decided.is_none())
            .map(|(m, _)| {
                let claim = m
                    .idempotency_key
                    .clone()
                    .map(|k| (k, m.envelope.id.to_string()));
                (m, claim)
            })
            .unzip();
        let mut published = self.inner.publish(settings, to_send).await.into_iter();
        let mut failed_claims = Vec::new();
        let mut claims = keys.into_iter();
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            let outcome = published.next().unwrap_or_else(|| {
                PublishOutcome::Failed(PublishError::Rejected("no outcome from the backend".into()))
            });
            if let (PublishOutcome::Failed(_), Some(Some(claim))) = (&outcome, claims.next()) {
                failed_claims.push(claim);
            }
            *slot = Some(outcome);
        }
        self.withdraw(settings, failed_claims).await;
        outcomes
            .into_iter()
            .map(|o| o.expect("every slot is filled"))
            .collect()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.inner.ping().await
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        self.inner.max_entry_bytes()
    }
}
