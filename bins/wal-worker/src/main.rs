//! `wal-worker`: the delivery side of the WAL service (consumer groups,
//! delays, retries, DLQ, targets).
//!
//! Not built yet. Rather than pretend to deliver, this binary refuses to
//! start and says so: messages written through the gateway stay safely in
//! their Redis streams (the consumer group starts from the beginning of each
//! stream, so nothing written before the worker exists is skipped).

use clap::Parser;

/// Settings of the worker (none are used yet).
#[derive(Debug, Parser)]
#[command(
    name = "wal-worker",
    version,
    about = "WAL service delivery worker (not implemented yet)"
)]
struct WorkerConfig {}

fn main() -> std::process::ExitCode {
    let _ = WorkerConfig::parse();
    eprintln!(
        "wal-worker: delivery is not implemented yet. Writes accepted by wal-gateway stay in their \
         Redis streams and will be delivered once the worker exists."
    );
    std::process::ExitCode::from(2)
}
