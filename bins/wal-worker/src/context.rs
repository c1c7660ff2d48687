//! What the tasks of a worker share, at the bottom of the module graph:
//! [`Shared`] (process-wide: settings, Redis, the settler, metrics, the
//! target factory, the namespaces) and [`NamespaceContext`] (one namespace:
//! its configuration, targets, sources, entries in flight and schedule
//! hints). Everything above — [`crate::handler`], [`crate::runner`],
//! [`crate::app`], [`crate::http`] — reads these; this module depends on
//! nothing above it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wal_core::backend::AckToken;
use wal_namespace::{Namespace, NamespaceCache};
use wal_redis::RedisConnection;
use wal_state::{RedisSchedule, ScheduleSet};
use wal_targets::TargetFactory;

use crate::breaker::BreakerSettings;

use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use crate::settler::Settler;
use crate::sources::Source;
use crate::targets::{namespace_visibility, NamespaceTargets, SlotSettings};

/// Process-wide resources shared by every namespace runner.
pub struct Shared {
    /// Settings.
    pub config: WorkerConfig,
    /// Pool for settlements, schedules and status reads.
    pub redis: RedisConnection,
    /// Settle and activate scripts.
    pub schedule: RedisSchedule,
    /// Batches settlements.
    pub settler: Settler,
    /// Metrics.
    pub metrics: Metrics,
    /// Builds targets, sharing HTTP clients and pools.
    pub factory: TargetFactory,
    /// This worker's consumer name.
    pub consumer_name: String,
    /// The namespaces.
    pub namespaces: Arc<NamespaceCache>,
    /// When the process started.
    pub started: Instant,
    /// Last time (ms) the supervisor completed a pass: liveness.
    pub supervisor_tick_ms: AtomicU64,
}

impl Shared {
    /// Settings of every target slot.
    pub fn slot_settings(&self) -> SlotSettings {
        SlotSettings {
            concurrency: self.config.target_concurrency,
            breaker: BreakerSettings {
                window: Duration::from_millis(self.config.breaker_window_ms),
                min_calls: self.config.breaker_min_calls,
                failure_rate_percent: self.config.breaker_failure_rate,
                cooldown: Duration::from_millis(self.config.breaker_cooldown_ms),
                probes: self.config.breaker_probes,
            },
        }
    }
}

/// The earliest due time a scheduler should know about, pushed by the
/// handlers that park members.
pub struct ScheduleHint {
    earliest: AtomicU64,
    /// Wakes the scheduler when an earlier member was noted.
    pub wake: Notify,
}

impl Default for ScheduleHint {
    fn default() -> Self {
        Self::new()
    }
}

impl ScheduleHint {
    /// No member known yet.
    pub fn new() -> Self {
        Self {
            earliest: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    /// A member due at `due_ms` was added.
    pub fn note(&self, due_ms: u64) {
        let previous = self.earliest.fetch_min(due_ms, Ordering::AcqRel);
        if due_ms < previous {
            self.wake.notify_one();
        }
    }

    /// The earliest due time noted since the last call, if any.
    pub fn take(&self) -> Option<u64> {
        match self.earliest.swap(u64::MAX, Ordering::AcqRel) {
            u64::MAX => None,
            due => Some(due),
        }
    }
}

/// What the tasks of one namespace share.
pub struct NamespaceContext {
    /// Namespace name.
    pub name: String,
    /// The namespace's current configuration.
    pub namespace: ArcSwap<Namespace>,
    /// Its targets, rebuilt when the configuration changes.
    pub targets: ArcSwap<NamespaceTargets>,
    /// Process-wide resources.
    pub shared: Arc<Shared>,
    /// Where entries come from (the Redis partition streams first).
    pub sources: Vec<Source>,
    /// Entries being handled: when they were last made visible (for the
    /// heartbeat) and the index of their source.
    pub(crate) in_flight: Mutex<HashMap<AckToken, (Instant, usize)>>,
    /// Free in-flight slots.
    pub permits: Arc<Semaphore>,
    /// The handler tasks of this namespace: a stopping runner waits for them
    /// before it hands anything back.
    pub handlers: TaskTracker,
    /// Cancelled when a stopping runner's drain deadline passed: handlers
    /// still delivering give up (their entries are handed back), handlers
    /// already settling finish first.
    pub abandon: CancellationToken,
    /// New delayed members.
    pub delayed_hint: ScheduleHint,
    /// New retry members.
    pub retry_hint: ScheduleHint,
}

impl NamespaceContext {
    /// The visibility timeout of this namespace's entries
    /// ([`crate::targets::namespace_visibility`]).
    pub fn visibility(&self) -> Duration {
        namespace_visibility(
            self.shared.config.visibility_timeout(),
            &self.namespace.load(),
        )
    }

    /// DLQ retention of the namespace.
    pub fn dlq_retention(&self) -> Duration {
        Duration::from_secs(self.namespace.load().dlq_config.retention_seconds.max(1))
    }

    /// The entries in flight (a poisoned lock is taken over: the map stays consistent).
    pub fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<AckToken, (Instant, usize)>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hint of `set`'s scheduler.
    pub fn hint(&self, set: ScheduleSet) -> &ScheduleHint {
        match set {
            ScheduleSet::Delayed => &self.delayed_hint,
            ScheduleSet::Retry => &self.retry_hint,
        }
    }
}
