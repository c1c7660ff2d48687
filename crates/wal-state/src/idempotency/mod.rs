//! `Idempotency-Key` for backends that cannot check it in the same atomic
//! step as the append (Kafka, SQS): the key is claimed in Redis first as a
//! *pending* record, the message is published only if the claim is new, the
//! record is *confirmed* when the backend confirms the publish, and withdrawn
//! when the publish fails, so that the client's retry publishes again.
//!
//! A write that finds the key answers no more than what is known of the
//! first one ([`wal_core::idempotency::IdempotencyRecord::outcome_for`]): `TRUE` once confirmed,
//! `UNKNOWN` while pending, `KeyReused` when its request differs.
//!
//! The Redis Streams producer (`wal-backends`) claims and appends in one
//! script; it uses [`records::confirm`] once its replicas confirmed.
//!
//! Trade-offs (recorded in ARCHITECTURE.md): a publish whose outcome is
//! `UNKNOWN` (timeout) withdraws its claim, so a retry may publish a second
//! copy (delivered at least once, each copy with its own message id); a
//! claim left pending by a gateway that died mid-publish is taken over by a
//! retry of the same request after [`PENDING_TAKEOVER_AFTER`].

pub mod records;

use std::time::Duration;

use async_trait::async_trait;
use wal_core::backend::{
    BackendError, LogProducer, LogSettings, OutgoingMessage, PublishError, PublishOutcome,
};
use wal_core::keys::NamespaceKeys;
use wal_core::Durability;

use records::{Claim, ClaimRequest};
use wal_redis::RedisConnection;

/// How long a pending claim may stay unresolved before a retry of the same
/// request takes it over: well past the longest publish (Kafka's
/// `message.timeout.ms` is 10 s, SQS calls time out sooner).
pub const PENDING_TAKEOVER_AFTER: Duration = Duration::from_secs(120);

/// Wraps a [`LogProducer`] with Redis-held idempotency records.
pub struct RedisIdempotency<P> {
    conn: RedisConnection,
    inner: P,
}

impl<P: LogProducer> RedisIdempotency<P> {
    /// `inner`, with idempotency records kept in `conn`.
    pub fn new(conn: RedisConnection, inner: P) -> Self {
        Self { conn, inner }
    }

    /// The wrapped producer.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Claims the keys of `batch`: for each message, `None` when it has no
    /// key or the claim is ours, `Some(outcome)` when it must not be published.
    async fn claim(
        &self,
        settings: &LogSettings,
        batch: &[OutgoingMessage],
    ) -> Vec<Option<PublishOutcome>> {
        if batch.iter().all(|m| m.idempotency.is_none()) {
            return vec![None; batch.len()];
        }
        let keys = NamespaceKeys::new(&settings.namespace);
        let requests: Vec<ClaimRequest> = batch
            .iter()
            .filter_map(|m| {
                let claim = m.idempotency.as_ref()?;
                Some(ClaimRequest {
                    record_key: keys.idempotency(&claim.key),
                    message_id: m.envelope.id.to_string(),
                    fingerprint: claim.fingerprint.clone(),
                })
            })
            .collect();
        let replies = match self.conn.connected_client() {
            Ok(client) => {
                records::claim(
                    client,
                    &requests,
                    settings.dedup_window,
                    PENDING_TAKEOVER_AFTER,
                )
                .await
            }
            Err(e) => requests.iter().map(|_| Err(e.to_string())).collect(),
        };
        let mut replies = replies.into_iter();
        batch
            .iter()
            .map(|m| {
                let claim = m.idempotency.as_ref()?;
                match replies.next() {
                    Some(Ok(Claim::Claimed)) => None,
                    Some(Ok(Claim::Held(record))) => Some(record.outcome_for(&claim.fingerprint)),
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

    /// Confirms the claims of messages the backend confirmed and withdraws
    /// those of messages it did not take.
    async fn resolve(
        &self,
        settings: &LogSettings,
        confirmed: Vec<(String, String)>,
        failed: Vec<(String, String)>,
    ) {
        if confirmed.is_empty() && failed.is_empty() {
            return;
        }
        let Ok(client) = self.conn.connected_client() else {
            tracing::warn!("Redis unreachable: idempotency claims stay pending until taken over");
            return;
        };
        let keys = NamespaceKeys::new(&settings.namespace);
        let full = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(k, id)| (keys.idempotency(&k), id))
                .collect::<Vec<_>>()
        };
        records::confirm(client, full(confirmed)).await;
        records::withdraw(client, full(failed)).await;
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
                    .idempotency
                    .as_ref()
                    .map(|c| (c.key.clone(), m.envelope.id.to_string()));
                (m, claim)
            })
            .unzip();
        let mut published = if to_send.is_empty() {
            Vec::new().into_iter()
        } else {
            self.inner.publish(settings, to_send).await.into_iter()
        };
        let (mut confirmed, mut failed) = (Vec::new(), Vec::new());
        let mut claims = keys.into_iter();
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            let outcome = published.next().unwrap_or_else(|| {
                PublishOutcome::Failed(PublishError::Rejected("no outcome from the backend".into()))
            });
            if let Some(Some(claim)) = claims.next() {
                match &outcome {
                    PublishOutcome::Failed(_) => failed.push(claim),
                    o if o.durability() == Durability::True => confirmed.push(claim),
                    // Appended, not confirmed: a retry answers UNKNOWN.
                    _ => {}
                }
            }
            *slot = Some(outcome);
        }
        self.resolve(settings, confirmed, failed).await;
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
