//! A gateway running inside the test process, on a free port, against a
//! real Redis and its own namespace store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use fred::prelude::*;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use wal_gateway::state::AppState;
use wal_gateway::{Application, GatewayConfig};
use wal_process::Program;

/// Admin key configured on every test gateway.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
/// Global write key configured on every test gateway.
pub const WRITE_KEY: &str = "test-write-key-0123456789";

/// A fresh SQLite namespace store file: `(url, path)`.
pub fn sqlite_store() -> (String, PathBuf) {
    let path = std::env::temp_dir().join(format!("{}.db", crate::random_name("wal-ns")));
    (format!("sqlite://{}?mode=rwc", path.display()), path)
}

/// A running gateway.
pub struct TestGateway {
    /// Its address.
    pub addr: SocketAddr,
    /// HTTP client with keep-alive.
    pub client: reqwest::Client,
    /// The gateway's state (metrics, cache, …).
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    /// A gateway on the shared Redis with a fresh SQLite store.
    pub async fn spawn() -> Self {
        let (db, _) = sqlite_store();
        Self::spawn_with(&crate::redis_url(), &db, |_| {}).await
    }

    /// A gateway on `redis_url` and `database_url`, with settings adjusted by `tweak`.
    pub async fn spawn_with(
        redis_url: &str,
        database_url: &str,
        tweak: impl FnOnce(&mut GatewayConfig),
    ) -> Self {
        let mut cfg = GatewayConfig::for_tests(redis_url, database_url);
        cfg.api_keys = vec![WRITE_KEY.into()];
        cfg.admin_api_keys = vec![ADMIN_KEY.into()];
        tweak(&mut cfg);
        let app = Application::build(cfg).await.expect("gateway builds");
        let addr = app.local_addr();
        let state = app.state();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: reqwest::Client::new(),
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://addr<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST /api/v1/namespaces` with the admin key; panics unless 201.
    pub async fn create_namespace(&self, body: &Value) {
        let resp = self
            .client
            .post(self.url("/api/v1/namespaces"))
            .header("x-api-key", ADMIN_KEY)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 201, "namespace creation failed: {text}");
    }

    /// `POST /api/v1/wal/write` with the global write key.
    pub async fn write(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/wal/write"))
            .header("x-api-key", WRITE_KEY)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Sends `method path` with `key` as `X-API-Key` (if any) and `body` as
    /// JSON (if any); answers the status and the JSON body (`Null` if empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Stops the gateway and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A namespace config with one HTTP target `sink` and `partitions` partitions.
pub fn namespace_body(name: &str, partitions: u32) -> Value {
    json!({
        "name": name,
        "shardConfig": {"strategy": "hash", "partitionCount": partitions},
        "targetConfigs": [
            {"identifier": "sink", "type": "http",
             "config": {"url": "http://127.0.0.1:9/hook", "allowedOverrideHeaders": ["X-Tenant"]}},
            {"identifier": "cache", "type": "cache", "config": {"urlEnv": "WAL_TEST_CACHE_URL"}}
        ]
    })
}

/// A client on `url` for inspecting what the gateway wrote.
pub async fn redis_client(url: &str) -> Client {
    let client = Client::new(Config::from_url(url).expect("url"), None, None, None);
    client.init().await.expect("redis connects");
    client
}

/// Deletes every key of namespace `ns` (never anything else) from `client`'s Redis.
pub async fn delete_namespace_keys(client: &Client, ns: &str) {
    let pattern = format!("wal:{{{ns}}}:*");
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![pattern])
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = client.del(keys).await;
    }
}
