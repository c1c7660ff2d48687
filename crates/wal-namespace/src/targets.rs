//! Delivery targets of a namespace: the wire form ([`TargetConfigSpec`], whose
//! `config` is any JSON object) and the validated, typed form
//! ([`TargetConfig`] with a [`TargetKind`]).
//!
//! The `config` object is parsed according to `type` into a typed structure
//! that rejects unknown fields, so a typo or a forbidden field is an error with
//! its path (`targetConfigs[1].config.timeoutMs`). Secrets are never part of a
//! target configuration: a database DSN, a cache URL or a webhook signing
//! secret is referenced by the name of an environment variable (`…Env`) or of
//! a file (`…File`) that the worker reads; a literal `dsn`, `password` or
//! `url` on a database or cache target is an unknown field.
//!
//! Typed configurations serialise back to the same camelCase wire shape (for
//! the admin GET answer and for storage).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use wal_core::validate::{is_valid_identifier, FieldErrors};

use crate::secrets::SecretRef;

/// Most targets per namespace.
pub const MAX_TARGETS: usize = 64;
/// Largest `timeoutMs` of any target: five minutes.
pub const MAX_TARGET_TIMEOUT_MS: u64 = 300_000;
/// Largest `weight`.
pub const MAX_WEIGHT: u32 = 100;
/// Most tags per target.
pub const MAX_TARGET_TAGS: usize = 32;
/// Longest tag.
pub const MAX_TARGET_TAG_LEN: usize = 64;
/// Longest `region`.
pub const MAX_REGION_LEN: usize = 64;
/// Longest cache `keyPrefix`.
pub const MAX_KEY_PREFIX_LEN: usize = 256;
/// Longest database `statement`.
pub const MAX_STATEMENT_LEN: usize = 10_000;
/// Default `timeoutMs` of HTTP and webhook targets.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 5_000;
/// Default `timeoutMs` of database targets.
pub const DEFAULT_DATABASE_TIMEOUT_MS: u64 = 5_000;
/// Default `timeoutMs` of cache targets.
pub const DEFAULT_CACHE_TIMEOUT_MS: u64 = 2_000;
/// Default cache `keyField`.
pub const DEFAULT_CACHE_KEY_FIELD: &str = "key";

/// Headers a request may never override, whatever `allowedOverrideHeaders` says.
const FORBIDDEN_OVERRIDE_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

fn default_true() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `targetConfigs[].type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// An HTTP endpoint ([`HttpTargetConfig`]).
    Http,
    /// An HTTP endpoint whose requests are signed ([`HttpTargetConfig`] with a signing secret).
    Webhook,
    /// A PostgreSQL table or statement ([`DatabaseTargetConfig`]).
    Database,
    /// A Redis-compatible cache ([`CacheTargetConfig`]).
    Cache,
}

impl TargetType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Http => "http",
            TargetType::Webhook => "webhook",
            TargetType::Database => "database",
            TargetType::Cache => "cache",
        }
    }
}

/// One entry of `targetConfigs` as sent and stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetConfigSpec {
    /// Name of the target within the namespace (`[A-Za-z0-9._-]{1,100}`, unique).
    pub identifier: String,
    /// Kind of target; decides how `config` is read.
    #[serde(rename = "type")]
    pub kind: TargetType,
    /// Kind-specific settings (see [`HttpTargetConfig`], [`DatabaseTargetConfig`],
    /// [`CacheTargetConfig`]). Default: `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Region label, e.g. `eu-west-1` (informational, used for routing by tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Relative weight, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Whether messages are delivered to this target (default `true`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Free labels (at most 32, each 1 to 64 characters).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// HTTP method of an HTTP or webhook target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `POST` (the default).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl HttpMethod {
    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// What an HTTP or webhook target receives as the request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyMode {
    /// The message payload as written (the default).
    #[default]
    Payload,
    /// The whole envelope: id, namespace, payload, metadata, times.
    Envelope,
}

/// `config` of an `http` or `webhook` target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTargetConfig {
    /// Absolute `http` or `https` URL, without user info.
    pub url: String,
    /// Method (default `POST`).
    #[serde(default)]
    pub method: HttpMethod,
    /// Headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one delivery attempt, 1 to 300000 ms (default 5000).
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: u64,
    /// Header names a write request may set on its deliveries (case-insensitive;
    /// `Host`, `Content-Length`, `Transfer-Encoding`, `Connection`, `Upgrade` never).
    #[serde(default)]
    pub allowed_override_headers: Vec<String>,
    /// What is sent as the body (default `payload`).
    #[serde(default)]
    pub body: BodyMode,
    /// Environment variable holding the HMAC signing secret (webhooks: this or
    /// `signingSecretFile` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_env: Option<String>,
    /// File holding the HMAC signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<String>,
}

impl HttpTargetConfig {
    /// The signing secret reference, if any.
    pub fn signing_secret(&self) -> Option<SecretRef> {
        SecretRef::from_pair(&self.signing_secret_env, &self.signing_secret_file)
    }

    /// Whether a request may set header `name` (case-insensitive).
    pub fn allows_override_header(&self, name: &str) -> bool {
        self.allowed_override_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

fn default_http_timeout() -> u64 {
    DEFAULT_HTTP_TIMEOUT_MS
}

/// What a database target does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseOperation {
    /// `INSERT` the payload's fields into `table`.
    Insert,
    /// `INSERT … ON CONFLICT (key) DO UPDATE`.
    Upsert,
    /// `DELETE … WHERE key = payload.key`.
    Delete,
    /// Run `statement` with the payload's fields as named parameters.
    Statement,
}

/// `config` of a `database` target. The DSN is referenced, never given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseTargetConfig {
    /// Environment variable holding the DSN (exactly one of `dsnEnv`, `dsnFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn_env: Option<String>,
    /// File holding the DSN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn_file: Option<String>,
    /// Table, `[A-Za-z_][A-Za-z0-9_.]*` (required unless `operation` is `statement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// What to do (required).
    pub operation: DatabaseOperation,
    /// Key columns (required for `upsert` and `delete`).
    #[serde(default)]
    pub key: Vec<String>,
    /// SQL statement (required if and only if `operation` is `statement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Timeout of one delivery attempt, 1 to 300000 ms (default 5000).
    #[serde(default = "default_database_timeout")]
    pub timeout_ms: u64,
}

impl DatabaseTargetConfig {
    /// The DSN reference (always `Some` once validated).
    pub fn dsn(&self) -> Option<SecretRef> {
        SecretRef::from_pair(&self.dsn_env, &self.dsn_file)
    }
}

fn default_database_timeout() -> u64 {
    DEFAULT_DATABASE_TIMEOUT_MS
}

/// What a cache target does with a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheOperation {
    /// `SET key payload [EX ttl]` (the default).
    #[default]
    Set,
    /// `DEL key`.
    Del,
    /// `HSET key field value …` from the payload's top-level fields.
    Hset,
}

/// `config` of a `cache` target. The cache URL is referenced, never given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheTargetConfig {
    /// Environment variable holding the cache URL (exactly one of `urlEnv`, `urlFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// File holding the cache URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
    /// Prepended to every key (default empty, at most 256 characters).
    #[serde(default)]
    pub key_prefix: String,
    /// Expiry of written keys in seconds (none: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// What to do (default `set`).
    #[serde(default)]
    pub operation: CacheOperation,
    /// Payload field holding the key (absent: `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// Timeout of one delivery attempt, 1 to 300000 ms (default 2000).
    #[serde(default = "default_cache_timeout")]
    pub timeout_ms: u64,
}

impl CacheTargetConfig {
    /// The cache URL reference (always `Some` once validated).
    pub fn url(&self) -> Option<SecretRef> {
        SecretRef::from_pair(&self.url_env, &self.url_file)
    }

    /// The payload field holding the key: `keyField`, or `key`.
    pub fn key_field(&self) -> &str {
        self.key_field.as_deref().unwrap_or(DEFAULT_CACHE_KEY_FIELD)
    }
}

fn default_cache_timeout() -> u64 {
    DEFAULT_CACHE_TIMEOUT_MS
}

/// The typed configuration of a target, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `type: http`.
    Http(HttpTargetConfig),
    /// `type: webhook` (signed HTTP).
    Webhook(HttpTargetConfig),
    /// `type: database`.
    Database(DatabaseTargetConfig),
    /// `type: cache`.
    Cache(CacheTargetConfig),
}

impl TargetKind {
    /// The wire `type`.
    pub fn target_type(&self) -> TargetType {
        match self {
            TargetKind::Http(_) => TargetType::Http,
            TargetKind::Webhook(_) => TargetType::Webhook,
            TargetKind::Database(_) => TargetType::Database,
            TargetKind::Cache(_) => TargetType::Cache,
        }
    }

    /// The wire `config` object.
    pub fn config_json(&self) -> serde_json::Value {
        let v = match self {
            TargetKind::Http(c) | TargetKind::Webhook(c) => serde_json::to_value(c),
            TargetKind::Database(c) => serde_json::to_value(c),
            TargetKind::Cache(c) => serde_json::to_value(c),
        };
        // Plain structs of strings, numbers and maps with string keys: cannot fail.
        v.unwrap_or_else(|_| empty_object())
    }

    /// Timeout of one delivery attempt, in milliseconds.
    pub fn timeout_ms(&self) -> u64 {
        match self {
            TargetKind::Http(c) | TargetKind::Webhook(c) => c.timeout_ms,
            TargetKind::Database(c) => c.timeout_ms,
            TargetKind::Cache(c) => c.timeout_ms,
        }
    }
}

/// A validated target. Serialises to the wire shape of [`TargetConfigSpec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    /// Name of the target within the namespace.
    pub identifier: String,
    /// Kind and typed settings.
    pub kind: TargetKind,
    /// Region label.
    pub region: Option<String>,
    /// Relative weight, 0 to 100.
    pub weight: Option<u32>,
    /// Whether messages are delivered to it.
    pub enabled: bool,
    /// Free labels.
    pub tags: Vec<String>,
}

impl TargetConfig {
    /// The wire form.
    pub fn to_spec(&self) -> TargetConfigSpec {
        TargetConfigSpec {
            identifier: self.identifier.clone(),
            kind: self.kind.target_type(),
            config: self.kind.config_json(),
            region: self.region.clone(),
            weight: self.weight,
            enabled: self.enabled,
            tags: self.tags.clone(),
        }
    }
}

impl Serialize for TargetConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_spec().serialize(s)
    }
}

/// Records a `serde_path_to_error` failure under `prefix`, naming the exact
/// field (also for unknown and missing fields, whose path serde stops at the
/// enclosing object).
pub(crate) fn push_serde_error(
    errors: &mut FieldErrors,
    prefix: &str,
    err: &serde_path_to_error::Error<serde_json::Error>,
) {
    let mut path = err.path().to_string();
    // `.` is the root; `?` a segment serde could not name (e.g. at end of input).
    if let Some(i) = path.find('?') {
        path.truncate(i);
    }
    let path_len = path.trim_end_matches('.').len();
    path.truncate(path_len);
    if path == "." {
        path.clear();
    }
    let reason = clean_serde_message(&err.inner().to_string());
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = reason.strip_prefix(marker) {
            if let Some(end) = rest.find('`') {
                let field = &rest[..end];
                let last = path.rsplit('.').next().unwrap_or("");
                if last != field {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(field);
                }
            }
        }
    }
    let field = match (prefix.is_empty(), path.is_empty()) {
        (true, true) => "body".to_string(),
        (true, false) => path,
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    };
    errors.push(field, reason);
}

/// A serde_json message without its ` at line L column C` suffix.
pub(crate) fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// Whether `name` is a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]{0,127}`.
pub fn is_valid_env_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_valid_file_ref(path: &str) -> bool {
    path.starts_with('/') && path.len() <= 4096 && !path.contains('\0')
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_valid_header_value(value: &str) -> bool {
    value.len() <= 8192
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn is_sql_identifier(s: &str, allow_dot: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || (allow_dot && *c == b'.'))
}

fn check_timeout(errors: &mut FieldErrors, path: &str, ms: u64) {
    if !(1..=MAX_TARGET_TIMEOUT_MS).contains(&ms) {
        errors.push(
            format!("{path}.timeoutMs"),
            format!("must be between 1 and {MAX_TARGET_TIMEOUT_MS}"),
        );
    }
}

/// Checks an "exactly one of `{name}Env`, `{name}File`" pair.
fn check_secret_pair(
    errors: &mut FieldErrors,
    path: &str,
    name: &str,
    env: &Option<String>,
    file: &Option<String>,
    required: bool,
) {
    match (env, file) {
        (Some(_), Some(_)) => errors.push(
            format!("{path}.{name}File"),
            format!("give only one of {name}Env and {name}File"),
        ),
        (None, None) if required => errors.push(
            format!("{path}.{name}Env"),
            format!("required: one of {name}Env or {name}File (secrets are never stored in clear)"),
        ),
        _ => {}
    }
    if let Some(e) = env {
        if !is_valid_env_name(e) {
            errors.push(
                format!("{path}.{name}Env"),
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            );
        }
    }
    if let Some(f) = file {
        if !is_valid_file_ref(f) {
            errors.push(
                format!("{path}.{name}File"),
                "must be an absolute file path",
            );
        }
    }
}

fn validate_http(errors: &mut FieldErrors, path: &str, c: &HttpTargetConfig, webhook: bool) {
    match url::Url::parse(&c.url) {
        Ok(u) => {
            if u.scheme() != "http" && u.scheme() != "https" {
                errors.push(format!("{path}.url"), "must be an http or https URL");
            } else if u.host_str().is_none_or(str::is_empty) {
                errors.push(format!("{path}.url"), "must have a host");
            } else if !u.username().is_empty() || u.password().is_some() {
                errors.push(
                    format!("{path}.url"),
                    "must not contain credentials (user info); secrets are never stored in clear",
                );
            }
        }
        Err(e) => errors.push(format!("{path}.url"), format!("not an absolute URL: {e}")),
    }
    for (name, value) in &c.headers {
        if !is_valid_header_name(name) {
            errors.push(format!("{path}.headers.{name}"), "not a valid header name");
        } else if !is_valid_header_value(value) {
            errors.push(format!("{path}.headers.{name}"), "not a valid header value");
        }
    }
    check_timeout(errors, path, c.timeout_ms);
    for (i, h) in c.allowed_override_headers.iter().enumerate() {
        let p = format!("{path}.allowedOverrideHeaders[{i}]");
        if !is_valid_header_name(h) {
            errors.push(p, "not a valid header name");
        } else if FORBIDDEN_OVERRIDE_HEADERS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(h))
        {
            errors.push(p, "this header can never be overridden by a request");
        }
    }
    check_secret_pair(
        errors,
        path,
        "signingSecret",
        &c.signing_secret_env,
        &c.signing_secret_file,
        webhook,
    );
}

fn validate_database(errors: &mut FieldErrors, path: &str, c: &DatabaseTargetConfig) {
    check_secret_pair(errors, path, "dsn", &c.dsn_env, &c.dsn_file, true);
    match &c.table {
        Some(t) if !is_sql_identifier(t, true) => errors.push(
            format!("{path}.table"),
            "must match [A-Za-z_][A-Za-z0-9_.]* (at most 128 characters)",
        ),
        None if c.operation != DatabaseOperation::Statement => errors.push(
            format!("{path}.table"),
            "required unless operation is statement",
        ),
        _ => {}
    }
    for (i, k) in c.key.iter().enumerate() {
        if !is_sql_identifier(k, false) {
            errors.push(
                format!("{path}.key[{i}]"),
                "must be a column name ([A-Za-z_][A-Za-z0-9_]*)",
            );
        }
    }
    if matches!(
        c.operation,
        DatabaseOperation::Upsert | DatabaseOperation::Delete
    ) && c.key.is_empty()
    {
        errors.push(
            format!("{path}.key"),
            "required (at least one column) for upsert and delete",
        );
    }
    match (&c.statement, c.operation) {
        (None, DatabaseOperation::Statement) => errors.push(
            format!("{path}.statement"),
            "required when operation is statement",
        ),
        (Some(_), op) if op != DatabaseOperation::Statement => errors.push(
            format!("{path}.statement"),
            "only allowed when operation is statement",
        ),
        (Some(s), _) if s.trim().is_empty() || s.len() > MAX_STATEMENT_LEN => errors.push(
            format!("{path}.statement"),
            format!("must be 1 to {MAX_STATEMENT_LEN} characters"),
        ),
        _ => {}
    }
    check_timeout(errors, path, c.timeout_ms);
}

fn validate_cache(errors: &mut FieldErrors, path: &str, c: &CacheTargetConfig) {
    check_secret_pair(errors, path, "url", &c.url_env, &c.url_file, true);
    if c.key_prefix.len() > MAX_KEY_PREFIX_LEN {
        errors.push(
            format!("{path}.keyPrefix"),
            format!("at most {MAX_KEY_PREFIX_LEN} characters"),
        );
    }
    if c.ttl_seconds == Some(0) {
        errors.push(format!("{path}.ttlSeconds"), "must be greater than 0");
    }
    if let Some(f) = &c.key_field {
        if f.is_empty() || f.len() > 128 {
            errors.push(format!("{path}.keyField"), "must be 1 to 128 characters");
        }
    }
    check_timeout(errors, path, c.timeout_ms);
}

/// Parses `config` into `T`, recording any serde error under `path`.
fn parse_config<T: serde::de::DeserializeOwned>(
    errors: &mut FieldErrors,
    path: &str,
    config: &serde_json::Value,
) -> Option<T> {
    if !config.is_object() {
        errors.push(path.to_string(), "must be a JSON object");
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(config.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            push_serde_error(errors, path, &e);
            None
        }
    }
}

impl TargetConfigSpec {
    /// Validates this target; `path` is its field path (e.g. `targetConfigs[1]`).
    /// Records every problem in `errors`; `None` when there was any.
    pub fn validate(&self, path: &str, errors: &mut FieldErrors) -> Option<TargetConfig> {
        let before = errors.errors().len();
        if !is_valid_identifier(&self.identifier) {
            errors.push(
                format!("{path}.identifier"),
                "must be 1 to 100 of [A-Za-z0-9._-]",
            );
        }
        if let Some(r) = &self.region {
            if r.len() > MAX_REGION_LEN || !is_valid_identifier(r) {
                errors.push(
                    format!("{path}.region"),
                    format!("must be 1 to {MAX_REGION_LEN} of [A-Za-z0-9._-]"),
                );
            }
        }
        if let Some(w) = self.weight {
            if w > MAX_WEIGHT {
                errors.push(
                    format!("{path}.weight"),
                    format!("must be between 0 and {MAX_WEIGHT}"),
                );
            }
        }
        if self.tags.len() > MAX_TARGET_TAGS {
            errors.push(
                format!("{path}.tags"),
                format!("at most {MAX_TARGET_TAGS} tags"),
            );
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty() || t.len() > MAX_TARGET_TAG_LEN {
                errors.push(
                    format!("{path}.tags[{i}]"),
                    format!("must be 1 to {MAX_TARGET_TAG_LEN} characters"),
                );
            }
        }
        let cpath = format!("{path}.config");
        let kind = match self.kind {
            TargetType::Http | TargetType::Webhook => {
                parse_config::<HttpTargetConfig>(errors, &cpath, &self.config).map(|c| {
                    let webhook = self.kind == TargetType::Webhook;
                    validate_http(errors, &cpath, &c, webhook);
                    if webhook {
                        TargetKind::Webhook(c)
                    } else {
                        TargetKind::Http(c)
                    }
                })
            }
            TargetType::Database => {
                parse_config::<DatabaseTargetConfig>(errors, &cpath, &self.config).map(|c| {
                    validate_database(errors, &cpath, &c);
                    TargetKind::Database(c)
                })
            }
            TargetType::Cache => parse_config::<CacheTargetConfig>(errors, &cpath, &self.config)
                .map(|c| {
                    validate_cache(errors, &cpath, &c);
                    TargetKind::Cache(c)
                }),
        };
        if errors.errors().len() != before {
            return None;
        }
        Some(TargetConfig {
            identifier: self.identifier.clone(),
            kind: kind?,
            region: self.region.clone(),
            weight: self.weight,
            enabled: self.enabled,
            tags: self.tags.clone(),
        })
    }
}

/// Validates all of `targetConfigs`: each one, their number, and that
/// identifiers are unique.
pub fn validate_targets(specs: &[TargetConfigSpec], errors: &mut FieldErrors) -> Vec<TargetConfig> {
    if specs.len() > MAX_TARGETS {
        errors.push("targetConfigs", format!("at most {MAX_TARGETS} targets"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let path = format!("targetConfigs[{i}]");
        if !seen.insert(spec.identifier.as_str()) {
            errors.push(
                format!("{path}.identifier"),
                format!("duplicate target identifier `{}`", spec.identifier),
            );
        }
        if let Some(t) = spec.validate(&path, errors) {
            out.push(t);
        }
    }
    out
}
