//! What a PostgreSQL error means for the message.
//!
//! Retry: no connection (pool or socket errors, no SQLSTATE), timeouts, and
//! SQLSTATE classes 08 (connection), 40 (rollback: serialization failure,
//! deadlock), 53 (insufficient resources), 57 (operator intervention:
//! shutdown, query canceled by `statement_timeout`), 58 (system error), plus
//! 55P03 (lock not available) and 25006 (read-only transaction: a failover
//! in progress). Every other SQL error (22 data, 23 constraint, 42 syntax or
//! undefined object, 28 authentication, …) is permanent.

use deadpool_postgres::PoolError;

use crate::DeliveryOutcome;

/// Whether an error with SQLSTATE `code` may succeed when retried.
pub(crate) fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
        || matches!(code, "55P03" | "25006")
}

/// Classifies an error of `tokio_postgres`.
pub(crate) fn classify_pg(err: &tokio_postgres::Error) -> DeliveryOutcome {
    match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let reason = format!("SQLSTATE {code}: {}", db.message());
            if is_transient_sqlstate(code) {
                DeliveryOutcome::retry(reason)
            } else {
                DeliveryOutcome::permanent(reason)
            }
        }
        None => {
            let mut reason = format!("database unavailable: {err}");
            if let Some(src) = std::error::Error::source(err) {
                reason.push_str(&format!(": {src}"));
            }
            DeliveryOutcome::retry(reason)
        }
    }
}

/// Classifies a failure to get a connection from the pool.
pub(crate) fn classify_pool(err: &PoolError) -> DeliveryOutcome {
    match err {
        PoolError::Backend(e) => classify_pg(e),
        other => DeliveryOutcome::retry(format!("no database connection: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_table() {
        let transient = [
            "08000", "08006", "08001", "40001", "40P01", "53300", "53100", "57014", "57P01",
            "57P03", "58030", "55P03", "25006",
        ];
        for code in transient {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        let permanent = [
            "22P02", "22001", "23505", "23502", "23503", "42601", "42P01", "42703", "28P01",
            "3D000", "55000", "25001", "XX000", "",
        ];
        for code in permanent {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }
}
