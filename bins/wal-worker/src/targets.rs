//! The delivery targets of one namespace as the worker holds them: each
//! built target with its concurrency limit and circuit breaker, or the
//! reason it could not be built (a missing credential is a configuration
//! error: deliveries to it fail permanently and say why).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wal_namespace::Namespace;
use wal_targets::{Target, TargetFactory};

use crate::breaker::{BreakerSettings, CircuitBreaker};

/// One usable target.
pub struct TargetSlot {
    /// The target.
    pub target: Arc<dyn Target>,
    /// Concurrent deliveries allowed.
    pub limit: Arc<Semaphore>,
    /// Its breaker.
    pub breaker: CircuitBreaker,
}

/// A target as configured on the namespace.
pub enum SlotState {
    /// Built and usable.
    Ready(Arc<TargetSlot>),
    /// Its configuration could not be turned into a target.
    Broken(String),
}

/// Settings every slot is built with.
#[derive(Clone, Copy, Debug)]
pub struct SlotSettings {
    /// Concurrent deliveries per target.
    pub concurrency: usize,
    /// How each target's breaker judges it.
    pub breaker: BreakerSettings,
}

/// The enabled targets of one namespace, by identifier.
#[derive(Default)]
pub struct NamespaceTargets {
    slots: HashMap<String, SlotState>,
}

impl NamespaceTargets {
    /// Builds every enabled target of `ns`.
    pub async fn build(factory: &TargetFactory, ns: &Namespace, settings: SlotSettings) -> Self {
        let mut slots = HashMap::new();
        for cfg in ns.enabled_targets() {
            let state = match factory.build(&ns.name, cfg).await {
                Ok(target) => SlotState::Ready(Arc::new(TargetSlot {
                    target,
                    limit: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                    breaker: CircuitBreaker::new(settings.breaker, Instant::now()),
                })),
                Err(e) => {
                    tracing::error!(namespace = %ns.name, target = %cfg.identifier, error = %e, "target cannot be built; its deliveries will be dead-lettered");
                    SlotState::Broken(e.to_string())
                }
            };
            slots.insert(cfg.identifier.clone(), state);
        }
        Self { slots }
    }

    /// The target named `identifier`, if enabled.
    pub fn get(&self, identifier: &str) -> Option<&SlotState> {
        self.slots.get(identifier)
    }

    /// Every slot, by identifier.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SlotState)> {
        self.slots.iter()
    }
}

/// The longest target timeout of a namespace.
pub fn longest_timeout(ns: &Namespace) -> Duration {
    ns.targets
        .iter()
        .map(|t| Duration::from_millis(t.kind.timeout_ms()))
        .max()
        .unwrap_or_default()
}

/// The visibility timeout of `ns`'s entries: the worker's
/// (`WAL_VISIBILITY_TIMEOUT_MS`), raised to twice the namespace's longest
/// target timeout when that is longer, so one namespace's slow target
/// neither stops the worker nor gets its entries taken over while they are
/// delivered (the heartbeat extends them every third of it).
pub fn namespace_visibility(configured: Duration, ns: &Namespace) -> Duration {
    configured.max(longest_timeout(ns) * 2)
}
