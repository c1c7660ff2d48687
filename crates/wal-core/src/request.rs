//! The write API's request model (SPEC §2). camelCase on the wire; unknown
//! fields are rejected so that a typo (`partitonKey`) is an error, not a
//! silently ignored option.
//!
//! Validation here needs no namespace; checks that do (target names, size
//! limit, maximum delay) take the namespace's values as arguments.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::retry::RetryPolicyOverride;
use crate::validate::{is_valid_identifier, is_valid_namespace_name, FieldErrors};

/// Largest `partitionKey`, in bytes.
pub const MAX_PARTITION_KEY_LEN: usize = 256;
/// Most tags per message.
pub const MAX_TAGS: usize = 32;
/// Largest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;
/// Most metadata entries per message.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Largest `priority`.
pub const MAX_PRIORITY: u8 = 10;
/// Largest `lifecycle.jitterMs`: one hour.
pub const MAX_WRITE_JITTER_MS: u64 = 3_600_000;
/// Largest `lifecycle.ttl`: 30 days.
pub const MAX_TTL_SECONDS: u64 = 30 * 86_400;
/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `POST /api/v1/wal/write` body.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteRequest {
    /// Namespace name; trimmed and lower-cased before use.
    pub namespace: String,
    /// The message: any JSON object, kept byte for byte as sent.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// One target or several, each naming a target of the namespace; absent
    /// means every enabled target of the namespace.
    #[serde(default)]
    #[schema(value_type = Option<Vec<TargetRef>>)]
    pub target: Option<TargetSelector>,
    /// Delay, TTL, retry and DLQ options.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Routing and ordering key: the same key always lands in the same partition.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Free-form metadata carried with the message.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// Priority hint, 0 to 10.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Labels carried with the message.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /api/v1/wal/write/batch` body. The messages borrow from the
/// request body: each is parsed once, when its turn comes.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchWriteRequest<'a> {
    /// The writes, answered in the same order.
    #[serde(borrow)]
    #[schema(value_type = Vec<WriteRequest>)]
    pub messages: Vec<&'a RawValue>,
}

/// A request's reference to one of the namespace's targets, with the few
/// fields a request may override. A request can never name a host, database
/// or port of its own: that is what keeps the service from being an SSRF relay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// Identifier of a target defined on the namespace.
    pub identifier: String,
    /// HTTP targets: appended to the configured URL's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_suffix: Option<String>,
    /// HTTP targets: extra headers, only those the target's `allowedOverrideHeaders` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Cache targets: replaces the configured key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

impl TargetRef {
    /// A reference to `identifier` with no overrides.
    pub fn named(identifier: impl Into<String>) -> Self {
        Self {
            identifier: identifier.into(),
            path_suffix: None,
            headers: None,
            key_prefix: None,
        }
    }
}

/// `target`: one object or an array of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TargetSelector {
    /// A single target.
    One(TargetRef),
    /// Several targets.
    Many(Vec<TargetRef>),
}

impl TargetSelector {
    /// The referenced targets as a slice.
    pub fn as_slice(&self) -> &[TargetRef] {
        match self {
            TargetSelector::One(t) => std::slice::from_ref(t),
            TargetSelector::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for TargetSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SelectorVisitor;
        impl<'de> Visitor<'de> for SelectorVisitor {
            type Value = TargetSelector;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target object or an array of target objects")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                TargetRef::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(TargetSelector::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<TargetRef>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(TargetSelector::Many)
            }
        }
        d.deserialize_any(SelectorVisitor)
    }
}

/// Unit of `lifecycle.delay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DelayUnit {
    /// Seconds (the default).
    #[default]
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days.
    Days,
}

impl DelayUnit {
    /// Seconds in one unit.
    pub fn seconds(self) -> u64 {
        match self {
            DelayUnit::Seconds => 1,
            DelayUnit::Minutes => 60,
            DelayUnit::Hours => 3_600,
            DelayUnit::Days => 86_400,
        }
    }
}

/// `lifecycle`: when and how a message is delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lifecycle {
    /// Delay before the first delivery, in `delayUnit`s.
    #[serde(default)]
    pub delay: Option<u64>,
    /// Unit of `delay` (default seconds).
    #[serde(default)]
    pub delay_unit: Option<DelayUnit>,
    /// Uniform random extra delay in `[0, jitterMs]`.
    #[serde(default)]
    pub jitter_ms: Option<u64>,
    /// Seconds after which an undelivered message is dead-lettered as `expired`.
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Overrides of the namespace's retry policy.
    #[serde(default)]
    pub retry_policy: Option<RetryPolicyOverride>,
    /// Whether exhausted or permanently failed deliveries go to the DLQ
    /// (default: the namespace's `dlqConfig.enabled`).
    #[serde(default, rename = "enableDLQ")]
    pub enable_dlq: Option<bool>,
}

impl Lifecycle {
    /// The requested delay (without jitter).
    pub fn delay(&self) -> Duration {
        let unit = self.delay_unit.unwrap_or_default().seconds();
        Duration::from_secs(self.delay.unwrap_or(0).saturating_mul(unit))
    }
}

/// The namespace values that bound a write.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    /// Longest accepted delay.
    pub max_delay: Duration,
}

impl WriteRequest {
    /// The namespace name as used for lookup: trimmed and lower-cased.
    pub fn normalized_namespace(&self) -> String {
        self.namespace.trim().to_ascii_lowercase()
    }

    /// Every namespace-independent check of the request, plus the delay bound
    /// of `limits`. Errors name the field path.
    pub fn validate(&self, limits: WriteLimits) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if !is_valid_namespace_name(&self.normalized_namespace()) {
            errors.push("namespace", "must match [a-z0-9][a-z0-9._-]{0,99}");
        }
        if !self.payload.get().trim_start().starts_with('{') {
            errors.push("payload", "must be a JSON object");
        }
        if let Some(sel) = &self.target {
            validate_targets(sel, &mut errors);
        }
        if let Some(lc) = &self.lifecycle {
            validate_lifecycle(lc, limits, &mut errors);
        }
        if let Some(key) = &self.partition_key {
            if key.is_empty() || key.len() > MAX_PARTITION_KEY_LEN {
                errors.push(
                    "partitionKey",
                    format!("must be 1 to {MAX_PARTITION_KEY_LEN} bytes"),
                );
            }
        }
        if let Some(meta) = &self.metadata {
            if meta.len() > MAX_METADATA_ENTRIES {
                errors.push(
                    "metadata",
                    format!("at most {MAX_METADATA_ENTRIES} entries"),
                );
            }
        }
        if matches!(self.priority, Some(p) if p > MAX_PRIORITY) {
            errors.push("priority", format!("must be between 0 and {MAX_PRIORITY}"));
        }
        if self.tags.len() > MAX_TAGS {
            errors.push("tags", format!("at most {MAX_TAGS} tags"));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.len() > MAX_TAG_LEN {
                errors.push(
                    format!("tags[{i}]"),
                    format!("must be 1 to {MAX_TAG_LEN} bytes"),
                );
            }
        }
        errors.into_result()
    }
}

fn validate_targets(sel: &TargetSelector, errors: &mut FieldErrors) {
    let targets = sel.as_slice();
    if targets.is_empty() {
        errors.push(
            "target",
            "must name at least one target (omit it for all targets)",
        );
    }
    let path = |i: usize, f: &str| match sel {
        TargetSelector::One(_) => format!("target.{f}"),
        TargetSelector::Many(_) => format!("target[{i}].{f}"),
    };
    for (i, t) in targets.iter().enumerate() {
        if !is_valid_identifier(&t.identifier) {
            errors.push(path(i, "identifier"), "must be 1 to 100 of [A-Za-z0-9._-]");
        } else if targets[..i].iter().any(|o| o.identifier == t.identifier) {
            errors.push(path(i, "identifier"), "names the same target twice");
        }
        if let Some(suffix) = &t.path_suffix {
            let ok = suffix.starts_with('/')
                && suffix.len() <= 512
                && !suffix.contains("..")
                && !suffix.contains("//")
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\')
                && !suffix.split('/').any(is_dot_segment);
            if !ok {
                errors.push(
                    path(i, "pathSuffix"),
                    "must start with '/', be at most 512 printable ASCII characters, without '..', '//', '#', '\\' or dot segments (also percent-encoded: %2e)",
                );
            }
        }
        if let Some(headers) = &t.headers {
            for (name, value) in headers {
                let name_ok = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !name_ok {
                    errors.push(
                        path(i, &format!("headers.{name}")),
                        "not a valid header name",
                    );
                } else if value.len() > 1024
                    || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
                {
                    errors.push(
                        path(i, &format!("headers.{name}")),
                        "value must be at most 1024 bytes without line breaks",
                    );
                }
            }
        }
        if let Some(prefix) = &t.key_prefix {
            if prefix.is_empty()
                || prefix.len() > 256
                || prefix.bytes().any(|b| b.is_ascii_whitespace())
            {
                errors.push(
                    path(i, "keyPrefix"),
                    "must be 1 to 256 bytes without whitespace",
                );
            }
        }
    }
}

fn validate_lifecycle(lc: &Lifecycle, limits: WriteLimits, errors: &mut FieldErrors) {
    let delay = lc.delay();
    if delay > limits.max_delay {
        errors.push(
            "lifecycle.delay",
            format!(
                "must be at most {} seconds for this namespace",
                limits.max_delay.as_secs()
            ),
        );
    }
    if lc.delay_unit.is_some() && lc.delay.is_none() {
        errors.push("lifecycle.delayUnit", "given without lifecycle.delay");
    }
    if matches!(lc.jitter_ms, Some(j) if j > MAX_WRITE_JITTER_MS) {
        errors.push(
            "lifecycle.jitterMs",
            format!("must be at most {MAX_WRITE_JITTER_MS}"),
        );
    }
    if let Some(ttl) = lc.ttl {
        if ttl == 0 || ttl > MAX_TTL_SECONDS {
            errors.push(
                "lifecycle.ttl",
                format!("must be between 1 and {MAX_TTL_SECONDS} seconds"),
            );
        } else if Duration::from_secs(ttl) <= delay {
            errors.push(
                "lifecycle.ttl",
                "must be longer than the delay, or the message expires before it is due",
            );
        }
    }
}

/// Checks an `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        );
    }
    errors.into_result()
}

/// Whether a path segment is `.` or `..`, also percent-encoded (`%2e`,
/// `.%2E`, …): URL parsers resolve those, so they could climb out of a base path.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WriteLimits = WriteLimits {
        max_delay: Duration::from_secs(7 * 86_400),
    };

    fn parse(json: &str) -> Result<WriteRequest, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn fields(r: Result<(), FieldErrors>) -> Vec<String> {
        r.err()
            .map(|e| e.errors().iter().map(|e| e.field.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn spec_example_parses_and_validates() {
        let req = parse(
            r#"{"namespace":" User-Cache-Replication ","payload":{"operation":"SET","key":"user:123"},
            "target":{"identifier":"user-cache-primary"},
            "lifecycle":{"delay":300,"delayUnit":"seconds","jitterMs":500,"ttl":86400,
              "retryPolicy":{"maxAttempts":5,"backoffStrategy":"exponential","initialDelayMs":1000,"maxDelayMs":30000,"jitterMs":500},
              "enableDLQ":true},
            "partitionKey":"user:123","metadata":{"trace-id":"abc"},"priority":5,"tags":["cache-update"]}"#,
        )
        .unwrap();
        assert_eq!(req.normalized_namespace(), "user-cache-replication");
        assert_eq!(req.target.as_ref().unwrap().as_slice().len(), 1);
        req.validate(LIMITS).unwrap();
    }

    #[test]
    fn target_may_be_an_array() {
        let req = parse(
            r#"{"namespace":"a","payload":{},"target":[{"identifier":"x"},{"identifier":"y"}]}"#,
        )
        .unwrap();
        assert_eq!(req.target.unwrap().as_slice().len(), 2);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = parse(r#"{"namespace":"a","payload":{},"partitonKey":"k"}"#).unwrap_err();
        assert!(err.contains("partitonKey"), "{err}");
        let err = parse(
            r#"{"namespace":"a","payload":{},"target":{"identifier":"x","url":"http://evil"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn invalid_fields_are_named() {
        let req = parse(
            r#"{"namespace":"-bad","payload":[1],"target":[],"partitionKey":"","priority":11,
                "lifecycle":{"delay":8,"delayUnit":"days","ttl":0},"tags":[""]}"#,
        )
        .unwrap();
        let got = fields(req.validate(LIMITS));
        for f in [
            "namespace",
            "payload",
            "target",
            "partitionKey",
            "priority",
            "lifecycle.delay",
            "lifecycle.ttl",
            "tags[0]",
        ] {
            assert!(got.iter().any(|g| g == f), "missing {f} in {got:?}");
        }
    }

    #[test]
    fn target_overrides_are_checked() {
        let req = parse(
            r#"{"namespace":"a","payload":{},"target":[{"identifier":"x","pathSuffix":"/../etc"},
                {"identifier":"x"},{"identifier":"y","headers":{"X-Ok":"a\nb"}}]}"#,
        )
        .unwrap();
        let got = fields(req.validate(LIMITS));
        assert!(got.contains(&"target[0].pathSuffix".to_string()), "{got:?}");
        assert!(got.contains(&"target[1].identifier".to_string()), "{got:?}");
        for escape in ["/%2e%2e/etc", "/a/%2E./b", "/.%2e", "/a/%2e/b"] {
            let req = parse(&format!(
                r#"{{"namespace":"a","payload":{{}},"target":{{"identifier":"x","pathSuffix":"{escape}"}}}}"#
            ))
            .unwrap();
            let got = fields(req.validate(LIMITS));
            assert!(
                got.contains(&"target.pathSuffix".to_string()),
                "{escape}: {got:?}"
            );
        }
        assert!(
            got.contains(&"target[2].headers.X-Ok".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn ttl_must_outlive_delay() {
        let req = parse(r#"{"namespace":"a","payload":{},"lifecycle":{"delay":2,"delayUnit":"minutes","ttl":60}}"#).unwrap();
        assert_eq!(fields(req.validate(LIMITS)), vec!["lifecycle.ttl"]);
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("order-123").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("a b").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }
}
