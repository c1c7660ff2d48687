//! The pieces of one HTTP delivery: URL, body and WAL headers.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;
use url::Url;
use wal_core::{Envelope, MessageId};
use wal_namespace::targets::BodyMode;

/// `base` with `suffix` (which starts with `/`, as the gateway checks)
/// appended to its path; the query string is kept. Refused when the final
/// path is not below the base path: the URL parser resolves dot segments,
/// also percent-encoded ones (`%2e%2e`), so a suffix could otherwise climb
/// out of the configured base.
pub(crate) fn target_url(base: &Url, suffix: Option<&str>) -> Result<Url, String> {
    let Some(suffix) = suffix.filter(|s| !s.is_empty()) else {
        return Ok(base.clone());
    };
    let mut url = base.clone();
    let base_path = base.path().trim_end_matches('/');
    url.set_path(&format!("{base_path}/{}", suffix.trim_start_matches('/')));
    let under = format!("{base_path}/");
    if url.path().starts_with(&under) {
        Ok(url)
    } else {
        Err(format!(
            "pathSuffix leads outside the target's base path {under} (resolved to {})",
            url.path()
        ))
    }
}

/// What `body: envelope` sends: the message and its context, without the
/// worker's bookkeeping (targets, lifecycle, history).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeBody<'a> {
    id: &'a MessageId,
    namespace: &'a str,
    target: &'a str,
    attempt: u32,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_key: Option<&'a str>,
    request_id: &'a str,
    created_at_ms: u64,
    due_at_ms: u64,
}

/// The request body for `mode`: the payload bytes as written, or the
/// envelope JSON.
pub(crate) fn body(mode: BodyMode, env: &Envelope, target: &str, attempt: u32) -> Vec<u8> {
    match mode {
        BodyMode::Payload => env.payload.get().as_bytes().to_vec(),
        BodyMode::Envelope => {
            let body = EnvelopeBody {
                id: &env.id,
                namespace: &env.namespace,
                target,
                attempt,
                payload: &env.payload,
                metadata: env.metadata.as_ref(),
                tags: &env.tags,
                priority: env.priority,
                partition_key: env.partition_key.as_deref(),
                request_id: &env.request_id,
                created_at_ms: env.created_at_ms,
                due_at_ms: env.due_at_ms,
            };
            serde_json::to_vec(&body).expect("strings, numbers and raw JSON always serialize")
        }
    }
}

/// Sets the headers every delivery carries: the message id (as
/// `Idempotency-Key` and `X-WAL-Message-Id`), `X-WAL-Attempt`,
/// `X-WAL-Namespace` and the trace context when it is a valid header value.
pub(crate) fn set_wal_headers(headers: &mut HeaderMap, env: &Envelope, id: &str, attempt: u32) {
    let id = HeaderValue::from_str(id).expect("a ULID is a valid header value");
    headers.insert(HeaderName::from_static("idempotency-key"), id.clone());
    headers.insert(HeaderName::from_static("x-wal-message-id"), id);
    headers.insert(
        HeaderName::from_static("x-wal-attempt"),
        HeaderValue::from(attempt),
    );
    if let Ok(ns) = HeaderValue::from_str(&env.namespace) {
        headers.insert(HeaderName::from_static("x-wal-namespace"), ns);
    }
    let trace = [
        ("traceparent", env.trace.traceparent.as_deref()),
        ("tracestate", env.trace.tracestate.as_deref()),
    ];
    for (name, value) in trace {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_path_suffixes() {
        let url = |base: &Url, suffix| target_url(base, suffix).unwrap().to_string();
        let base = Url::parse("http://h:1/hooks?x=1").unwrap();
        assert_eq!(url(&base, None), "http://h:1/hooks?x=1");
        assert_eq!(
            url(&base, Some("/orders/7")),
            "http://h:1/hooks/orders/7?x=1"
        );
        let slash = Url::parse("http://h/hooks/").unwrap();
        assert_eq!(url(&slash, Some("/a")), "http://h/hooks/a");
        let root = Url::parse("http://h").unwrap();
        assert_eq!(url(&root, Some("/a")), "http://h/a");
        assert_eq!(url(&root, Some("/a b?c")), "http://h/a%20b%3Fc");
    }

    #[test]
    fn a_suffix_cannot_climb_out_of_the_base_path() {
        let base = Url::parse("http://h/api/hooks/").unwrap();
        for escape in ["/%2e%2e/x", "/a/%2E%2E/%2e%2e/x", "/.%2e/x", "/.."] {
            assert!(target_url(&base, Some(escape)).is_err(), "{escape}");
        }
        assert!(
            target_url(&base, Some("/a/%2e%2e/b")).is_ok(),
            "stays below"
        );
    }
}
