//! The namespace store: namespaces in a SQL database through sea-orm,
//! PostgreSQL in production, SQLite for development and tests.
//!
//! * [`NamespaceStore::connect`] opens a pool and applies the migrations of
//!   `wal-migrations` (on PostgreSQL under an advisory lock, so instances
//!   starting together do not race).
//! * Every mutation validates the whole configuration first, then writes the
//!   row and a `namespace_audit` row in one transaction.
//! * Updates are optimistic: the row is rewritten only if its `version` is
//!   still the one that was read (`UPDATE … WHERE version = ?`), and retried
//!   otherwise, so two concurrent updates never lose one another. Creating a
//!   name twice is caught by the unique index, so it is race-free too.
//! * On SQLite every transaction starts with its write, so that waiting for a
//!   concurrent writer goes through the busy timeout instead of failing.
//! * [`NamespaceStore::fingerprint`] is a cheap summary that changes with every
//!   committed mutation; the cache polls it.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, SqlErr, Statement,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use wal_core::retry::RetryPolicy;
use wal_core::validate::FieldErrors;
use wal_migrations::{Migrator, MigratorTrait};

use crate::entity::{namespace, namespace_audit};
use crate::error::{redact, StoreError};
use crate::model::Namespace;
use crate::secrets::SecretPolicy;
use crate::spec::{
    AccessControlSpec, BackendConfig, BackendKind, DlqConfig, NamespaceSpec, ShardConfig,
};
use crate::targets::TargetConfigSpec;

/// Key of the PostgreSQL advisory lock held while migrating ("WAL_NS").
const PG_MIGRATION_LOCK: i64 = 0x57_41_4c_5f_4e_53;
/// Optimistic update attempts before giving up under heavy contention.
const MAX_UPDATE_ATTEMPTS: usize = 8;
/// Longest `created_by` / `updated_by` / `actor` (column width).
const MAX_ACTOR_LEN: usize = 64;
/// How long SQLite waits for a concurrent writer.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A summary of the whole `namespaces` table that changes with every
/// committed create, update or delete: the number of namespaces, the sum of
/// their versions and the highest audit id.
///
/// Audit ids are allocated before commit, so two concurrent transactions can
/// become visible in the opposite order; the count and version sum still
/// change with each of them, so a change is missed only if two such late
/// commits cancel out exactly (the cache also reloads everything
/// periodically, see [`NamespaceCache`](crate::cache::NamespaceCache)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Number of namespaces.
    pub count: i64,
    /// Sum of their versions.
    pub version_sum: i64,
    /// Highest `namespace_audit.id`.
    pub last_audit_id: i64,
}

/// What an audit record records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// The namespace was created.
    Create,
    /// Its configuration was replaced, or it was enabled / disabled.
    Update,
    /// It was deleted.
    Delete,
}

impl AuditAction {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(AuditAction::Create),
            "update" => Some(AuditAction::Update),
            "delete" => Some(AuditAction::Delete),
            _ => None,
        }
    }
}

/// One row of `namespace_audit`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Auto-increment id (the order of the records).
    pub id: i64,
    /// Namespace name.
    pub namespace: String,
    /// What happened.
    pub action: AuditAction,
    /// Fingerprint of the admin key (first 8 hex digits of its SHA-256).
    pub actor: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// Details, e.g. `{"version": 3}` or `{"version": 4, "enabled": false}`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The `config` column: everything of the validated configuration that has no
/// column of its own, in the wire shape, API keys as `sha256:` hashes.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredConfig {
    max_delay_seconds: u64,
    retry_policy: RetryPolicy,
    dlq_config: DlqConfig,
    shard_config: ShardConfig,
    target_configs: Vec<TargetConfigSpec>,
    backend_config: BackendConfig,
    access_control: AccessControlSpec,
    dedup_window_seconds: u64,
}

/// Namespaces in a SQL database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct NamespaceStore {
    db: DatabaseConnection,
    secrets: SecretPolicy,
}

fn now() -> DateTime<Utc> {
    // Both databases keep microseconds: what is returned equals what is read back.
    Utc::now().trunc_subsecs(6)
}

fn clip_actor(actor: &str) -> String {
    actor.chars().take(MAX_ACTOR_LEN).collect()
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn active_model(ns: &Namespace) -> Result<namespace::ActiveModel, StoreError> {
    let spec = ns.to_spec();
    let config = StoredConfig {
        max_delay_seconds: spec.max_delay_seconds,
        retry_policy: spec.retry_policy,
        dlq_config: spec.dlq_config,
        shard_config: spec.shard_config,
        target_configs: spec.target_configs,
        backend_config: spec.backend_config,
        access_control: spec.access_control,
        dedup_window_seconds: spec.dedup_window_seconds,
    };
    let config = serde_json::to_string(&config)
        .map_err(|e| StoreError::Database(format!("cannot encode configuration: {e}")))?;
    Ok(namespace::ActiveModel {
        id: Set(ns.id.clone()),
        name: Set(ns.name.clone()),
        backend: Set(ns.backend.as_str().to_string()),
        topic_name: Set(ns.topic_name.clone()),
        description: Set(ns.description.clone()),
        enabled: Set(ns.enabled),
        max_message_size: Set(to_i64(ns.max_message_size)),
        message_ttl_seconds: Set(to_i64(ns.message_ttl_seconds)),
        config: Set(config),
        version: Set(ns.version),
        created_at: Set(ns.created_at),
        updated_at: Set(ns.updated_at),
        created_by: Set(ns.created_by.clone()),
        updated_by: Set(ns.updated_by.clone()),
    })
}

/// Rebuilds a namespace from its row by validating it again (so a row that
/// no longer satisfies the rules is reported, not used).
fn from_row(m: namespace::Model) -> Result<Namespace, StoreError> {
    let corrupt = |why: String| {
        StoreError::Database(format!(
            "stored configuration of namespace `{}` is invalid: {why}",
            m.name
        ))
    };
    let cfg: StoredConfig = serde_json::from_str(&m.config).map_err(|e| corrupt(e.to_string()))?;
    let backend = BackendKind::parse(&m.backend)
        .ok_or_else(|| corrupt(format!("unknown backend `{}`", m.backend)))?;
    let spec = NamespaceSpec {
        name: Some(m.name.clone()),
        backend,
        topic_name: Some(m.topic_name.clone()),
        description: m.description.clone(),
        enabled: m.enabled,
        max_message_size: u64::try_from(m.max_message_size).unwrap_or(0),
        message_ttl_seconds: u64::try_from(m.message_ttl_seconds).unwrap_or(0),
        max_delay_seconds: cfg.max_delay_seconds,
        retry_policy: cfg.retry_policy,
        dlq_config: cfg.dlq_config,
        shard_config: cfg.shard_config,
        target_configs: cfg.target_configs,
        backend_config: cfg.backend_config,
        access_control: cfg.access_control,
        dedup_window_seconds: cfg.dedup_window_seconds,
    };
    let mut ns = spec.validate(None).map_err(|e| corrupt(e.to_string()))?;
    ns.id = m.id;
    ns.version = m.version;
    ns.created_at = m.created_at;
    ns.updated_at = m.updated_at;
    ns.created_by = m.created_by;
    ns.updated_by = m.updated_by;
    Ok(ns)
}

async fn write_audit(
    txn: &DatabaseTransaction,
    name: &str,
    action: AuditAction,
    actor: &str,
    at: DateTime<Utc>,
    detail: serde_json::Value,
) -> Result<(), DbErr> {
    let row = namespace_audit::ActiveModel {
        id: NotSet,
        namespace: Set(name.to_string()),
        action: Set(action.as_str().to_string()),
        actor: Set(clip_actor(actor)),
        at: Set(at),
        detail: Set(detail.to_string()),
    };
    namespace_audit::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

impl NamespaceStore {
    /// Connects to `url` and applies the migrations.
    ///
    /// Accepts `postgres://user@host:port/db` and SQLite URLs
    /// (`sqlite://path/to/file.db?mode=rwc` to create the file if needed,
    /// `sqlite::memory:`). SQLite runs in WAL mode with a busy timeout, so
    /// that several stores (processes) can share a file. Errors never contain
    /// the URL or credentials.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let scrub = |e: DbErr| StoreError::Database(redact(&e.to_string(), Some(url)));
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .map_sqlx_sqlite_opts(|o| {
                o.busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .journal_mode(SqliteJournalMode::Wal)
            });
        let db = Database::connect(opts).await.map_err(scrub)?;
        Self::migrate(&db).await.map_err(scrub)?;
        Ok(Self {
            db,
            secrets: SecretPolicy::default(),
        })
    }

    /// The store, refusing namespaces whose secret references `policy`
    /// does not allow (default: [`SecretPolicy::default`]).
    pub fn with_secret_policy(mut self, policy: SecretPolicy) -> Self {
        self.secrets = policy;
        self
    }

    async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
        if db.get_database_backend() == DbBackend::Postgres {
            let txn = db.begin().await?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"
            ))
            .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        } else {
            Migrator::up(db, None).await
        }
    }

    /// The underlying connection, for diagnostics and tests (e.g. reading the
    /// raw `config` column). Changing namespaces through it bypasses
    /// validation and auditing.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn database_kind(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            DbBackend::MySql => "mysql",
        }
    }

    /// Closes the connection pool.
    pub async fn close(self) -> Result<(), StoreError> {
        Ok(self.db.close().await?)
    }

    /// Whether the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let backend = self.db.get_database_backend();
        self.db
            .query_one(Statement::from_string(backend, "SELECT 1"))
            .await?;
        Ok(())
    }

    /// Validates `spec` and creates the namespace (version 1), recording
    /// `actor` (an admin key fingerprint). [`StoreError::AlreadyExists`] if the
    /// name is taken, also when two creates race.
    pub async fn create(&self, spec: NamespaceSpec, actor: &str) -> Result<Namespace, StoreError> {
        let mut ns = spec.validate(None)?;
        self.secrets
            .check_namespace(&ns)
            .map_err(StoreError::Invalid)?;
        self.check_log_unshared(&ns).await?;
        let at = now();
        let actor = clip_actor(actor);
        ns.version = 1;
        ns.created_at = at;
        ns.updated_at = at;
        ns.created_by = actor.clone();
        ns.updated_by = actor.clone();
        let row = active_model(&ns)?;

        let txn = self.db.begin().await?;
        if let Err(e) = namespace::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
        {
            txn.rollback().await.ok();
            return Err(if is_unique_violation(&e) {
                StoreError::AlreadyExists(ns.name)
            } else {
                e.into()
            });
        }
        write_audit(
            &txn,
            &ns.name,
            AuditAction::Create,
            &actor,
            at,
            serde_json::json!({ "version": ns.version }),
        )
        .await?;
        txn.commit().await?;
        Ok(ns)
    }

    /// The namespace named `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        namespace::Entity::find()
            .filter(namespace::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(from_row)
            .transpose()
    }

    /// All namespaces, ordered by name (byte order, the same on every database).
    /// A row that no longer validates is left out and logged as an error.
    pub async fn list(&self) -> Result<Vec<Namespace>, StoreError> {
        let rows = namespace::Entity::find()
            .order_by_asc(namespace::Column::Name)
            .all(&self.db)
            .await?;
        let mut out: Vec<Namespace> = rows
            .into_iter()
            .filter_map(|m| match from_row(m) {
                Ok(ns) => Some(ns),
                Err(e) => {
                    tracing::error!(error = %e, "skipping a stored namespace");
                    None
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Replaces the configuration of `name` with `spec` (a full replacement,
    /// defaults applying, except that absent `accessControl.allowedApiKeys`
    /// and `topicName` keep the stored ones) and increments its version.
    /// [`StoreError::NotFound`] if missing; [`StoreError::Invalid`] with field
    /// `name` if the body names another namespace.
    pub async fn update(
        &self,
        name: &str,
        spec: NamespaceSpec,
        actor: &str,
    ) -> Result<Namespace, StoreError> {
        if let Some(body_name) = &spec.name {
            if body_name != name {
                let mut e = FieldErrors::default();
                e.push(
                    "name",
                    "must equal the name in the path (namespaces cannot be renamed)",
                );
                return Err(StoreError::Invalid(e));
            }
        }
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let prev = self
                .get(name)
                .await?
                .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
            let mut next = spec.clone().validate(Some(&prev))?;
            self.secrets
                .check_namespace(&next)
                .map_err(StoreError::Invalid)?;
            self.check_log_unshared(&next).await?;
            Self::stamp(&prev, &mut next, actor);
            let detail = serde_json::json!({ "version": next.version });
            if self.replace(&prev, &next, detail).await? {
                return Ok(next);
            }
        }
        Err(Self::contention(name))
    }

    /// Applies a JSON Merge Patch (RFC 7396) to the stored configuration of
    /// `name` and stores the result, validated as a whole like a `PUT` of it
    /// would be (see [`crate::patch`]). `patch` must be an object; a `name`
    /// in it must equal `name`.
    pub async fn patch(
        &self,
        name: &str,
        patch: &serde_json::Value,
        actor: &str,
    ) -> Result<Namespace, StoreError> {
        if !patch.is_object() {
            let mut e = FieldErrors::default();
            e.push("body", "a merge patch must be a JSON object");
            return Err(StoreError::Invalid(e));
        }
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let prev = self
                .get(name)
                .await?
                .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
            let mut merged = serde_json::to_value(prev.to_spec())
                .map_err(|e| StoreError::Database(format!("encoding the stored spec: {e}")))?;
            crate::patch::merge_patch(&mut merged, patch);
            let bytes = serde_json::to_vec(&merged)
                .map_err(|e| StoreError::Database(format!("encoding the patched spec: {e}")))?;
            let spec = crate::spec::parse_spec(&bytes).map_err(StoreError::Invalid)?;
            if spec.name.as_deref().is_some_and(|n| n != name) {
                let mut e = FieldErrors::default();
                e.push(
                    "name",
                    "must equal the name in the path (namespaces cannot be renamed)",
                );
                return Err(StoreError::Invalid(e));
            }
            let mut next = spec.validate(Some(&prev))?;
            self.secrets
                .check_namespace(&next)
                .map_err(StoreError::Invalid)?;
            self.check_log_unshared(&next).await?;
            Self::stamp(&prev, &mut next, actor);
            let detail = serde_json::json!({ "version": next.version, "patch": true });
            if self.replace(&prev, &next, detail).await? {
                return Ok(next);
            }
        }
        Err(Self::contention(name))
    }

    /// Enables or disables `name` (a no-op, without a new version, if it
    /// already is).
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<Namespace, StoreError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let prev = self
                .get(name)
                .await?
                .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
            if prev.enabled == enabled {
                return Ok(prev);
            }
            let mut next = prev.clone();
            next.enabled = enabled;
            Self::stamp(&prev, &mut next, actor);
            let detail = serde_json::json!({ "version": next.version, "enabled": enabled });
            if self.replace(&prev, &next, detail).await? {
                return Ok(next);
            }
        }
        Err(Self::contention(name))
    }

    /// Deletes `name`. [`StoreError::NotFound`] if missing.
    pub async fn delete(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        // Read the raw row (no validation): a row that no longer validates can
        // still be deleted. Its version only goes into the audit detail.
        let version = namespace::Entity::find()
            .filter(namespace::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(|m| m.version)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        let txn = self.db.begin().await?;
        let res = namespace::Entity::delete_many()
            .filter(namespace::Column::Name.eq(name))
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            txn.rollback().await.ok();
            return Err(StoreError::NotFound(name.to_string()));
        }
        write_audit(
            &txn,
            name,
            AuditAction::Delete,
            actor,
            now(),
            serde_json::json!({ "version": version }),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// A cheap summary that changes with every committed mutation (see
    /// [`Fingerprint`]).
    pub async fn fingerprint(&self) -> Result<Fingerprint, StoreError> {
        let backend = self.db.get_database_backend();
        let sql = "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
                   CAST(COALESCE(SUM(version), 0) AS BIGINT) AS v, \
                   CAST((SELECT COALESCE(MAX(id), 0) FROM namespace_audit) AS BIGINT) AS a \
                   FROM namespaces";
        let row = self
            .db
            .query_one(Statement::from_string(backend, sql))
            .await?
            .ok_or_else(|| StoreError::Database("fingerprint query returned no row".into()))?;
        Ok(Fingerprint {
            count: row.try_get("", "n")?,
            version_sum: row.try_get("", "v")?,
            last_audit_id: row.try_get("", "a")?,
        })
    }

    /// The audit records of `name` (also of a deleted one), oldest first.
    pub async fn audit_log(&self, name: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = namespace_audit::Entity::find()
            .filter(namespace_audit::Column::Namespace.eq(name))
            .order_by_asc(namespace_audit::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                let action = AuditAction::parse(&r.action).ok_or_else(|| {
                    StoreError::Database(format!("unknown audit action `{}`", r.action))
                })?;
                Ok(AuditRecord {
                    id: r.id,
                    namespace: r.namespace,
                    action,
                    actor: r.actor,
                    at: r.at,
                    detail: serde_json::from_str(&r.detail)
                        .unwrap_or(serde_json::Value::String(r.detail)),
                })
            })
            .collect()
    }

    /// Refuses `ns` when another namespace already uses its Kafka topic or
    /// SQS queue: the worker would hand one namespace's messages to the
    /// other's targets. (Checked by every gateway before it writes; two
    /// concurrent creations of one topic through two gateways are not
    /// excluded by the database.)
    async fn check_log_unshared(&self, ns: &Namespace) -> Result<(), StoreError> {
        let Some((identity, field)) = ns.log_identity() else {
            return Ok(());
        };
        let others = self.list().await?;
        if let Some(owner) = others
            .iter()
            .find(|o| o.name != ns.name && o.log_identity().is_some_and(|(i, _)| i == identity))
        {
            let mut e = FieldErrors::default();
            e.push(
                field,
                format!(
                    "{identity} is already the log of namespace `{}`",
                    owner.name
                ),
            );
            return Err(StoreError::Invalid(e));
        }
        Ok(())
    }

    fn stamp(prev: &Namespace, next: &mut Namespace, actor: &str) {
        next.id = prev.id.clone();
        next.version = prev.version + 1;
        next.created_at = prev.created_at;
        next.created_by = prev.created_by.clone();
        next.updated_at = now().max(prev.updated_at);
        next.updated_by = clip_actor(actor);
    }

    fn contention(name: &str) -> StoreError {
        StoreError::Database(format!(
            "namespace `{name}` is being changed concurrently; try again"
        ))
    }

    /// Writes `next` over `prev` if the stored version is still `prev.version`,
    /// with its audit row, in one transaction. `false` if it was not (the
    /// caller reads again and retries).
    async fn replace(
        &self,
        prev: &Namespace,
        next: &Namespace,
        detail: serde_json::Value,
    ) -> Result<bool, StoreError> {
        let mut row = active_model(next)?;
        row.id = NotSet;
        row.created_at = NotSet;
        row.created_by = NotSet;
        let txn = self.db.begin().await?;
        let res = namespace::Entity::update_many()
            .set(row)
            .filter(namespace::Column::Name.eq(prev.name.as_str()))
            .filter(namespace::Column::Version.eq(prev.version))
            .exec(&txn)
            .await?;
        if res.rows_affected == 0 {
            txn.rollback().await.ok();
            return Ok(false);
        }
        write_audit(
            &txn,
            &next.name,
            AuditAction::Update,
            &next.updated_by,
            next.updated_at,
            detail,
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }
}
