//! Building and running the gateway: `Application::build(config)` connects
//! to Redis and the namespace store and binds the listener (port 0 in
//! tests); `run_until_stopped()` serves until SIGTERM/SIGINT (or the given
//! shutdown future) and then drains in-flight requests within a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use wal_process::Program;
use wal_state::RateLimiter;

use crate::auth::KeyRing;
use crate::config::GatewayConfig;
use crate::metrics::Metrics;
use crate::producers::Producers;
use crate::state::AppState;

/// A gateway, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects to the namespace store (running its migrations) and to Redis,
    /// and binds `config.listen`. Redis may be down: the gateway still
    /// starts, answers 503 to writes, and reconnects by itself.
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let (namespaces, refresher) = config.store.open().await?;
        let redis = config
            .redis
            .connect("writes answer 503 until it is")
            .await?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let keys = KeyRing::new(&config.api_keys, &config.admin_api_keys);
        if !keys.has_admin_keys() {
            tracing::warn!("WAL_ADMIN_API_KEYS is empty: namespace administration is disabled");
        }
        let state = Arc::new(AppState {
            producers: Producers::new(
                redis.clone(),
                Duration::from_millis(config.kafka_message_timeout_ms),
                config.store.secret_policy(),
            ),
            rate_limiter: RateLimiter::new(redis.clone()),
            redis,
            namespaces,
            keys,
            forwarded: config.forwarded_trust(),
            metrics: Metrics::new(),
            round_robin: AtomicU64::new(0),
            request_slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests.max(1),
            )),
            started: Instant::now(),
            config,
        });
        Ok(Self {
            listener,
            state,
            refresher,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (for tests).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }
}

impl Program for Application {
    type Error = anyhow::Error;

    /// Serves until `shutdown` resolves, then stops accepting and lets
    /// in-flight requests finish for up to the configured grace period.
    async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = &self.state.config;
        let drained = crate::serve::serve(
            self.listener,
            crate::routes::router(self.state.clone()),
            config.header_read_timeout(),
            Duration::from_secs(config.shutdown_grace_secs),
            shutdown,
        )
        .await;
        if !drained {
            tracing::warn!("drain deadline reached; closing remaining connections");
        }
        self.refresher.abort();
        self.state.redis.quit().await;
        tracing::info!("gateway stopped");
        Ok(())
    }
}
