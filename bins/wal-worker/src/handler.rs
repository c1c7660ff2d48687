//! Handles one entry read from the log: decide (malformed, poison, expired,
//! not yet due, or deliverable), deliver to each target independently,
//! plan what to record ([`crate::plan`]), and settle — for a Redis stream
//! entry the acknowledgement goes out in the same atomic step as the record
//! of every target's fate; a Kafka or SQS entry is acknowledged right after
//! that record (see [`crate::sources`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tracing::Instrument;
use wal_core::backend::{AckToken, Position, ReceivedEntry};
use wal_core::delivery::{DlqReason, TargetState, TargetStatus};
use wal_core::request::TargetRef;
use wal_core::Envelope;
use wal_state::{status, ScheduleSet, SettleOp, Settlement};
use wal_targets::{Delivery, DeliveryOutcome};

use crate::breaker::Admission;
use crate::clock::now_ms;
use crate::context::NamespaceContext;
use crate::metrics::{self, AttemptLabels, ReasonLabels};
use crate::plan::{self, TargetResult};
use crate::targets::SlotState;

/// Settlement attempts before an entry is left pending (it is then
/// reclaimed after the visibility timeout and handled again).
const SETTLE_ATTEMPTS: u32 = 6;

/// How an entry is named in logs and in the DLQ record of an undecodable
/// entry: its stream entry id, `<partition>@<offset>` for Kafka, or the start
/// of its receipt handle for SQS.
fn entry_name(token: &AckToken) -> String {
    match &token.position {
        Position::StreamEntry(id) => id.clone(),
        Position::Offset(o) => format!("{}@{o}", token.partition),
        Position::Receipt(r) => format!("sqs:{}", r.chars().take(24).collect::<String>()),
    }
}

/// How the handling of an entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Settled and acknowledged — or left pending for the reclaimer when
    /// Redis would not take the settlement: done with, either way.
    Finished,
    /// Given up because the runner is stopping (its drain deadline passed):
    /// nothing was recorded, and the entry must be handed back.
    Abandoned,
}

/// Handles `entry` of source `source` to the end: delivered, scheduled, or
/// dead-lettered, and acknowledged — unless the runner abandons it first
/// (see [`Handled`]).
pub async fn handle_entry(ctx: &NamespaceContext, source: usize, entry: ReceivedEntry) -> Handled {
    let src = &ctx.sources[source];
    let entry_id = entry_name(&entry.token);
    let partition = entry.token.partition;
    let span = tracing::info_span!(
        "deliver_entry",
        namespace = %ctx.name,
        source = src.name,
        partition,
        entry = %entry_id,
        message_id = tracing::field::Empty,
        delivery_count = entry.delivery_count,
    );
    async move {
        let now = now_ms();
        let judged = async {
            match entry.decode() {
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable entry; dead-lettering it as malformed");
                    let id = plan::malformed_id(partition, &entry_id);
                    let ops = plan::plan_malformed(
                        partition,
                        &entry_id,
                        &entry.body,
                        &e.to_string(),
                        entry.delivery_count,
                        now,
                    );
                    (id, ops)
                }
                Ok(env) if env.namespace != ctx.name => {
                    tracing::warn!(envelope_namespace = %env.namespace, message_id = %env.id, "entry of another namespace; dead-lettering it as foreign");
                    let ops = plan::plan_foreign(&env, &entry.body, &ctx.name, now);
                    (env.id.to_string(), ops)
                }
                Ok(env) => {
                    tracing::Span::current()
                        .record("message_id", tracing::field::display(&env.id));
                    let delivery_count = if src.consumer.counts_deliveries() {
                        entry.delivery_count
                    } else {
                        count_delivery(ctx, &env).await
                    };
                    let ops = decide(ctx, &env, delivery_count, now).await;
                    (env.id.to_string(), ops)
                }
            }
        };
        // Deliveries under way are dropped when the runner abandons them;
        // a settlement, once started, is not.
        let (message_id, ops) = tokio::select! {
            biased;
            _ = ctx.abandon.cancelled() => {
                tracing::info!("runner stopping: delivery abandoned, the entry is handed back");
                return Handled::Abandoned;
            }
            judged = judged => judged,
        };
        let settlement = Settlement {
            namespace: ctx.name.clone(),
            partition,
            ack: src.acks_in_settle.then_some(entry_id),
            message_id,
            ops,
            status_ttl: ctx.shared.config.status_ttl(),
        };
        match settle(ctx, settlement, src.acks_in_settle).await {
            Settled::Recorded => {
                if !src.acks_in_settle {
                    if let Err(e) = src.ack(entry.token.clone()).await {
                        tracing::warn!(error = %e, "could not acknowledge the handled entry; it will be handed out again and its settled targets skipped");
                    }
                }
                Handled::Finished
            }
            Settled::GaveUp => Handled::Finished,
            Settled::Abandoned => Handled::Abandoned,
        }
    }
    .instrument(span)
    .await
}

/// What to record for a decodable entry (delivering it if it is due).
///
/// A redelivered entry (handed out before: a Kafka rebalance, an SQS
/// visibility expiry, a reclaimed Redis entry) first reads its status record:
/// targets an earlier handling settled — delivered, dead-lettered, or
/// scheduled for a later attempt — are final and left alone, and only the
/// others are judged (poison, expired, not due) and delivered.
async fn decide(
    ctx: &NamespaceContext,
    env: &Envelope,
    delivery_count: u32,
    now: u64,
) -> Vec<SettleOp> {
    let narrowed;
    let env = if delivery_count > 1 {
        let statuses = target_statuses(ctx, env).await;
        match plan::open_targets(env, &statuses) {
            None => env,
            Some(open) if open.targets.is_empty() => {
                tracing::info!(
                    delivery_count,
                    "redelivered entry whose targets were all settled before; acknowledging it"
                );
                return Vec::new();
            }
            Some(open) => {
                narrowed = open;
                &narrowed
            }
        }
    } else {
        env
    };
    let threshold = ctx.shared.config.poison_threshold;
    if delivery_count > threshold {
        tracing::warn!(
            delivery_count,
            "entry keeps coming back unacknowledged; dead-lettering it as poison"
        );
        return plan::plan_poison(env, delivery_count, now);
    }
    if env.lifecycle.expires_at_ms.is_some_and(|exp| exp <= now) {
        return plan::plan_expired(env, now);
    }
    if env.due_at_ms > now {
        return plan::plan_delayed(env, now);
    }
    if env.attempt == 0 {
        ctx.shared
            .metrics
            .lateness
            .get_or_create(&metrics::ns(&ctx.name))
            .observe(now.saturating_sub(env.due_at_ms) as f64 / 1000.0);
    }
    let results = join_all(
        env.targets
            .iter()
            .map(|t| async move { (t.clone(), deliver_one(ctx, env, t).await) }),
    )
    .await;
    let mut rng = rand::rng();
    plan::plan_delivery(env, &results, now_ms(), &mut rng)
}

/// Counts a delivery of `env` in its status record, for sources that do not
/// count deliveries (Kafka): the count that poison detection and the
/// skip-delivered-targets check read. 1 when Redis does not answer (the
/// settlement then fails too, and the entry is handled again).
async fn count_delivery(ctx: &NamespaceContext, env: &Envelope) -> u32 {
    let ttl = ctx.shared.config.status_ttl();
    match status::count_delivery(&ctx.shared.redis, &ctx.name, &env.id.to_string(), ttl).await {
        Ok(count) => count,
        Err(e) => {
            tracing::debug!(error = %e, "could not count the delivery");
            1
        }
    }
}

/// The status of each target of `env` as an earlier handling recorded it
/// (none when Redis does not answer: the entry is then handled as new).
async fn target_statuses(ctx: &NamespaceContext, env: &Envelope) -> HashMap<String, TargetStatus> {
    let targets: Vec<&str> = env.targets.iter().map(|t| t.identifier.as_str()).collect();
    status::target_statuses(&ctx.shared.redis, &ctx.name, &env.id.to_string(), &targets)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the status record of a redelivered entry");
            HashMap::new()
        })
}

/// One attempt at one target, through its breaker and concurrency limit.
async fn deliver_one(ctx: &NamespaceContext, env: &Envelope, target: &TargetRef) -> TargetResult {
    let targets = ctx.targets.load();
    let slot = match targets.get(&target.identifier) {
        None => {
            return TargetResult::Permanent {
                dlq_reason: DlqReason::UnknownTarget,
                reason: format!(
                    "target `{}` is not an enabled target of namespace `{}`",
                    target.identifier, ctx.name
                ),
            }
        }
        Some(SlotState::Broken(why)) => {
            return TargetResult::Permanent {
                dlq_reason: DlqReason::Permanent,
                reason: format!("target configuration error: {why}"),
            }
        }
        Some(SlotState::Ready(slot)) => slot.clone(),
    };
    drop(targets);
    let labels = |outcome| AttemptLabels {
        namespace: ctx.name.clone(),
        target: target.identifier.clone(),
        outcome,
    };
    let m = &ctx.shared.metrics;
    if slot.breaker.admit(Instant::now()) == Admission::Paused {
        m.attempts.get_or_create(&labels("paused")).inc();
        return TargetResult::Paused;
    }
    let _permit = slot.limit.acquire().await;
    let started = Instant::now();
    let outcome = slot
        .target
        .deliver(Delivery {
            envelope: env,
            target,
            attempt: env.attempt + 1,
        })
        .await;
    m.duration
        .get_or_create(&metrics::target(&ctx.name, &target.identifier))
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        DeliveryOutcome::Delivered => {
            slot.breaker.on_success(Instant::now());
            breaker_gauge(ctx, target, false);
            m.attempts.get_or_create(&labels("delivered")).inc();
            TargetResult::Delivered
        }
        DeliveryOutcome::Permanent { reason } => {
            // The target answered: it is up, the message is what it refuses.
            slot.breaker.on_success(Instant::now());
            m.attempts.get_or_create(&labels("permanent")).inc();
            tracing::warn!(target = %target.identifier, %reason, "permanent delivery failure");
            TargetResult::Permanent {
                dlq_reason: DlqReason::Permanent,
                reason,
            }
        }
        DeliveryOutcome::Retry { after, reason } => {
            m.attempts.get_or_create(&labels("retryable")).inc();
            if slot.breaker.on_failure(Instant::now()) {
                breaker_gauge(ctx, target, true);
                tracing::warn!(target = %target.identifier, %reason, "circuit breaker opened: target paused");
            }
            tracing::info!(target = %target.identifier, %reason, attempt = env.attempt + 1, "retryable delivery failure");
            TargetResult::Retryable { after, reason }
        }
    }
}

fn breaker_gauge(ctx: &NamespaceContext, target: &TargetRef, open: bool) {
    ctx.shared
        .metrics
        .circuit_open
        .get_or_create(&metrics::target(&ctx.name, &target.identifier))
        .set(i64::from(open));
}

/// What became of a settlement.
enum Settled {
    /// Redis took it.
    Recorded,
    /// Redis would not take it in [`SETTLE_ATTEMPTS`]: the (Redis stream)
    /// entry stays pending and is reclaimed and handled again later.
    GaveUp,
    /// The runner is stopping and the entry is to be handed back.
    Abandoned,
}

/// Records `settlement`, retrying while Redis does not take it. With
/// `may_give_up` (Redis stream entries) it gives up after a few attempts:
/// the entry then stays pending and is reclaimed and handled again after
/// the visibility timeout (at-least-once). A Kafka or SQS entry is retried
/// until Redis answers — its ack must follow the record, and a Kafka offset
/// left unacknowledged would hold back its partition's commits — or until
/// the runner abandons it.
async fn settle(ctx: &NamespaceContext, settlement: Settlement, may_give_up: bool) -> Settled {
    let m = &ctx.shared.metrics;
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if may_give_up && attempt > SETTLE_ATTEMPTS {
            break;
        }
        match ctx.shared.settler.settle(settlement.clone()).await {
            Ok(_) => {
                count_outcomes(ctx, &settlement.ops);
                hint_schedule(ctx, &settlement.ops);
                return Settled::Recorded;
            }
            Err(e) => {
                m.settle_failures.inc();
                tracing::warn!(error = %e, attempt, "could not settle the entry; retrying");
                if ctx.abandon.is_cancelled() {
                    return Settled::Abandoned;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    tracing::error!("giving up settling the entry; it stays pending and will be handled again");
    Settled::GaveUp
}

fn count_outcomes(ctx: &NamespaceContext, ops: &[SettleOp]) {
    let m = &ctx.shared.metrics;
    for op in ops {
        match op {
            SettleOp::Status { target, status } if status.state == TargetState::Delivered => {
                m.delivered
                    .get_or_create(&metrics::target(&ctx.name, target))
                    .inc();
            }
            SettleOp::Status { target, status } if status.state == TargetState::Retrying => {
                m.retries
                    .get_or_create(&metrics::target(&ctx.name, target))
                    .inc();
            }
            SettleOp::DeadLetter(rec) => {
                m.dead_lettered
                    .get_or_create(&ReasonLabels {
                        namespace: ctx.name.clone(),
                        reason: rec.reason.as_str(),
                    })
                    .inc();
            }
            _ => {}
        }
    }
}

/// Tells this namespace's schedulers about new members, so they wake at
/// the exact due time instead of at their next poll.
fn hint_schedule(ctx: &NamespaceContext, ops: &[SettleOp]) {
    for op in ops {
        if let SettleOp::Schedule { set, due_ms, .. } = op {
            match set {
                ScheduleSet::Delayed => ctx.delayed_hint.note(*due_ms),
                ScheduleSet::Retry => ctx.retry_hint.note(*due_ms),
            }
        }
    }
}
