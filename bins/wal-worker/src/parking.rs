//! Releasing a namespace's parked messages as its targets' breakers allow
//! (see `wal_state::parking` and [`crate::breaker::CircuitBreaker::release`]).
//!
//! Every [`PASS_EVERY`] one `ZCARD`; only when messages are parked, one
//! count per target and, per target whose breaker says so, one release
//! script: probes a few at a time, everything (in chunks) once the target
//! answers again. Targets no longer configured (or whose configuration is
//! broken) get their messages released at once: the handler dead-letters
//! them with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wal_core::backend::BackendError;
use wal_state::parking::Parking;

use crate::breaker::Release;
use crate::clock::now_ms;
use crate::context::NamespaceContext;
use crate::targets::SlotState;

/// How often parked messages are looked at.
pub const PASS_EVERY: Duration = Duration::from_millis(500);
/// Messages released by one script call.
const CHUNK: usize = 500;
/// Most messages released per target and pass: the rest next pass.
const MOST_PER_PASS: usize = 5_000;

/// Runs passes until `stop`.
pub async fn parking_loop(ctx: Arc<NamespaceContext>, mut stop: watch::Receiver<bool>) {
    let parking = Parking::new(ctx.shared.redis.clone(), &ctx.name);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PASS_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match pass(&ctx, &parking).await {
            Ok(0) => {}
            Ok(released) => {
                ctx.retry_hint.note(now_ms());
                tracing::info!(namespace = %ctx.name, released, "parked messages released");
            }
            Err(e) => tracing::debug!(namespace = %ctx.name, error = %e, "parking pass failed"),
        }
    }
}

/// One pass: answers how many messages were released.
async fn pass(ctx: &NamespaceContext, parking: &Parking) -> Result<usize, BackendError> {
    let targets = ctx.targets.load();
    let names: Vec<&str> = targets.iter().map(|(id, _)| id.as_str()).collect();
    let counts = parking.counts(&names).await?;
    if counts.total == 0 {
        return Ok(0);
    }
    let now = Instant::now();
    let mut released = 0;
    for (name, parked) in names.iter().zip(&counts.per_target) {
        if *parked == 0 {
            continue;
        }
        let plan = match targets.get(name) {
            Some(SlotState::Ready(slot)) => slot.breaker.release(now),
            _ => Release::All,
        };
        released += match plan {
            Release::Hold => 0,
            Release::Probes(n) => parking.release(name, n as usize, now_ms()).await?,
            Release::All => release_all(parking, name).await?,
        };
    }
    if counts.total > counts.per_target.iter().sum::<u64>() {
        for gone in parking.targets().await? {
            if !names.contains(&gone.as_str()) {
                released += release_all(parking, &gone).await?;
            }
        }
    }
    Ok(released)
}

async fn release_all(parking: &Parking, target: &str) -> Result<usize, BackendError> {
    let mut released = 0;
    while released < MOST_PER_PASS {
        let n = parking.release(target, CHUNK, now_ms()).await?;
        released += n;
        if n < CHUNK {
            break;
        }
    }
    Ok(released)
}
