//! Rate limits that hold across every gateway instance, kept in Redis and
//! updated by one Lua script each (atomic, clocked by the Redis server).
//!
//! ## Per-namespace write limits: [`RateLimiter`] (`rate_limit.lua`)
//!
//! The state is a pair of token buckets in `wal:{ns}:rl`:
//!
//! * minute bucket: capacity `burstLimit` (default `requestsPerMinute`),
//!   refilled at `requestsPerMinute / 60` per second;
//! * hour bucket: capacity and refill of `requestsPerHour`.
//!
//! A request is admitted only if every configured bucket holds its cost (one
//! token per message), and then takes it from each. A request costing more
//! than a bucket holds ([`Limits::largest_admissible`]) can never be
//! admitted. When Redis cannot be asked the answer is
//! [`Admission::Unknown`] and the gateway decides: a Redis Streams
//! namespace's append fails then anyway, so it goes ahead; a Kafka or SQS
//! namespace, whose appends do not need Redis, refuses the write rather
//! than let it pass unlimited.
//!
//! ## Fixed windows: [`take_window_permit`] (`fixed_window.lua`)
//!
//! A counter that admits `n` calls per window, e.g. requeue-by-filter calls
//! per namespace ([`crate::DlqStore::take_requeue_permit`]).

use std::time::Duration;

use std::sync::LazyLock;

use fred::prelude::*;
use fred::types::Value;
use wal_core::keys::NamespaceKeys;
use wal_redis::{LuaScript, RedisConnection};

static RATE_LIMIT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/rate_limit.lua")));
static WINDOW: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/fixed_window.lua")));

/// A namespace's limits, in requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Sustained rate per minute.
    pub per_minute: Option<u32>,
    /// Sustained rate per hour.
    pub per_hour: Option<u32>,
    /// Most requests at once (minute bucket capacity).
    pub burst: Option<u32>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.per_minute.is_some() || self.per_hour.is_some()
    }

    /// The largest cost the buckets can ever admit at once (the smallest
    /// capacity), if any limit is set: a request costing more is refused
    /// for good, not throttled.
    pub fn largest_admissible(&self) -> Option<u32> {
        self.buckets()
            .iter()
            .filter(|(capacity, _)| *capacity > 0.0)
            .map(|(capacity, _)| *capacity as u32)
            .min()
    }

    /// `(capacity, refill per ms)` of both buckets; capacity 0 = absent.
    fn buckets(&self) -> [(f64, f64); 2] {
        let minute = match self.per_minute {
            Some(rpm) => (
                f64::from(self.burst.unwrap_or(rpm).max(1)),
                f64::from(rpm) / 60_000.0,
            ),
            None => (0.0, 0.0),
        };
        let hour = match self.per_hour {
            Some(rph) => (f64::from(rph), f64::from(rph) / 3_600_000.0),
            None => (0.0, 0.0),
        };
        [minute, hour]
    }
}

/// The answer of the limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Admitted,
    /// Refused; retry after this long.
    Refused(Duration),
    /// Redis could not be asked: the caller decides (see the module docs).
    Unknown,
}

/// The shared limiter.
#[derive(Clone)]
pub struct RateLimiter {
    conn: RedisConnection,
}

impl RateLimiter {
    /// A limiter keeping its state in `conn`'s Redis.
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }

    /// Takes `cost` tokens for namespace `ns` or says how long to wait.
    pub async fn admit(&self, ns: &str, limits: Limits, cost: u32) -> Admission {
        if !limits.is_limited() || cost == 0 {
            return Admission::Admitted;
        }
        let [(c0, r0), (c1, r1)] = limits.buckets();
        let expiry_ms = [(c0, r0), (c1, r1)]
            .iter()
            .filter(|(c, r)| *c > 0.0 && *r > 0.0)
            .map(|(c, r)| (c / r).ceil() as u64)
            .max()
            .unwrap_or(60_000)
            .max(1_000);
        let key = NamespaceKeys::new(ns).rate_limit();
        let args: Vec<Value> = vec![
            cost.to_string().into(),
            c0.to_string().into(),
            r0.to_string().into(),
            c1.to_string().into(),
            r1.to_string().into(),
            expiry_ms.to_string().into(),
        ];
        let reply: Result<Value, fred::error::Error> = match self.conn.connected_client() {
            Ok(client) => {
                let client = client.with_options(&self.conn.command_options());
                RATE_LIMIT.call(&client, vec![key.into()], args).await
            }
            Err(e) => Err(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                e.to_string(),
            )),
        };
        match reply {
            Ok(Value::Array(v)) if v.len() == 2 => match (v[0].as_i64(), v[1].as_i64()) {
                (Some(0), Some(wait_ms)) => {
                    Admission::Refused(Duration::from_millis(wait_ms.max(1) as u64))
                }
                _ => Admission::Admitted,
            },
            Ok(other) => {
                tracing::warn!(?other, namespace = ns, "unexpected rate-limit reply");
                Admission::Unknown
            }
            Err(e) => {
                tracing::warn!(error = %e, namespace = ns, "rate limiter unavailable");
                Admission::Unknown
            }
        }
    }
}

/// Answer of a fixed window ([`take_window_permit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead.
    Granted,
    /// Refused; the window ends after this long.
    Refused(Duration),
}

/// Why a fixed window could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// Redis could not be asked, or answered with an error.
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    /// Redis answered something this code does not understand.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
}

/// Takes one call from the fixed window counted at `key`: `per_window`
/// calls per `window`, shared by everyone who uses the key.
pub async fn take_window_permit(
    client: &Client,
    key: String,
    per_window: u32,
    window: Duration,
) -> Result<Permit, RateLimitError> {
    let reply = WINDOW
        .call(
            client,
            vec![key.into()],
            vec![
                per_window.to_string().into(),
                window.as_millis().max(1).to_string().into(),
            ],
        )
        .await?;
    match &reply {
        Value::Array(v) if v.len() == 2 => match (v[0].as_i64(), v[1].as_i64()) {
            (Some(1), _) => Ok(Permit::Granted),
            (Some(0), Some(wait)) => Ok(Permit::Refused(Duration::from_millis(wait.max(1) as u64))),
            _ => Err(RateLimitError::UnexpectedReply(format!("{reply:?}"))),
        },
        _ => Err(RateLimitError::UnexpectedReply(format!("{reply:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_defaults_to_the_minute_rate() {
        let l = Limits {
            per_minute: Some(600),
            per_hour: None,
            burst: None,
        };
        let [(c, r), (c1, _)] = l.buckets();
        assert_eq!(c, 600.0);
        assert!((r - 0.01).abs() < 1e-12);
        assert_eq!(c1, 0.0);
        let l = Limits {
            per_minute: Some(600),
            per_hour: Some(1000),
            burst: Some(20),
        };
        assert_eq!(l.buckets()[0].0, 20.0);
        assert_eq!(l.buckets()[1].0, 1000.0);
    }
}
