//! The pieces of one HTTP delivery: URL, body and WAL headers.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;
use url::Url;
use wal_core::{Envelope, MessageId};
use wal_namespace::targets::BodyMode;

/// `base` with `suffix` (which starts with `/`, as the gateway checks)
/// appended to its path; the query string is kept.
pub(crate) fn target_url(base: &Url, suffix: Option<&str>) -> Url {
    let Some(suffix) = suffix.filter(|s| !s.is_empty()) else {
        return base.clone();
    };
    let mut url = base.clone();
    let path = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        suffix.trim_start_matches('/')
    );
    url.set_path(&path);
    url
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
        let base = Url::parse("http://h:1/hooks?x=1").unwrap();
        assert_eq!(target_url(&base, None).as_str(), "http://h:1/hooks?x=1");
        assert_eq!(
            target_url(&base, Some("/orders/7")).as_str(),
            "http://h:1/hooks/orders/7?x=1"
        );
        let slash = Url::parse("http://h/hooks/").unwrap();
        assert_eq!(target_url(&slash, Some("/a")).as_str(), "http://h/hooks/a");
        let root = Url::parse("http://h").unwrap();
        assert_eq!(target_url(&root, Some("/a")).as_str(), "http://h/a");
        assert_eq!(
            target_url(&root, Some("/a b?c")).as_str(),
            "http://h/a%20b%3Fc"
        );
    }
}
