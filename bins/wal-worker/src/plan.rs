//! What to record about a handled entry: pure functions from an envelope and
//! the outcome of each target's attempt to the [`SettleOp`]s that the
//! settle script applies atomically with the entry's acknowledgement.
//!
//! Rules (SPEC §5):
//! * delivered → status `delivered`;
//! * retryable → if the policy allows another attempt and it falls before
//!   the message expires: a retry-set member holding the envelope *narrowed
//!   to that one target* (so it is retried alone), with `attempt` = attempts
//!   made, `dueAtMs` = the next attempt's time, the failure appended to its
//!   history; status `retrying`. Otherwise the DLQ (`max_attempts` or
//!   `expired`);
//! * permanent → the DLQ at once (`permanent`, or `unknown_target`);
//! * paused (circuit open) → parked once (the parked set, see
//!   `wal_state::parking`) until the breaker releases it into the retry
//!   set, with the attempt count unchanged; status `paused`;
//! * a message not yet due → the delayed set; expired → the DLQ (`expired`);
//!   handed out too often → the DLQ (`poison`); undecodable → the DLQ
//!   (`malformed`), always, whatever the namespace's DLQ setting, because
//!   nothing else can be done with it.
//!
//! With the DLQ disabled, a dead-lettered target only gets its status.

use std::time::Duration;

use rand::Rng;
use wal_core::delivery::{AttemptRecord, DlqReason, DlqRecord, TargetState, TargetStatus};
use wal_core::request::TargetRef;
use wal_core::Envelope;
use wal_state::{schedule_member, ScheduleSet, SettleOp};

/// The outcome of one target for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetResult {
    /// The target accepted the message.
    Delivered,
    /// A transient failure.
    Retryable {
        /// Earliest retry the target asked for (`Retry-After`).
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
    /// A failure retrying cannot fix.
    Permanent {
        /// `permanent` or `unknown_target`.
        dlq_reason: DlqReason,
        /// What went wrong.
        reason: String,
    },
    /// Not attempted: the target's circuit breaker is open.
    Paused,
}

fn status(state: TargetState, attempt: u32, now_ms: u64) -> TargetStatus {
    TargetStatus {
        state,
        attempt,
        updated_at_ms: now_ms,
        next_at_ms: None,
        last_error: None,
        reason: None,
    }
}

fn status_op(target: &str, status: TargetStatus) -> SettleOp {
    SettleOp::Status {
        target: target.to_string(),
        status,
    }
}

/// The envelope narrowed to one target.
fn narrowed(env: &Envelope, target: &TargetRef) -> Envelope {
    let mut one = env.clone();
    one.targets = vec![target.clone()];
    one
}

/// Dead-letters `env` (already narrowed) for `target`, or only records the
/// status when the message's DLQ is disabled.
fn dead_letter(
    ops: &mut Vec<SettleOp>,
    env: &Envelope,
    target: &str,
    reason: DlqReason,
    error: String,
    attempts: u32,
    now_ms: u64,
) {
    let mut st = status(TargetState::DeadLettered, attempts, now_ms);
    st.reason = Some(reason);
    st.last_error = Some(error.clone());
    ops.push(status_op(target, st));
    if env.lifecycle.enable_dlq {
        ops.push(SettleOp::DeadLetter(DlqRecord {
            message_id: env.id.to_string(),
            reason,
            target: target.to_string(),
            error,
            attempts,
            partition: env.partition,
            at_ms: now_ms,
            body: env.encode(),
        }));
    } else {
        tracing::warn!(message_id = %env.id, target, %reason, "delivery given up; DLQ disabled, message dropped");
    }
}

/// The ops for a delivered-or-failed entry, one result per target.
pub fn plan_delivery(
    env: &Envelope,
    results: &[(TargetRef, TargetResult)],
    now_ms: u64,
    rng: &mut impl Rng,
) -> Vec<SettleOp> {
    let mut ops = Vec::with_capacity(results.len() + 1);
    let attempt = env.attempt + 1;
    for (target, result) in results {
        let id = target.identifier.as_str();
        match result {
            TargetResult::Delivered => {
                ops.push(status_op(
                    id,
                    status(TargetState::Delivered, attempt, now_ms),
                ));
            }
            TargetResult::Paused => {
                // The parked copy is told apart by its due time (now): a
                // redelivered older copy sees another `nextAtMs`.
                let mut later = narrowed(env, target);
                later.due_at_ms = now_ms;
                let mut st = status(TargetState::Paused, env.attempt, now_ms);
                st.next_at_ms = Some(now_ms);
                st.last_error = Some("circuit breaker open: target paused".into());
                ops.push(status_op(id, st));
                ops.push(SettleOp::Park {
                    target: id.to_string(),
                    member: schedule_member(
                        later.partition,
                        &later.id.to_string(),
                        &later.encode(),
                    ),
                });
            }
            TargetResult::Permanent { dlq_reason, reason } => {
                let mut failed = narrowed(env, target);
                failed.attempt = attempt;
                failed.record_attempt(record(id, attempt, now_ms, "permanent", reason));
                dead_letter(
                    &mut ops,
                    &failed,
                    id,
                    *dlq_reason,
                    reason.clone(),
                    attempt,
                    now_ms,
                );
            }
            TargetResult::Retryable { after, reason } => {
                let mut failed = narrowed(env, target);
                failed.attempt = attempt;
                failed.record_attempt(record(id, attempt, now_ms, "retryable", reason));
                let policy = &env.lifecycle.retry_policy;
                if !policy.allows_another_attempt(attempt) {
                    dead_letter(
                        &mut ops,
                        &failed,
                        id,
                        DlqReason::MaxAttempts,
                        reason.clone(),
                        attempt,
                        now_ms,
                    );
                    continue;
                }
                let delay = policy
                    .next_delay(attempt, rng)
                    .max(after.unwrap_or_default());
                let due = now_ms + delay.as_millis() as u64;
                if env.lifecycle.expires_at_ms.is_some_and(|exp| due > exp) {
                    let why = format!("expires before the next attempt; last error: {reason}");
                    dead_letter(
                        &mut ops,
                        &failed,
                        id,
                        DlqReason::Expired,
                        why,
                        attempt,
                        now_ms,
                    );
                    continue;
                }
                failed.due_at_ms = due;
                let mut st = status(TargetState::Retrying, attempt, now_ms);
                st.next_at_ms = Some(due);
                st.last_error = Some(reason.clone());
                ops.push(status_op(id, st));
                ops.push(schedule(ScheduleSet::Retry, &failed));
            }
        }
    }
    ops
}

fn record(target: &str, attempt: u32, now_ms: u64, outcome: &str, error: &str) -> AttemptRecord {
    AttemptRecord {
        target: target.to_string(),
        attempt,
        at_ms: now_ms,
        outcome: outcome.to_string(),
        error: error.to_string(),
    }
}

fn schedule(set: ScheduleSet, env: &Envelope) -> SettleOp {
    SettleOp::Schedule {
        set,
        due_ms: env.due_at_ms,
        member: schedule_member(env.partition, &env.id.to_string(), &env.encode()),
    }
}

/// The ops for a message that is not due yet: park it whole in the delayed set.
pub fn plan_delayed(env: &Envelope, now_ms: u64) -> Vec<SettleOp> {
    let mut ops: Vec<SettleOp> = env
        .targets
        .iter()
        .map(|t| {
            let mut st = status(TargetState::Delayed, env.attempt, now_ms);
            st.next_at_ms = Some(env.due_at_ms);
            status_op(&t.identifier, st)
        })
        .collect();
    ops.push(schedule(ScheduleSet::Delayed, env));
    ops
}

/// The ops for a message whose TTL passed before delivery.
pub fn plan_expired(env: &Envelope, now_ms: u64) -> Vec<SettleOp> {
    let mut ops = Vec::new();
    let expired_at = env.lifecycle.expires_at_ms.unwrap_or(now_ms);
    for t in &env.targets {
        let one = narrowed(env, t);
        let why = format!("message expired at {expired_at} ms before it was delivered");
        dead_letter(
            &mut ops,
            &one,
            &t.identifier,
            DlqReason::Expired,
            why,
            env.attempt,
            now_ms,
        );
    }
    ops
}

/// The ops for an entry handed out `delivery_count` times without an ack.
pub fn plan_poison(env: &Envelope, delivery_count: u32, now_ms: u64) -> Vec<SettleOp> {
    let why = format!("handed out {delivery_count} times without being acknowledged");
    let mut ops: Vec<SettleOp> = env
        .targets
        .iter()
        .map(|t| {
            let mut st = status(TargetState::DeadLettered, env.attempt, now_ms);
            st.reason = Some(DlqReason::Poison);
            st.last_error = Some(why.clone());
            status_op(&t.identifier, st)
        })
        .collect();
    if env.lifecycle.enable_dlq {
        ops.push(SettleOp::DeadLetter(DlqRecord {
            message_id: env.id.to_string(),
            reason: DlqReason::Poison,
            target: String::new(),
            error: why,
            attempts: env.attempt,
            partition: env.partition,
            at_ms: now_ms,
            body: env.encode(),
        }));
    }
    ops
}

/// Whether an earlier handling settled `target` for good, as its `status`
/// says: delivered, dead-lettered, or parked / scheduled for a later attempt
/// by another handling. A scheduled member carries its due time as
/// `dueAtMs`, and its status the same time as `nextAtMs`: a status pointing
/// at another due time belongs to another copy of the message, which will
/// be handled on its own.
pub fn settled_elsewhere(status: &TargetStatus, env: &Envelope) -> bool {
    match status.state {
        TargetState::Delivered | TargetState::DeadLettered => true,
        TargetState::Retrying | TargetState::Delayed | TargetState::Paused => {
            status.next_at_ms != Some(env.due_at_ms)
        }
        TargetState::Pending => false,
    }
}

/// `env` narrowed to the targets no earlier handling settled
/// ([`settled_elsewhere`]); `None` when none was.
pub fn open_targets(
    env: &Envelope,
    statuses: &std::collections::HashMap<String, TargetStatus>,
) -> Option<Envelope> {
    let open: Vec<TargetRef> = env
        .targets
        .iter()
        .filter(|t| {
            !statuses
                .get(&t.identifier)
                .is_some_and(|s| settled_elsewhere(s, env))
        })
        .cloned()
        .collect();
    if open.len() == env.targets.len() {
        return None;
    }
    let mut narrowed = env.clone();
    narrowed.targets = open;
    Some(narrowed)
}

/// The ops for an entry that cannot be decoded.
pub fn plan_malformed(
    partition: u32,
    entry_id: &str,
    raw: &[u8],
    error: &str,
    delivery_count: u32,
    now_ms: u64,
) -> Vec<SettleOp> {
    vec![SettleOp::DeadLetter(DlqRecord {
        message_id: malformed_id(partition, entry_id),
        reason: DlqReason::Malformed,
        target: String::new(),
        error: error.to_string(),
        attempts: delivery_count,
        partition,
        at_ms: now_ms,
        body: raw.to_vec(),
    })]
}

/// The ops for an entry whose envelope names another namespace than the
/// log it was read from: one dead letter with the entry as it came, nothing
/// delivered, no status written (the message is not this namespace's).
pub fn plan_foreign(env: &Envelope, raw: &[u8], namespace: &str, now_ms: u64) -> Vec<SettleOp> {
    vec![SettleOp::DeadLetter(DlqRecord {
        message_id: env.id.to_string(),
        reason: DlqReason::Foreign,
        target: String::new(),
        error: format!(
            "the envelope belongs to namespace `{}`, not `{namespace}`",
            env.namespace
        ),
        attempts: env.attempt,
        partition: env.partition,
        at_ms: now_ms,
        body: raw.to_vec(),
    })]
}

/// The id a malformed entry is filed under in the DLQ.
pub fn malformed_id(partition: u32, entry_id: &str) -> String {
    format!("malformed-{partition}-{entry_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::value::RawValue;
    use wal_core::envelope::{ResolvedLifecycle, TraceContext, ENVELOPE_VERSION};
    use wal_core::{MessageId, RetryPolicy};

    fn envelope(targets: &[&str]) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            id: MessageId::generate(),
            namespace: "orders".into(),
            payload: RawValue::from_string("{}".into()).unwrap(),
            targets: targets.iter().map(|t| TargetRef::named(*t)).collect(),
            lifecycle: ResolvedLifecycle {
                retry_policy: RetryPolicy {
                    max_attempts: 3,
                    initial_delay_ms: 100,
                    max_delay_ms: 1000,
                    jitter_ms: 0,
                    ..RetryPolicy::default()
                },
                enable_dlq: true,
                expires_at_ms: None,
            },
            partition_key: None,
            partition: 1,
            request_id: "r".into(),
            trace: TraceContext::default(),
            created_at_ms: 0,
            due_at_ms: 0,
            attempt: 0,
            metadata: None,
            priority: None,
            tags: vec![],
            history: vec![],
        }
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn retry_members(ops: &[SettleOp]) -> Vec<(u64, Envelope)> {
        ops.iter()
            .filter_map(|op| match op {
                SettleOp::Schedule {
                    set: ScheduleSet::Retry,
                    due_ms,
                    member,
                } => {
                    let json = member.splitn(3, |b| *b == b':').nth(2).unwrap();
                    Some((*due_ms, Envelope::decode(json).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    fn dead_letters(ops: &[SettleOp]) -> Vec<&DlqRecord> {
        ops.iter()
            .filter_map(|op| match op {
                SettleOp::DeadLetter(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failing_target_is_retried_alone() {
        let env = envelope(&["a", "b"]);
        let results = vec![
            (TargetRef::named("a"), TargetResult::Delivered),
            (
                TargetRef::named("b"),
                TargetResult::Retryable {
                    after: None,
                    reason: "HTTP 500".into(),
                },
            ),
        ];
        let ops = plan_delivery(&env, &results, 1_000, &mut rng());
        let retries = retry_members(&ops);
        assert_eq!(retries.len(), 1);
        let (due, retry) = &retries[0];
        assert_eq!(*due, 1_100, "first retry after initialDelayMs");
        assert_eq!(retry.due_at_ms, 1_100);
        assert_eq!(retry.targets, vec![TargetRef::named("b")]);
        assert_eq!(retry.attempt, 1);
        assert_eq!(retry.history.len(), 1);
        assert_eq!(retry.history[0].error, "HTTP 500");
        assert!(dead_letters(&ops).is_empty());
    }

    #[test]
    fn retry_after_wins_over_a_shorter_backoff() {
        let env = envelope(&["a"]);
        let results = vec![(
            TargetRef::named("a"),
            TargetResult::Retryable {
                after: Some(Duration::from_secs(3)),
                reason: "HTTP 429".into(),
            },
        )];
        let ops = plan_delivery(&env, &results, 1_000, &mut rng());
        assert_eq!(retry_members(&ops)[0].0, 4_000);
    }

    #[test]
    fn the_last_allowed_attempt_goes_to_the_dlq_with_history() {
        let mut env = envelope(&["a"]);
        env.attempt = 2;
        env.history = vec![
            record("a", 1, 1, "retryable", "e1"),
            record("a", 2, 2, "retryable", "e2"),
        ];
        let results = vec![(
            TargetRef::named("a"),
            TargetResult::Retryable {
                after: None,
                reason: "e3".into(),
            },
        )];
        let ops = plan_delivery(&env, &results, 5_000, &mut rng());
        assert!(retry_members(&ops).is_empty());
        let dlq = dead_letters(&ops);
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].reason, DlqReason::MaxAttempts);
        assert_eq!(dlq[0].attempts, 3);
        assert_eq!(dlq[0].error, "e3");
        let stored = Envelope::decode(&dlq[0].body).unwrap();
        assert_eq!(stored.history.len(), 3);
    }

    #[test]
    fn permanent_failures_skip_retries() {
        let env = envelope(&["a"]);
        let results = vec![(
            TargetRef::named("a"),
            TargetResult::Permanent {
                dlq_reason: DlqReason::Permanent,
                reason: "HTTP 404".into(),
            },
        )];
        let ops = plan_delivery(&env, &results, 5_000, &mut rng());
        assert!(retry_members(&ops).is_empty());
        assert_eq!(dead_letters(&ops)[0].reason, DlqReason::Permanent);
    }

    #[test]
    fn a_paused_target_is_parked_with_its_attempt_count() {
        let mut env = envelope(&["a"]);
        env.attempt = 1;
        let results = vec![(TargetRef::named("a"), TargetResult::Paused)];
        let ops = plan_delivery(&env, &results, 5_000, &mut rng());
        assert!(retry_members(&ops).is_empty(), "parked, not scheduled");
        let parked: Vec<Envelope> = ops
            .iter()
            .filter_map(|op| match op {
                SettleOp::Park { target, member } if target == "a" => {
                    let body = member.splitn(3, |b| *b == b':').nth(2)?;
                    Envelope::decode(body).ok()
                }
                _ => None,
            })
            .collect();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].attempt, 1);
        assert_eq!(parked[0].due_at_ms, 5_000);
        let status = ops.iter().find_map(|op| match op {
            SettleOp::Status { status, .. } => Some(status.clone()),
            _ => None,
        });
        assert_eq!(
            status.map(|s| (s.state, s.next_at_ms)),
            Some((TargetState::Paused, Some(5_000)))
        );
    }

    #[test]
    fn a_retry_past_expiry_is_dead_lettered_as_expired() {
        let mut env = envelope(&["a"]);
        env.lifecycle.expires_at_ms = Some(1_050);
        let results = vec![(
            TargetRef::named("a"),
            TargetResult::Retryable {
                after: None,
                reason: "HTTP 503".into(),
            },
        )];
        let ops = plan_delivery(&env, &results, 1_000, &mut rng());
        assert_eq!(dead_letters(&ops)[0].reason, DlqReason::Expired);
    }

    #[test]
    fn with_the_dlq_disabled_only_the_status_is_recorded() {
        let mut env = envelope(&["a"]);
        env.lifecycle.enable_dlq = false;
        let results = vec![(
            TargetRef::named("a"),
            TargetResult::Permanent {
                dlq_reason: DlqReason::Permanent,
                reason: "HTTP 400".into(),
            },
        )];
        let ops = plan_delivery(&env, &results, 1, &mut rng());
        assert!(dead_letters(&ops).is_empty());
        assert!(matches!(
            &ops[0],
            SettleOp::Status { status, .. } if status.state == TargetState::DeadLettered
        ));
    }

    #[test]
    fn delayed_messages_are_parked_whole_at_their_due_time() {
        let mut env = envelope(&["a", "b"]);
        env.due_at_ms = 7_000;
        let ops = plan_delayed(&env, 1_000);
        let parked: Vec<_> = ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    SettleOp::Schedule {
                        set: ScheduleSet::Delayed,
                        due_ms: 7_000,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(parked.len(), 1);
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn malformed_entries_are_always_dead_lettered() {
        let ops = plan_malformed(3, "1-1", b"garbage", "bad json", 1, 10);
        let dlq = dead_letters(&ops);
        assert_eq!(dlq[0].reason, DlqReason::Malformed);
        assert_eq!(dlq[0].message_id, "malformed-3-1-1");
        assert_eq!(dlq[0].body, b"garbage");
    }

    #[test]
    fn expired_and_poison_entries_are_dead_lettered() {
        let env = envelope(&["a", "b"]);
        assert_eq!(dead_letters(&plan_expired(&env, 5)).len(), 2);
        let poison = plan_poison(&env, 6, 5);
        assert_eq!(dead_letters(&poison)[0].reason, DlqReason::Poison);
    }

    #[test]
    fn a_redelivered_copy_leaves_settled_targets_alone() {
        let env = envelope(&["done", "failed", "retrying", "mine", "new", "parked"]);
        let at = |state, next: Option<u64>| TargetStatus {
            next_at_ms: next,
            ..status(state, 1, 5)
        };
        let statuses: std::collections::HashMap<String, TargetStatus> = [
            ("done", at(TargetState::Delivered, None)),
            ("failed", at(TargetState::DeadLettered, None)),
            // Another copy is scheduled for a later attempt.
            (
                "retrying",
                at(TargetState::Retrying, Some(env.due_at_ms + 500)),
            ),
            // This very copy is the scheduled attempt.
            ("mine", at(TargetState::Retrying, Some(env.due_at_ms))),
            ("parked", at(TargetState::Delayed, Some(env.due_at_ms))),
        ]
        .into_iter()
        .map(|(t, s)| (t.to_string(), s))
        .collect();
        let open = open_targets(&env, &statuses).expect("some were settled");
        let names: Vec<&str> = open.targets.iter().map(|t| t.identifier.as_str()).collect();
        assert_eq!(names, ["mine", "new", "parked"]);
        assert!(open_targets(&env, &Default::default()).is_none());
    }
}
