//! Changing a namespace while messages are in its log loses none of them.

use std::time::Duration;

use serde_json::json;
use wal_tests::e2e::{distinct_delivered, http_target, namespace, Sink, Stack};
use wal_tests::gateway::{delete_namespace_keys, redis_client, ADMIN_KEY};
use wal_tests::{random_name, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_partition_count_strands_no_entry() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("shrink");
    stack
        .create_namespace(namespace(
            &ns,
            4,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        ))
        .await;
    // Written while no worker runs: spread over the four partitions.
    let ids = stack
        .write_batch(
            (0..40)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}, "partitionKey": format!("k{i}")}))
                .collect(),
        )
        .await;
    let res = stack
        .client
        .patch(stack.url(&format!("/api/v1/namespaces/{ns}")))
        .header("x-api-key", ADMIN_KEY)
        .json(&json!({"shardConfig": {"partitionCount": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let _worker = stack.spawn_worker(&[]).await;
    let all = sink
        .wait_until(Duration::from_secs(30), |r| {
            distinct_delivered(r, "/a").len() >= 40
        })
        .await;
    let got = distinct_delivered(&sink.received(), "/a");
    assert!(
        all,
        "only {} of 40 delivered after the partition count went from 4 to 1",
        got.len()
    );
    assert_eq!(got, ids.into_iter().collect());
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_and_created_again_runs_its_new_configuration() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("recreate");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            3,
            json!([http_target("old", &sink.url("/old"))]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    stack
        .write(json!({"namespace": ns, "payload": {"n": 0}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| r.len() == 1)
            .await
    );
    // Gone and back within one refresh of the worker's cache: same name, same
    // version number, another namespace.
    let res = stack
        .client
        .delete(stack.url(&format!("/api/v1/namespaces/{ns}")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    stack
        .create_namespace(namespace(
            &ns,
            1,
            3,
            json!([http_target("new", &sink.url("/new"))]),
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack
        .write(json!({"namespace": ns, "payload": {"n": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| distinct_delivered(r, "/new")
            .len()
            == 1)
            .await,
        "the worker still runs the deleted namespace's targets"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_with_a_long_target_timeout_stops_no_worker() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    // Its target may take 5 s; the workers' visibility timeout is 3 s.
    let slow = random_name("slow-timeout");
    stack
        .create_namespace(namespace(
            &slow,
            1,
            3,
            json!([{"identifier": "a", "type": "http",
                    "config": {"url": sink.url("/slow"), "timeoutMs": 5000}}]),
        ))
        .await;
    let other = random_name("other");
    stack
        .create_namespace(namespace(
            &other,
            1,
            3,
            json!([http_target("a", &sink.url("/other"))]),
        ))
        .await;
    let _worker = stack
        .spawn_worker(&[("WAL_VISIBILITY_TIMEOUT_MS", "3000")])
        .await;
    // A delivery that takes longer than the global visibility timeout is
    // neither refused nor taken over while it runs.
    sink.set_behaviour(|r, _| {
        if r.path == "/slow" {
            wal_tests::e2e::Reply::ok().after(Duration::from_millis(4000))
        } else {
            wal_tests::e2e::Reply::ok()
        }
    });
    stack
        .write(json!({"namespace": slow, "payload": {"n": 1}}))
        .await;
    stack
        .write(json!({"namespace": other, "payload": {"n": 2}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| distinct_delivered(r, "/slow")
            .len()
            == 1
            && distinct_delivered(r, "/other").len() == 1)
            .await,
        "both namespaces deliver"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        sink.received().iter().filter(|r| r.path == "/slow").count(),
        1,
        "the slow delivery was not handed out again while it ran"
    );
    let redis = redis_client(&redis_url()).await;
    delete_namespace_keys(&redis, &slow).await;
    delete_namespace_keys(&redis, &other).await;
}
