//! A private [tansu](https://github.com/tansu-io/tansu) Kafka-protocol broker
//! on its own port, which a test may stop and start again.
//!
//! tansu keeps everything in memory here (`--storage-engine memory://`): a
//! restart starts empty, and topics are never created automatically (use
//! [`wal_backends::kafka::ensure_topic`]). The binary is looked up on `PATH`,
//! then in `$CARGO_HOME/bin` and `$HOME/.cargo/bin`; `scripts/install-tools.sh`
//! installs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use wal_backends::kafka::{KafkaClientConfig, KafkaProducer};
use wal_core::backend::LogProducer;

/// librdkafka properties every client of tansu 0.6 needs.
///
/// `batch.num.messages=1`: tansu's fetch (its object-store engine, which
/// `memory://` is) returns only record batches whose *base* offset is at or
/// after the fetch offset, never the batch that contains it. A consumer
/// resuming from a committed offset in the middle of a producer batch then
/// gets nothing until a later batch arrives — and silently skips the rest of
/// the batch. One record per batch makes every offset a batch start. (Kafka
/// itself returns the containing batch; production settings need nothing.)
pub const TANSU_CLIENT_PROPERTIES: &[(&str, &str)] = &[("batch.num.messages", "1")];

/// A tansu broker owned by one test; killed on drop.
pub struct TansuBroker {
    port: u16,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Where the `tansu` binary is, if installed.
pub fn tansu_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_bins = [
        std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").join("bin")),
    ];
    on_path
        .into_iter()
        .chain(cargo_bins.into_iter().flatten())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
}

impl TansuBroker {
    /// Starts tansu on a free port and waits until it answers metadata
    /// requests. Panics when tansu is not installed.
    pub async fn start() -> Self {
        let bin = tansu_binary().expect("tansu is not installed: run scripts/install-tools.sh");
        let port = crate::free_port();
        let log = std::env::temp_dir().join(format!("wal-tansu-{port}.log"));
        let mut this = Self {
            port,
            bin,
            log,
            child: None,
        };
        this.spawn().await;
        this
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(&self.log).expect("tansu log file");
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("tansu could not be started");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Waits until the port accepts and a metadata request is answered.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "tansu on port {} did not listen (log: {})",
                self.port,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let producer = KafkaProducer::new(&self.client_config()).expect("a Kafka client");
        loop {
            if producer.ping().await.is_ok() {
                return;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "tansu on port {} did not answer metadata (log: {})",
                self.port,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn check_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tansu exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Client settings for this broker, with a short (3 s) message timeout
    /// and the [`TANSU_CLIENT_PROPERTIES`].
    pub fn client_config(&self) -> KafkaClientConfig {
        KafkaClientConfig {
            brokers: self.brokers(),
            properties: TANSU_CLIENT_PROPERTIES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message_timeout: Duration::from_secs(3),
        }
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port (empty: the storage is in memory).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
