//! What an HTTP answer or transport error means for the message.
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx | delivered |
//! | 408, 5xx | retry (503 honours `Retry-After`) |
//! | 429 | retry after `Retry-After` (seconds or HTTP date, at most [`MAX_RETRY_AFTER`]) |
//! | 1xx, 3xx, other 4xx | permanent (redirects are never followed) |
//! | timeout, connection error, broken body | retry |
//! | request that cannot be built | permanent |

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use crate::DeliveryOutcome;

/// Longest wait taken from a `Retry-After` header: one hour.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Most bytes of a response body quoted in a failure reason.
pub(crate) const EXCERPT_LEN: usize = 256;

/// Classifies a response status. `retry_after` is the parsed `Retry-After`
/// header, `excerpt` the start of the body.
pub(crate) fn classify_status(
    status: u16,
    retry_after: Option<Duration>,
    excerpt: &str,
) -> DeliveryOutcome {
    if (200..300).contains(&status) {
        return DeliveryOutcome::Delivered;
    }
    let reason = status_reason(status, excerpt);
    match status {
        429 | 503 => DeliveryOutcome::Retry {
            after: retry_after,
            reason: crate::truncate_reason(reason),
        },
        408 | 500..=599 => DeliveryOutcome::retry(reason),
        300..=399 => DeliveryOutcome::permanent(format!("{reason} (redirects are not followed)")),
        _ => DeliveryOutcome::permanent(reason),
    }
}

fn status_reason(status: u16, excerpt: &str) -> String {
    let text = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut reason = format!("HTTP {status} {text}").trim_end().to_string();
    let excerpt = excerpt.trim();
    if !excerpt.is_empty() {
        reason.push_str(": ");
        reason.push_str(excerpt);
    }
    reason
}

/// Parses a `Retry-After` value, delta-seconds or an HTTP date (relative to
/// `now`; a past date is zero), capped at [`MAX_RETRY_AFTER`]. `None` when
/// it is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The first [`EXCERPT_LEN`] bytes of a body as text (lossy UTF-8).
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_LEN)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Classifies a transport error of an attempt limited to `timeout`.
pub(crate) fn classify_error(err: &reqwest::Error, timeout: Duration) -> DeliveryOutcome {
    if err.is_builder() {
        return DeliveryOutcome::permanent(format!("invalid request: {}", describe(err)));
    }
    if err.is_timeout() {
        return DeliveryOutcome::retry(format!("timed out after {} ms", timeout.as_millis()));
    }
    if err.is_connect() {
        return DeliveryOutcome::retry(format!("connection failed: {}", describe(err)));
    }
    DeliveryOutcome::retry(format!("request failed: {}", describe(err)))
}

/// The error and its causes, `: `-separated, without the URL.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(i) = text.find(" for url (") {
        text.truncate(i);
    }
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(o: &DeliveryOutcome) -> Option<Duration> {
        match o {
            DeliveryOutcome::Retry { after, .. } => *after,
            _ => None,
        }
    }

    #[test]
    fn status_table() {
        let cases: &[(u16, &str)] = &[
            (200, "delivered"),
            (201, "delivered"),
            (204, "delivered"),
            (299, "delivered"),
            (408, "retry"),
            (429, "retry"),
            (500, "retry"),
            (502, "retry"),
            (503, "retry"),
            (504, "retry"),
            (599, "retry"),
            (301, "permanent"),
            (304, "permanent"),
            (400, "permanent"),
            (401, "permanent"),
            (403, "permanent"),
            (404, "permanent"),
            (409, "permanent"),
            (410, "permanent"),
            (422, "permanent"),
            (100, "permanent"),
        ];
        for (status, want) in cases {
            assert_eq!(
                classify_status(*status, None, "").label(),
                *want,
                "{status}"
            );
        }
    }

    #[test]
    fn reasons_carry_status_and_excerpt() {
        let o = classify_status(404, None, " no such hook \n");
        assert_eq!(
            o,
            DeliveryOutcome::Permanent {
                reason: "HTTP 404 Not Found: no such hook".into()
            }
        );
        let o = classify_status(302, None, "");
        assert!(matches!(o, DeliveryOutcome::Permanent { reason } if reason.contains("redirect")));
    }

    #[test]
    fn retry_after_only_where_it_means_something() {
        let three = Some(Duration::from_secs(3));
        assert_eq!(after(&classify_status(429, three, "")), three);
        assert_eq!(after(&classify_status(503, three, "")), three);
        assert_eq!(after(&classify_status(500, three, "")), None);
        assert_eq!(after(&classify_status(429, None, "")), None);
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn excerpts_are_bounded() {
        let body = vec![b'a'; 1000];
        assert_eq!(excerpt(&body).len(), EXCERPT_LEN);
        assert_eq!(excerpt(b"short"), "short");
    }
}
