//! # wal-gateway
//!
//! The stateless ingest side of the WAL service: it authenticates a write,
//! validates it against its namespace, enriches it into an envelope, routes
//! it to a partition and appends it to the log, answering `durable: TRUE`
//! only after the backend acknowledged. It also serves namespace
//! administration, health, metrics and the OpenAPI document.
//!
//! Architecture invariant: the gateway never calls a delivery target; it
//! only appends to the log. State lives in Redis and the namespace store, so
//! any number of instances can run behind a load balancer.
//!
//! ## Layout
//!
//! * [`config`] — clap settings (`WAL_…`).
//! * [`app`] — `Application::build`, then `run_until_stopped` ([`wal_process::Program`]).
//! * [`routes`] — HTTP handlers and the router.
//! * [`ingest`] — the write path (resolve, admit, prepare, publish).
//! * [`auth`] — API keys and IP allow-lists.
//! * [`error`] — `ApiError` and the error envelope.
//! * [`request_context`] — request ids, spans, HTTP metrics.
//! * [`guard`] — the concurrency limit; [`serve`] — the server loop with the
//!   header read timeout and the drain.
//! * [`metrics`] — the Prometheus registry.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod guard;
pub mod ingest;
pub mod metrics;
pub mod producers;
pub mod request_context;
pub mod routes;
pub mod serve;
pub mod state;

pub use app::Application;
pub use config::GatewayConfig;

/// The `wal-gateway` program: settings from flags and `WAL_…` variables,
/// logging, build, serve until SIGTERM/SIGINT. (The test suite's e2e binary
/// runs this same function.)
pub async fn run_cli() -> anyhow::Result<()> {
    use clap::Parser;
    use wal_process::Program;
    let config = GatewayConfig::parse();
    config.log.init();
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "wal-gateway listening");
    app.run_until_stopped().await
}
