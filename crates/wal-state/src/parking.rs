//! Messages parked while their target's circuit breaker is open.
//!
//! A worker whose breaker for a target is open does not attempt the
//! target's messages: it parks each one once (`SettleOp::Park`, in the same
//! settlement that acknowledges it) in `wal:{ns}:parked`, where it costs
//! nothing until it is released into the retry set — a few at a time as the
//! breaker's probes, all of them once it closes. What a parking pass costs
//! depends on the number of targets with parked messages, not on how many
//! are parked.

use std::sync::LazyLock;

use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::keys::NamespaceKeys;
use wal_redis::{backend_error, LuaScript, RedisConnection};

static UNPARK: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/unpark.lua")));

/// The parked messages of one namespace.
#[derive(Clone)]
pub struct Parking {
    conn: RedisConnection,
    keys: NamespaceKeys,
}

/// How many messages are parked: in all, and for each target asked about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParkedCounts {
    /// Every parked message of the namespace.
    pub total: u64,
    /// Those of each target asked about, in the order asked.
    pub per_target: Vec<u64>,
}

impl Parking {
    /// The parked messages of namespace `ns`.
    pub fn new(conn: RedisConnection, ns: &str) -> Self {
        Self {
            conn,
            keys: NamespaceKeys::new(ns),
        }
    }

    /// Counts parked messages, for `targets` one by one, in one round trip.
    pub async fn counts(&self, targets: &[&str]) -> Result<ParkedCounts, BackendError> {
        let client = self.conn.connected_client()?;
        let key = self.keys.parked();
        let total: u64 = client.zcard(&key).await.map_err(backend_error)?;
        if total == 0 || targets.is_empty() {
            return Ok(ParkedCounts {
                total,
                per_target: vec![0; targets.len()],
            });
        }
        let pipeline = client.pipeline();
        for t in targets {
            let (min, max) = range(t);
            let _: () = pipeline
                .zlexcount(&key, min, max)
                .await
                .map_err(backend_error)?;
        }
        let per_target: Vec<u64> = pipeline.all().await.map_err(backend_error)?;
        Ok(ParkedCounts { total, per_target })
    }

    /// The targets that have parked messages (one round trip per target).
    pub async fn targets(&self) -> Result<Vec<String>, BackendError> {
        let client = self.conn.connected_client()?;
        let key = self.keys.parked();
        let mut found = Vec::new();
        let mut from = "-".to_string();
        loop {
            let next: Vec<Value> = client
                .custom(
                    fred::cmd!("ZRANGE"),
                    vec![
                        Value::from(key.as_str()),
                        Value::from(from.as_str()),
                        Value::from("+"),
                        Value::from("BYLEX"),
                        Value::from("LIMIT"),
                        Value::from(0),
                        Value::from(1),
                    ],
                )
                .await
                .map_err(backend_error)?;
            let Some(member) = next.first().and_then(Value::as_bytes) else {
                return Ok(found);
            };
            let target = match member.iter().position(|b| *b == b'\n') {
                Some(i) => String::from_utf8_lossy(&member[..i]).into_owned(),
                None => return Ok(found),
            };
            from = format!("({target}\x0b");
            found.push(target);
        }
    }

    /// Releases up to `limit` of `target`'s parked messages into the retry
    /// set, due at `due_ms`; answers how many were released.
    pub async fn release(
        &self,
        target: &str,
        limit: usize,
        due_ms: u64,
    ) -> Result<usize, BackendError> {
        let client = self.conn.connected_client()?;
        let released = UNPARK
            .call(
                client,
                vec![self.keys.parked().into(), self.keys.retry().into()],
                vec![
                    target.into(),
                    (limit as i64).into(),
                    due_ms.to_string().into(),
                ],
            )
            .await
            .map_err(backend_error)?;
        Ok(released.as_u64().unwrap_or(0) as usize)
    }
}

/// The lexicographic range of `target`'s members.
fn range(target: &str) -> (String, String) {
    (format!("[{target}\n"), format!("({target}\x0b"))
}
