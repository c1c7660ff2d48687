//! The load generator (`wal-bench-load`): writes to the gateway over
//! keep-alive connections, single writes or batches, either at a fixed
//! open-loop rate or as fast as the gateway answers.
//!
//! **Fixed rate**: request `r` (counted over all connections) is due at
//! `start + r × batch / rate`; connection `i` sends requests `i`, `i + N`,
//! `i + 2N`, … each at its due time, or at once if it is already late (its
//! previous request took too long). How late requests went out is reported
//! (`scheduleLag`): a large lag means the generator — or the gateway — could
//! not keep the rate, and the run says `fellBehind` (p99 lag above 20 ms or
//! under 98% of the rate). `sentAtUs` is taken when a request actually goes
//! out, so a late request's own wait is not part of the measured end-to-end
//! latency: check the lag alongside the latency.
//!
//! **Max rate**: every connection sends its next request as soon as the
//! previous one is answered, until the duration or the message total is
//! reached.
//!
//! **Cutoff** (optional, either mode): no request is sent later than this
//! after the start. A fixed-rate run against a backend slower than the rate
//! otherwise sends every planned request however late; with a cutoff the
//! rest are reported as `unsent`.
//!
//! **Message ids** (optional): the ids of the accepted messages are kept
//! (`LoadReport::ids`, not serialized), so a caller can check that every
//! accepted message was delivered even when some writes had an unknown
//! outcome.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{now_us, own_cpu_seconds};
use crate::payload::PayloadSpec;
use crate::summary::{summarize_us, Summary};

/// A request sent later than this after its due time counts as late.
const LATE_US: i64 = 5_000;
/// A fixed-rate run whose p99 schedule lag exceeds this fell behind.
const BEHIND_P99_US: i64 = 20_000;

/// What to send, how fast, for how long.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:3392`.
    pub base_url: String,
    /// Write API key (`X-API-Key`).
    pub api_key: String,
    /// The messages.
    pub spec: PayloadSpec,
    /// Messages per second; 0 means as fast as possible.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many messages (whichever of duration and total comes first).
    pub total: Option<u64>,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Messages per request: 1 uses the single-write endpoint, more the batch endpoint.
    pub batch: u64,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Send no request later than this after the start (`None`: no cutoff).
    pub cutoff: Option<Duration>,
    /// Keep the id of every accepted message.
    pub collect_ids: bool,
}

/// Outcome of a run (printed as JSON).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    /// `rate` or `max`.
    pub mode: &'static str,
    /// `single` or `batch`.
    pub endpoint: &'static str,
    /// Messages per request.
    pub batch: u64,
    /// Connections.
    pub connections: usize,
    /// Requested messages per second (0 for max rate).
    pub target_rate: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests that got no HTTP answer (connection error, timeout).
    pub request_errors: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Planned messages that were not sent because of the cutoff.
    pub unsent: u64,
    /// Messages the gateway accepted (each has a message id).
    pub accepted: u64,
    /// Messages refused or unanswered.
    pub failed: u64,
    /// Seconds from the first request to the last answer.
    pub elapsed_secs: f64,
    /// Accepted messages per second over `elapsedSecs`.
    pub accepted_per_sec: f64,
    /// Latency of each write request (send → answer).
    pub write_latency: Summary,
    /// Fixed rate only: how late requests were sent after their due time.
    pub schedule_lag: Summary,
    /// Fixed rate only: requests sent more than 5 ms late.
    pub late_requests: u64,
    /// Fixed rate only: the rate was not kept (p99 lag above 20 ms, or fewer
    /// than 98% of the planned messages per second).
    pub fell_behind: bool,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// CPU seconds the load generator itself used.
    pub cpu_seconds: Option<f64>,
    /// Ids of the accepted messages (only with `collect_ids`).
    #[serde(skip)]
    pub ids: Vec<String>,
}

/// What one connection saw.
#[derive(Default)]
struct ConnResult {
    requests: u64,
    request_errors: u64,
    messages_sent: u64,
    accepted: u64,
    failed: u64,
    latency_us: Vec<i64>,
    lag_us: Vec<i64>,
    statuses: BTreeMap<u16, u64>,
    first_error: Option<String>,
    ids: Vec<String>,
}

struct Plan {
    cfg: LoadConfig,
    client: reqwest::Client,
    url: String,
    start: Instant,
    deadline: Instant,
    /// No request goes out at or after this instant (`None`: no cutoff).
    cutoff: Option<Instant>,
    /// Requests to send in all (fixed rate, or max rate with a total).
    planned_requests: Option<u64>,
    /// Total messages, if bounded.
    total_messages: Option<u64>,
    /// Max rate: next request index to claim.
    next: AtomicU64,
}

impl Plan {
    /// Messages in request `r` (the last one of a bounded run may be short).
    fn messages_in(&self, r: u64) -> u64 {
        match self.total_messages {
            Some(total) => self.cfg.batch.min(total.saturating_sub(r * self.cfg.batch)),
            None => self.cfg.batch,
        }
    }
}

/// Runs the load described by `cfg` and reports.
pub async fn run(cfg: LoadConfig) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(cfg.connections > 0, "at least one connection");
    anyhow::ensure!(cfg.batch > 0, "at least one message per request");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.connections)
        .tcp_nodelay(true)
        .timeout(cfg.timeout)
        .build()?;
    let base = cfg.base_url.trim_end_matches('/');
    let url = if cfg.batch > 1 {
        format!("{base}/api/v1/wal/write/batch")
    } else {
        format!("{base}/api/v1/wal/write")
    };
    let fixed = cfg.rate > 0.0;
    let by_duration = fixed.then(|| (cfg.duration.as_secs_f64() * cfg.rate).floor() as u64);
    let total_messages = match (by_duration, cfg.total) {
        (Some(d), Some(t)) => Some(d.min(t)),
        (d, t) => d.or(t),
    };
    let planned_requests = total_messages.map(|m| m.div_ceil(cfg.batch));
    let start = Instant::now();
    let plan = Arc::new(Plan {
        deadline: start + cfg.duration,
        cutoff: cfg.cutoff.map(|c| start + c),
        client,
        url,
        start,
        planned_requests,
        total_messages,
        next: AtomicU64::new(0),
        cfg: cfg.clone(),
    });
    let tasks: Vec<_> = (0..cfg.connections)
        .map(|i| {
            let plan = plan.clone();
            tokio::spawn(async move {
                if fixed {
                    fixed_rate_connection(&plan, i as u64).await
                } else {
                    max_rate_connection(&plan).await
                }
            })
        })
        .collect();
    let mut all = ConnResult::default();
    for t in tasks {
        let r = t.await?;
        all.requests += r.requests;
        all.request_errors += r.request_errors;
        all.messages_sent += r.messages_sent;
        all.accepted += r.accepted;
        all.failed += r.failed;
        all.latency_us.extend(r.latency_us);
        all.lag_us.extend(r.lag_us);
        for (s, n) in r.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.ids.extend(r.ids);
    }
    let unsent = total_messages.map_or(0, |t| t.saturating_sub(all.messages_sent));
    let unsent = if cfg.cutoff.is_some() { unsent } else { 0 };
    let elapsed = start.elapsed().as_secs_f64();
    let schedule_lag = summarize_us(&mut all.lag_us);
    let late_requests = all.lag_us.iter().filter(|&&l| l > LATE_US).count() as u64;
    let accepted_per_sec = if elapsed > 0.0 {
        all.accepted as f64 / elapsed
    } else {
        0.0
    };
    let fell_behind = fixed
        && (schedule_lag.p99_ms > BEHIND_P99_US as f64 / 1000.0
            || (all.messages_sent as f64) / elapsed < 0.98 * cfg.rate);
    Ok(LoadReport {
        mode: if fixed { "rate" } else { "max" },
        endpoint: if cfg.batch > 1 { "batch" } else { "single" },
        batch: cfg.batch,
        connections: cfg.connections,
        target_rate: cfg.rate.max(0.0),
        requests: all.requests,
        request_errors: all.request_errors,
        messages_sent: all.messages_sent,
        unsent,
        accepted: all.accepted,
        failed: all.failed,
        elapsed_secs: elapsed,
        accepted_per_sec,
        write_latency: summarize_us(&mut all.latency_us),
        schedule_lag,
        late_requests,
        fell_behind,
        statuses: all.statuses,
        first_error: all.first_error,
        cpu_seconds: own_cpu_seconds(),
        ids: all.ids,
    })
}

async fn fixed_rate_connection(plan: &Plan, index: u64) -> ConnResult {
    let mut out = ConnResult::default();
    let n = plan.cfg.connections as u64;
    let interval_s = plan.cfg.batch as f64 / plan.cfg.rate;
    let planned = plan.planned_requests.unwrap_or(0);
    let mut r = index;
    while r < planned {
        let due = plan.start + Duration::from_secs_f64(r as f64 * interval_s);
        if plan.cutoff.is_some_and(|c| due >= c || Instant::now() >= c) {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        out.lag_us
            .push(Instant::now().saturating_duration_since(due).as_micros() as i64);
        send(plan, r, &mut out).await;
        r += n;
    }
    out
}

async fn max_rate_connection(plan: &Plan) -> ConnResult {
    let mut out = ConnResult::default();
    loop {
        let now = Instant::now();
        if now >= plan.deadline || plan.cutoff.is_some_and(|c| now >= c) {
            break;
        }
        let r = plan.next.fetch_add(1, Ordering::Relaxed);
        if plan.planned_requests.is_some_and(|p| r >= p) {
            break;
        }
        send(plan, r, &mut out).await;
    }
    out
}

/// Sends request `r` and records its outcome in `out`.
async fn send(plan: &Plan, r: u64, out: &mut ConnResult) {
    let count = plan.messages_in(r);
    if count == 0 {
        return;
    }
    let first_seq = r * plan.cfg.batch;
    let sent_at = now_us();
    let body = if plan.cfg.batch > 1 {
        plan.cfg.spec.batch_body(sent_at, first_seq, count)
    } else {
        plan.cfg.spec.single_body(sent_at, first_seq)
    };
    let started = Instant::now();
    out.requests += 1;
    out.messages_sent += count;
    let answer = plan
        .client
        .post(&plan.url)
        .header("X-API-Key", &plan.cfg.api_key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await;
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => {
            out.request_errors += 1;
            out.failed += count;
            out.first_error
                .get_or_insert_with(|| format!("request: {e}"));
            return;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await;
    out.latency_us.push(started.elapsed().as_micros() as i64);
    *out.statuses.entry(status).or_default() += 1;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            out.request_errors += 1;
            out.failed += count;
            out.first_error
                .get_or_insert_with(|| format!("reading the answer: {e}"));
            return;
        }
    };
    if matches!(status, 200..=202 | 207) {
        collect_ids(
            &body,
            plan.cfg.batch > 1,
            plan.cfg.collect_ids,
            &mut out.ids,
        );
    }
    match status {
        // Every message recorded.
        200..=202 => out.accepted += count,
        // Some messages of a batch failed: count the ones with an id.
        207 => {
            let ok = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("results").and_then(|r| r.as_array()).map(|items| {
                        items
                            .iter()
                            .filter(|i| i.get("messageId").is_some())
                            .count() as u64
                    })
                })
                .unwrap_or(0);
            out.accepted += ok;
            out.failed += count - ok.min(count);
            out.first_error.get_or_insert_with(|| {
                format!(
                    "207: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )
            });
        }
        _ => {
            out.failed += count;
            out.first_error.get_or_insert_with(|| {
                format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )
            });
        }
    }
}

/// Appends the message ids of a write answer (`messageId`, or each
/// `results[i].messageId` of a batch answer) to `ids`, when `wanted`.
fn collect_ids(body: &[u8], batch: bool, wanted: bool, ids: &mut Vec<String>) {
    if !wanted {
        return;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let id_of = |item: &serde_json::Value| {
        item.get("messageId")
            .and_then(|i| i.as_str())
            .map(str::to_owned)
    };
    if batch {
        if let Some(items) = v.get("results").and_then(|r| r.as_array()) {
            ids.extend(items.iter().filter_map(id_of));
        }
    } else {
        ids.extend(id_of(&v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_single_and_batch_answers() {
        let mut ids = Vec::new();
        collect_ids(
            br#"{"durable":"TRUE","messageId":"A1"}"#,
            false,
            true,
            &mut ids,
        );
        collect_ids(
            br#"{"results":[{"messageId":"B1"},{"error":{"code":"X"}},{"messageId":"B3"}]}"#,
            true,
            true,
            &mut ids,
        );
        collect_ids(br#"{"messageId":"C1"}"#, false, false, &mut ids);
        collect_ids(b"not json", false, true, &mut ids);
        assert_eq!(ids, ["A1", "B1", "B3"]);
    }
}
