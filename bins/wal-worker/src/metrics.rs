//! Prometheus metrics of the worker. Every metric is defined here once, with
//! its help text; labels are bounded (namespace and target names of existing
//! namespaces, outcome and reason names — never ids).
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `wal_entries_received_total` | namespace | entries read from the log (incl. reclaimed) |
//! | `wal_messages_delivered_total` | namespace, target | deliveries a target accepted |
//! | `wal_delivery_attempts_total` | namespace, target, outcome | attempts by outcome (`delivered`, `retryable`, `permanent`, `paused`) |
//! | `wal_delivery_duration_seconds` | namespace, target | one attempt |
//! | `wal_delivery_lateness_seconds` | namespace | first attempt start − due time |
//! | `wal_retries_total` | namespace, target | retries scheduled |
//! | `wal_dlq_messages_total` | namespace, reason | dead-letter records written |
//! | `wal_entries_reclaimed_total` | namespace | entries taken over from dead workers |
//! | `wal_in_flight` | namespace | entries being handled |
//! | `wal_delayed_messages` | namespace | members of the delayed set (at the last look) |
//! | `wal_retry_scheduled` | namespace | members of the retry set (at the last look) |
//! | `wal_circuit_open` | namespace, target | 1 while the target's breaker holds deliveries back |
//! | `wal_settle_failures_total` | — | settlements Redis did not take (entry stays pending) |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels: namespace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// Namespace.
    pub namespace: String,
}

/// Labels: namespace and target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Namespace.
    pub namespace: String,
    /// Target identifier.
    pub target: String,
}

/// Labels: namespace, target and attempt outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Namespace.
    pub namespace: String,
    /// Target identifier.
    pub target: String,
    /// `delivered`, `retryable`, `permanent` or `paused`.
    pub outcome: &'static str,
}

/// Labels: namespace and DLQ reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Namespace.
    pub namespace: String,
    /// Dead-letter reason.
    pub reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 0.25 ms … ~17 min, doubling.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 23))
}

/// Every metric of the worker, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// `wal_entries_received_total`.
    pub received: Family<NamespaceLabels, Counter>,
    /// `wal_messages_delivered_total`.
    pub delivered: Family<TargetLabels, Counter>,
    /// `wal_delivery_attempts_total`.
    pub attempts: Family<AttemptLabels, Counter>,
    /// `wal_delivery_duration_seconds`.
    pub duration: Family<TargetLabels, Histogram, fn() -> Histogram>,
    /// `wal_delivery_lateness_seconds`.
    pub lateness: Family<NamespaceLabels, Histogram, fn() -> Histogram>,
    /// `wal_retries_total`.
    pub retries: Family<TargetLabels, Counter>,
    /// `wal_dlq_messages_total`.
    pub dead_lettered: Family<ReasonLabels, Counter>,
    /// `wal_entries_reclaimed_total`.
    pub reclaimed: Family<NamespaceLabels, Counter>,
    /// `wal_in_flight`.
    pub in_flight: Family<NamespaceLabels, Gauge>,
    /// `wal_delayed_messages`.
    pub delayed: Family<NamespaceLabels, Gauge>,
    /// `wal_retry_scheduled`.
    pub retry_scheduled: Family<NamespaceLabels, Gauge>,
    /// `wal_circuit_open`.
    pub circuit_open: Family<TargetLabels, Gauge>,
    /// `wal_settle_failures_total`.
    pub settle_failures: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let received = Family::<NamespaceLabels, Counter>::default();
        registry.register(
            "wal_entries_received",
            "Entries read from the log, reclaimed ones included",
            received.clone(),
        );
        let delivered = Family::<TargetLabels, Counter>::default();
        registry.register(
            "wal_messages_delivered",
            "Deliveries a target accepted",
            delivered.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "wal_delivery_attempts",
            "Delivery attempts by outcome",
            attempts.clone(),
        );
        let duration: Family<TargetLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "wal_delivery_duration_seconds",
            "Duration of one delivery attempt",
            duration.clone(),
        );
        let lateness: Family<NamespaceLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "wal_delivery_lateness_seconds",
            "Start of a message's first attempt minus its due time",
            lateness.clone(),
        );
        let retries = Family::<TargetLabels, Counter>::default();
        registry.register("wal_retries", "Retries scheduled", retries.clone());
        let dead_lettered = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "wal_dlq_messages",
            "Dead-letter records written",
            dead_lettered.clone(),
        );
        let reclaimed = Family::<NamespaceLabels, Counter>::default();
        registry.register(
            "wal_entries_reclaimed",
            "Entries taken over from a worker that did not acknowledge them in time",
            reclaimed.clone(),
        );
        let in_flight = Family::<NamespaceLabels, Gauge>::default();
        registry.register("wal_in_flight", "Entries being handled", in_flight.clone());
        let delayed = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "wal_delayed_messages",
            "Members of the delayed set at the last look",
            delayed.clone(),
        );
        let retry_scheduled = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "wal_retry_scheduled",
            "Members of the retry set at the last look",
            retry_scheduled.clone(),
        );
        let circuit_open = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "wal_circuit_open",
            "1 while a target's circuit breaker holds deliveries back",
            circuit_open.clone(),
        );
        let settle_failures = Counter::default();
        registry.register(
            "wal_settle_failures",
            "Settlements Redis did not take (the entry stays pending and is retried)",
            settle_failures.clone(),
        );
        Self {
            registry,
            received,
            delivered,
            attempts,
            duration,
            lateness,
            retries,
            dead_lettered,
            reclaimed,
            in_flight,
            delayed,
            retry_scheduled,
            circuit_open,
            settle_failures,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Namespace labels.
pub fn ns(namespace: &str) -> NamespaceLabels {
    NamespaceLabels {
        namespace: namespace.to_string(),
    }
}

/// Target labels.
pub fn target(namespace: &str, target: &str) -> TargetLabels {
    TargetLabels {
        namespace: namespace.to_string(),
        target: target.to_string(),
    }
}
