//! The delayed and retry sets of a namespace, and activating their due
//! members.
//!
//! * `wal:{ns}:delayed` holds messages written with a delay (or read before
//!   their due time); `wal:{ns}:retry` holds targets waiting for their next
//!   attempt. Both are sorted sets scored by the due time in ms; a member is
//!   `<partition>:<message id>:<envelope json>` ([`schedule_member`]).
//! * Members get there through a settlement ([`crate::settle`]).
//! * [`RedisSchedule::activate`] moves due members back into their partition
//!   streams (`activate.lua`), atomically, so two workers can never both
//!   activate one; the answer carries the new head of the set so the caller
//!   can sleep exactly until it.

use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::{BackendError, Retention};
use wal_core::keys::NamespaceKeys;
use wal_redis::{backend_error, trim_args, LuaScript, RedisConnection};

/// Which sorted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleSet {
    /// Messages waiting for their first due time.
    Delayed,
    /// Targets waiting for their next attempt.
    Retry,
}

impl ScheduleSet {
    /// The set's key in namespace `keys`.
    pub fn key(self, keys: &NamespaceKeys) -> String {
        match self {
            ScheduleSet::Delayed => keys.delayed(),
            ScheduleSet::Retry => keys.retry(),
        }
    }

    /// The set's tag in `settle.lua`'s arguments.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            ScheduleSet::Delayed => "d",
            ScheduleSet::Retry => "r",
        }
    }
}

/// The member of a delayed / retry set for an envelope.
pub fn schedule_member(partition: u32, message_id: &str, envelope_json: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(envelope_json.len() + message_id.len() + 12);
    m.extend_from_slice(partition.to_string().as_bytes());
    m.push(b':');
    m.extend_from_slice(message_id.as_bytes());
    m.push(b':');
    m.extend_from_slice(envelope_json);
    m
}

/// What one activation pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activated {
    /// Members moved into streams.
    pub moved: usize,
    /// Due time of the set's new head, if the set is not empty.
    pub next_due_ms: Option<u64>,
    /// Members left in the set.
    pub remaining: u64,
}

/// Settles entries ([`crate::settle`]) and activates due members.
#[derive(Clone)]
pub struct RedisSchedule {
    pub(crate) conn: RedisConnection,
    pub(crate) settle: LuaScript,
    activate: LuaScript,
}

impl RedisSchedule {
    /// Bookkeeping over `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            settle: LuaScript::new(include_str!("scripts/settle.lua")),
            activate: LuaScript::new(include_str!("scripts/activate.lua")),
        }
    }

    /// Moves up to `max` members of `set` due at `now_ms` into the
    /// namespace's partition streams.
    pub async fn activate(
        &self,
        namespace: &str,
        set: ScheduleSet,
        partition_count: u32,
        retention: Retention,
        now_ms: u64,
        max: usize,
    ) -> Result<Activated, BackendError> {
        let client = self.conn.connected_client()?;
        let keys = NamespaceKeys::new(namespace);
        let mut script_keys: Vec<Value> = vec![set.key(&keys).into()];
        script_keys.extend((0..partition_count.max(1)).map(|p| keys.stream(p).into()));
        let (cap, threshold) = trim_args(retention, now_ms);
        let args: Vec<Value> = vec![
            now_ms.to_string().into(),
            max.max(1).to_string().into(),
            cap.into(),
            threshold.into(),
        ];
        let client = client.with_options(&self.conn.command_options());
        let reply = self
            .activate
            .call(&client, script_keys, args)
            .await
            .map_err(backend_error)?;
        parse_activated(reply)
    }
}

fn score_ms(v: &Value) -> Option<u64> {
    match v {
        Value::Double(f) => Some(*f as u64),
        Value::Integer(i) => Some(*i as u64),
        other => other
            .as_string()
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f as u64),
    }
}

fn parse_activated(v: Value) -> Result<Activated, BackendError> {
    let Value::Array(items) = v else {
        return Err(BackendError::Other("unexpected activate reply".into()));
    };
    let moved = items.first().and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
    let next_due_ms = items
        .get(1)
        .and_then(score_ms)
        .filter(|_| items.get(1).and_then(Value::as_string).as_deref() != Some("-1"));
    let remaining = items.get(2).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
    Ok(Activated {
        moved,
        next_due_ms,
        remaining,
    })
}
