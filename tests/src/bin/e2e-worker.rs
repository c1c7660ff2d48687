//! The worker program, built inside the test crate so that the e2e tests
//! always run the current code (`CARGO_BIN_EXE_e2e-worker`). It is the same
//! function as `wal-worker`'s `main`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wal_worker::run_cli().await
}
