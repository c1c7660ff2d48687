//! Stream retention as `XADD` trimming arguments.

use wal_core::backend::Retention;

/// `("MAXLEN", "<n>")` or `("MINID", "<now - age>-0")`: the cap kind and
/// threshold of an approximate (`~`) trim for `retention` at `now_ms`.
pub fn trim_args(retention: Retention, now_ms: u64) -> (&'static str, String) {
    match retention {
        Retention::MaxLen(n) => ("MAXLEN", n.to_string()),
        Retention::MaxAge(age) => {
            let min = now_ms.saturating_sub(age.as_millis() as u64);
            ("MINID", format!("{min}-0"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn length_and_age_retention() {
        assert_eq!(
            trim_args(Retention::MaxLen(10), 5),
            ("MAXLEN", "10".to_string())
        );
        assert_eq!(
            trim_args(Retention::MaxAge(Duration::from_secs(1)), 5_000),
            ("MINID", "4000-0".to_string())
        );
        assert_eq!(
            trim_args(Retention::MaxAge(Duration::from_secs(10)), 5_000),
            ("MINID", "0-0".to_string())
        );
    }
}
