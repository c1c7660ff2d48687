//! `cache` targets: Redis through [`fred`], one client per URL shared by
//! every target that uses it.
//!
//! The key is the request's `keyPrefix` (or the configured one) followed by
//! the payload's `keyField` value (a string as is, a number as written), or
//! by the message id when the payload has no such field. A request's
//! `keyPrefix` may only extend the configured one (it must start with it):
//! a writer can never reach keys outside the prefix the admin configured.
//!
//! * `set`: `SET key <payload bytes> [EX ttlSeconds]`.
//! * `del`: `DEL key` (a missing key is fine).
//! * `hset`: `HSET key field value …` with the payload object's fields
//!   (strings as they are, other values as JSON text), merged into the hash;
//!   with `ttlSeconds`, `HSET` and `EXPIRE` run in one script, atomically.
//!
//! The client connects on first use (a delivery waits for that attempt,
//! within its timeout) and reconnects by itself after losing a connection;
//! a command fails at once while it is disconnected (the attempt is retried
//! later), and every attempt is bounded by the target's timeout.

mod classify;
mod key;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::config::{ConnectionConfig, ReconnectPolicy, TcpConfig};
use fred::types::ConnectHandle;
use tokio::time::{timeout_at, Instant};
use wal_namespace::targets::{CacheOperation, CacheTargetConfig};

use crate::{payload, Delivery, DeliveryOutcome, Target};

/// `HSET` of every field pair in `ARGV[2..]`, then `EXPIRE` `ARGV[1]` seconds.
const HSET_EXPIRE_LUA: &str = "for i = 2, #ARGV, 2 do \
redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end \
redis.call('EXPIRE', KEYS[1], ARGV[1]) return 1";

/// Longest wait for one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a delivery waiting for a connection looks whether it is up.
const CONNECT_POLL: Duration = Duration::from_millis(2);

/// One Redis server (or cluster) and its client.
pub(crate) struct RedisCache {
    client: Client,
    /// The task driving the connection, once started.
    task: Mutex<Option<ConnectHandle>>,
}

impl RedisCache {
    /// A client for `url` that connects on first use. The error never
    /// contains the URL.
    pub(crate) fn new(url: &str) -> Result<Self, String> {
        let mut config = Config::from_url(url).map_err(|_| "not a valid Redis URL".to_string())?;
        // A failed first connection ends the connection task (the next
        // delivery starts another); a connection lost later is re-established
        // by the reconnect policy. Commands fail fast while disconnected.
        config.fail_fast = true;
        let client = Builder::from_config(config)
            .with_connection_config(|c: &mut ConnectionConfig| {
                c.connection_timeout = CONNECT_TIMEOUT;
                c.internal_command_timeout = CONNECT_TIMEOUT;
                c.max_command_attempts = 1;
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..Default::default()
                };
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build()
            .map_err(|e| format!("cannot build the Redis client: {}", e.kind().to_str()))?;
        Ok(Self {
            client,
            task: Mutex::new(None),
        })
    }

    /// Starts connecting when no connection task runs (first use, or after
    /// a first connection failed), then waits until connected, until that
    /// attempt fails, or until `deadline`. While a connection that was up is
    /// being re-established, returns at once: the command fails fast.
    async fn ready(&self, deadline: Instant) -> Result<(), DeliveryOutcome> {
        if self.client.is_connected() {
            return Ok(());
        }
        let started = {
            let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
            let idle = task.as_ref().is_none_or(|t| t.is_finished());
            if idle {
                *task = Some(self.client.connect());
            }
            idle
        };
        loop {
            if self.client.is_connected() {
                return Ok(());
            }
            let finished = {
                let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
                match task.as_ref() {
                    Some(t) if t.is_finished() => Some(task.take()),
                    Some(_) => None,
                    // Another delivery saw this attempt fail.
                    None => Some(None),
                }
            };
            if let Some(task) = finished {
                let error = match task {
                    Some(task) => task.await.ok().and_then(Result::err),
                    None => None,
                };
                return Err(error.map_or_else(
                    || DeliveryOutcome::retry("Redis: not connected"),
                    |e| classify::classify(&e),
                ));
            }
            if !started && self.client.state() != ClientState::Connecting {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DeliveryOutcome::retry("timed out connecting to Redis"));
            }
            tokio::time::sleep(CONNECT_POLL).await;
        }
    }

    /// Closes the connection (a later delivery connects again).
    pub(crate) async fn quit(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            if self.client.is_connected() {
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.client.quit()).await;
            }
            // Also stops reconnecting to a server that is down.
            task.abort();
        }
    }
}

/// A cache target.
pub(crate) struct CacheTarget {
    cache: Arc<RedisCache>,
    key_prefix: String,
    key_field: String,
    ttl_seconds: Option<u64>,
    operation: CacheOperation,
    timeout: Duration,
}

impl CacheTarget {
    /// A target writing to `cache` as `config` says.
    pub(crate) fn new(cache: Arc<RedisCache>, config: &CacheTargetConfig) -> Self {
        Self {
            cache,
            key_prefix: config.key_prefix.clone(),
            key_field: config.key_field().to_string(),
            ttl_seconds: config.ttl_seconds,
            operation: config.operation,
            timeout: Duration::from_millis(config.timeout_ms),
        }
    }

    async fn run(&self, d: &Delivery<'_>, deadline: Instant) -> Result<(), DeliveryOutcome> {
        let env = d.envelope;
        let fields = payload::fields(&env.payload).ok();
        if fields.is_none() && self.operation == CacheOperation::Hset {
            return Err(DeliveryOutcome::permanent(
                "hset needs a JSON object payload",
            ));
        }
        let prefix = match d.target.key_prefix.as_deref() {
            None => self.key_prefix.as_str(),
            Some(p) if p.starts_with(&self.key_prefix) => p,
            Some(p) => {
                return Err(DeliveryOutcome::permanent(format!(
                    "keyPrefix `{p}` does not extend the target's configured prefix `{}`",
                    self.key_prefix
                )))
            }
        };
        let key = key::cache_key(
            prefix,
            fields.as_ref(),
            &self.key_field,
            &env.id.to_string(),
        )
        .map_err(DeliveryOutcome::permanent)?;
        self.cache.ready(deadline).await?;
        let options = Options {
            max_attempts: Some(1),
            fail_fast: true,
            timeout: Some(deadline.saturating_duration_since(Instant::now())),
            ..Default::default()
        };
        let client = self.cache.client.with_options(&options);
        let result = match self.operation {
            CacheOperation::Set => {
                let expire = self.ttl_seconds.map(|t| Expiration::EX(ttl(t)));
                client
                    .set::<(), _, _>(key, env.payload.get(), expire, None, false)
                    .await
            }
            CacheOperation::Del => client.del::<(), _>(key).await,
            CacheOperation::Hset => {
                let pairs = key::hash_fields(fields.as_ref().expect("checked above"));
                if pairs.is_empty() {
                    return Err(DeliveryOutcome::permanent("hset of an empty object"));
                }
                match self.ttl_seconds {
                    None => client.hset::<(), _, _>(key, pairs).await,
                    Some(t) => {
                        let mut args = Vec::with_capacity(1 + 2 * pairs.len());
                        args.push(ttl(t).to_string());
                        for (f, v) in pairs {
                            args.push(f);
                            args.push(v);
                        }
                        client.eval::<(), _, _, _>(HSET_EXPIRE_LUA, key, args).await
                    }
                }
            }
        };
        result.map_err(|e| classify::classify(&e))
    }
}

/// Seconds as Redis takes them.
fn ttl(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[async_trait]
impl Target for CacheTarget {
    async fn deliver(&self, d: Delivery<'_>) -> DeliveryOutcome {
        let deadline = Instant::now() + self.timeout;
        match timeout_at(deadline, self.run(&d, deadline)).await {
            Ok(Ok(())) => DeliveryOutcome::Delivered,
            Ok(Err(outcome)) => outcome,
            Err(_) => {
                DeliveryOutcome::retry(format!("timed out after {} ms", self.timeout.as_millis()))
            }
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
