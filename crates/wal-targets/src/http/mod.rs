//! `http` and `webhook` targets: one request per attempt with the shared
//! [`reqwest::Client`] (which must not follow redirects).
//!
//! * URL: the configured one, with the request's `pathSuffix` appended to its path.
//! * Headers: the configured ones, then the request's overrides (only names in
//!   `allowedOverrideHeaders`), then the WAL headers, which win:
//!   `Idempotency-Key` / `X-WAL-Message-Id` (message id), `X-WAL-Attempt`,
//!   `X-WAL-Namespace`, `traceparent`, `tracestate`, and
//!   `Content-Type: application/json` unless configured.
//! * Body: the payload bytes as written (`body: payload`), or the envelope
//!   (`body: envelope`: id, namespace, target, attempt, payload, metadata,
//!   tags, priority, partitionKey, requestId, createdAtMs, dueAtMs). It is
//!   sent with every method, `GET` included.
//! * Signing (webhooks always, HTTP targets when a signing secret is set):
//!   `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature` (see [`SigningKey`]).
//!
//! The outcome is classified by `classify` (see its table).

mod classify;
mod request;
mod signing;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use url::Url;
use wal_namespace::targets::{BodyMode, HttpMethod, HttpTargetConfig};

pub use signing::{verify_signature, InvalidSigningSecret, SigningKey};

use crate::{Delivery, DeliveryOutcome, Target, TargetBuildError};

/// Most body bytes read from a successful answer (so the connection can be
/// reused); the rest is dropped with the connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// An HTTP or webhook target.
pub(crate) struct HttpTarget {
    client: reqwest::Client,
    method: reqwest::Method,
    url: Url,
    headers: HeaderMap,
    allowed_override_headers: Vec<String>,
    body: BodyMode,
    signing: Option<SigningKey>,
    timeout: Duration,
}

impl HttpTarget {
    /// Builds the target `identifier` from `config`. `signing` is the key
    /// read from the configured secret, required for webhooks.
    pub(crate) fn new(
        identifier: &str,
        client: reqwest::Client,
        config: &HttpTargetConfig,
        signing: Option<SigningKey>,
    ) -> Result<Self, TargetBuildError> {
        let invalid = |reason: String| TargetBuildError::InvalidConfig {
            target: identifier.to_string(),
            reason,
        };
        let url = Url::parse(&config.url).map_err(|e| invalid(format!("invalid url: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name `{name}`")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value of header `{name}`")))?;
            headers.insert(n, v);
        }
        let method = match config.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        Ok(Self {
            client,
            method,
            url,
            headers,
            allowed_override_headers: config.allowed_override_headers.clone(),
            body: config.body,
            signing,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// The request of one attempt, or why it cannot be made.
    fn request(&self, d: &Delivery<'_>) -> Result<reqwest::Request, DeliveryOutcome> {
        let env = d.envelope;
        let id = env.id.to_string();
        let body = request::body(self.body, env, &d.target.identifier, d.attempt);
        let mut headers = self.headers.clone();
        for (name, value) in d.target.headers.iter().flatten() {
            if !self
                .allowed_override_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                return Err(DeliveryOutcome::permanent(format!(
                    "header `{name}` may not be overridden by a request"
                )));
            }
            let n = HeaderName::from_bytes(name.as_bytes());
            let v = HeaderValue::from_str(value);
            let (Ok(n), Ok(v)) = (n, v) else {
                return Err(DeliveryOutcome::permanent(format!(
                    "invalid override header `{name}`"
                )));
            };
            headers.insert(n, v);
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request::set_wal_headers(&mut headers, env, &id, d.attempt);
        if let Some(key) = &self.signing {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let sig = key.sign(&id, ts, &body);
            headers.insert(
                HeaderName::from_static("webhook-id"),
                HeaderValue::from_str(&id).expect("a ULID is a valid header value"),
            );
            headers.insert(HeaderName::from_static("webhook-timestamp"), ts.into());
            headers.insert(
                HeaderName::from_static("webhook-signature"),
                HeaderValue::from_str(&sig).expect("base64 is a valid header value"),
            );
        }
        let url = request::target_url(&self.url, d.target.path_suffix.as_deref())
            .map_err(|reason| DeliveryOutcome::Permanent { reason })?;
        self.client
            .request(self.method.clone(), url)
            .headers(headers)
            .timeout(self.timeout)
            .body(body)
            .build()
            .map_err(|e| classify::classify_error(&e, self.timeout))
    }
}

#[async_trait]
impl Target for HttpTarget {
    async fn deliver(&self, d: Delivery<'_>) -> DeliveryOutcome {
        let req = match self.request(&d) {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let mut resp = match self.client.execute(req).await {
            Ok(r) => r,
            Err(e) => return classify::classify_error(&e, self.timeout),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| classify::parse_retry_after(v, SystemTime::now()));
        let limit = if resp.status().is_success() {
            DRAIN_LIMIT
        } else {
            classify::EXCERPT_LEN
        };
        // The per-request timeout also bounds the body. A body that breaks
        // off still leaves a status to classify.
        let mut body = Vec::new();
        while body.len() < limit {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        classify::classify_status(status, retry_after, &classify::excerpt(&body))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
