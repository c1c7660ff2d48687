//! Errors of the namespace store.
//!
//! Database errors are reduced to a message; connection strings and
//! credentials are scrubbed from it (see [`redact`]), so a [`StoreError`] can
//! be logged or returned as-is.

use wal_core::validate::FieldErrors;

/// What can go wrong reading or changing namespaces.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A namespace with this name already exists.
    #[error("namespace already exists: {0}")]
    AlreadyExists(String),
    /// No namespace with this name.
    #[error("namespace not found: {0}")]
    NotFound(String),
    /// The configuration is invalid; one entry per invalid field.
    #[error("invalid namespace configuration: {0}")]
    Invalid(FieldErrors),
    /// The database failed or could not be reached (message without credentials).
    #[error("namespace store database error: {0}")]
    Database(String),
}

impl From<FieldErrors> for StoreError {
    fn from(e: FieldErrors) -> Self {
        StoreError::Invalid(e)
    }
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        StoreError::Database(redact(&e.to_string(), None))
    }
}

/// Removes credentials from a database error message: the whole connection
/// URL when known, and the user-info part (`user:password@`) of anything that
/// looks like a URL.
pub fn redact(message: &str, url: Option<&str>) -> String {
    let mut out = match url {
        Some(u) if !u.is_empty() => message.replace(u, "<database url>"),
        _ => message.to_string(),
    };
    let mut search_from = 0;
    while let Some(pos) = out[search_from..].find("://") {
        let start = search_from + pos + 3;
        let rest = &out[start..];
        let end_of_authority = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end_of_authority].rfind('@') {
            out.replace_range(start..start + at + 1, "***@");
            search_from = start + 4;
        } else {
            search_from = start;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        let url = "postgres://u:secret@db:5432/x";
        assert_eq!(
            redact(&format!("cannot connect to {url}: refused"), Some(url)),
            "cannot connect to <database url>: refused"
        );
        let got = redact(
            "error with postgres://admin:hunter2@h/db and http://h/x",
            None,
        );
        assert_eq!(got, "error with postgres://***@h/db and http://h/x");
        assert!(!got.contains("hunter2"));
    }
}
