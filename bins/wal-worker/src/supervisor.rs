//! Keeps one [`NamespaceRunner`] per namespace in step with the namespace
//! store, each namespace on its own: a start, stop or restart runs as a task
//! of its own (bounded by a timeout), so a slow drain or an unreachable
//! broker of one namespace holds up neither the others nor the supervisor
//! pass that liveness watches. A namespace has at most one such task at a
//! time, and its old runner is stopped before its new one starts.
//!
//! A runner that started degraded (its Kafka topic or SQS queue could not be
//! opened; it reads its Redis streams only) is restarted now and then until
//! the full start succeeds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use wal_namespace::Namespace;
use wal_process::DrainDeadline;

use crate::context::Shared;
use crate::runner::NamespaceRunner;

/// Longest a start may take (joining groups, the Kafka/SQS admin step).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a degraded runner runs before the full start is tried again.
const DEGRADED_RETRY: Duration = Duration::from_secs(30);

/// One namespace, as the supervisor holds it.
enum Slot {
    /// Running (perhaps degraded).
    Running(NamespaceRunner),
    /// A start, stop or restart in progress; yields the runner it leaves running.
    Busy(JoinHandle<Option<NamespaceRunner>>),
}

/// The runners of a worker.
#[derive(Default)]
pub struct Supervisor {
    slots: HashMap<String, Slot>,
}

impl Supervisor {
    /// One pass: collects finished transitions, then starts, reconfigures,
    /// restarts and stops runners to match the namespace store. Never waits
    /// for a start or a stop.
    pub async fn sync(&mut self, shared: &Arc<Shared>) {
        self.collect().await;
        let snapshot = shared.namespaces.snapshot();
        let wanted: HashMap<String, Arc<Namespace>> = snapshot
            .all()
            .into_iter()
            .map(|ns| (ns.name.clone(), ns))
            .collect();
        let gone: Vec<String> = self
            .slots
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(Slot::Running(r)) = self.slots.remove(&name) {
                let grace = shared.config.shutdown_grace_secs;
                self.slots.insert(
                    name,
                    Slot::Busy(tokio::spawn(async move {
                        r.stop(DrainDeadline::after_secs(grace)).await;
                        None
                    })),
                );
            } else if let Some(busy) = self.slots.remove(&name) {
                // Let the transition finish; the next pass stops what it started.
                self.slots.insert(name, busy);
            }
        }
        for (name, ns) in wanted {
            match self.slots.remove(&name) {
                Some(Slot::Busy(task)) => {
                    self.slots.insert(name, Slot::Busy(task));
                }
                Some(Slot::Running(mut r)) => {
                    let retry_full = r.degraded().is_some() && r.age() >= DEGRADED_RETRY;
                    if r.runs(&ns) && !retry_full {
                        self.slots.insert(name, Slot::Running(r));
                    } else if r.can_reconfigure(&ns) && r.same_namespace(&ns) && !retry_full {
                        r.reconfigure(ns).await;
                        self.slots.insert(name, Slot::Running(r));
                    } else {
                        self.slots
                            .insert(name, Slot::Busy(restart(shared.clone(), Some(r), ns)));
                    }
                }
                None => {
                    self.slots
                        .insert(name, Slot::Busy(restart(shared.clone(), None, ns)));
                }
            }
        }
    }

    /// Turns finished transitions into running runners (or nothing).
    async fn collect(&mut self) {
        let done: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Busy(t) if t.is_finished()))
            .map(|(n, _)| n.clone())
            .collect();
        for name in done {
            if let Some(Slot::Busy(task)) = self.slots.remove(&name) {
                match task.await {
                    Ok(Some(r)) => {
                        self.slots.insert(name, Slot::Running(r));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(namespace = %name, error = %e, "namespace start or stop task failed")
                    }
                }
            }
        }
    }

    /// Stops every runner within `deadline` (transitions in progress finish
    /// first).
    pub async fn stop_all(self, deadline: DrainDeadline) {
        let mut runners = Vec::new();
        for (name, slot) in self.slots {
            match slot {
                Slot::Running(r) => runners.push(r),
                Slot::Busy(task) => {
                    match tokio::time::timeout(
                        deadline
                            .instant()
                            .saturating_duration_since(std::time::Instant::now()),
                        task,
                    )
                    .await
                    {
                        Ok(Ok(Some(r))) => runners.push(r),
                        Ok(_) => {}
                        Err(_) => {
                            tracing::warn!(namespace = %name, "a namespace start did not finish before the drain deadline")
                        }
                    }
                }
            }
        }
        futures_util::future::join_all(runners.into_iter().map(|r| r.stop(deadline))).await;
    }
}

/// Stops `old` (if any), then starts a runner for `ns`, bounded by
/// [`START_TIMEOUT`]; the task yields the new runner, or `None` when the
/// start failed (the next pass tries again).
fn restart(
    shared: Arc<Shared>,
    old: Option<NamespaceRunner>,
    ns: Arc<Namespace>,
) -> JoinHandle<Option<NamespaceRunner>> {
    tokio::spawn(async move {
        if let Some(old) = old {
            old.stop(DrainDeadline::after_secs(shared.config.shutdown_grace_secs))
                .await;
        }
        let name = ns.name.clone();
        match tokio::time::timeout(START_TIMEOUT, NamespaceRunner::start(shared, ns)).await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::warn!(namespace = %name, error = %e, "cannot start consuming yet; will retry");
                None
            }
            Err(_) => {
                tracing::warn!(namespace = %name, "starting the namespace took too long; will retry");
                None
            }
        }
    })
}
