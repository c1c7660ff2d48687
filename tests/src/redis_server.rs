//! A private `redis-server` on its own port, which a test may stop and start
//! again (the shared Redis must never be stopped).

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A Redis server owned by one test; killed on drop.
pub struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port (no persistence) and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Starts with extra `redis-server` arguments (e.g. `--replicaof`).
    pub async fn start_with(extra: Vec<String>) -> Self {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(crate::random_name("wal-redis"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut this = Self {
            port,
            dir,
            child: None,
            extra,
        };
        this.spawn().await;
        this
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Waits (up to 10 s) until one replica is connected and in sync;
    /// panics otherwise.
    pub async fn wait_for_replica(&self) {
        use fred::prelude::*;
        let raw = crate::gateway::redis_client(&self.url()).await;
        for _ in 0..100 {
            let info: String = raw
                .info(Some(fred::types::InfoKind::Replication))
                .await
                .unwrap();
            if info.contains("connected_slaves:1") && info.contains("state=online") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the replica never came online");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
