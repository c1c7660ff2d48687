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

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use wal_backends::redis_streams::{RedisConnection, RedisConnectionConfig, RedisSchedule};
use wal_namespace::{Namespace, NamespaceCache, NamespaceStore};
use wal_targets::TargetFactory;

use crate::clock::now_ms;
use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use crate::runner::NamespaceRunner;
use crate::settler::Settler;
use crate::targets::{longest_timeout, SlotSettings};

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
            breaker_failures: self.config.breaker_failures,
            breaker_cooldown: Duration::from_millis(self.config.breaker_cooldown_ms),
        }
    }
}

/// A worker, connected and ready to run.
pub struct Worker {
    shared: Arc<Shared>,
    listener: TcpListener,
    refresher: tokio::task::JoinHandle<()>,
    settler_task: tokio::task::JoinHandle<()>,
}

/// Refuses namespaces whose targets may take longer than the visibility
/// timeout: their entries would be taken over while still being delivered.
pub fn check_visibility(
    config: &WorkerConfig,
    namespaces: &[Arc<Namespace>],
) -> anyhow::Result<()> {
    let visibility = config.visibility_timeout();
    for ns in namespaces {
        let longest = longest_timeout(ns);
        if longest >= visibility {
            bail!(
                "namespace `{}` has a target timeout of {} ms, not below the visibility timeout of {} ms: raise WAL_VISIBILITY_TIMEOUT_MS",
                ns.name,
                longest.as_millis(),
                visibility.as_millis()
            );
        }
    }
    Ok(())
}

impl Worker {
    /// Connects and checks the configuration. Redis may be down: the worker
    /// still starts and picks up its namespaces when Redis returns.
    pub async fn build(config: WorkerConfig) -> anyhow::Result<Self> {
        let store = NamespaceStore::connect(&config.database_url)
            .await
            .context("connecting to the namespace store")?;
        let namespaces = NamespaceCache::load(store)
            .await
            .context("loading namespaces")?;
        check_visibility(&config, &namespaces.snapshot().all())?;
        let refresher = namespaces
            .clone()
            .spawn_refresher(config.namespace_refresh());
        let redis = RedisConnection::connect(
            &RedisConnectionConfig {
                url: config.redis_url.clone(),
                pool_size: config.redis_pool_size,
                command_timeout: config.redis_timeout(),
            },
            Duration::from_secs(3),
        )
        .await
        .context("configuring the Redis client")?;
        if redis.ping().await.is_err() {
            tracing::warn!("Redis is not reachable yet; delivery starts when it is");
        }
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

    /// Runs until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` resolves, then stops reading, lets in-flight
    /// deliveries finish within the grace period and hands back the rest.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let router = crate::http::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(self.listener, router).await;
        });
        let mut runners: HashMap<String, NamespaceRunner> = HashMap::new();
        let every = shared.config.namespace_refresh();
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
        let deadline = Instant::now() + Duration::from_secs(shared.config.shutdown_grace_secs);
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
            r.stop(Instant::now() + Duration::from_secs(shared.config.shutdown_grace_secs))
                .await;
        }
    }
    for (name, ns) in wanted {
        match runners.get_mut(&name) {
            Some(r) if r.version() == ns.version => {}
            Some(r) if r.can_reconfigure(&ns) => {
                if let Err(e) = check_visibility(&shared.config, std::slice::from_ref(&ns)) {
                    tracing::error!(error = %e, "heartbeats keep its entries visible, but fix the configuration");
                }
                r.reconfigure(ns).await;
            }
            _ => {
                if let Some(old) = runners.remove(&name) {
                    old.stop(
                        Instant::now() + Duration::from_secs(shared.config.shutdown_grace_secs),
                    )
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

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
