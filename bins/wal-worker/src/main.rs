//! `wal-worker`: see [`wal_worker::run_cli`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wal_worker::run_cli().await
}
