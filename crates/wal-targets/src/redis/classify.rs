//! What a Redis error means for the message.
//!
//! Retry: I/O, timeouts, cancelled commands, back-pressure, cluster and
//! routing errors, and server errors that say "later" (`LOADING`, `BUSY`,
//! `TRYAGAIN`, `MASTERDOWN`, `READONLY`, `OOM`, `CLUSTERDOWN`, …: any reply
//! not starting with `ERR`). Permanent: `WRONGTYPE`, other `ERR` replies,
//! authentication and configuration errors.

use fred::error::{Error, ErrorKind};

use crate::DeliveryOutcome;

/// Whether a Redis error may go away by itself.
pub(crate) fn is_transient(kind: &ErrorKind, details: &str) -> bool {
    match kind {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Cluster
        | ErrorKind::Routing
        | ErrorKind::Sentinel
        | ErrorKind::Protocol => true,
        ErrorKind::Unknown => !details.starts_with("ERR"),
        _ => false,
    }
}

/// Classifies a Redis error.
pub(crate) fn classify(err: &Error) -> DeliveryOutcome {
    let reason = format!("Redis: {}", err.details());
    if is_transient(err.kind(), err.details()) {
        DeliveryOutcome::retry(reason)
    } else {
        DeliveryOutcome::permanent(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_table() {
        let cases: &[(ErrorKind, &str, bool)] = &[
            (ErrorKind::IO, "connection refused", true),
            (ErrorKind::Timeout, "", true),
            (ErrorKind::Canceled, "", true),
            (ErrorKind::Backpressure, "", true),
            (ErrorKind::Cluster, "CLUSTERDOWN", true),
            (
                ErrorKind::Unknown,
                "LOADING Redis is loading the dataset",
                true,
            ),
            (
                ErrorKind::Unknown,
                "READONLY You can't write against a read only replica.",
                true,
            ),
            (ErrorKind::Unknown, "OOM command not allowed", true),
            (ErrorKind::Unknown, "ERR syntax error", false),
            (
                ErrorKind::InvalidArgument,
                "WRONGTYPE Operation against a key",
                false,
            ),
            (ErrorKind::InvalidCommand, "", false),
            (ErrorKind::Auth, "WRONGPASS", false),
            (ErrorKind::Config, "", false),
            (ErrorKind::Parse, "", false),
        ];
        for (kind, details, want) in cases {
            assert_eq!(is_transient(kind, details), *want, "{kind:?} {details}");
        }
        let e = Error::new(ErrorKind::InvalidArgument, "WRONGTYPE x");
        assert_eq!(classify(&e).label(), "permanent");
    }
}
