//! `ApiError`: every failure a handler can answer with, mapped exhaustively
//! to the SPEC's error envelope. `Display` never carries internals; the cause
//! is logged, not returned.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use wal_core::validate::FieldErrors;
use wal_core::{Durability, ErrorCode};

/// An API error, before the request's metadata is attached.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// Invalid fields or malformed JSON.
    #[error("request validation failed")]
    Validation(FieldErrors),
    /// Missing or unknown API key.
    #[error("missing or unknown API key")]
    Unauthorized,
    /// The key or client IP may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such namespace.
    #[error("Namespace '{0}' not found")]
    NamespaceNotFound(String),
    /// Namespace disabled.
    #[error("Namespace '{0}' is disabled")]
    NamespaceDisabled(String),
    /// Some other resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// The payload or body is too large.
    #[error("Message exceeds the size limit of {max} bytes")]
    TooLarge {
        /// Size of what was sent, when known.
        actual: Option<usize>,
        /// The limit.
        max: usize,
    },
    /// Body is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// Rate limit hit.
    #[error("Rate limit exceeded for namespace '{namespace}'")]
    RateLimited {
        /// The namespace.
        namespace: String,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// The request costs more than the rate limit ever admits at once.
    #[error("This request writes {cost} messages; namespace '{namespace}' admits at most {burst} at once: split it")]
    ExceedsRateLimit {
        /// The namespace.
        namespace: String,
        /// Messages in the request.
        cost: u32,
        /// The most the limit admits at once.
        burst: u32,
    },
    /// The `Idempotency-Key` came with another request the first time.
    #[error("Idempotency-Key was first used with a different request (message {original}); nothing was recorded")]
    KeyReused {
        /// The first write's message id.
        original: String,
    },
    /// The backend did not record the message (or may not have).
    #[error("The log backend is unavailable; the message was not recorded")]
    ProducerUnavailable {
        /// FALSE or UNKNOWN.
        durability: Durability,
    },
    /// Redis (holding status and DLQ data) cannot be reached for a read or
    /// an operator action. Answered as `PRODUCER_UNAVAILABLE` (503), without
    /// a `durable` field since nothing was being written.
    #[error("The log backend is unavailable; try again later")]
    BackendUnavailable(String),
    /// Too many requests in progress on this gateway.
    #[error("The gateway is busy; retry shortly")]
    Overloaded,
    /// The client did not send its request in time.
    #[error("The request body did not arrive in time")]
    RequestTimeout,
    /// Anything unexpected; the cause is logged only.
    #[error("An unexpected error occurred")]
    Internal(String),
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NamespaceNotFound(_) => ErrorCode::NamespaceNotFound,
            ApiError::NamespaceDisabled(_) => ErrorCode::NamespaceDisabled,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::TooLarge { .. } => ErrorCode::MessageSizeLimitExceeded,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::ExceedsRateLimit { .. } => ErrorCode::BatchExceedsRateLimit,
            ApiError::KeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            ApiError::ProducerUnavailable { .. } | ApiError::BackendUnavailable(_) => {
                ErrorCode::ProducerUnavailable
            }
            ApiError::Overloaded => ErrorCode::ServiceOverloaded,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// A single-field validation error.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut e = FieldErrors::default();
        e.push(field, reason);
        ApiError::Validation(e)
    }

    /// The `details` object of the envelope.
    fn details(&self) -> Value {
        match self {
            ApiError::Validation(errors) => {
                let first = errors.errors().first();
                json!({
                    "field": first.map(|e| e.field.as_str()),
                    "reason": first.map(|e| e.reason.as_str()),
                    "errors": errors,
                })
            }
            ApiError::KeyReused { original } => json!({ "originalMessageId": original }),
            ApiError::NamespaceNotFound(ns) | ApiError::NamespaceDisabled(ns) => {
                json!({ "namespace": ns })
            }
            ApiError::TooLarge { actual, max } => json!({ "actualSize": actual, "maxSize": max }),
            ApiError::RateLimited {
                namespace,
                retry_after_secs,
            } => {
                json!({ "namespace": namespace, "retryAfterSeconds": retry_after_secs })
            }
            ApiError::ExceedsRateLimit {
                namespace,
                cost,
                burst,
            } => json!({ "namespace": namespace, "cost": cost, "burst": burst }),
            ApiError::ProducerUnavailable { durability } => json!({ "durable": durability }),
            _ => json!({}),
        }
    }

    /// The `error` object of the envelope (also used inside batch results).
    pub fn error_body(&self) -> Value {
        let message = match self {
            ApiError::Validation(errors) => format!("Validation failed: {errors}"),
            other => other.to_string(),
        };
        json!({ "code": self.code(), "message": message, "details": self.details() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::BackendUnavailable(cause) => tracing::warn!(%cause, "backend unavailable"),
            _ => {}
        }
        let status = StatusCode::from_u16(self.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({ "success": false, "error": self.error_body() });
        if let ApiError::ProducerUnavailable { durability } = &self {
            body["durable"] = json!(durability);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Overloaded => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        // The envelope's `metadata` is added by the request-context middleware,
        // which knows the request id, path and method.
        resp.extensions_mut().insert(ErrorMarker);
        resp
    }
}

/// Marks a response body as an error envelope that still needs its `metadata`.
#[derive(Clone, Copy, Debug)]
pub struct ErrorMarker;

impl From<wal_core::backend::BackendError> for ApiError {
    fn from(e: wal_core::backend::BackendError) -> Self {
        match e {
            wal_core::backend::BackendError::Unavailable(cause) => {
                ApiError::BackendUnavailable(cause)
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The same error with validation field paths prefixed by `messages[i].`
    /// (for batch items).
    pub fn prefixed(self, index: usize) -> Self {
        match self {
            ApiError::Validation(errors) => {
                let mut out = FieldErrors::default();
                for e in errors.errors() {
                    out.push(format!("messages[{index}].{}", e.field), e.reason.clone());
                }
                ApiError::Validation(out)
            }
            other => other,
        }
    }
}
