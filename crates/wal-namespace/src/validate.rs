//! Validation of a namespace: [`NamespaceSpec::validate`] checks every rule
//! of the wire spec ([`crate::spec`]), collecting *all* field errors, and
//! builds the typed [`Namespace`] ([`crate::model`]). The only way to a
//! `Namespace`.

use std::collections::HashSet;
use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;
use wal_core::retry::MAX_ATTEMPTS_LIMIT;
use wal_core::validate::{is_valid_identifier, is_valid_namespace_name, FieldErrors};

use crate::api_key::{ApiKeyHash, HASH_PREFIX};
use crate::model::Namespace;
use crate::spec::{
    NamespaceSpec, MAX_API_KEYS, MAX_API_KEY_LEN, MAX_DEDUP_WINDOW_SECONDS,
    MAX_DELAY_SECONDS_LIMIT, MAX_DESCRIPTION_LEN, MAX_DLQ_RETENTION_SECONDS, MAX_IP_ALLOW_LIST,
    MAX_MESSAGE_SIZE_LIMIT, MAX_MESSAGE_TTL_SECONDS, MAX_PARTITION_COUNT, MIN_API_KEY_LEN,
};
use crate::targets::validate_targets;

/// Parses one `ipAllowList` entry: a CIDR or a single address; IPv4-mapped
/// IPv6 networks (`::ffff:10.0.0.0/104`) become the IPv4 network they map.
pub fn parse_ip_entry(s: &str) -> Option<IpNet> {
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?
        .trunc();
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                    .ok()
                    .map(IpNet::V4);
            }
        }
    }
    Some(net)
}

fn check_range(errors: &mut FieldErrors, field: &str, v: u64, min: u64, max: u64) {
    if v < min || v > max {
        errors.push(field, format!("must be between {min} and {max}"));
    }
}

impl NamespaceSpec {
    /// Checks every rule and builds the typed namespace, or answers all the
    /// invalid fields.
    ///
    /// `previous` is the stored namespace on an update (`None` on create): its
    /// name must not change, its API key hashes are kept when
    /// `accessControl.allowedApiKeys` is absent, its topic when `topicName` is
    /// absent, and its id and audit fields are carried over (the store sets the
    /// new version and times).
    pub fn validate(self, previous: Option<&Namespace>) -> Result<Namespace, FieldErrors> {
        let mut errors = FieldErrors::default();

        let name = match (&self.name, previous) {
            (Some(n), _) if !is_valid_namespace_name(n) => {
                errors.push(
                    "name",
                    "must be 1 to 100 of [a-z0-9._-], starting with a letter or digit",
                );
                n.clone()
            }
            (Some(n), Some(p)) if *n != p.name => {
                errors.push(
                    "name",
                    "cannot be changed (must equal the namespace's name)",
                );
                n.clone()
            }
            (Some(n), _) => n.clone(),
            (None, Some(p)) => p.name.clone(),
            (None, None) => {
                errors.push("name", "required");
                String::new()
            }
        };

        let topic_name = match (&self.topic_name, previous) {
            (Some(t), _) => {
                if !is_valid_identifier(t) {
                    errors.push("topicName", "must be 1 to 100 of [A-Za-z0-9._-]");
                }
                t.clone()
            }
            (None, Some(p)) => p.topic_name.clone(),
            (None, None) => name.clone(),
        };

        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION_LEN {
                errors.push(
                    "description",
                    format!("at most {MAX_DESCRIPTION_LEN} characters"),
                );
            }
        }

        check_range(
            &mut errors,
            "maxMessageSize",
            self.max_message_size,
            1,
            MAX_MESSAGE_SIZE_LIMIT,
        );
        check_range(
            &mut errors,
            "messageTtlSeconds",
            self.message_ttl_seconds,
            1,
            MAX_MESSAGE_TTL_SECONDS,
        );
        check_range(
            &mut errors,
            "maxDelaySeconds",
            self.max_delay_seconds,
            0,
            MAX_DELAY_SECONDS_LIMIT,
        );
        check_range(
            &mut errors,
            "dedupWindowSeconds",
            self.dedup_window_seconds,
            1,
            MAX_DEDUP_WINDOW_SECONDS,
        );

        self.retry_policy.validate("retryPolicy", &mut errors);

        check_range(
            &mut errors,
            "dlqConfig.maxRetries",
            u64::from(self.dlq_config.max_retries),
            0,
            u64::from(MAX_ATTEMPTS_LIMIT),
        );
        check_range(
            &mut errors,
            "dlqConfig.retentionSeconds",
            self.dlq_config.retention_seconds,
            1,
            MAX_DLQ_RETENTION_SECONDS,
        );

        check_range(
            &mut errors,
            "shardConfig.partitionCount",
            u64::from(self.shard_config.partition_count),
            1,
            u64::from(MAX_PARTITION_COUNT),
        );

        let targets = validate_targets(&self.target_configs, &mut errors);

        let mut backend_config = self.backend_config.clone();
        backend_config.validate(self.backend, &topic_name, &mut errors);

        let ac = &self.access_control;
        let api_key_hashes = match (&ac.allowed_api_keys, previous) {
            (None, Some(p)) => p.api_key_hashes.clone(),
            (None, None) => Vec::new(),
            (Some(keys), _) => hash_keys(keys, &mut errors),
        };

        let rl = &ac.rate_limits;
        for (field, v) in [
            ("requestsPerMinute", rl.requests_per_minute),
            ("requestsPerHour", rl.requests_per_hour),
            ("burstLimit", rl.burst_limit),
        ] {
            if v == Some(0) {
                errors.push(
                    format!("accessControl.rateLimits.{field}"),
                    "must be greater than 0 (omit it for no limit)",
                );
            }
        }

        if ac.ip_allow_list.len() > MAX_IP_ALLOW_LIST {
            errors.push(
                "accessControl.ipAllowList",
                format!("at most {MAX_IP_ALLOW_LIST} entries"),
            );
        }
        let mut ip_allow_list = Vec::with_capacity(ac.ip_allow_list.len());
        for (i, entry) in ac.ip_allow_list.iter().enumerate() {
            match parse_ip_entry(entry.trim()) {
                Some(net) => {
                    if !ip_allow_list.contains(&net) {
                        ip_allow_list.push(net);
                    }
                }
                None => errors.push(
                    format!("accessControl.ipAllowList[{i}]"),
                    "not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)",
                ),
            }
        }

        errors.into_result()?;

        let now = Utc::now();
        let (id, version, created_at, updated_at, created_by, updated_by) = match previous {
            Some(p) => (
                p.id.clone(),
                p.version,
                p.created_at,
                p.updated_at,
                p.created_by.clone(),
                p.updated_by.clone(),
            ),
            None => (
                ulid::Ulid::new().to_string(),
                0,
                now,
                now,
                String::new(),
                String::new(),
            ),
        };

        Ok(Namespace {
            id,
            name,
            backend: self.backend,
            topic_name,
            description: self.description,
            enabled: self.enabled,
            max_message_size: self.max_message_size,
            message_ttl_seconds: self.message_ttl_seconds,
            max_delay_seconds: self.max_delay_seconds,
            retry_policy: self.retry_policy,
            dlq_config: self.dlq_config,
            shard_config: self.shard_config,
            targets,
            backend_config,
            api_key_hashes,
            rate_limits: self.access_control.rate_limits,
            ip_allow_list,
            dedup_window_seconds: self.dedup_window_seconds,
            version,
            created_at,
            updated_at,
            created_by,
            updated_by,
        })
    }
}

/// Hashes clear keys and parses `sha256:` entries, recording bad ones;
/// duplicates are kept once.
fn hash_keys(keys: &[String], errors: &mut FieldErrors) -> Vec<ApiKeyHash> {
    if keys.len() > MAX_API_KEYS {
        errors.push(
            "accessControl.allowedApiKeys",
            format!("at most {MAX_API_KEYS} keys"),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let field = format!("accessControl.allowedApiKeys[{i}]");
        let hash = if key.starts_with(HASH_PREFIX) {
            match ApiKeyHash::from_prefixed(key) {
                Some(h) => h,
                None => {
                    errors.push(
                        field,
                        "a sha256: entry must be followed by 64 lowercase hex digits",
                    );
                    continue;
                }
            }
        } else if key.chars().count() < MIN_API_KEY_LEN {
            errors.push(
                field,
                format!("too short: an API key needs at least {MIN_API_KEY_LEN} characters"),
            );
            continue;
        } else if key.len() > MAX_API_KEY_LEN {
            errors.push(field, format!("too long: at most {MAX_API_KEY_LEN} bytes"));
            continue;
        } else if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(field, "must not contain whitespace or control characters");
            continue;
        } else {
            ApiKeyHash::of(key)
        };
        if seen.insert(hash) {
            out.push(hash);
        }
    }
    out
}
