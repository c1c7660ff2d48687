//! # wal-namespace
//!
//! Namespaces of the WAL service (SPEC §4): their configuration model, its
//! validation, their storage in a SQL database (sea-orm: PostgreSQL in
//! production, SQLite for development and tests) and the lock-free in-memory
//! cache the gateway and the worker read them from.
//!
//! ## Layout
//!
//! * [`spec`] — the wire model [`NamespaceSpec`] (camelCase, unknown fields
//!   rejected, documented defaults) and [`parse_spec`].
//! * [`backend_config`] — `backendConfig` and the backend kinds.
//! * [`validate`] — [`NamespaceSpec::validate`]: wire spec → [`Namespace`].
//! * [`targets`] — delivery targets: wire form and typed, validated form.
//! * [`patch`] — JSON Merge Patch for partial updates.
//! * [`model`] — the validated [`Namespace`] and the admin view [`NamespaceView`].
//! * [`api_key`] — API keys as SHA-256 hashes, compared in constant time.
//! * [`store`] — [`NamespaceStore`]: CRUD with audit records and a cheap change fingerprint.
//! * [`cache`] — [`NamespaceCache`]: snapshot in an `ArcSwap`, refreshed in the background.
//! * [`error`] — [`StoreError`].
//!
//! ## Use from the gateway
//!
//! ```no_run
//! # async fn demo() -> Result<(), wal_namespace::StoreError> {
//! use std::time::Duration;
//! use wal_namespace::{ApiKeyHash, NamespaceCache, NamespaceStore};
//!
//! let store = NamespaceStore::connect("sqlite::memory:").await?;
//! let cache = NamespaceCache::load(store).await?;
//! let _refresher = cache.clone().spawn_refresher(Duration::from_secs(1));
//! if let Some(ns) = cache.get("orders") {
//!     let key = ApiKeyHash::of("presented-api-key-value");
//!     let allowed = !ns.has_key_allow_list() || ns.key_allowed(&key);
//!     let _ = (allowed, ns.log_settings());
//! }
//! # Ok(()) }
//! ```

pub mod api_key;
pub mod backend_config;
pub mod cache;
mod entity;
pub mod error;
pub mod model;
pub mod patch;
pub mod secrets;
pub mod spec;
pub mod store;
pub mod targets;
pub mod validate;

pub use api_key::{actor_for_admin_key, any_matches, ApiKeyHash};
pub use cache::{NamespaceCache, Snapshot, DEFAULT_REFRESH_INTERVAL};
pub use error::StoreError;
pub use model::{AccessControlView, Namespace, NamespaceView};
pub use secrets::{SecretError, SecretPolicy, SecretRef};
pub use spec::{parse_spec, BackendConfig, BackendKind, NamespaceSpec, RetentionSpec};
pub use store::{AuditAction, AuditRecord, Fingerprint, NamespaceStore};
pub use targets::{
    CacheTargetConfig, DatabaseTargetConfig, HttpTargetConfig, TargetConfig, TargetConfigSpec,
    TargetKind, TargetType,
};
pub use wal_core::validate::{FieldError, FieldErrors};
