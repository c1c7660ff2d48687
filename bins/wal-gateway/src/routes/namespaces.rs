//! Namespace administration (`WAL_ADMIN_API_KEYS` only). Every change is
//! validated as a whole (all field errors at once), written with an audit
//! record, and pushed into this instance's cache at once; other instances
//! see it at their next refresh.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use wal_namespace::{parse_spec, ApiKeyHash, StoreError};

use crate::auth::{authorize_admin, presented_key};
use crate::error::ApiError;
use crate::routes::{read_body, require_json};
use crate::state::AppState;

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(name) => {
            ApiError::Conflict(format!("Namespace '{name}' already exists"))
        }
        StoreError::NotFound(name) => ApiError::NamespaceNotFound(name),
        StoreError::Invalid(errors) => ApiError::Validation(errors),
        other => ApiError::Internal(other.to_string()),
    }
}

/// A short, non-secret name for the admin key, for audit records.
fn actor(headers: &HeaderMap) -> String {
    presented_key(headers)
        .map(|k: ApiKeyHash| format!("key:{}", k.fingerprint()))
        .unwrap_or_else(|| "unknown".into())
}

async fn refresh(state: &AppState) {
    if let Err(e) = state.namespaces.refresh().await {
        tracing::warn!(error = %e, "namespace cache refresh after an admin change failed");
    }
    state
        .metrics
        .namespaces_cached
        .set(state.namespaces.snapshot().len() as i64);
}

/// Creates the topic or queue of a Kafka or SQS namespace when missing. A
/// failure is logged, not answered: the namespace is stored, writes answer
/// `FALSE` until the backend has it, and every worker retries the same step.
async fn provision(state: &AppState, ns: &wal_namespace::Namespace) {
    if let Err(e) = state.producers.provision(ns).await {
        tracing::error!(error = %e, "could not create the namespace's topic or queue; workers will retry");
    }
}

async fn spec_from(
    state: &AppState,
    req: Request,
) -> Result<(HeaderMap, wal_namespace::NamespaceSpec), ApiError> {
    let (parts, body) = req.into_parts();
    authorize_admin(&state.keys, &state.namespaces, &parts.headers)?;
    require_json(&parts.headers)?;
    let bytes = read_body(state, body).await?;
    let spec = parse_spec(&bytes).map_err(ApiError::Validation)?;
    Ok((parts.headers, spec))
}

/// Create a namespace.
#[utoipa::path(post, path = "/api/v1/namespaces", tag = "namespaces",
    request_body(content = Object, description = "Namespace configuration (SPEC §4)"),
    params(("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 201, description = "Created"), (status = 400, description = "VALIDATION_FAILED"),
               (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN"),
               (status = 409, description = "CONFLICT: already exists")))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (headers, spec) = spec_from(&state, req).await?;
    let ns = state
        .namespaces
        .store()
        .create(spec, &actor(&headers))
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns.name, actor = %actor(&headers), "namespace created");
    provision(&state, &ns).await;
    refresh(&state).await;
    Ok((StatusCode::CREATED, Json(ns.view())).into_response())
}

/// Validate a namespace configuration without saving it.
#[utoipa::path(post, path = "/api/v1/namespaces/validate", tag = "namespaces",
    request_body(content = Object, description = "Namespace configuration (SPEC §4)"),
    responses((status = 200, description = "Valid"), (status = 400, description = "VALIDATION_FAILED with every field error")))]
pub async fn validate(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (_, spec) = spec_from(&state, req).await?;
    let ns = spec.validate(None).map_err(ApiError::Validation)?;
    Ok(Json(json!({ "valid": true, "namespace": ns.view() })).into_response())
}

/// List namespaces.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    params(("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "All namespaces (API keys never returned)")))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_admin(&state.keys, &state.namespaces, &headers)?;
    let all = state.namespaces.store().list().await.map_err(store_error)?;
    let views: Vec<_> = all.iter().map(|n| n.view()).collect();
    Ok(Json(json!({ "namespaces": views })).into_response())
}

/// Read one namespace.
#[utoipa::path(get, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "The namespace"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_admin(&state.keys, &state.namespaces, &headers)?;
    let ns = state
        .namespaces
        .store()
        .get(&name)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::NamespaceNotFound(name))?;
    Ok(Json(ns.view()).into_response())
}

/// Replace a namespace's whole configuration: a field left out takes its
/// default (use `PATCH` to change some fields only); an absent
/// `accessControl.allowedApiKeys` keeps the stored keys.
#[utoipa::path(put, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    request_body(content = Object, description = "Namespace configuration (SPEC §4)"),
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "Updated"), (status = 400, description = "VALIDATION_FAILED"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (headers, spec) = spec_from(&state, req).await?;
    let ns = state
        .namespaces
        .store()
        .update(&name, spec, &actor(&headers))
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns.name, version = ns.version, "namespace updated");
    provision(&state, &ns).await;
    refresh(&state).await;
    Ok(Json(ns.view()).into_response())
}

/// Change part of a namespace's configuration: a JSON Merge Patch (RFC 7396)
/// of its configuration — named members replace (objects merge), `null`
/// removes (the default applies), the rest is kept. The result is validated
/// as a whole, like a `PUT` of it.
#[utoipa::path(patch, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    request_body(content = Object, content_type = "application/merge-patch+json", description = "Merge patch of the namespace configuration"),
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "Updated"), (status = 400, description = "VALIDATION_FAILED"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    authorize_admin(&state.keys, &state.namespaces, &parts.headers)?;
    require_json(&parts.headers)?;
    let bytes = read_body(&state, body).await?;
    let patch: serde_json::Value = crate::ingest::parse_json(&bytes)?;
    let ns = state
        .namespaces
        .store()
        .patch(&name, &patch, &actor(&parts.headers))
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns.name, version = ns.version, "namespace patched");
    provision(&state, &ns).await;
    refresh(&state).await;
    Ok(Json(ns.view()).into_response())
}

async fn set_enabled(
    state: Arc<AppState>,
    name: String,
    headers: HeaderMap,
    enabled: bool,
) -> Result<Response, ApiError> {
    authorize_admin(&state.keys, &state.namespaces, &headers)?;
    let ns = state
        .namespaces
        .store()
        .set_enabled(&name, enabled, &actor(&headers))
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns.name, enabled, "namespace enabled flag changed");
    refresh(&state).await;
    Ok(Json(ns.view()).into_response())
}

/// Enable a namespace.
#[utoipa::path(post, path = "/api/v1/namespaces/{name}/enable", tag = "namespaces",
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "Enabled"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn enable(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_enabled(state, name, headers, true).await
}

/// Disable a namespace (writes answer 409 NAMESPACE_DISABLED).
#[utoipa::path(post, path = "/api/v1/namespaces/{name}/disable", tag = "namespaces",
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 200, description = "Disabled"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn disable(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_enabled(state, name, headers, false).await
}

/// Delete a namespace (its log data in Redis is left for the worker to drain).
#[utoipa::path(delete, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path), ("X-API-Key" = String, Header, description = "Admin API key")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "NAMESPACE_NOT_FOUND")))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_admin(&state.keys, &state.namespaces, &headers)?;
    state
        .namespaces
        .store()
        .delete(&name, &actor(&headers))
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %name, "namespace deleted");
    refresh(&state).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
