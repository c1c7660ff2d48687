//! Logging: `tracing` with an env-filter, as text or one JSON object per line.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The log settings every program takes.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `wal_worker=debug,info`.
    #[arg(long = "log-level", env = "WAL_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log-format", env = "WAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber (once; later calls are ignored). An
    /// unparsable filter falls back to `info`.
    pub fn init(&self) {
        let filter = EnvFilter::try_new(&self.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false);
        let _ = match self.log_format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .try_init(),
            LogFormat::Text => builder.try_init(),
        };
    }
}
