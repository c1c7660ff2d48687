//! API keys and IP allow-lists.
//!
//! Keys are never kept in clear: configured keys are hashed (SHA-256) at
//! start-up, a presented key is hashed once per request, and hashes are
//! compared in constant time against every candidate (no early exit), so
//! timing reveals neither which key matched nor how much of it.
//!
//! * Write keys: a namespace with an `allowedApiKeys` list accepts only
//!   those; a namespace without one accepts the global `WAL_API_KEYS`.
//! * An unknown key (in no list at all) is `401`; a known key used where it
//!   is not allowed is `403`.
//! * Admin keys (`WAL_ADMIN_API_KEYS`) manage namespaces and operate the
//!   DLQ (requeue, purge); they do not write messages.
//! * Read endpoints of a namespace (message status, namespace status, DLQ
//!   list and inspection) accept an admin key or a key allowed to write to
//!   that namespace ([`authenticate_reader`], then [`Reader::authorize`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;
use wal_namespace::{any_matches, ApiKeyHash, Namespace, NamespaceCache};

use crate::error::ApiError;

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The hashed keys from the process configuration.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    global: Vec<ApiKeyHash>,
    admin: Vec<ApiKeyHash>,
}

impl KeyRing {
    /// Hashes the configured keys (empty entries are ignored).
    pub fn new(global: &[String], admin: &[String]) -> Self {
        let hash_all = |keys: &[String]| {
            keys.iter()
                .map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(ApiKeyHash::of)
                .collect::<Vec<_>>()
        };
        Self {
            global: hash_all(global),
            admin: hash_all(admin),
        }
    }

    /// Whether any admin key is configured.
    pub fn has_admin_keys(&self) -> bool {
        !self.admin.is_empty()
    }
}

/// The hash of the request's `X-API-Key`, if one was sent.
pub fn presented_key(headers: &HeaderMap) -> Option<ApiKeyHash> {
    let raw = headers.get(API_KEY_HEADER)?.to_str().ok()?.trim();
    (!raw.is_empty()).then(|| ApiKeyHash::of(raw))
}

/// A write caller whose key is known somewhere (global list or any namespace).
#[derive(Clone, Debug)]
pub struct WriteCaller {
    key: ApiKeyHash,
    /// The client address used for IP allow-lists.
    pub ip: Option<IpAddr>,
}

/// Checks that a key was sent and is known; `401` otherwise.
pub fn authenticate_writer(
    keys: &KeyRing,
    cache: &NamespaceCache,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<WriteCaller, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    let known_globally = any_matches(&keys.global, &key);
    // Evaluate both, always: no shortcut that would time differently.
    let known_in_namespace = cache.any_namespace_key_matches(&key);
    if known_globally | known_in_namespace {
        Ok(WriteCaller { key, ip })
    } else {
        Err(ApiError::Unauthorized)
    }
}

impl WriteCaller {
    /// Checks the caller may write to `ns`: key allowed (`403`), IP allowed (`403`).
    pub fn authorize(&self, keys: &KeyRing, ns: &Namespace) -> Result<(), ApiError> {
        let allowed = if ns.has_key_allow_list() {
            ns.key_allowed(&self.key)
        } else {
            any_matches(&keys.global, &self.key)
        };
        if !allowed {
            return Err(ApiError::Forbidden(
                "API key is not allowed on this namespace",
            ));
        }
        let ip_ok = match self.ip {
            Some(ip) => ns.ip_allowed(ip),
            // An address that could not be determined passes no allow-list.
            None => ns.ip_allow_list.is_empty(),
        };
        if !ip_ok {
            return Err(ApiError::Forbidden(
                "client IP is not allowed on this namespace",
            ));
        }
        Ok(())
    }
}

/// A caller of a read endpoint: an admin, or a write key known somewhere.
#[derive(Clone, Debug)]
pub enum Reader {
    /// An admin key: may read every namespace.
    Admin,
    /// A write key: may read the namespaces it may write to.
    Writer(WriteCaller),
}

/// Checks that a key was sent and is an admin key or a known write key;
/// `401` otherwise.
pub fn authenticate_reader(
    keys: &KeyRing,
    cache: &NamespaceCache,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<Reader, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    if any_matches(&keys.admin, &key) {
        return Ok(Reader::Admin);
    }
    authenticate_writer(keys, cache, headers, ip).map(Reader::Writer)
}

impl Reader {
    /// Checks the caller may read `ns`: admins always; write keys where they
    /// may write (key and IP allow-lists), `403` otherwise.
    pub fn authorize(&self, keys: &KeyRing, ns: &Namespace) -> Result<(), ApiError> {
        match self {
            Reader::Admin => Ok(()),
            Reader::Writer(caller) => caller.authorize(keys, ns),
        }
    }

    /// Whether the caller may read `ns`.
    pub fn may_read(&self, keys: &KeyRing, ns: &Namespace) -> bool {
        self.authorize(keys, ns).is_ok()
    }
}

/// Checks the request carries an admin key: `401` when missing or unknown,
/// `403` when it is a valid write key but not an admin key.
pub fn authorize_admin(
    keys: &KeyRing,
    cache: &NamespaceCache,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let key = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    if any_matches(&keys.admin, &key) {
        return Ok(());
    }
    let known = any_matches(&keys.global, &key) | cache.any_namespace_key_matches(&key);
    if known {
        Err(ApiError::Forbidden("API key is not an admin key"))
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Which `X-Forwarded-For` entries to believe (`WAL_TRUST_FORWARDED_FOR`,
/// `WAL_TRUSTED_PROXIES`).
#[derive(Clone, Debug, Default)]
pub struct ForwardedTrust {
    /// Whether the header is read at all.
    pub enabled: bool,
    /// The proxies in front of the gateway; empty: the peer is the one proxy.
    pub proxies: Vec<IpNet>,
}

impl ForwardedTrust {
    fn is_proxy(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.proxies.iter().any(|net| net.contains(&ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        IpAddr::V4(_) => ip,
    }
}

/// The client IP for IP allow-lists. Without trusted forwarding it is the
/// peer address. With it, `X-Forwarded-For` (every such header, in order) is
/// read from the right — the end a proxy appends to, which the client cannot
/// write: the first entry that is not a trusted proxy is the client. A
/// header from a peer that is not a trusted proxy (when proxies are listed)
/// is ignored. `None` when the entry that should name the client is not an
/// address: then no IP allow-list passes.
pub fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trust: &ForwardedTrust,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !trust.enabled {
        return peer;
    }
    if !trust.proxies.is_empty() && !peer.is_some_and(|p| trust.is_proxy(p)) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        return peer;
    }
    for entry in entries.iter().rev() {
        let ip = entry.parse::<IpAddr>().ok()?;
        if trust.proxies.is_empty() || !trust.is_proxy(ip) {
            return Some(ip);
        }
    }
    // Every entry is a trusted proxy: the leftmost is as close to the client as we know.
    entries.first().and_then(|e| e.parse().ok())
}
