//! `wal-bench-load`: the benchmark's load generator. See
//! [`wal_bench::load`]. Prints its report as one JSON object on stdout.

use std::time::Duration;

use clap::Parser;
use wal_bench::load::{run, LoadConfig};
use wal_bench::payload::PayloadSpec;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "wal-bench-load", about = "Load generator for the WAL gateway")]
struct Args {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:3392")]
    url: String,
    /// Write API key.
    #[arg(
        long,
        env = "WAL_BENCH_API_KEY",
        default_value = "bench-key-0123456789"
    )]
    api_key: String,
    /// Namespace to write to.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Messages per second (open loop); 0 = as fast as the gateway answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds to send.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many messages.
    #[arg(long)]
    total: Option<u64>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Messages per request (1: single writes; more: the batch endpoint).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    /// `lifecycle.delay` of every message, in seconds (0: not delayed).
    #[arg(long, default_value_t = 0)]
    delay_secs: u64,
    /// Serialized payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Send no request later than this many seconds after the start (a
    /// fixed-rate run otherwise sends every planned request, however late).
    #[arg(long)]
    cutoff: Option<f64>,
    /// Write the id of every accepted message to this file, one per line.
    #[arg(long)]
    ids_out: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = LoadConfig {
        base_url: args.url,
        api_key: args.api_key,
        spec: PayloadSpec {
            namespace: args.namespace,
            payload_bytes: args.payload_bytes,
            delay_secs: args.delay_secs,
        },
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        total: args.total,
        connections: args.connections,
        batch: args.batch,
        timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        cutoff: args.cutoff.map(|c| Duration::from_secs_f64(c.max(0.0))),
        collect_ids: args.ids_out.is_some(),
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?
        .block_on(run(cfg))?;
    if let Some(path) = &args.ids_out {
        let text: String = report.ids.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(path, text)?;
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
