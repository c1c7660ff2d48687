//! Stable error codes of the API (SPEC §2, "Errors") and the one table that
//! maps each to its HTTP status. The match is exhaustive on purpose: a new
//! code cannot be added without deciding its status.

use serde::{Deserialize, Serialize};

/// Every error code the API can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid (details name field and reason).
    ValidationFailed,
    /// The API key is missing or unknown.
    Unauthorized,
    /// The key may not use this namespace, or the client IP is not allowed.
    Forbidden,
    /// The namespace does not exist.
    NamespaceNotFound,
    /// The namespace exists but is disabled.
    NamespaceDisabled,
    /// The resource (message, DLQ entry, route) does not exist.
    NotFound,
    /// The resource already exists (e.g. creating a namespace twice).
    Conflict,
    /// The payload is larger than the namespace allows.
    MessageSizeLimitExceeded,
    /// The request body is not `application/json`.
    UnsupportedMediaType,
    /// Too many requests for this namespace; see `Retry-After`.
    RateLimited,
    /// One request costs more messages than the namespace's rate limit ever
    /// admits at once: waiting does not help, splitting does.
    BatchExceedsRateLimit,
    /// The `Idempotency-Key` was first used with another request; nothing
    /// was recorded (IETF `Idempotency-Key` draft).
    IdempotencyKeyReused,
    /// The backend is unreachable; nothing was recorded.
    ProducerUnavailable,
    /// The gateway is handling as many requests as it may; retry after `Retry-After`.
    ServiceOverloaded,
    /// The client took too long to send its request.
    RequestTimeout,
    /// An unexpected failure; no internals are returned.
    InternalServerError,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::ValidationFailed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NamespaceNotFound | ErrorCode::NotFound => 404,
            ErrorCode::NamespaceDisabled | ErrorCode::Conflict => 409,
            ErrorCode::MessageSizeLimitExceeded => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::BatchExceedsRateLimit | ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::InternalServerError => 500,
            ErrorCode::ProducerUnavailable | ErrorCode::ServiceOverloaded => 503,
            ErrorCode::RequestTimeout => 408,
        }
    }

    /// The code as it appears on the wire, e.g. `"NAMESPACE_NOT_FOUND"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NamespaceNotFound => "NAMESPACE_NOT_FOUND",
            ErrorCode::NamespaceDisabled => "NAMESPACE_DISABLED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::MessageSizeLimitExceeded => "MESSAGE_SIZE_LIMIT_EXCEEDED",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::BatchExceedsRateLimit => "BATCH_EXCEEDS_RATE_LIMIT",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::ProducerUnavailable => "PRODUCER_UNAVAILABLE",
            ErrorCode::ServiceOverloaded => "SERVICE_OVERLOADED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_name_matches_serde() {
        for code in [
            ErrorCode::ValidationFailed,
            ErrorCode::MessageSizeLimitExceeded,
            ErrorCode::ProducerUnavailable,
            ErrorCode::NamespaceNotFound,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
