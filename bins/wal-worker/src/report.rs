//! This worker's report on one namespace (`wal_state::worker_reports`):
//! running or degraded, and each target's breaker, rewritten every
//! [`REPORT_EVERY`] so the gateway's namespace status can show them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wal_state::worker_reports::{self, BreakerReport, WorkerReport};

use crate::clock::now_ms;
use crate::context::NamespaceContext;
use crate::targets::SlotState;

/// How often the report is rewritten.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The report as of now.
pub fn current(ctx: &NamespaceContext, degraded: Option<&str>) -> WorkerReport {
    let now = Instant::now();
    let breakers: BTreeMap<String, BreakerReport> = ctx
        .targets
        .load()
        .iter()
        .filter_map(|(id, slot)| match slot {
            SlotState::Ready(slot) => {
                let s = slot.breaker.snapshot(now);
                Some((
                    id.clone(),
                    BreakerReport {
                        state: s.state.to_string(),
                        calls: s.calls,
                        failures: s.failures,
                    },
                ))
            }
            SlotState::Broken(_) => None,
        })
        .collect();
    WorkerReport {
        worker: ctx.shared.consumer_name.clone(),
        state: if degraded.is_some() {
            "degraded"
        } else {
            "running"
        }
        .into(),
        reason: degraded.map(str::to_string),
        breakers,
        updated_at_ms: now_ms(),
    }
}

/// Writes the report every [`REPORT_EVERY`] until `stop`, then removes it.
pub async fn report_loop(
    ctx: Arc<NamespaceContext>,
    degraded: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let redis = ctx.shared.redis.clone();
    loop {
        let report = current(&ctx, degraded.as_deref());
        if let Err(e) = worker_reports::publish(&redis, &ctx.name, &report).await {
            tracing::debug!(namespace = %ctx.name, error = %e, "could not write the worker report");
        }
        tokio::select! {
            _ = tokio::time::sleep(REPORT_EVERY) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = worker_reports::remove(&redis, &ctx.name, &ctx.shared.consumer_name).await;
}
