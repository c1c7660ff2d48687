//! The one place where target configurations become targets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wal_namespace::targets::{TargetConfig, TargetKind};
use wal_namespace::SecretPolicy;

use crate::http::{HttpTarget, SigningKey};
use crate::postgres::{PgDatabase, PostgresTarget};
use crate::redis::{CacheTarget, RedisCache};
use crate::traced::Traced;
use crate::{secret, Target, TargetBuildError};

/// Builds targets and owns what they share: one HTTP client, one PostgreSQL
/// pool per DSN and one Redis client per URL, so many namespaces and targets
/// pointing at the same server share connections.
///
/// Building never connects: pools and clients connect on first delivery, so
/// a target whose server is down is built fine and answers `Retry`.
pub struct TargetFactory {
    http: reqwest::Client,
    /// Pools by DSN.
    databases: Mutex<HashMap<String, Arc<PgDatabase>>>,
    /// Clients by URL.
    caches: Mutex<HashMap<String, Arc<RedisCache>>>,
    /// What secret references may name.
    secrets: SecretPolicy,
}

impl Default for TargetFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl TargetFactory {
    /// A factory with its own HTTP client (no redirects followed, rustls).
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wal-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is static and valid");
        Self::with_http_client(http)
    }

    /// A factory sharing `http`, which should not follow redirects (a 3xx
    /// answer is classified as a permanent failure).
    pub fn with_http_client(http: reqwest::Client) -> Self {
        Self {
            http,
            databases: Mutex::new(HashMap::new()),
            caches: Mutex::new(HashMap::new()),
            secrets: SecretPolicy::default(),
        }
    }

    /// The factory, reading secrets only as `policy` allows (default:
    /// [`SecretPolicy::default`]).
    pub fn with_secret_policy(mut self, policy: SecretPolicy) -> Self {
        self.secrets = policy;
        self
    }

    /// Builds target `config` of `namespace`, reading its secrets now.
    /// Whether it is `enabled` is the caller's concern.
    pub async fn build(
        &self,
        namespace: &str,
        config: &TargetConfig,
    ) -> Result<Arc<dyn Target>, TargetBuildError> {
        let id = config.identifier.as_str();
        let inner: Arc<dyn Target> = match &config.kind {
            TargetKind::Http(c) | TargetKind::Webhook(c) => {
                let webhook = matches!(config.kind, TargetKind::Webhook(_));
                let signing = match (c.signing_secret(), webhook) {
                    (None, false) => None,
                    (reference, _) => {
                        let s =
                            secret::resolve(&self.secrets, id, "signing secret", reference).await?;
                        Some(
                            SigningKey::from_secret(&s.value)
                                .map_err(|e| s.invalid(id, "signing secret", e.to_string()))?,
                        )
                    }
                };
                Arc::new(HttpTarget::new(id, self.http.clone(), c, signing)?)
            }
            TargetKind::Database(c) => {
                let dsn = secret::resolve(&self.secrets, id, "DSN", c.dsn()).await?;
                let db = cached(&self.databases, &dsn.value, || PgDatabase::new(&dsn.value))
                    .map_err(|reason| dsn.invalid(id, "DSN", reason))?;
                Arc::new(PostgresTarget::new(namespace, id, db, c)?)
            }
            TargetKind::Cache(c) => {
                let url = secret::resolve(&self.secrets, id, "cache URL", c.url()).await?;
                let cache = cached(&self.caches, &url.value, || RedisCache::new(&url.value))
                    .map_err(|reason| url.invalid(id, "cache URL", reason))?;
                Arc::new(CacheTarget::new(cache, c))
            }
        };
        Ok(Arc::new(Traced {
            namespace: namespace.to_string(),
            identifier: id.to_string(),
            inner,
        }))
    }

    /// Closes every pool and Redis client (at shutdown, after the last
    /// delivery; later attempts would answer `Retry`).
    pub async fn shutdown(&self) {
        let databases: Vec<_> = lock(&self.databases).values().cloned().collect();
        for db in databases {
            db.close();
        }
        let caches: Vec<_> = lock(&self.caches).values().cloned().collect();
        for cache in caches {
            cache.quit().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The entry of `map` for `key`, made by `make` the first time.
fn cached<T>(
    map: &Mutex<HashMap<String, Arc<T>>>,
    key: &str,
    make: impl FnOnce() -> Result<T, String>,
) -> Result<Arc<T>, String> {
    let mut map = lock(map);
    if let Some(v) = map.get(key) {
        return Ok(v.clone());
    }
    let v = Arc::new(make()?);
    map.insert(key.to_string(), v.clone());
    Ok(v)
}
