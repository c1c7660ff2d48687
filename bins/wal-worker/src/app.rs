//! Building and running a worker: `Worker::build(config)` connects to the
//! namespace store and Redis and binds the health/metrics port; `run_until`
//! lets the [`Supervisor`] keep one runner per namespace in step with the
//! namespace store until shutdown, then drains them within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use wal_process::{DrainDeadline, Program};
use wal_state::RedisSchedule;
use wal_targets::TargetFactory;

use crate::clock::now_ms;
use crate::config::WorkerConfig;
use crate::context::Shared;
use crate::metrics::Metrics;
use crate::settler::Settler;
use crate::supervisor::Supervisor;

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
        let secrets = config.store.secret_policy();
        let shared = Arc::new(Shared {
            consumer_name: config.consumer_name(),
            config,
            redis,
            schedule,
            settler,
            metrics: Metrics::new(),
            factory: TargetFactory::new().with_secret_policy(secrets),
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
        let mut supervisor = Supervisor::default();
        let every = shared.config.store.refresh();
        tokio::pin!(shutdown);
        loop {
            supervisor.sync(&shared).await;
            shared.supervisor_tick_ms.store(now_ms(), Ordering::Relaxed);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        tracing::info!("shutdown requested: stopping reads and draining in-flight deliveries");
        let deadline = DrainDeadline::after_secs(shared.config.shutdown_grace_secs);
        supervisor.stop_all(deadline).await;
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
