//! Database targets against the shared PostgreSQL: each test makes its own
//! randomly named table and namespace, and drops them (and its ledger rows)
//! at the end, also when it fails.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio_postgres::{Client, NoTls};
use wal_core::request::TargetRef;
use wal_targets::{DeliveryOutcome, Target, TargetBuildError, TargetFactory, LEDGER_TABLE};

async fn connect() -> Client {
    let (client, conn) = tokio_postgres::connect(&postgres_url(), NoTls)
        .await
        .expect("the test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// A table `columns` of random name, and a random namespace; dropped (with
/// the namespace's ledger rows) when the fixture is.
struct Fixture {
    table: String,
    namespace: String,
    db: Client,
}

impl Fixture {
    async fn new(columns: &str) -> Self {
        let table = random_name("wal_test");
        let db = connect().await;
        db.batch_execute(&format!("CREATE TABLE {table} ({columns})"))
            .await
            .unwrap();
        Self {
            table,
            namespace: random_name("ns").replace('_', "-"),
            db,
        }
    }

    /// Builds a database target `identifier` with `config` (plus the DSN,
    /// the table and a 2 s timeout unless given).
    async fn target(&self, identifier: &str, config: serde_json::Value) -> Arc<dyn Target> {
        let mut c = json!({"dsnEnv": secret_env(&postgres_url()), "timeoutMs": 2000});
        if config["operation"] != "statement" {
            c["table"] = json!(self.table);
        }
        c.as_object_mut()
            .unwrap()
            .extend(config.as_object().unwrap().clone());
        let spec = json!({"identifier": identifier, "type": "database", "config": c});
        build(&self.namespace, spec).await
    }

    async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.db
            .query(&sql.replace("{t}", &self.table), &[])
            .await
            .unwrap()
    }

    async fn count(&self) -> i64 {
        self.rows("SELECT count(*) FROM {t}").await[0].get(0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (table, ns) = (self.table.clone(), self.namespace.clone());
        run_cleanup(async move {
            let db = connect().await;
            let _ = db
                .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await;
            let _ = db
                .execute(
                    &format!("DELETE FROM {LEDGER_TABLE} WHERE target LIKE $1"),
                    &[&format!("{ns}/%")],
                )
                .await;
        });
    }
}

const COLUMNS: &str = "id int PRIMARY KEY, name text, amount numeric, at timestamptz, \
                       tags text[], doc jsonb, n int NOT NULL DEFAULT 0";

#[tokio::test]
async fn insert_converts_types_and_applies_a_message_exactly_once() {
    let fx = Fixture::new(COLUMNS).await;
    let target = fx.target("db", json!({"operation": "insert"})).await;
    let env = envelope(
        &fx.namespace,
        r#"{"id": 1, "name": "Ann", "amount": 1.000000000000000001,
            "at": "2024-05-01T12:00:00Z", "tags": ["a", "b"], "doc": {"k": [1, "x"]}}"#,
    );
    let tref = TargetRef::named("db");
    assert_eq!(
        deliver(&*target, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    // The same message again (a redelivery): delivered, not applied twice.
    assert_eq!(
        deliver(&*target, &env, &tref, 2).await,
        DeliveryOutcome::Delivered
    );

    let rows = fx
        .rows(
            "SELECT id, name, amount::text, extract(epoch FROM at)::bigint, tags, doc::text, n \
             FROM {t}",
        )
        .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<_, i32>(0), 1);
    assert_eq!(r.get::<_, String>(1), "Ann");
    assert_eq!(r.get::<_, String>(2), "1.000000000000000001");
    assert_eq!(r.get::<_, i64>(3), 1_714_564_800);
    assert_eq!(r.get::<_, Vec<String>>(4), ["a", "b"]);
    assert_eq!(r.get::<_, String>(5), r#"{"k": [1, "x"]}"#);
    assert_eq!(
        r.get::<_, i32>(6),
        0,
        "columns not in the payload keep their default"
    );

    let ledger: i64 = fx
        .db
        .query_one(
            &format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE message_id = $1 AND target = $2"),
            &[&env.id.to_string(), &format!("{}/db", fx.namespace)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 1);
}

#[tokio::test]
async fn constraint_violations_unknown_columns_and_bad_payloads_are_permanent() {
    let fx = Fixture::new(COLUMNS).await;
    let target = fx.target("db", json!({"operation": "insert"})).await;
    let tref = TargetRef::named("db");
    let first = envelope(&fx.namespace, r#"{"id": 1, "name": "a"}"#);
    assert_eq!(
        deliver(&*target, &first, &tref, 1).await,
        DeliveryOutcome::Delivered
    );

    // Same key from another message: a real duplicate.
    let dup = envelope(&fx.namespace, r#"{"id": 1, "name": "b"}"#);
    let reason = assert_permanent(&deliver(&*target, &dup, &tref, 1).await);
    assert!(reason.contains("23505"), "{reason}");

    let unknown = envelope(&fx.namespace, r#"{"id": 2, "nope": 1}"#);
    let reason = assert_permanent(&deliver(&*target, &unknown, &tref, 1).await);
    assert!(
        reason.contains("nope") && reason.contains("not columns"),
        "{reason}"
    );

    let bad_type = envelope(&fx.namespace, r#"{"id": "two"}"#);
    let reason = assert_permanent(&deliver(&*target, &bad_type, &tref, 1).await);
    assert!(reason.contains("22P02"), "{reason}");

    let not_object = envelope(&fx.namespace, r#"[1, 2]"#);
    assert_permanent(&deliver(&*target, &not_object, &tref, 1).await);

    // A refused message leaves no ledger row: once fixed it could apply.
    assert_eq!(fx.count().await, 1);
    let ledger: i64 = fx
        .db
        .query_one(
            &format!("SELECT count(*) FROM {LEDGER_TABLE} WHERE target = $1"),
            &[&format!("{}/db", fx.namespace)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 1);
}

#[tokio::test]
async fn a_column_added_later_is_found() {
    let fx = Fixture::new("id int PRIMARY KEY").await;
    let target = fx.target("db", json!({"operation": "insert"})).await;
    let tref = TargetRef::named("db");
    let first = envelope(&fx.namespace, r#"{"id": 1}"#);
    assert_eq!(
        deliver(&*target, &first, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    fx.rows("ALTER TABLE {t} ADD COLUMN extra text").await;
    let second = envelope(&fx.namespace, r#"{"id": 2, "extra": "x"}"#);
    assert_eq!(
        deliver(&*target, &second, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(fx.count().await, 2);
}

#[tokio::test]
async fn upsert_updates_and_delete_removes() {
    let fx = Fixture::new(COLUMNS).await;
    let upsert = fx
        .target("up", json!({"operation": "upsert", "key": ["id"]}))
        .await;
    let delete = fx
        .target("del", json!({"operation": "delete", "key": ["id"]}))
        .await;
    let up = TargetRef::named("up");
    let del = TargetRef::named("del");

    for (payload, name) in [
        (r#"{"id": 1, "name": "a", "amount": 5}"#, "a"),
        (r#"{"id": 1, "name": "b"}"#, "b"),
    ] {
        let env = envelope(&fx.namespace, payload);
        assert_eq!(
            deliver(&*upsert, &env, &up, 1).await,
            DeliveryOutcome::Delivered
        );
        let rows = fx.rows("SELECT name, amount::text FROM {t}").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), name);
        assert_eq!(rows[0].get::<_, String>(1), "5", "fields not sent are kept");
    }
    let two = envelope(&fx.namespace, r#"{"id": 2, "name": "c"}"#);
    assert_eq!(
        deliver(&*upsert, &two, &up, 1).await,
        DeliveryOutcome::Delivered
    );

    let no_key = envelope(&fx.namespace, r#"{"name": "x"}"#);
    let reason = assert_permanent(&deliver(&*upsert, &no_key, &up, 1).await);
    assert!(reason.contains("key column"), "{reason}");

    let gone = envelope(&fx.namespace, r#"{"id": 1, "name": "ignored"}"#);
    assert_eq!(
        deliver(&*delete, &gone, &del, 1).await,
        DeliveryOutcome::Delivered
    );
    let rows = fx.rows("SELECT id FROM {t}").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    // Deleting what is not there is fine.
    let again = envelope(&fx.namespace, r#"{"id": 1}"#);
    assert_eq!(
        deliver(&*delete, &again, &del, 1).await,
        DeliveryOutcome::Delivered
    );
}

#[tokio::test]
async fn statements_take_named_parameters_of_many_types() {
    let fx = Fixture::new(
        "id int PRIMARY KEY, name text, amount numeric, at timestamptz, ok bool, \
         u uuid, doc jsonb, tags int[], n int NOT NULL DEFAULT 0",
    )
    .await;
    let sql = format!(
        "INSERT INTO {t} (id, name, amount, at, ok, u, doc, tags) \
         VALUES (:id, :name, :amount, :at, :ok, :u, :doc, :tags) \
         ON CONFLICT (id) DO UPDATE SET name = :name, n = {t}.n + 1 -- :not_a_param",
        t = fx.table
    );
    let target = fx
        .target("st", json!({"operation": "statement", "statement": sql}))
        .await;
    let tref = TargetRef::named("st");
    let payload = r#"{"id": 7, "name": "it's", "amount": 12.3400000000000000001,
        "at": "2024-05-01T12:00:00+02:00", "ok": true,
        "u": "67e55044-10b1-426f-9247-bb680e5fe0c8", "doc": {"a": [1, null]},
        "tags": [1, 2, 3], "unused": "fine"}"#;
    let env = envelope(&fx.namespace, payload);
    assert_eq!(
        deliver(&*target, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    assert_eq!(
        deliver(&*target, &env, &tref, 2).await,
        DeliveryOutcome::Delivered
    );
    let rows = fx
        .rows(
            "SELECT name, amount::text, extract(epoch FROM at)::bigint, ok, u::text, \
             doc::text, tags, n FROM {t}",
        )
        .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<_, String>(0), "it's");
    assert_eq!(r.get::<_, String>(1), "12.3400000000000000001");
    assert_eq!(r.get::<_, i64>(2), 1_714_557_600);
    assert!(r.get::<_, bool>(3));
    assert_eq!(
        r.get::<_, String>(4),
        "67e55044-10b1-426f-9247-bb680e5fe0c8"
    );
    assert_eq!(r.get::<_, String>(5), r#"{"a": [1, null]}"#);
    assert_eq!(r.get::<_, Vec<i32>>(6), [1, 2, 3]);
    assert_eq!(r.get::<_, i32>(7), 0, "the redelivery was not applied");

    let missing = envelope(&fx.namespace, r#"{"id": 8}"#);
    let reason = assert_permanent(&deliver(&*target, &missing, &tref, 1).await);
    assert!(reason.contains(":name"), "{reason}");

    let null_and_bad = envelope(
        &fx.namespace,
        r#"{"id": 9, "name": null, "amount": "abc", "at": null, "ok": null, "u": null,
            "doc": null, "tags": null}"#,
    );
    let reason = assert_permanent(&deliver(&*target, &null_and_bad, &tref, 1).await);
    assert!(reason.contains("22P02"), "{reason}");
}

#[tokio::test]
async fn concurrent_redeliveries_apply_once() {
    let fx = Fixture::new("id int PRIMARY KEY, n int NOT NULL").await;
    fx.rows("INSERT INTO {t} VALUES (1, 0)").await;
    let sql = format!("UPDATE {} SET n = n + :inc WHERE id = :id", fx.table);
    let target = fx
        .target("inc", json!({"operation": "statement", "statement": sql}))
        .await;
    let env = Arc::new(envelope(&fx.namespace, r#"{"id": 1, "inc": 5}"#));
    let tasks: Vec<_> = (1..=6)
        .map(|attempt| {
            let (target, env) = (target.clone(), env.clone());
            tokio::spawn(
                async move { deliver(&*target, &env, &TargetRef::named("inc"), attempt).await },
            )
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), DeliveryOutcome::Delivered);
    }
    let n: i32 = fx.rows("SELECT n FROM {t}").await[0].get(0);
    assert_eq!(n, 5);
}

#[tokio::test]
async fn a_slow_statement_is_retried_after_the_timeout() {
    let fx = Fixture::new("id int").await;
    let target = fx
        .target(
            "slow",
            json!({"operation": "statement", "statement": "SELECT pg_sleep(:s)", "timeoutMs": 500}),
        )
        .await;
    let env = envelope(&fx.namespace, r#"{"s": 5}"#);
    let start = Instant::now();
    assert_retry(&deliver(&*target, &env, &TargetRef::named("slow"), 1).await);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    // The target still works afterwards.
    let quick = envelope(&fx.namespace, r#"{"s": 0}"#);
    assert_eq!(
        deliver(&*target, &quick, &TargetRef::named("slow"), 1).await,
        DeliveryOutcome::Delivered
    );
}

#[tokio::test]
async fn an_unreachable_database_is_retried_within_the_timeout() {
    let dsn = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    let spec = json!({"identifier": "db", "type": "database", "config": {
        "dsnEnv": secret_env(&dsn), "table": "t", "operation": "insert", "timeoutMs": 1000}});
    let target = build("ns", spec).await;
    let env = envelope("ns", r#"{"id": 1}"#);
    let start = Instant::now();
    assert_retry(&deliver(&*target, &env, &TargetRef::named("db"), 1).await);
    assert!(start.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn a_missing_table_is_permanent() {
    let spec = json!({"identifier": "db", "type": "database", "config": {
        "dsnEnv": secret_env(&postgres_url()), "table": random_name("wal_missing"),
        "operation": "insert"}});
    let target = build(&random_name("ns"), spec).await;
    let env = envelope("ns", r#"{"id": 1}"#);
    let reason = assert_permanent(&deliver(&*target, &env, &TargetRef::named("db"), 1).await);
    assert!(reason.contains("does not exist"), "{reason}");
}

#[tokio::test]
async fn dsn_problems_fail_the_build_without_showing_the_dsn() {
    let factory = TargetFactory::new().with_secret_policy(wal_namespace::SecretPolicy::new(
        "WAL_TEST_",
        std::env::temp_dir(),
    ));
    let spec = |env: &str| {
        target_config(json!({"identifier": "db", "type": "database", "config": {
            "dsnEnv": env, "table": "t", "operation": "insert"}}))
    };
    let err = factory
        .build("ns", &spec("WAL_TEST_NO_SUCH_DSN_VAR"))
        .await
        .err()
        .expect("a build error");
    assert!(
        matches!(err, TargetBuildError::MissingEnv { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("WAL_TEST_NO_SUCH_DSN_VAR"),
        "{err}"
    );

    let bad = "postgres://user:s3cret@host:notaport/db";
    let err = factory
        .build("ns", &spec(&secret_env(bad)))
        .await
        .err()
        .expect("a build error");
    assert!(
        matches!(err, TargetBuildError::InvalidSecret { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");

    let file = std::env::temp_dir().join(random_name("wal_dsn"));
    std::fs::write(&file, format!("{}\n", postgres_url())).unwrap();
    let from_file = target_config(json!({"identifier": "db", "type": "database", "config": {
        "dsnFile": file.to_string_lossy(), "table": "t", "operation": "insert"}}));
    assert!(factory.build("ns", &from_file).await.is_ok());
    std::fs::remove_file(&file).unwrap();
}
