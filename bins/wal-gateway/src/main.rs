//! `wal-gateway`: see [`wal_gateway::run_cli`].

/// mimalloc instead of the system allocator: the write path allocates many
/// small, short-lived buffers, and glibc malloc cost ~20% of CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wal_gateway::run_cli().await
}
