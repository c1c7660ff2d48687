//! End-to-end harness: the gateway and the worker as child processes (the
//! test crate's `e2e-gateway` / `e2e-worker` binaries, which run the same
//! `run_cli` as the shipped programs), a shared SQLite namespace store, and
//! an HTTP sink inside the test whose answers the test scripts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::gateway::{ADMIN_KEY, WRITE_KEY};
use crate::seed::now_ms;

/// One request the sink received, with its answer.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// When it arrived (ms since epoch).
    pub at_ms: u64,
    /// The status the sink answered.
    pub status: u16,
}

impl Received {
    /// The `X-WAL-Message-Id` header.
    pub fn message_id(&self) -> String {
        self.headers
            .get("x-wal-message-id")
            .cloned()
            .unwrap_or_default()
    }

    /// The `X-WAL-Attempt` header.
    pub fn attempt(&self) -> u32 {
        self.headers
            .get("x-wal-attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0)
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the sink answers.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Wait this long before answering.
    pub delay: Duration,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// 200 at once.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `code` at once.
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }

    /// The same answer after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the answer from the request and how many times this message
/// reached this path before (0 the first time).
pub type Behaviour = Arc<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

struct SinkState {
    received: Mutex<Vec<Received>>,
    seen: Mutex<HashMap<(String, String), usize>>,
    behaviour: Mutex<Behaviour>,
    changed: Notify,
}

/// An HTTP sink on a free loopback port.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// A sink that answers 200 to everything.
    pub async fn start() -> Self {
        let state = Arc::new(SinkState {
            received: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Arc::new(|_, _| Reply::ok())),
            changed: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// URL of `path` on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replaces how the sink answers.
    pub fn set_behaviour(&self, f: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) {
        *self.state.behaviour.lock().unwrap() = Arc::new(f);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Every request on `path`, whatever the answer.
    pub fn requests_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Requests on `path` the sink accepted (2xx): deliveries.
    pub fn delivered_on(&self, path: &str) -> Vec<Received> {
        self.requests_on(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `cond` holds over every request received, or `timeout`.
    /// (`cond` runs under the sink's lock: use its argument, not the sink.)
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            if cond(&self.state.received.lock().unwrap()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<SinkState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Received {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
        at_ms: now_ms(),
        status: 0,
    };
    let nth = {
        let mut seen = state.seen.lock().unwrap();
        let n = seen
            .entry((req.path.clone(), req.message_id()))
            .or_insert(0);
        *n += 1;
        *n - 1
    };
    let behaviour = state.behaviour.lock().unwrap().clone();
    let reply = behaviour(&req, nth);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut req = req;
    req.status = status.as_u16();
    state.received.lock().unwrap().push(req);
    state.changed.notify_waiters();
    let mut res = (status, "").into_response();
    if let Some(secs) = reply.retry_after {
        res.headers_mut()
            .insert("retry-after", secs.to_string().parse().expect("header"));
    }
    res
}

/// Requests on `path` that the sink accepted.
pub fn delivered(requests: &[Received], path: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.path == path && (200..300).contains(&r.status))
        .count()
}

/// Distinct message ids `path` accepted.
pub fn distinct_delivered(requests: &[Received], path: &str) -> std::collections::HashSet<String> {
    requests
        .iter()
        .filter(|r| r.path == path && (200..300).contains(&r.status))
        .map(Received::message_id)
        .collect()
}

/// A running program (gateway or worker).
pub struct Program {
    child: Child,
    /// Its HTTP port.
    pub port: u16,
}

impl Program {
    /// `kill -9`.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// `SIGTERM`, then waits up to `within` for it to exit.
    pub async fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Its Prometheus metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Sum of the samples of `metric` whose labels contain every `(name, value)`.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(metric)
                && l[metric.len()..].starts_with(['{', ' '])
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Path of one of this crate's binaries: `CARGO_BIN_EXE_<name>` when the
/// runner sets it (nextest does), else next to the test executable's
/// `deps/` directory, where cargo puts it.
pub fn program_path(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target directory")
}

async fn wait_http_ok(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up within {timeout:?}");
}

/// Gateway, workers and a namespace store for one test.
pub struct Stack {
    /// Redis the programs use.
    pub redis_url: String,
    /// Namespace store URL (shared SQLite file).
    pub db_url: String,
    db_path: PathBuf,
    /// The gateway.
    pub gateway: Program,
    /// HTTP client.
    pub client: reqwest::Client,
}

impl Stack {
    /// Starts a gateway on `redis_url` with a fresh namespace store.
    pub async fn start(redis_url: &str) -> Self {
        let (db_url, db_path) = crate::gateway::sqlite_store();
        let port = crate::free_port();
        let child = Command::new(program_path("e2e-gateway"))
            .env("WAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("WAL_REDIS_URL", redis_url)
            .env("WAL_DATABASE_URL", &db_url)
            .env("WAL_API_KEYS", WRITE_KEY)
            .env("WAL_ADMIN_API_KEYS", ADMIN_KEY)
            .env("WAL_NAMESPACE_REFRESH_MS", "200")
            .env("WAL_REDIS_TIMEOUT_MS", "1000")
            .env("WAL_SECRET_ENV_PREFIX", "WAL_TEST_")
            .env("WAL_SECRET_DIR", std::env::temp_dir())
            .env("WAL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gateway");
        let gateway = Program { child, port };
        wait_http_ok(
            &format!("http://127.0.0.1:{port}/api/v1/health/liveness"),
            Duration::from_secs(20),
        )
        .await;
        Self {
            redis_url: redis_url.to_string(),
            db_url,
            db_path,
            gateway,
            client: reqwest::Client::new(),
        }
    }

    /// Starts a worker with fast test timings, overridden by `env`.
    pub async fn spawn_worker(&self, env: &[(&str, &str)]) -> Program {
        let port = crate::free_port();
        let mut cmd = Command::new(program_path("e2e-worker"));
        cmd.env("WAL_WORKER_LISTEN", format!("127.0.0.1:{port}"))
            .env("WAL_REDIS_URL", &self.redis_url)
            .env("WAL_DATABASE_URL", &self.db_url)
            .env("WAL_WORKER_NAME", crate::random_name("worker"))
            .env("WAL_NAMESPACE_REFRESH_MS", "200")
            .env("WAL_REDIS_TIMEOUT_MS", "1000")
            .env("WAL_VISIBILITY_TIMEOUT_MS", "3000")
            .env("WAL_RECLAIM_INTERVAL_MS", "300")
            .env("WAL_SCHEDULE_POLL_MS", "50")
            .env("WAL_BREAKER_COOLDOWN_MS", "1000")
            .env("WAL_SHUTDOWN_GRACE_SECS", "5")
            .env("WAL_SECRET_ENV_PREFIX", "WAL_TEST_")
            .env("WAL_SECRET_DIR", std::env::temp_dir())
            .env("WAL_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn worker");
        wait_http_ok(
            &format!("http://127.0.0.1:{port}/health/liveness"),
            Duration::from_secs(20),
        )
        .await;
        Program { child, port }
    }

    /// URL of `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway.port)
    }

    /// Creates a namespace (admin key); panics unless 201.
    pub async fn create_namespace(&self, body: Value) {
        let res = self
            .client
            .post(self.url("/api/v1/namespaces"))
            .header("x-api-key", ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .expect("create namespace");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 201, "create namespace: {text}");
    }

    /// Writes one message; returns its id.
    pub async fn write(&self, body: Value) -> String {
        let res = self
            .client
            .post(self.url("/api/v1/wal/write"))
            .header("x-api-key", WRITE_KEY)
            .json(&body)
            .send()
            .await
            .expect("write");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "write answered {status}: {v}");
        v["data"]["messageId"]
            .as_str()
            .or_else(|| v["messageId"].as_str())
            .unwrap_or_else(|| panic!("no message id in {v}"))
            .to_string()
    }

    /// Writes messages through the batch endpoint (chunks of 500); returns their ids.
    pub async fn write_batch(&self, messages: Vec<Value>) -> Vec<String> {
        let mut ids = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(500) {
            let res = self
                .client
                .post(self.url("/api/v1/wal/write/batch"))
                .header("x-api-key", WRITE_KEY)
                .json(&json!({ "messages": chunk }))
                .send()
                .await
                .expect("batch write");
            let status = res.status();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "batch answered {status}: {v}");
            let results = v["data"]["results"]
                .as_array()
                .or_else(|| v["results"].as_array())
                .unwrap_or_else(|| panic!("no results in {v}"));
            for r in results {
                ids.push(
                    r["messageId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("item not accepted: {r}"))
                        .to_string(),
                );
            }
        }
        ids
    }

    /// `GET path` with the admin key: (status, JSON body).
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .expect("get");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` with the admin key and an empty JSON body: (status, JSON body).
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .header("x-api-key", ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.db_path);
    }
}

/// A namespace with the given targets and a fast retry policy
/// (`maxAttempts`, 200 ms initial delay doubling, no jitter).
pub fn namespace(name: &str, partitions: u32, max_attempts: u32, targets: Value) -> Value {
    json!({
        "name": name,
        "shardConfig": {"strategy": "hash", "partitionCount": partitions},
        "retryPolicy": {"maxAttempts": max_attempts, "backoffStrategy": "exponential",
                        "initialDelayMs": 200, "maxDelayMs": 5000, "jitterMs": 0},
        "targetConfigs": targets,
    })
}

/// An HTTP target config.
pub fn http_target(identifier: &str, url: &str) -> Value {
    json!({"identifier": identifier, "type": "http", "config": {"url": url, "timeoutMs": 1000}})
}
