//! Shared pieces of the read and operator endpoints: strict query-string
//! parsing (unknown or repeated parameters are `400`, like unknown JSON
//! fields), namespace resolution with the reader / admin checks in the
//! gateway's usual order (401 → 400 name → 404 → 403), and the DLQ filter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::request::Parts;
use wal_core::delivery::DlqReason;
use wal_core::validate::FieldErrors;
use wal_namespace::Namespace;
use wal_state::dlq::DlqFilter;

use crate::auth::{authenticate_reader, authorize_admin, client_ip, Reader};
use crate::error::ApiError;
use crate::state::AppState;

/// Current time, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The query string as name → value, refusing names not in `allowed` and
/// repeated names.
pub fn query_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let Query(pairs) =
        query.map_err(|e| ApiError::field("query", format!("invalid query string: {e}")))?;
    let mut out = BTreeMap::new();
    let mut errors = FieldErrors::default();
    for (name, value) in pairs {
        if !allowed.contains(&name.as_str()) {
            errors.push(
                name.clone(),
                format!(
                    "unknown query parameter (expected one of: {})",
                    allowed.join(", ")
                ),
            );
        } else {
            match out.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    errors.push(e.key().clone(), "given more than once");
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(out)
}

/// Parses an optional unsigned integer parameter.
pub fn number_param(
    params: &BTreeMap<String, String>,
    name: &str,
    errors: &mut FieldErrors,
) -> Option<u64> {
    let raw = params.get(name)?;
    match raw.trim().parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(name, "must be a non-negative integer");
            None
        }
    }
}

/// Checks a target identifier used as a filter (`[A-Za-z0-9._-]{1,100}`).
pub fn check_target(target: &str, field: &str, errors: &mut FieldErrors) {
    let ok = !target.is_empty()
        && target.len() <= 100
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        errors.push(field, "must match [A-Za-z0-9._-]{1,100}");
    }
}

/// Builds a DLQ filter from `reason`, `target`, `from`, `to` query parameters.
pub fn dlq_filter(params: &BTreeMap<String, String>, errors: &mut FieldErrors) -> DlqFilter {
    let reason = params
        .get("reason")
        .and_then(|r| match r.parse::<DlqReason>() {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push("reason", e.to_string());
                None
            }
        });
    let target = params.get("target").cloned();
    if let Some(t) = &target {
        check_target(t, "target", errors);
    }
    let filter = DlqFilter {
        reason,
        target,
        from_ms: number_param(params, "from", errors),
        to_ms: number_param(params, "to", errors),
    };
    check_time_range(&filter, errors);
    filter
}

/// `from` must not be after `to`.
pub fn check_time_range(filter: &DlqFilter, errors: &mut FieldErrors) {
    if let (Some(from), Some(to)) = (filter.from_ms, filter.to_ms) {
        if from > to {
            errors.push("from", "must not be after `to`");
        }
    }
}

/// A namespace by name, or `400` (invalid name) / `404`.
pub fn namespace_named(state: &AppState, name: &str) -> Result<Arc<Namespace>, ApiError> {
    if !wal_core::validate::is_valid_namespace_name(name) {
        return Err(ApiError::field(
            "namespace",
            "must match [a-z0-9][a-z0-9._-]{0,99}",
        ));
    }
    state
        .namespaces
        .get(name)
        .ok_or_else(|| ApiError::NamespaceNotFound(name.to_string()))
}

/// The caller of a read endpoint (`401` when the key is missing or unknown).
pub fn reader(state: &AppState, parts: &Parts) -> Result<Reader, ApiError> {
    let ip = client_ip(&parts.extensions, &parts.headers, &state.forwarded);
    authenticate_reader(&state.keys, &state.namespaces, &parts.headers, ip)
}

/// Namespace `name` for a read endpoint: 401 → 400 → 404 → 403.
pub fn readable_namespace(
    state: &AppState,
    parts: &Parts,
    name: &str,
) -> Result<Arc<Namespace>, ApiError> {
    let reader = reader(state, parts)?;
    let ns = namespace_named(state, name)?;
    reader.authorize(&state.keys, &ns)?;
    Ok(ns)
}

/// Namespace `name` for an admin operation: 401/403 (admin key) → 400 → 404.
pub fn operated_namespace(
    state: &AppState,
    parts: &Parts,
    name: &str,
) -> Result<Arc<Namespace>, ApiError> {
    authorize_admin(&state.keys, &state.namespaces, &parts.headers)?;
    namespace_named(state, name)
}
