//! Per-namespace rate limits that hold across every gateway instance: the
//! state is a pair of token buckets in Redis, updated by one Lua script
//! (atomic, clocked by the Redis server).
//!
//! * minute bucket: capacity `burstLimit` (default `requestsPerMinute`),
//!   refilled at `requestsPerMinute / 60` per second;
//! * hour bucket: capacity and refill of `requestsPerHour`.
//!
//! A request is admitted only if every configured bucket holds its cost (one
//! token per message), and then takes it from each. When Redis cannot be
//! asked, the request is admitted (fail open) and a warning is logged: the
//! append itself will then fail with 503 anyway.

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use wal_backends::redis_streams::RedisConnection;
use wal_core::keys::NamespaceKeys;

const RATE_LIMIT_LUA: &str = include_str!("scripts/rate_limit.lua");

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
}

/// The shared limiter.
#[derive(Clone)]
pub struct RateLimiter {
    conn: RedisConnection,
    script: Script,
}

impl RateLimiter {
    /// A limiter keeping its state in `conn`'s Redis.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            script: Script::from_lua(RATE_LIMIT_LUA),
        }
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
                let mut sha_args: Vec<Value> = vec![
                    self.script.sha1().clone().into(),
                    1.into(),
                    key.clone().into(),
                ];
                sha_args.extend(args.iter().cloned());
                match client
                    .custom::<Value, Value>(fred::cmd!("EVALSHA"), sha_args)
                    .await
                {
                    Err(e) if e.details().starts_with("NOSCRIPT") => {
                        let mut eval_args: Vec<Value> =
                            vec![RATE_LIMIT_LUA.into(), 1.into(), key.clone().into()];
                        eval_args.extend(args);
                        client
                            .custom::<Value, Value>(fred::cmd!("EVAL"), eval_args)
                            .await
                    }
                    other => other,
                }
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
                tracing::warn!(?other, "unexpected rate-limit reply; admitting");
                Admission::Admitted
            }
            Err(e) => {
                tracing::warn!(error = %e, namespace = ns, "rate limiter unavailable; admitting");
                Admission::Admitted
            }
        }
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
