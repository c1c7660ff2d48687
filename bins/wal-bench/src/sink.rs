//! The HTTP sink (`wal-bench-sink`): the delivery target of the benchmark.
//!
//! Every `POST` (any path except `/reset`) is a delivery and is answered
//! `200` at once. For each delivery the sink records:
//!
//! * the receive time (µs since the epoch);
//! * the message id from `X-WAL-Message-Id` (distinct ids and duplicates);
//! * **latency** = receive − `sentAtUs` from the payload (payload body mode:
//!   top-level `sentAtUs`; envelope body mode: `payload.sentAtUs`). The load
//!   generator takes `sentAtUs` just before it sends the write, so this
//!   includes the write request's own latency: an upper bound of
//!   "write accepted → received";
//! * **accept latency** = receive − `createdAtMs` (envelope mode only): the
//!   gateway's accept time, at millisecond resolution (over-estimates by
//!   less than 1 ms);
//! * **lateness** = receive − `dueAtMs` (envelope mode only): how late after
//!   its due time a delayed message arrived (for an undelayed message
//!   `dueAtMs` = `createdAtMs`).
//!
//! `GET /count` answers the counters (cheap, for polling); `GET /stats`
//! adds the distributions and receive-rate figures; `GET /ids` lists the
//! distinct message ids received, one per line (for a loss check against
//! the ids the load generator was given); `POST /reset` forgets everything.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::clock::now_us;
use crate::summary::{percentile, summarize_us, Summary};

/// What the sink remembers between two resets.
#[derive(Default)]
struct Recorder {
    ids: HashSet<u128>,
    received: u64,
    duplicates: u64,
    no_id: u64,
    retried: u64,
    unparsed: u64,
    recv_us: Vec<u64>,
    latency_us: Vec<i64>,
    accept_latency_us: Vec<i64>,
    lateness_us: Vec<i64>,
}

/// Shared state of the sink's handlers.
#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<Recorder>>,
}

/// The fields of a delivered body the sink looks at (payload or envelope).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    sent_at_us: Option<u64>,
    created_at_ms: Option<u64>,
    due_at_ms: Option<u64>,
    payload: Option<PayloadProbe>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadProbe {
    sent_at_us: Option<u64>,
}

/// `GET /count`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Deliveries (requests) received.
    pub received: u64,
    /// Distinct message ids among them.
    pub distinct: u64,
    /// Deliveries of an id already received.
    pub duplicates: u64,
    /// Deliveries without an `X-WAL-Message-Id` header.
    pub no_id: u64,
    /// Deliveries whose `X-WAL-Attempt` was above 1 (retries).
    pub retried: u64,
    /// Bodies that were not JSON of a known shape.
    pub unparsed: u64,
}

/// `GET /stats`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// The counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// First receive time (µs since the epoch), 0 if none.
    pub first_recv_us: u64,
    /// Last receive time (µs since the epoch), 0 if none.
    pub last_recv_us: u64,
    /// Deliveries per second from the first to the last receive.
    pub rate_per_sec: f64,
    /// Deliveries per second between the 10th and the 90th percentile of
    /// receive times (steady state: without ramp-up and tail).
    pub rate_mid80_per_sec: f64,
    /// Receive − `sentAtUs` (includes the write's own latency).
    pub latency: Summary,
    /// Receive − envelope `createdAtMs` (ms resolution).
    pub accept_latency: Summary,
    /// Receive − envelope `dueAtMs`.
    pub lateness: Summary,
}

/// Crockford base32, the ULID alphabet.
const ULID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The 26-character ULID of `v` (the inverse of [`id_key`] for ULIDs).
fn ulid_text(v: u128) -> String {
    (0..26)
        .rev()
        .map(|i| ULID_ALPHABET[((v >> (5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// A message id as a map key: a ULID decoded to its 128 bits, anything
/// else hashed.
fn id_key(id: &[u8]) -> u128 {
    if id.len() == 26 {
        let mut v: u128 = 0;
        let mut ok = true;
        for &c in id {
            match ULID_ALPHABET
                .iter()
                .position(|&a| a == c.to_ascii_uppercase())
            {
                Some(d) => v = (v << 5) | d as u128,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return v;
        }
    }
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (id, 0x9e37_79b9_u32).hash(&mut b);
    ((a.finish() as u128) << 64) | b.finish() as u128
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Recorder> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one delivery received at `recv_us`.
    pub fn record(&self, recv_us: u64, headers: &HeaderMap, body: &[u8]) {
        let id = headers
            .get("x-wal-message-id")
            .map(|v| id_key(v.as_bytes()));
        let retried = headers
            .get("x-wal-attempt")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|a| a > 1);
        let probe: Option<Probe> = serde_json::from_slice(body).ok();
        let recv = recv_us as i64;
        let mut r = self.lock();
        r.received += 1;
        r.recv_us.push(recv_us);
        match id {
            Some(id) => {
                if !r.ids.insert(id) {
                    r.duplicates += 1;
                }
            }
            None => r.no_id += 1,
        }
        if retried {
            r.retried += 1;
        }
        let Some(p) = probe else {
            r.unparsed += 1;
            return;
        };
        if let Some(sent) = p.sent_at_us.or(p.payload.and_then(|p| p.sent_at_us)) {
            r.latency_us.push(recv - sent as i64);
        }
        if let Some(created) = p.created_at_ms {
            r.accept_latency_us.push(recv - created as i64 * 1000);
        }
        if let Some(due) = p.due_at_ms {
            r.lateness_us.push(recv - due as i64 * 1000);
        }
    }

    /// The counters.
    pub fn counts(&self) -> Counts {
        let r = self.lock();
        Counts {
            received: r.received,
            distinct: r.ids.len() as u64,
            duplicates: r.duplicates,
            no_id: r.no_id,
            retried: r.retried,
            unparsed: r.unparsed,
        }
    }

    /// The counters and distributions.
    pub fn stats(&self) -> Stats {
        let counts = self.counts();
        let (mut recv, mut latency, mut accept, mut lateness) = {
            let r = self.lock();
            (
                r.recv_us.iter().map(|&v| v as i64).collect::<Vec<i64>>(),
                r.latency_us.clone(),
                r.accept_latency_us.clone(),
                r.lateness_us.clone(),
            )
        };
        recv.sort_unstable();
        let (first, last) = match (recv.first(), recv.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => (0, 0),
        };
        let rate = |n: usize, from: i64, to: i64| {
            if to > from {
                n as f64 * 1e6 / (to - from) as f64
            } else {
                0.0
            }
        };
        let mid80 = if recv.len() >= 10 {
            let (lo, hi) = (percentile(&recv, 10.0), percentile(&recv, 90.0));
            let n = recv.iter().filter(|&&t| t > lo && t <= hi).count();
            rate(n, lo, hi)
        } else {
            0.0
        };
        Stats {
            counts,
            first_recv_us: first as u64,
            last_recv_us: last as u64,
            rate_per_sec: rate(recv.len().saturating_sub(1), first, last),
            rate_mid80_per_sec: mid80,
            latency: summarize_us(&mut latency),
            accept_latency: summarize_us(&mut accept),
            lateness: summarize_us(&mut lateness),
        }
    }

    /// The distinct message ids received, as ULID text, one per line (ids
    /// that were not ULIDs are listed by their hash and match nothing).
    pub fn ids_text(&self) -> String {
        let r = self.lock();
        let mut out = String::with_capacity(r.ids.len() * 27);
        for &id in &r.ids {
            out.push_str(&ulid_text(id));
            out.push('\n');
        }
        out
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        *self.lock() = Recorder::default();
    }

    /// The sink's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/count", get(count_handler))
            .route("/stats", get(stats_handler))
            .route("/ids", get(ids_handler))
            .route("/reset", post(reset_handler))
            .fallback(deliver_handler)
            .with_state(self)
    }
}

async fn deliver_handler(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let recv = now_us();
    sink.record(recv, &headers, &body);
    StatusCode::OK
}

async fn count_handler(State(sink): State<Sink>) -> Json<Counts> {
    Json(sink.counts())
}

async fn stats_handler(State(sink): State<Sink>) -> Json<Stats> {
    Json(sink.stats())
}

async fn ids_handler(State(sink): State<Sink>) -> String {
    sink.ids_text()
}

async fn reset_handler(State(sink): State<Sink>) -> StatusCode {
    sink.reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, attempt: u32) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-wal-message-id", id.parse().unwrap());
        h.insert("x-wal-attempt", attempt.to_string().parse().unwrap());
        h
    }

    #[test]
    fn ulid_ids_decode_and_others_hash() {
        assert_ne!(
            id_key(b"01JDQ6Z3M7F0000000000000AB"),
            id_key(b"01JDQ6Z3M7F0000000000000AC")
        );
        assert_eq!(id_key(b"abc"), id_key(b"abc"));
        assert_ne!(id_key(b"abc"), id_key(b"abd"));
        let id = "01JDQ6Z3M7F0000000000000AB";
        assert_eq!(ulid_text(id_key(id.as_bytes())), id);
        assert_eq!(
            ulid_text(id_key(b"01jdq6z3m7f0000000000000ab")),
            id,
            "lower case reads the same"
        );
    }

    #[test]
    fn payload_and_envelope_bodies_are_measured() {
        let sink = Sink::default();
        sink.record(
            10_000,
            &headers("01JDQ6Z3M7F0000000000000AB", 1),
            br#"{"sentAtUs":7000,"seq":1,"pad":"x"}"#,
        );
        sink.record(
            20_000,
            &headers("01JDQ6Z3M7F0000000000000AC", 2),
            br#"{"v":1,"id":"x","payload":{"sentAtUs":15000},"createdAtMs":16,"dueAtMs":18}"#,
        );
        sink.record(
            30_000,
            &headers("01JDQ6Z3M7F0000000000000AC", 3),
            b"not json",
        );
        let s = sink.stats();
        assert_eq!(s.counts.received, 3);
        assert_eq!(s.counts.distinct, 2);
        assert_eq!(s.counts.duplicates, 1);
        assert_eq!(s.counts.retried, 2);
        assert_eq!(s.counts.unparsed, 1);
        assert_eq!(s.latency.count, 2);
        assert_eq!(s.latency.min_ms, 3.0);
        assert_eq!(s.latency.max_ms, 5.0);
        assert_eq!(s.accept_latency.max_ms, 4.0);
        assert_eq!(s.lateness.max_ms, 2.0);
        assert_eq!(s.first_recv_us, 10_000);
        assert_eq!(s.last_recv_us, 30_000);
        assert_eq!(s.rate_per_sec, 100.0);
        sink.reset();
        assert_eq!(sink.counts().received, 0);
    }
}
