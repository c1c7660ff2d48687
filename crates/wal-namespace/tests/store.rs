//! The namespace store and cache against real databases: every behaviour is
//! one `async fn` run on PostgreSQL (a fresh database per test, created on
//! the server at `WAL_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped afterwards) and on
//! SQLite (a temporary file).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};
use wal_namespace::{
    parse_spec, ApiKeyHash, AuditAction, NamespaceCache, NamespaceSpec, NamespaceStore, StoreError,
};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const KEY: &str = "clear-api-key-for-tests-0001";
const KEY2: &str = "clear-api-key-for-tests-0002";

fn spec(v: Value) -> NamespaceSpec {
    parse_spec(v.to_string().as_bytes()).expect("valid wire spec")
}

fn orders_spec() -> NamespaceSpec {
    spec(
        json!({"name": "orders", "shardConfig": {"partitionCount": 8},
        "targetConfigs": [{"identifier": "api", "type": "http", "config": {"url": "https://orders.internal/hook"}}],
        "accessControl": {"allowedApiKeys": [KEY]}}),
    )
}

// ---- per-test databases ----

enum TestDb {
    Postgres { admin_url: String, db_name: String },
    Sqlite { path: PathBuf },
}

impl TestDb {
    fn unique() -> String {
        format!(
            "wal_ns_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )
    }

    async fn postgres() -> (Self, String) {
        let admin_url =
            std::env::var("WAL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
        let db_name = Self::unique();
        let admin = Database::connect(admin_url.as_str())
            .await
            .expect("PostgreSQL reachable at WAL_TEST_POSTGRES_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("postgres URL");
        url.set_path(&format!("/{db_name}"));
        (Self::Postgres { admin_url, db_name }, url.to_string())
    }

    fn sqlite() -> (Self, String) {
        let path = std::env::temp_dir().join(format!("{}.db", Self::unique()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        (Self::Sqlite { path }, url)
    }

    async fn drop_db(self) {
        match self {
            TestDb::Postgres { admin_url, db_name } => {
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("admin connection");
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
                    .await
                    .expect("drop test database");
                admin.close().await.ok();
            }
            TestDb::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    std::fs::remove_file(p).ok();
                }
            }
        }
    }
}

/// Runs `case` against a fresh database; the database is dropped even when
/// the case panics (the panic is then re-raised).
async fn run<F, Fut>(postgres: bool, case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (db, url) = if postgres {
        TestDb::postgres().await
    } else {
        TestDb::sqlite()
    };
    let outcome = tokio::spawn(case(url)).await;
    db.drop_db().await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

/// One `#[tokio::test]` per database for each case: `<case>::postgres`, `<case>::sqlite`.
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run(true, super::$case).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(false, super::$case).await
            }
        }
    )*};
}

on_both_databases!(
    crud_lifecycle,
    duplicate_create,
    concurrent_creates,
    concurrent_updates_are_not_lost,
    audit_rows,
    keys_stored_only_as_hashes,
    fingerprint_changes_on_every_mutation,
    invalid_changes_are_rejected,
    cache_sees_changes_of_another_instance,
);

// ---- cases ----

async fn crud_lifecycle(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    assert!(store.get("orders").await.unwrap().is_none());
    assert!(store.list().await.unwrap().is_empty());

    let created = store.create(orders_spec(), "admin001").await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.created_by, "admin001");
    assert_eq!(created.updated_by, "admin001");
    assert_eq!(created.shard_config.partition_count, 8);

    let got = store.get("orders").await.unwrap().unwrap();
    assert_eq!(got, created);

    store
        .create(spec(json!({"name": "audit-events"})), "admin001")
        .await
        .unwrap();
    store
        .create(spec(json!({"name": "zeta"})), "admin001")
        .await
        .unwrap();
    let names: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["audit-events", "orders", "zeta"]);

    // Update without keys: keys kept, version incremented, creation kept.
    let updated = store
        .update("orders", spec(json!({"maxMessageSize": 2048})), "admin002")
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.max_message_size, 2048);
    assert_eq!(
        updated.shard_config.partition_count, 4,
        "PUT replaces: defaults apply"
    );
    assert!(updated.targets.is_empty());
    assert_eq!(updated.api_key_hashes, vec![ApiKeyHash::of(KEY)]);
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.created_by, "admin001");
    assert_eq!(updated.updated_by, "admin002");
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get("orders").await.unwrap().unwrap(), updated);

    // Update with keys (and the name repeated): replaced.
    let updated = store
        .update(
            "orders",
            spec(json!({"name": "orders", "accessControl": {"allowedApiKeys": [KEY2]}})),
            "admin002",
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 3);
    assert_eq!(updated.api_key_hashes, vec![ApiKeyHash::of(KEY2)]);
    assert_eq!(
        store.get("orders").await.unwrap().unwrap().api_key_hashes,
        vec![ApiKeyHash::of(KEY2)]
    );

    // Disable, then disabling again is a no-op.
    let disabled = store
        .set_enabled("orders", false, "admin003")
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.version, 4);
    assert!(!store.get("orders").await.unwrap().unwrap().enabled);
    let again = store
        .set_enabled("orders", false, "admin003")
        .await
        .unwrap();
    assert_eq!(again.version, 4);

    store.delete("orders", "admin004").await.unwrap();
    assert!(store.get("orders").await.unwrap().is_none());
    assert!(matches!(
        store.delete("orders", "admin004").await,
        Err(StoreError::NotFound(n)) if n == "orders"
    ));
    assert!(matches!(
        store.update("orders", spec(json!({})), "a").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.set_enabled("orders", true, "a").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list().await.unwrap().len(), 2);
    store.ping().await.unwrap();
}

async fn duplicate_create(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    store.create(orders_spec(), "a").await.unwrap();
    match store.create(orders_spec(), "a").await {
        Err(StoreError::AlreadyExists(n)) => assert_eq!(n, "orders"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.list().await.unwrap().len(), 1);
    // A second connection (another instance) sees it as well.
    let other = NamespaceStore::connect(&url).await.unwrap();
    assert!(matches!(
        other.create(orders_spec(), "b").await,
        Err(StoreError::AlreadyExists(_))
    ));
}

async fn concurrent_creates(url: String) {
    let stores = [
        NamespaceStore::connect(&url).await.unwrap(),
        NamespaceStore::connect(&url).await.unwrap(),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = stores[i % 2].clone();
        tasks.spawn(async move { store.create(orders_spec(), &format!("actor{i}")).await });
    }
    let (mut ok, mut exists) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AlreadyExists(_)) => exists += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, exists), (1, 9));
    assert_eq!(stores[0].audit_log("orders").await.unwrap().len(), 1);
}

async fn concurrent_updates_are_not_lost(url: String) {
    let a = NamespaceStore::connect(&url).await.unwrap();
    let b = NamespaceStore::connect(&url).await.unwrap();
    a.create(orders_spec(), "a").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6u64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            store
                .update("orders", spec(json!({"maxMessageSize": 1000 + i})), "u")
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let ns = a.get("orders").await.unwrap().unwrap();
    assert_eq!(ns.version, 7);
    let versions: Vec<i64> = a
        .audit_log("orders")
        .await
        .unwrap()
        .iter()
        .map(|r| r.detail["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
}

async fn audit_rows(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    let admin = wal_namespace::actor_for_admin_key("the-admin-key-value");
    assert_eq!(admin.len(), 8);
    store.create(orders_spec(), &admin).await.unwrap();
    store
        .update("orders", spec(json!({})), &admin)
        .await
        .unwrap();
    store
        .set_enabled("orders", false, "other001")
        .await
        .unwrap();
    store.delete("orders", &admin).await.unwrap();
    store
        .create(spec(json!({"name": "unrelated"})), &admin)
        .await
        .unwrap();

    let log = store.audit_log("orders").await.unwrap();
    let actions: Vec<_> = log.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Update,
            AuditAction::Delete
        ]
    );
    let actors: Vec<_> = log.iter().map(|r| r.actor.as_str()).collect();
    assert_eq!(actors, [admin.as_str(), &admin, "other001", &admin]);
    assert_eq!(log[0].detail, json!({"version": 1}));
    assert_eq!(log[1].detail, json!({"version": 2}));
    assert_eq!(log[2].detail, json!({"version": 3, "enabled": false}));
    assert_eq!(log[3].detail, json!({"version": 3}));
    assert!(log
        .windows(2)
        .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at));
    assert!(log.iter().all(|r| r.namespace == "orders"));
    // A failed mutation writes no audit row.
    assert!(store
        .create(spec(json!({"name": "unrelated"})), &admin)
        .await
        .is_err());
    assert_eq!(store.audit_log("unrelated").await.unwrap().len(), 1);
}

async fn keys_stored_only_as_hashes(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    store.create(orders_spec(), "a").await.unwrap();
    let conn = store.connection();
    let row = conn
        .query_one(Statement::from_string(
            conn.get_database_backend(),
            "SELECT config FROM namespaces WHERE name = 'orders'",
        ))
        .await
        .unwrap()
        .unwrap();
    let config: String = row.try_get("", "config").unwrap();
    assert!(!config.contains(KEY), "clear key stored: {config}");
    assert!(
        config.contains(&ApiKeyHash::of(KEY).to_prefixed()),
        "{config}"
    );
    // Nothing in any text column of either table has the key.
    for sql in [
        "SELECT name || ' ' || backend || ' ' || topic_name || ' ' || COALESCE(description, '') \
         || ' ' || config || ' ' || created_by || ' ' || updated_by AS r FROM namespaces",
        "SELECT namespace || ' ' || action || ' ' || actor || ' ' || detail AS r FROM namespace_audit",
    ] {
        let rows = conn
            .query_all(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            let text: String = row.try_get("", "r").unwrap();
            assert!(!text.contains(KEY), "{text}");
        }
    }
}

async fn fingerprint_changes_on_every_mutation(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    let mut seen = vec![store.fingerprint().await.unwrap()];
    assert_eq!(
        store.fingerprint().await.unwrap(),
        seen[0],
        "stable when nothing changes"
    );
    let mut step = |label: &str, fp| {
        assert!(
            !seen.contains(&fp),
            "{label}: fingerprint {fp:?} seen before in {seen:?}"
        );
        seen.push(fp);
    };
    store.create(orders_spec(), "a").await.unwrap();
    step("create", store.fingerprint().await.unwrap());
    store.update("orders", spec(json!({})), "a").await.unwrap();
    step("update", store.fingerprint().await.unwrap());
    store.set_enabled("orders", false, "a").await.unwrap();
    step("disable", store.fingerprint().await.unwrap());
    store.delete("orders", "a").await.unwrap();
    step("delete", store.fingerprint().await.unwrap());
    // Re-creating the same name gives the same count and version sum as
    // after the first create, but still a new fingerprint.
    store.create(orders_spec(), "a").await.unwrap();
    step("re-create", store.fingerprint().await.unwrap());
}

async fn invalid_changes_are_rejected(url: String) {
    let store = NamespaceStore::connect(&url).await.unwrap();
    match store
        .create(spec(json!({"name": "n", "backend": "kafka"})), "a")
        .await
    {
        Err(StoreError::Invalid(e)) => assert_eq!(e.errors()[0].field, "backendConfig.brokers"),
        other => panic!("{other:?}"),
    }
    store.create(orders_spec(), "a").await.unwrap();
    match store
        .update("orders", spec(json!({"name": "other"})), "a")
        .await
    {
        Err(StoreError::Invalid(e)) => assert_eq!(e.errors()[0].field, "name"),
        other => panic!("{other:?}"),
    }
    match store
        .update(
            "orders",
            spec(json!({"shardConfig": {"partitionCount": 0}})),
            "a",
        )
        .await
    {
        Err(StoreError::Invalid(e)) => {
            assert_eq!(e.errors()[0].field, "shardConfig.partitionCount")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("orders").await.unwrap().unwrap().version, 1);
    assert_eq!(store.audit_log("orders").await.unwrap().len(), 1);
}

/// Polls `cond` every 50 ms for up to 5 s; returns how long it took.
async fn within_5s(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: not visible within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

async fn cache_sees_changes_of_another_instance(url: String) {
    let gateway_store = NamespaceStore::connect(&url).await.unwrap();
    gateway_store
        .create(spec(json!({"name": "existing"})), "a")
        .await
        .unwrap();
    let cache: Arc<NamespaceCache> = NamespaceCache::load(gateway_store).await.unwrap();
    assert!(cache.get("existing").is_some());
    assert!(cache.get("orders").is_none());
    assert!(!cache.any_namespace_key_matches(&ApiKeyHash::of(KEY)));
    assert!(cache.is_db_reachable().await);
    assert!(!cache.refresh().await.unwrap(), "nothing changed");
    let refresher = cache.clone().spawn_refresher(Duration::from_secs(1));

    // Another instance, with its own connection.
    let admin = NamespaceStore::connect(&url).await.unwrap();
    admin.create(orders_spec(), "a").await.unwrap();
    within_5s("create", || cache.get("orders").is_some()).await;
    let ns = cache.get("orders").unwrap();
    assert_eq!(ns.version, 1);
    assert!(cache.any_namespace_key_matches(&ApiKeyHash::of(KEY)));
    assert!(!cache.any_namespace_key_matches(&ApiKeyHash::of(KEY2)));

    admin
        .update(
            "orders",
            spec(json!({"accessControl": {"allowedApiKeys": [KEY2]}})),
            "a",
        )
        .await
        .unwrap();
    within_5s("update", || {
        cache.get("orders").is_some_and(|n| n.version == 2)
    })
    .await;
    assert!(cache.any_namespace_key_matches(&ApiKeyHash::of(KEY2)));
    assert!(!cache.any_namespace_key_matches(&ApiKeyHash::of(KEY)));

    admin.set_enabled("orders", false, "a").await.unwrap();
    within_5s("disable", || {
        cache.get("orders").is_some_and(|n| !n.enabled)
    })
    .await;

    admin.delete("orders", "a").await.unwrap();
    within_5s("delete", || cache.get("orders").is_none()).await;
    assert!(cache.get("existing").is_some());
    assert_eq!(cache.snapshot().len(), 1);

    refresher.abort();
}

// ---- not per database ----

#[tokio::test]
async fn connect_errors_do_not_leak_credentials() {
    let err = NamespaceStore::connect("postgres://waluser:TopSecret99@127.0.0.1:1/nowhere")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Database(_)), "{text}");
    assert!(!text.contains("TopSecret99"), "{text}");
    let err = NamespaceStore::connect("mysqlx://u:TopSecret99@h/db")
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("TopSecret99"), "{err:?}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = NamespaceStore::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.database_kind(), "sqlite");
    store.create(orders_spec(), "a").await.unwrap();
    let cache = NamespaceCache::load(store.clone()).await.unwrap();
    assert!(cache
        .get("orders")
        .unwrap()
        .key_allowed(&ApiKeyHash::of(KEY)));
    store.delete("orders", "a").await.unwrap();
    assert!(cache.refresh().await.unwrap());
    assert!(cache.get("orders").is_none());
}

#[tokio::test]
async fn cache_keeps_serving_when_the_database_goes_away() {
    let (db, url) = TestDb::sqlite();
    let store = NamespaceStore::connect(&url).await.unwrap();
    store.create(orders_spec(), "a").await.unwrap();
    let cache = NamespaceCache::load(store.clone()).await.unwrap();
    store.clone().close().await.unwrap();
    assert!(!cache.is_db_reachable().await);
    assert!(cache.refresh().await.is_err());
    assert!(cache.get("orders").is_some(), "old snapshot kept");
    db.drop_db().await;
}
