//! A private moto SQS endpoint (`moto_server`) on its own port, which a test
//! may stop and start again. moto starts in about a second here, so each
//! test runs its own server; its state lives in memory and is lost on stop.
//!
//! Every server records the requests it receives (moto's recorder), so a
//! test can check what the client sent ([`MotoServer::recorded`]), and
//! [`MotoServer::sqs`] makes raw SQS calls (JSON protocol, unsigned: moto
//! does not check signatures) for set-ups the backend has no API for, such
//! as a queue with a redrive policy.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};
use wal_backends::sqs::{SqsClientConfig, SqsCredentials};

/// Message when `moto_server` cannot be run.
const NOT_INSTALLED: &str = "moto_server is not installed: run scripts/install-tools.sh";

/// A moto server owned by one test; killed on drop.
pub struct MotoServer {
    port: u16,
    child: Option<Child>,
    /// moto's request recording (`MOTO_RECORDER_FILEPATH`).
    recording: std::path::PathBuf,
}

/// One request moto received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The SQS action (`SendMessage`, `SendMessageBatch`, …), from `X-Amz-Target`.
    pub action: String,
    /// The JSON request body (`Null` when there is none).
    pub body: Value,
}

impl MotoServer {
    /// Starts `moto_server` on a free port and waits until it answers HTTP.
    /// Panics with a clear message when moto is not installed.
    pub async fn start() -> Self {
        let mut last_port = 0;
        // A port picked free may be taken before moto binds it: try a few.
        for _ in 0..3 {
            let mut this = Self {
                port: crate::free_port(),
                child: None,
                recording: std::env::temp_dir().join(format!(
                    "{}.jsonl",
                    crate::random_name("wal-moto-recording")
                )),
            };
            last_port = this.port;
            if this.spawn().await {
                return this;
            }
        }
        panic!("moto_server did not start (last port tried: {last_port})");
    }

    /// Spawns the server on `self.port`; `false` if it exited before answering.
    async fn spawn(&mut self) -> bool {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", &self.recording)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{NOT_INSTALLED}"),
            Err(e) => panic!("cannot run moto_server: {e}"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("an HTTP client");
        let url = format!("{}/moto-api/", self.endpoint());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                // 127: a shim (pyenv) found no moto_server in the active Python.
                if status.code() == Some(127) {
                    panic!("{NOT_INSTALLED}");
                }
                return false;
            }
            if http.get(&url).send().await.is_ok() {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill().await;
        panic!(
            "moto_server on port {} did not answer within 30 s",
            self.port
        );
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Region `us-east-1`, this endpoint, static test credentials.
    pub fn client_config(&self) -> SqsClientConfig {
        Self::config_for(&self.endpoint())
    }

    /// The test client config (region `us-east-1`, static test credentials)
    /// for any endpoint, e.g. one that is not moto at all.
    pub fn config_for(endpoint: &str) -> SqsClientConfig {
        SqsClientConfig {
            region: "us-east-1".into(),
            endpoint_url: Some(endpoint.to_string()),
            credentials: Some(SqsCredentials {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
                session_token: None,
            }),
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Its queues are gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        if !self.spawn().await {
            panic!("moto_server could not start again on port {}", self.port);
        }
    }
}

impl MotoServer {
    /// A raw SQS call: `action` (e.g. `CreateQueue`) with a JSON body; the
    /// JSON answer, or `Err` with the error body on a non-2xx status.
    pub async fn sqs(&self, action: &str, body: Value) -> Result<Value, String> {
        let resp = reqwest::Client::new()
            .post(format!("{}/", self.endpoint()))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", format!("AmazonSQS.{action}"))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/sqs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let ok = resp.status().is_success();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !ok {
            return Err(text);
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// The SQS requests received so far, oldest first (across restarts).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        let Ok(text) = std::fs::read_to_string(&self.recording) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|entry| {
                let target = entry["headers"].as_object().and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                        .and_then(|(_, v)| v.as_str())
                })?;
                let action = target.rsplit('.').next().unwrap_or(target).to_string();
                let raw = entry["body"].as_str().unwrap_or_default();
                let bytes = if entry["body_encoded"].as_bool() == Some(true) {
                    base64_decode(raw)
                } else {
                    raw.as_bytes().to_vec()
                };
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Some(RecordedRequest { action, body })
            })
            .collect()
    }

    /// The recorded requests of one action.
    pub fn recorded_action(&self, action: &str) -> Vec<Value> {
        self.recorded()
            .into_iter()
            .filter(|r| r.action == action)
            .map(|r| r.body)
            .collect()
    }
}

/// Standard base64 (moto's recording encodes request bodies with it).
fn base64_decode(s: &str) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_file(&self.recording);
    }
}
