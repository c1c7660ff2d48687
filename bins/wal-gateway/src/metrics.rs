//! Prometheus metrics of the gateway. Every metric is defined here once,
//! with its help text; labels are bounded (namespace names of existing
//! namespaces, route templates, outcome codes — never ids or raw paths).
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `wal_requests_total` | namespace, operation, status | write requests by outcome |
//! | `wal_request_duration_seconds` | namespace, operation | write latency (accept → answer) |
//! | `wal_messages_written_total` | namespace, durable | messages by durability answer |
//! | `wal_publish_duration_seconds` | backend | one backend round trip |
//! | `wal_http_requests_total` | method, route, status | every HTTP request |
//! | `wal_http_request_duration_seconds` | method, route | every HTTP request |
//! | `wal_namespace_cache_size` | — | namespaces in the cache |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of write-request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// Namespace, or `_unknown` when it does not exist.
    pub namespace: String,
    /// `write` or `batch`.
    pub operation: &'static str,
    /// `accepted`, `duplicate`, or the lower-case error code.
    pub status: String,
}

/// Labels of the write latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// Namespace, or `_unknown`.
    pub namespace: String,
    /// `write` or `batch`.
    pub operation: &'static str,
}

/// Labels of the durability counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurableLabels {
    /// Namespace.
    pub namespace: String,
    /// `TRUE`, `FALSE` or `UNKNOWN`.
    pub durable: &'static str,
}

/// Labels of the backend latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// Backend name.
    pub backend: &'static str,
}

/// Labels of HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Method.
    pub method: String,
    /// Route template (e.g. `/api/v1/namespaces/{name}`), or `unmatched`.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of the HTTP latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Method.
    pub method: String,
    /// Route template.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 2.0, 15,
    ))
}

/// All gateway metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// `wal_requests_total`.
    pub requests: Family<WriteLabels, Counter>,
    /// `wal_request_duration_seconds`.
    pub request_duration: Family<OperationLabels, Histogram>,
    /// `wal_messages_written_total`.
    pub messages_written: Family<DurableLabels, Counter>,
    /// `wal_publish_duration_seconds`.
    pub publish_duration: Family<BackendLabels, Histogram>,
    /// `wal_http_requests_total`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `wal_http_request_duration_seconds`.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// `wal_namespace_cache_size`.
    pub namespaces_cached: Gauge,
    /// `wal_requests_overloaded_total`.
    pub overloaded: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<WriteLabels, Counter>::default();
        registry.register(
            "wal_requests",
            "Write requests by namespace, operation and outcome",
            requests.clone(),
        );
        let request_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "wal_request_duration_seconds",
            "Write request latency from accept to answer",
            request_duration.clone(),
        );
        let messages_written = Family::<DurableLabels, Counter>::default();
        registry.register(
            "wal_messages_written",
            "Messages by the durability answered to the client",
            messages_written.clone(),
        );
        let publish_duration = Family::<BackendLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "wal_publish_duration_seconds",
            "Latency of one append round trip to the log backend",
            publish_duration.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "wal_http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "wal_http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        let namespaces_cached = Gauge::default();
        registry.register(
            "wal_namespace_cache_size",
            "Namespaces held in the cache",
            namespaces_cached.clone(),
        );
        let overloaded = Counter::default();
        registry.register(
            "wal_requests_overloaded",
            "Requests refused because the gateway was handling WAL_MAX_CONCURRENT_REQUESTS already",
            overloaded.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            messages_written,
            publish_duration,
            http_requests,
            http_duration,
            namespaces_cached,
            overloaded,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
