//! Settlements against the Redis of `WAL_TEST_REDIS_URL`: sending one again
//! (its reply was lost, the worker retries) records it once.

mod common;

use common::{cleanup, connect, random_ns};

use std::time::Duration;

use fred::prelude::*;
use wal_core::delivery::{DlqReason, DlqRecord, TargetState, TargetStatus};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_state::{RedisSchedule, SettleOp, Settlement};

fn dead_letter(ns: &str, ack: Option<String>) -> Settlement {
    let status = TargetStatus {
        state: TargetState::DeadLettered,
        attempt: 1,
        updated_at_ms: 5,
        next_at_ms: None,
        last_error: Some("HTTP 400".into()),
        reason: Some(DlqReason::Permanent),
    };
    Settlement {
        namespace: ns.to_string(),
        partition: 0,
        ack,
        message_id: "01J00000000000000000000000".into(),
        ops: vec![
            SettleOp::Status {
                target: "a".into(),
                status,
            },
            SettleOp::DeadLetter(DlqRecord {
                message_id: "01J00000000000000000000000".into(),
                reason: DlqReason::Permanent,
                target: "a".into(),
                error: "HTTP 400".into(),
                attempts: 1,
                partition: 0,
                at_ms: 5,
                body: b"{}".to_vec(),
            }),
        ],
        status_ttl: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_settlement_sent_again_after_a_lost_reply_is_recorded_once() {
    let conn = connect().await;
    let ns = random_ns("settle");
    let keys = NamespaceKeys::new(&ns);
    let redis = conn.pool();
    // A stream entry, read by a worker.
    let _: () = redis
        .xgroup_create(keys.stream(0), CONSUMER_GROUP, "0", true)
        .await
        .unwrap();
    let entry: String = redis
        .xadd(
            keys.stream(0),
            false,
            None,
            "*",
            vec![("id", "m"), ("env", "{}")],
        )
        .await
        .unwrap();
    let _: fred::types::Value = redis
        .custom(
            fred::cmd!("XREADGROUP"),
            vec![
                "GROUP",
                CONSUMER_GROUP,
                "w",
                "STREAMS",
                &keys.stream(0),
                ">",
            ],
        )
        .await
        .unwrap();
    let schedule = RedisSchedule::new(conn.clone());
    let settlement = dead_letter(&ns, Some(entry));
    for _ in 0..2 {
        let results = schedule
            .settle(std::slice::from_ref(&settlement))
            .await
            .unwrap();
        assert!(results[0].is_ok(), "{results:?}");
    }
    let dlq: u64 = redis.xlen(keys.dlq()).await.unwrap();
    assert_eq!(dlq, 1, "a stream entry's settlement sent twice");

    // A Kafka or SQS entry: no stream entry to acknowledge.
    let ns2 = random_ns("settle");
    let settlement = dead_letter(&ns2, None);
    for _ in 0..2 {
        let results = schedule
            .settle(std::slice::from_ref(&settlement))
            .await
            .unwrap();
        assert!(results[0].is_ok(), "{results:?}");
    }
    let dlq: u64 = redis.xlen(NamespaceKeys::new(&ns2).dlq()).await.unwrap();
    assert_eq!(dlq, 1, "a Kafka/SQS entry's settlement sent twice");
    cleanup(&conn, &ns).await;
    cleanup(&conn, &ns2).await;
}
