//! Building and running a worker: `Worker::build(config)` connects to the
//! namespace store and Redis, checks the visibility timeout against every
//! target timeout, and binds the health/metrics port; `run_until` keeps one
//! [`NamespaceRunner`] per namespace in step with the namespace store until
//! shutdown, then drains them within the grace period.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use wal_namespace::Namespace;
use wal_process::{DrainDeadline, Program};
use wal_state::RedisSchedule;
use wal_targets::TargetFactory;

use crate::clock::now_ms;
use crate::config::WorkerConfig;
use crate::context::Shared;
use crate::metrics::Metrics;
use crate::runner::NamespaceRunner;
use crate::settler::Settler;

/// A worker, connected and ready to run.
pub struct Worker {
    shared: Arc<Shared>,
    listener: TcpListener,
    refresher: tokio::task::JoinHandle<()>,
    settler_task: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Connects and checks the configuration. Redis may be down: the worker
    /// still starts and picks up its namespaces when Redis returns.
    pub async fn build(config: WorkerConfig) -> anyhow::Result<Self> {
        let (namespaces, refresher) = config.store.open().await?;
        let redis = config.redis.connect("delivery starts when it is").await?;
        let schedule = RedisSchedule::new(redis.clone());
        let (settler, settler_task) = Settler::spawn(schedule.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let shared = Arc::new(Shared {
            consumer_name: config.consumer_name(),
            config,
            redis,
            schedule,
            settler,
            metrics: Metrics::new(),
            factory: TargetFactory::new(),
            namespaces,
            started: Instant::now(),
            supervisor_tick_ms: AtomicU64::new(now_ms()),
        });
        Ok(Self {
            shared,
            listener,
            refresher,
            settler_task,
        })
    }

    /// Address of the health/metrics server.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Shared state (for tests).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

/// Starts, reconfigures and stops runners to match the namespace store.
async fn sync_runners(shared: &Arc<Shared>, runners: &mut HashMap<String, NamespaceRunner>) {
    let snapshot = shared.namespaces.snapshot();
    let wanted: HashMap<String, Arc<Namespace>> = snapshot
        .all()
        .into_iter()
        .map(|ns| (ns.name.clone(), ns))
        .collect();
    let gone: Vec<String> = runners
        .keys()
        .filter(|name| !wanted.contains_key(*name))
        .cloned()
        .collect();
    for name in gone {
        if let Some(r) = runners.remove(&name) {
            r.stop(DrainDeadline::after_secs(shared.config.shutdown_grace_secs))
                .await;
        }
    }
    for (name, ns) in wanted {
        match runners.get_mut(&name) {
            Some(r) if r.runs(&ns) => {}
            Some(r) if r.can_reconfigure(&ns) && r.same_namespace(&ns) => {
                r.reconfigure(ns).await;
            }
            _ => {
                if let Some(old) = runners.remove(&name) {
                    old.stop(DrainDeadline::after_secs(shared.config.shutdown_grace_secs))
                        .await;
                }
                match NamespaceRunner::start(shared.clone(), ns).await {
                    Ok(r) => {
                        runners.insert(name, r);
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e, "cannot start consuming yet; will retry")
                    }
                }
            }
        }
    }
}

impl Program for Worker {
    type Error = anyhow::Error;

    /// Runs until `shutdown` resolves, then stops reading, lets in-flight
    /// deliveries finish within the grace period and hands back the rest.
    async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let router = crate::http::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, router).await;
        });
        let mut runners: HashMap<String, NamespaceRunner> = HashMap::new();
        let every = shared.config.store.refresh();
        tokio::pin!(shutdown);
        loop {
            sync_runners(&shared, &mut runners).await;
            shared.supervisor_tick_ms.store(now_ms(), Ordering::Relaxed);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        tracing::info!("shutdown requested: stopping reads and draining in-flight deliveries");
        let deadline = DrainDeadline::after_secs(shared.config.shutdown_grace_secs);
        futures_util::future::join_all(runners.into_values().map(|r| r.stop(deadline))).await;
        self.refresher.abort();
        // Let the last settlements out before closing Redis.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.settler_task.abort();
        shared.factory.shutdown().await;
        server.abort();
        shared.redis.quit().await;
        tracing::info!("worker stopped");
        Ok(())
    }
}
