//! One namespace's work inside a worker: the tasks that read its sources
//! (its Redis partition streams, and its Kafka topic or SQS queue: see
//! [`crate::sources`]), take over abandoned entries, keep slow entries
//! visible, and activate due members of its delayed and retry sets.
//!
//! | task | does |
//! | --- | --- |
//! | reader (one per source) | batches sized to the free in-flight slots (`XREADGROUP`, Kafka poll, SQS long poll); one task per entry |
//! | reclaimer | `XAUTOCLAIM` of Redis entries idle past the visibility timeout (dead workers); Kafka and SQS redeliver by themselves; now and then removes other consumers idle past `WAL_CONSUMER_IDLE_REMOVE_MS` that own nothing |
//! | heartbeat | extends the visibility of entries in flight for a third of the visibility timeout (`XCLAIM … JUSTID`, `ChangeMessageVisibility`) |
//! | scheduler ×2 | sleeps until the earliest due member it knows of (or its poll interval), then runs `activate.lua` |
//! | parking | every 500 ms, releases messages parked for a target as its breaker allows: probes while half-open, all once closed ([`crate::parking`]) |
//! | report | every 5 s, this worker's state on the namespace and its targets' breakers, for the gateway's namespace status ([`crate::report`]) |
//! | DLQ sweep | every `WAL_DLQ_SWEEP_MS`, purges DLQ entries older than `dlqConfig.retentionSeconds` (index included) |
//!
//! On stop: the reader and reclaimer stop reading, in-flight entries get
//! until the deadline to finish; then handlers still delivering give up,
//! and once no handler runs any more, whatever is left is handed back
//! (`release`) so another worker (or this namespace's next runner) takes it
//! at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wal_core::backend::{AckToken, ReceivedEntry};
use wal_namespace::Namespace;
use wal_process::DrainDeadline;
use wal_state::dlq::{DlqFilter, DlqStore};
use wal_state::ScheduleSet;

use crate::clock::now_ms;
use crate::context::{NamespaceContext, ScheduleHint, Shared};
use crate::handler::{handle_entry, Handled};
use crate::metrics;
use crate::sources;
use crate::targets::NamespaceTargets;

/// Most members one activation pass moves.
const ACTIVATE_MAX: usize = 500;
/// How long a stopping runner waits for a reader to finish its current
/// receive (the longest is an SQS long poll).
const READER_STOP_WAIT: Duration = Duration::from_secs(25);
/// How long a stopping runner waits, past its deadline, for handlers that
/// are settling to finish.
const ABANDON_WAIT: Duration = Duration::from_secs(15);

/// A running namespace.
pub struct NamespaceRunner {
    ctx: Arc<NamespaceContext>,
    stop: watch::Sender<bool>,
    /// Tasks that hand out entries (readers, reclaimer).
    readers: Vec<JoinHandle<()>>,
    /// The other tasks (heartbeat, schedulers, DLQ sweep).
    tasks: Vec<JoinHandle<()>>,
    version: i64,
    degraded: Option<String>,
    started: Instant,
}

impl NamespaceRunner {
    /// Opens the sources of `ns` (joining its consumer groups) and starts its
    /// tasks. When its Kafka topic or SQS queue cannot be opened (broker
    /// down, bad settings), the runner starts *degraded*, on its Redis
    /// partition streams only — the delays, retries and requeues of the
    /// namespace keep flowing — and the supervisor tries the full start again
    /// later ([`NamespaceRunner::degraded`]).
    pub async fn start(shared: Arc<Shared>, ns: Arc<Namespace>) -> anyhow::Result<Self> {
        let partitions = ns.shard_config.partition_count.max(1);
        let mut sources =
            vec![sources::open_redis(&shared.redis, &shared.consumer_name, &ns).await?];
        let degraded = match sources::open_log(&shared.config, &shared.consumer_name, &ns).await {
            Ok(log) => {
                sources.extend(log);
                None
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(namespace = %ns.name, error = %why, "cannot open the namespace's log; consuming its Redis streams only until it can");
                Some(why)
            }
        };
        let targets = NamespaceTargets::build(&shared.factory, &ns, shared.slot_settings()).await;
        let ctx = Arc::new(NamespaceContext {
            name: ns.name.clone(),
            namespace: ArcSwap::new(ns.clone()),
            targets: ArcSwap::from_pointee(targets),
            permits: Arc::new(Semaphore::new(shared.config.max_in_flight.max(1))),
            shared,
            sources,
            in_flight: Mutex::new(HashMap::new()),
            handlers: TaskTracker::new(),
            abandon: CancellationToken::new(),
            delayed_hint: ScheduleHint::new(),
            retry_hint: ScheduleHint::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut readers: Vec<JoinHandle<()>> = (0..ctx.sources.len())
            .map(|i| tokio::spawn(read_loop(ctx.clone(), i, stop_rx.clone())))
            .collect();
        readers.push(tokio::spawn(reclaim_loop(ctx.clone(), stop_rx.clone())));
        let tasks = vec![
            tokio::spawn(heartbeat_loop(ctx.clone(), stop_rx.clone())),
            tokio::spawn(schedule_loop(
                ctx.clone(),
                ScheduleSet::Delayed,
                stop_rx.clone(),
            )),
            tokio::spawn(schedule_loop(
                ctx.clone(),
                ScheduleSet::Retry,
                stop_rx.clone(),
            )),
            tokio::spawn(crate::parking::parking_loop(ctx.clone(), stop_rx.clone())),
            tokio::spawn(crate::report::report_loop(
                ctx.clone(),
                degraded.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(dlq_sweep_loop(ctx.clone(), stop_rx)),
        ];
        let names: Vec<&str> = ctx.sources.iter().map(|s| s.name).collect();
        tracing::info!(namespace = %ns.name, partitions, sources = ?names, "consuming namespace");
        Ok(Self {
            ctx,
            stop,
            readers,
            tasks,
            version: ns.version,
            degraded,
            started: Instant::now(),
        })
    }

    /// Why the namespace's Kafka topic or SQS queue could not be opened, if
    /// the runner reads its Redis streams only.
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// How long the runner has been running.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether this runner already runs `ns` as it is now: the same
    /// namespace (its id: a namespace deleted and created again under the
    /// same name is another one) at the same configuration version.
    pub fn runs(&self, ns: &Namespace) -> bool {
        self.ctx.namespace.load().id == ns.id && self.version == ns.version
    }

    /// Whether `ns` is the namespace this runner runs (not one created again
    /// under its name).
    pub fn same_namespace(&self, ns: &Namespace) -> bool {
        self.ctx.namespace.load().id == ns.id
    }

    /// Whether a new configuration can be taken without reopening the
    /// sources: same partition count, backend and backend settings.
    pub fn can_reconfigure(&self, ns: &Namespace) -> bool {
        let current = self.ctx.namespace.load();
        current.shard_config.partition_count == ns.shard_config.partition_count
            && current.backend == ns.backend
            && current.topic_name == ns.topic_name
            && current.backend_config == ns.backend_config
    }

    /// Takes a new configuration that keeps the partition count: targets are rebuilt.
    pub async fn reconfigure(&mut self, ns: Arc<Namespace>) {
        let shared = &self.ctx.shared;
        let targets = NamespaceTargets::build(&shared.factory, &ns, shared.slot_settings()).await;
        self.ctx.targets.store(Arc::new(targets));
        self.ctx.namespace.store(ns.clone());
        self.version = ns.version;
        tracing::info!(namespace = %ns.name, version = ns.version, "namespace configuration reloaded");
    }

    /// Stops reading, lets in-flight entries finish until `deadline`, then
    /// makes the handlers still delivering give up, waits until no handler
    /// of this runner runs any more, and only then hands back what is left:
    /// an entry is never handled by this runner and by its successor at
    /// once.
    pub async fn stop(self, deadline: DrainDeadline) {
        let _ = self.stop.send(true);
        // Readers notice the stop after their current receive.
        for reader in self.readers {
            let abort = reader.abort_handle();
            if tokio::time::timeout(READER_STOP_WAIT, reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let handlers = &self.ctx.handlers;
        handlers.close();
        tokio::select! {
            _ = handlers.wait() => {}
            _ = deadline.sleep() => {}
        }
        self.ctx.abandon.cancel();
        if tokio::time::timeout(ABANDON_WAIT, handlers.wait())
            .await
            .is_err()
        {
            tracing::error!(namespace = %self.ctx.name, "handlers did not stop in time; their entries are handed out again only after the visibility timeout");
            for t in self.tasks {
                t.abort();
            }
            return;
        }
        let left = group_by_source(self.ctx.in_flight().iter().map(|(t, (_, i))| (t, *i)));
        for (i, tokens) in left.into_iter().enumerate() {
            if tokens.is_empty() {
                continue;
            }
            let source = &self.ctx.sources[i];
            tracing::warn!(namespace = %self.ctx.name, source = source.name, entries = tokens.len(), "handing unfinished entries back");
            if let Err(e) = source.consumer.release(&tokens).await {
                tracing::warn!(error = %e, "could not hand entries back; they are handed out again after the visibility timeout");
            }
        }
        for t in self.tasks {
            t.abort();
        }
        let _ = wal_state::worker_reports::remove(
            &self.ctx.shared.redis,
            &self.ctx.name,
            &self.ctx.shared.consumer_name,
        )
        .await;
        tracing::info!(namespace = %self.ctx.name, "namespace stopped");
    }
}

/// Tokens per source index.
fn group_by_source<'a>(tokens: impl Iterator<Item = (&'a AckToken, usize)>) -> Vec<Vec<AckToken>> {
    let mut out: Vec<Vec<AckToken>> = Vec::new();
    for (token, i) in tokens {
        if out.len() <= i {
            out.resize_with(i + 1, Vec::new);
        }
        out[i].push(token.clone());
    }
    out
}

fn spawn_entry(ctx: &Arc<NamespaceContext>, source: usize, entry: ReceivedEntry) {
    ctx.in_flight()
        .insert(entry.token.clone(), (Instant::now(), source));
    let gauge = ctx
        .shared
        .metrics
        .in_flight
        .get_or_create(&metrics::ns(&ctx.name))
        .clone();
    gauge.inc();
    // Take a free slot now rather than when the task first runs, so that the
    // reader's next look at the free slots already counts this entry (it
    // otherwise reads further batches before the tasks hold their slots).
    let slot = ctx.permits.clone().try_acquire_owned().ok();
    let ctx = ctx.clone();
    let handlers = ctx.handlers.clone();
    handlers.spawn(async move {
        let _permit = match slot {
            Some(p) => Ok(p),
            None => ctx.permits.clone().acquire_owned().await,
        };
        let token = entry.token.clone();
        // An abandoned entry stays in flight: the stopping runner hands it back.
        if handle_entry(&ctx, source, entry).await == Handled::Finished {
            ctx.in_flight().remove(&token);
        }
        gauge.dec();
    });
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

async fn read_loop(ctx: Arc<NamespaceContext>, source: usize, mut stop: watch::Receiver<bool>) {
    let batch = ctx.shared.config.batch_size.max(1);
    let src = &ctx.sources[source];
    let received = ctx
        .shared
        .metrics
        .received
        .get_or_create(&metrics::ns(&ctx.name))
        .clone();
    let mut failing_since: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for a free slot; read no more than there are free slots.
        let slot = tokio::select! {
            p = ctx.permits.clone().acquire_owned() => p,
            _ = stop.wait_for(|s| *s) => return,
        };
        drop(slot);
        // `XREADGROUP COUNT` applies to each partition stream: share the free
        // slots among them so one read cannot exceed them.
        let streams = src.streams.max(1);
        let n = ctx
            .permits
            .available_permits()
            .clamp(1, batch)
            .div_ceil(streams);
        match src.consumer.receive(n, src.read_wait).await {
            Ok(entries) => {
                if failing_since.take().is_some() {
                    tracing::info!(namespace = %ctx.name, source = src.name, "reading the log again");
                }
                received.inc_by(entries.len() as u64);
                for entry in entries {
                    spawn_entry(&ctx, source, entry);
                }
            }
            Err(e) => {
                if failing_since.is_none() {
                    tracing::warn!(namespace = %ctx.name, source = src.name, error = %e, "cannot read the log; retrying");
                    failing_since = Some(Instant::now());
                }
                if sleep_or_stop(Duration::from_millis(200), &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn reclaim_loop(ctx: Arc<NamespaceContext>, mut stop: watch::Receiver<bool>) {
    let cfg = &ctx.shared.config;
    let every = Duration::from_millis(cfg.reclaim_interval_ms.max(50));
    let reclaimed = ctx
        .shared
        .metrics
        .reclaimed
        .get_or_create(&metrics::ns(&ctx.name))
        .clone();
    let forget_after = Duration::from_millis(cfg.consumer_idle_remove_ms.max(1));
    // Look for consumers of workers gone for good now and then, not on every pass.
    let forget_every = forget_after.min(Duration::from_secs(60));
    let mut last_forget = Instant::now();
    loop {
        if sleep_or_stop(every, &mut stop).await {
            return;
        }
        let forget = last_forget.elapsed() >= forget_every;
        if forget {
            last_forget = Instant::now();
        }
        for (source, src) in ctx.sources.iter().enumerate() {
            let Some(reclaimer) = src.consumer.reclaimer() else {
                continue;
            };
            if forget {
                match reclaimer.forget_idle_consumers(forget_after).await {
                    Ok(gone) if !gone.is_empty() => {
                        tracing::info!(namespace = %ctx.name, consumers = ?gone, "removed consumers idle past WAL_CONSUMER_IDLE_REMOVE_MS that owned nothing")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(namespace = %ctx.name, error = %e, "could not look for idle consumers")
                    }
                }
            }
            match reclaimer
                .reclaim(ctx.visibility(), cfg.batch_size.max(1))
                .await
            {
                Ok(entries) => {
                    if !entries.is_empty() {
                        tracing::info!(namespace = %ctx.name, entries = entries.len(), "took over abandoned entries");
                    }
                    reclaimed.inc_by(entries.len() as u64);
                    for entry in entries {
                        // Our own in-flight entries are kept visible by the
                        // heartbeat; one reclaimed anyway is already being handled.
                        if ctx.in_flight().contains_key(&entry.token) {
                            continue;
                        }
                        spawn_entry(&ctx, source, entry);
                    }
                }
                Err(e) => tracing::warn!(namespace = %ctx.name, error = %e, "reclaim failed"),
            }
        }
    }
}

async fn heartbeat_loop(ctx: Arc<NamespaceContext>, mut stop: watch::Receiver<bool>) {
    loop {
        let third = ctx.visibility() / 3;
        if sleep_or_stop(third.max(Duration::from_millis(100)), &mut stop).await {
            return;
        }
        let now = Instant::now();
        let stale: Vec<Vec<AckToken>> = {
            let mut map = ctx.in_flight();
            let due = map
                .iter_mut()
                .filter(|(_, (since, _))| now.duration_since(*since) >= third)
                .map(|(t, (since, source))| {
                    *since = now;
                    (t, *source)
                });
            group_by_source(due)
        };
        for (i, tokens) in stale.into_iter().enumerate() {
            if tokens.is_empty() {
                continue;
            }
            if let Err(e) = ctx.sources[i].consumer.extend_visibility(&tokens).await {
                tracing::warn!(namespace = %ctx.name, source = ctx.sources[i].name, error = %e, "could not extend visibility");
            }
        }
    }
}

async fn dlq_sweep_loop(ctx: Arc<NamespaceContext>, mut stop: watch::Receiver<bool>) {
    let store = DlqStore::new(ctx.shared.redis.clone(), &ctx.name);
    let every = Duration::from_millis(ctx.shared.config.dlq_sweep_ms.max(100));
    loop {
        if sleep_or_stop(every, &mut stop).await {
            return;
        }
        let cutoff = now_ms().saturating_sub(ctx.dlq_retention().as_millis() as u64);
        let filter = DlqFilter {
            to_ms: Some(cutoff),
            ..DlqFilter::default()
        };
        match store.purge(&filter).await {
            Ok(summary) if summary.purged > 0 => {
                tracing::info!(namespace = %ctx.name, purged = summary.purged, "dead letters past retention removed")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(namespace = %ctx.name, error = %e, "DLQ sweep failed"),
        }
    }
}

async fn schedule_loop(
    ctx: Arc<NamespaceContext>,
    set: ScheduleSet,
    mut stop: watch::Receiver<bool>,
) {
    let shared = &ctx.shared;
    let poll = Duration::from_millis(shared.config.schedule_poll_ms.max(5));
    let gauge = match set {
        ScheduleSet::Delayed => &shared.metrics.delayed,
        ScheduleSet::Retry => &shared.metrics.retry_scheduled,
    }
    .get_or_create(&metrics::ns(&ctx.name))
    .clone();
    let hint = ctx.hint(set);
    let mut head: Option<u64> = None;
    let mut last_look = Instant::now() - poll;
    loop {
        if let Some(due) = hint.take() {
            head = Some(head.map_or(due, |h| h.min(due)));
        }
        let now = now_ms();
        if head.is_some_and(|h| h <= now) || last_look.elapsed() >= poll {
            last_look = Instant::now();
            let ns = ctx.namespace.load();
            let retention = ns.backend_config.effective_retention();
            let partitions = ns.shard_config.partition_count;
            loop {
                match shared
                    .schedule
                    .activate(
                        &ctx.name,
                        set,
                        partitions,
                        retention,
                        now_ms(),
                        ACTIVATE_MAX,
                    )
                    .await
                {
                    Ok(a) => {
                        head = a.next_due_ms;
                        gauge.set(a.remaining as i64);
                        if a.moved > 0 {
                            tracing::debug!(namespace = %ctx.name, ?set, moved = a.moved, "activated due members");
                        }
                        if a.moved < ACTIVATE_MAX {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(namespace = %ctx.name, ?set, error = %e, "activation failed");
                        head = None;
                        break;
                    }
                }
            }
            continue;
        }
        let until_poll = poll.saturating_sub(last_look.elapsed());
        let until_head = head.map_or(until_poll, |h| Duration::from_millis(h.saturating_sub(now)));
        tokio::select! {
            _ = tokio::time::sleep(until_poll.min(until_head)) => {}
            _ = hint.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
