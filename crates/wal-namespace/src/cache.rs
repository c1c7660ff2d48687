//! The in-memory namespace cache of a gateway or worker.
//!
//! Reads ([`NamespaceCache::get`], [`NamespaceCache::any_namespace_key_matches`])
//! never touch the database and never lock: they load an immutable
//! [`Snapshot`] from an [`ArcSwap`]. A refresher task polls the store's
//! [`Fingerprint`] (default every second) and swaps in a fresh snapshot when
//! it changed, so a change made through any instance is visible everywhere
//! within about one interval, without a restart. It also reloads everything
//! every [`FULL_RELOAD_EVERY`] ticks as a safety net. When the database is
//! unreachable the last snapshot is kept and served.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::api_key::ApiKeyHash;
use crate::error::StoreError;
use crate::model::Namespace;
use crate::store::{Fingerprint, NamespaceStore};

/// Default refresh interval.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// The refresher reloads everything, whatever the fingerprint, every this many ticks.
pub const FULL_RELOAD_EVERY: u32 = 60;
/// How long [`NamespaceCache::is_db_reachable`] waits for the database.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// While the database is unreachable, a warning is logged every this many failed ticks.
const WARN_EVERY: u32 = 30;

/// An immutable view of all namespaces at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    namespaces: HashMap<String, Arc<Namespace>>,
    all_key_hashes: HashSet<ApiKeyHash>,
    fingerprint: Option<Fingerprint>,
}

impl Snapshot {
    /// A snapshot of `namespaces`.
    pub fn new(namespaces: Vec<Namespace>, fingerprint: Option<Fingerprint>) -> Self {
        let all_key_hashes = namespaces
            .iter()
            .flat_map(|ns| ns.api_key_hashes.iter().copied())
            .collect();
        Self {
            namespaces: namespaces
                .into_iter()
                .map(|ns| (ns.name.clone(), Arc::new(ns)))
                .collect(),
            all_key_hashes,
            fingerprint,
        }
    }

    /// The namespace named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(name).cloned()
    }

    /// All namespaces, ordered by name.
    pub fn all(&self) -> Vec<Arc<Namespace>> {
        let mut v: Vec<_> = self.namespaces.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of namespaces.
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Whether `hash` is an allowed key of at least one namespace. (A set
    /// lookup of a SHA-256 hash: its timing reveals nothing usable about keys.)
    pub fn any_namespace_key_matches(&self, hash: &ApiKeyHash) -> bool {
        self.all_key_hashes.contains(hash)
    }

    /// The store fingerprint this snapshot was loaded at.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }
}

/// All namespaces in memory, kept fresh from a [`NamespaceStore`].
#[derive(Debug)]
pub struct NamespaceCache {
    store: NamespaceStore,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises refreshes, so an older load never replaces a newer one.
    refresh_lock: Mutex<()>,
}

impl NamespaceCache {
    /// Loads every namespace from `store`.
    pub async fn load(store: NamespaceStore) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(Self {
            store,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            refresh_lock: Mutex::new(()),
        });
        cache.reload().await?;
        Ok(cache)
    }

    /// The namespace named `name`, from memory.
    pub fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        self.snapshot.load().get(name)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Whether `hash` is an allowed key of any namespace: lets the gateway
    /// answer 401 (unknown key) rather than 403 (known key, not allowed here).
    pub fn any_namespace_key_matches(&self, hash: &ApiKeyHash) -> bool {
        self.snapshot.load().any_namespace_key_matches(hash)
    }

    /// The store behind the cache (for the admin API).
    pub fn store(&self) -> &NamespaceStore {
        &self.store
    }

    /// Whether the database answers right now (within [`PING_TIMEOUT`]).
    pub async fn is_db_reachable(&self) -> bool {
        matches!(
            tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        )
    }

    /// Reloads everything if the store's fingerprint changed since the last
    /// load; answers whether it reloaded. On error the current snapshot stays.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _guard = self.refresh_lock.lock().await;
        let fingerprint = self.store.fingerprint().await?;
        if self.snapshot.load().fingerprint == Some(fingerprint) {
            return Ok(false);
        }
        self.load_all(fingerprint).await?;
        Ok(true)
    }

    /// Reloads everything unconditionally. On error the current snapshot stays.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _guard = self.refresh_lock.lock().await;
        let fingerprint = self.store.fingerprint().await?;
        self.load_all(fingerprint).await
    }

    /// Loads all rows and swaps the snapshot. The fingerprint is read *before*
    /// the rows: a change committed in between is in the rows and changes the
    /// next fingerprint, so it can cause an extra reload but never a missed one.
    async fn load_all(&self, fingerprint: Fingerprint) -> Result<(), StoreError> {
        let namespaces = self.store.list().await?;
        tracing::debug!(count = namespaces.len(), "namespace cache loaded");
        self.snapshot
            .store(Arc::new(Snapshot::new(namespaces, Some(fingerprint))));
        Ok(())
    }

    /// Refreshes every `every` (see [`refresh`](Self::refresh)) until the
    /// cache is dropped or the task aborted; logs and keeps the current
    /// snapshot while the database is unreachable.
    pub fn spawn_refresher(self: Arc<Self>, every: Duration) -> JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate; the cache was just loaded
            let mut tick: u32 = 0;
            let mut failures: u32 = 0;
            loop {
                ticker.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                tick = tick.wrapping_add(1);
                let result = if tick % FULL_RELOAD_EVERY == 0 {
                    cache.reload().await.map(|()| true)
                } else {
                    cache.refresh().await
                };
                match result {
                    Ok(reloaded) => {
                        if failures > 0 {
                            tracing::info!(
                                failed_refreshes = failures,
                                "namespace store reachable again"
                            );
                        }
                        failures = 0;
                        if reloaded {
                            tracing::debug!("namespace cache refreshed");
                        }
                    }
                    Err(e) => {
                        if failures % WARN_EVERY == 0 {
                            tracing::warn!(
                                error = %e,
                                failed_refreshes = failures + 1,
                                "cannot refresh namespaces; serving the cached ones"
                            );
                        }
                        failures = failures.saturating_add(1);
                    }
                }
            }
        })
    }
}
