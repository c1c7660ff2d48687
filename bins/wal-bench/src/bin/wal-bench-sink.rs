//! `wal-bench-sink`: the benchmark's HTTP delivery target. See
//! [`wal_bench::sink`].

use std::net::SocketAddr;

use clap::Parser;
use wal_bench::sink::Sink;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "wal-bench-sink",
    about = "HTTP sink measuring what the WAL worker delivers"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WAL_BENCH_SINK_LISTEN", default_value = "127.0.0.1:3394")]
    listen: SocketAddr,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            eprintln!("wal-bench-sink listening on {}", listener.local_addr()?);
            axum::serve(listener, Sink::default().router()).await?;
            Ok(())
        })
}
