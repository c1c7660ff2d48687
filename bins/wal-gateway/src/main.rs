//! `wal-gateway`: configuration → telemetry → build → serve.

use clap::Parser;

/// mimalloc instead of the system allocator: the write path allocates many
/// small, short-lived buffers, and glibc malloc cost ~20% of CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use wal_gateway::{telemetry, Application, GatewayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = GatewayConfig::parse();
    telemetry::init(&config.log_level, config.log_format);
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "wal-gateway listening");
    app.run_until_stopped().await
}
