//! Health, readiness, liveness and `/metrics`. Every answer is measured at
//! the time of the request: a ping to Redis and a query to the namespace
//! store, with their latencies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::state::AppState;

/// One dependency's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// Round trip of the check, in milliseconds.
    pub latency_ms: f64,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Health of the process and its dependencies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when every dependency is up, `degraded` otherwise.
    pub status: &'static str,
    /// Redis (log backend, idempotency, rate limits).
    pub redis: Check,
    /// The namespace store.
    pub database: Check,
    /// Namespaces currently cached.
    pub namespaces_cached: usize,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Build version.
    pub version: &'static str,
}

async fn timed<F, E>(f: F) -> Check
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(2), f).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(())) => Check {
            status: "up",
            latency_ms,
            error: None,
        },
        Ok(Err(e)) => Check {
            status: "down",
            latency_ms,
            error: Some(e.to_string()),
        },
        Err(_) => Check {
            status: "down",
            latency_ms,
            error: Some("timed out".into()),
        },
    }
}

async fn measure(state: &AppState) -> Health {
    let (redis, database) = tokio::join!(
        timed(state.redis.ping()),
        timed(state.namespaces.store().ping())
    );
    let ok = redis.status == "up" && database.status == "up";
    Health {
        status: if ok { "ok" } else { "degraded" },
        redis,
        database,
        namespaces_cached: state.namespaces.snapshot().len(),
        uptime_seconds: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Health of the gateway and its dependencies (503 when one is down).
#[utoipa::path(get, path = "/api/v1/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let h = measure(&state).await;
    let status = if h.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

/// Ready to take writes: Redis and the namespace store both answer.
#[utoipa::path(get, path = "/api/v1/health/readiness", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readiness(State(state): State<Arc<AppState>>) -> Response {
    health(State(state)).await
}

/// The process is alive (answers without touching dependencies).
#[utoipa::path(get, path = "/api/v1/health/liveness", tag = "health", responses((status = 200)))]
pub async fn liveness(State(state): State<Arc<AppState>>) -> Response {
    Json(serde_json::json!({ "status": "alive", "uptimeSeconds": state.started.elapsed().as_secs() })).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state
        .metrics
        .namespaces_cached
        .set(state.namespaces.snapshot().len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
