//! The gateway on a PostgreSQL namespace store (production setup), and the
//! INTERNAL_SERVER_ERROR answer when that store fails: a generic message,
//! no internals (no SQL, no connection string) in the body.

use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, TestGateway, ADMIN_KEY,
};
use wal_tests::{postgres_url, random_name, redis_url};

fn database_url(db: &str) -> String {
    let base = postgres_url();
    let (prefix, _) = base.rsplit_once('/').expect("url with a database");
    format!("{prefix}/{db}")
}

#[tokio::test]
async fn gateway_runs_on_postgres_and_hides_store_failures() {
    let db = random_name("walgw").replace('-', "_");
    let admin = Database::connect(postgres_url())
        .await
        .expect("postgres reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();

    let gw = TestGateway::spawn_with(&redis_url(), &database_url(&db), |_| {}).await;
    let ns = random_name("pg");
    gw.create_namespace(&namespace_body(&ns, 2)).await;
    let r = gw
        .write(&json!({"namespace": ns, "payload": {"a": 1}}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let list: Value = gw
        .client
        .get(gw.url("/api/v1/namespaces"))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["namespaces"][0]["name"], json!(ns));

    // The store disappears under the running gateway.
    admin
        .execute_unprepared(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    let r = gw
        .client
        .get(gw.url("/api/v1/namespaces"))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(body["error"]["message"], "An unexpected error occurred");
    for leak in ["postgres", "SELECT", &db, "sqlx", "5432"] {
        assert!(!text.contains(leak), "error body leaks {leak}: {text}");
    }
    assert_eq!(
        gw.client
            .get(gw.url("/api/v1/health/readiness"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    // Writes keep working from the cached namespace: the log does not depend on the store.
    let r = gw
        .write(&json!({"namespace": ns, "payload": {"a": 2}}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}
