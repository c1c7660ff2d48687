//! SQS backend (aws-sdk-sqs).
//!
//! ## Layout
//!
//! A namespace's log is one SQS queue, named (or addressed by URL) by the
//! namespace's `topic`. Partitions do not exist in SQS: the envelope's
//! partition travels as the `wal-partition` message attribute and comes back
//! in the [`AckToken`](wal_core::backend::AckToken), so the worker's
//! per-partition bookkeeping keeps working. A queue whose name ends in
//! `.fifo` is a FIFO queue: the message group is the partition key (or the
//! message id when there is none), so order is kept per key, and the
//! deduplication id is the message id.
//!
//! Each message's body is the JSON [`Envelope`](wal_core::Envelope); the
//! message attributes repeat the fields an operator wants to see without
//! decoding it (`wal-message-id`, `wal-namespace`, `wal-partition`,
//! `wal-request-id`, `traceparent`, `wal-due-at-ms`, `wal-metadata`).
//!
//! ## Delays
//!
//! SQS delays a message natively for at most
//! [`SQS_MAX_NATIVE_DELAY`] (15 minutes) and only on standard queues. A
//! message due within that window is sent with `DelaySeconds` = the whole
//! seconds until it is due; the worker parks the sub-second rest (and every
//! longer delay, and every delay on a FIFO queue) in its Redis delayed set,
//! so nothing is ever delivered before `due_at_ms`.
//!
//! ## Durability
//!
//! `TRUE` means SQS answered success for the message: it is stored
//! redundantly by SQS. A request that could not be sent (connection refused,
//! DNS failure, connect timeout) answers `FALSE`; one that left but got no
//! answer in time answers `UNKNOWN`. The producer's SDK client makes a single
//! attempt per call, so a `FALSE` is never the last word of a retry whose
//! earlier attempt may have been recorded.
//!
//! ## Consumer
//!
//! `ReceiveMessage` with long polling; ack = `DeleteMessageBatch`; visibility
//! extension = `ChangeMessageVisibilityBatch`; abandoned messages come back
//! by themselves when their visibility timeout expires, with
//! `ApproximateReceiveCount` as the delivery count. A queue's
//! `RedrivePolicy` is read at start so the worker can honour its
//! `maxReceiveCount` (see [`SqsConsumer::redrive_max_receive_count`]).

mod consumer;
mod producer;

use std::fmt;
use std::time::Duration;

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use wal_core::backend::{BackendError, PublishError};

pub use consumer::{SqsConsumer, SqsConsumerSettings};
pub use producer::SqsProducer;

/// Largest message SQS takes on a queue with the classic limit: body plus
/// message attributes (names, data types and values), in bytes. A larger
/// entry is answered `Failed(Rejected)` without being sent; a batch call
/// never carries more than this in total either.
///
/// AWS (since 2025) and moto 5.2 accept up to 1 MiB on queues whose
/// `MaximumMessageSize` allows it; 256 KiB is kept because it works on every
/// queue, including ones created with the old default.
pub const SQS_MAX_ENTRY_BYTES: usize = 262_144;

/// Longest per-message delay SQS supports (`DelaySeconds` ≤ 900).
pub const SQS_MAX_NATIVE_DELAY: Duration = Duration::from_secs(15 * 60);

/// Most entries SQS takes in one batch call.
const MAX_BATCH_ENTRIES: usize = 10;

/// Longest long-polling wait SQS supports.
const MAX_WAIT_SECONDS: u64 = 20;

/// How long to wait for a TCP connection to the endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of one call (all attempts) other than a long poll.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom to reach SQS.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqsClientConfig {
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// Endpoint override, e.g. `http://127.0.0.1:PORT` for moto; `None` = AWS.
    pub endpoint_url: Option<String>,
    /// Static credentials; `None` = the AWS default chain (environment,
    /// profile, web identity, container or instance metadata).
    pub credentials: Option<SqsCredentials>,
}

impl fmt::Debug for SqsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsClientConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Static AWS credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqsCredentials {
    /// Access key id (not secret; shown in logs).
    pub access_key_id: String,
    /// Secret access key (never shown).
    pub secret_access_key: String,
    /// Session token of temporary credentials (never shown).
    pub session_token: Option<String>,
}

impl fmt::Debug for SqsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Builds an SDK client. `max_attempts` = 1 disables the SDK's retries
/// (the producer's choice: see the module docs). Region, endpoint and
/// credentials, when given, are set on the config directly, so aws-config
/// never probes the instance metadata endpoint for them.
async fn build_client(cfg: &SqsClientConfig, max_attempts: u32) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(url) = &cfg.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(c) = &cfg.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "wal-static",
        ));
    }
    let sdk = loader.load().await;
    Client::new(&sdk)
}

/// Whether `queue` is a URL rather than a name.
fn is_url(queue: &str) -> bool {
    queue.starts_with("http://") || queue.starts_with("https://")
}

/// The queue name of a name or URL (the last path segment of a URL).
fn queue_name(queue: &str) -> &str {
    if is_url(queue) {
        queue
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(queue)
    } else {
        queue
    }
}

/// Whether the queue (name or URL) is a FIFO queue.
fn is_fifo(queue: &str) -> bool {
    queue_name(queue).ends_with(".fifo")
}

/// The text of an SDK error and its sources, joined by `: ` (what
/// [`DisplayErrorContext`] shows, without its trailing `Debug` dump).
fn error_text<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        source = err.source();
    }
    if parts.is_empty() {
        DisplayErrorContext(e).to_string()
    } else {
        parts.join(": ")
    }
}

/// Whether a dispatch failure happened before the request could leave:
/// the connection was refused or never established (DNS, connect timeout).
fn never_sent<E, R>(e: &SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    use std::io::ErrorKind;
    let SdkError::DispatchFailure(d) = e else {
        return false;
    };
    let Some(conn) = d.as_connector_error() else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(conn);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
            ) {
                return true;
            }
        }
        source = err.source();
    }
    // hyper-util marks connect failures "client error (Connect)"; the SDK's
    // connect timeout is "HTTP connect timeout"; DNS: "dns error".
    let text = error_text(e);
    [
        "(Connect)",
        "HTTP connect timeout",
        "dns error",
        "error trying to connect",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Whether a service error says "too many requests" (nothing was accepted).
fn is_throttling(code: Option<&str>, status: u16) -> bool {
    status == 429
        || matches!(
            code,
            Some(
                "RequestThrottled"
                    | "ThrottlingException"
                    | "Throttling"
                    | "AWS.SimpleQueueService.RequestThrottled"
            )
        )
}

/// The publish error for a failed send call (see the module docs).
fn publish_error<E, R>(e: &SdkError<E, R>) -> PublishError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: fmt::Debug + HttpStatus + 'static,
{
    let text = error_text(e);
    match e {
        SdkError::ConstructionFailure(_) => PublishError::Rejected(text),
        SdkError::TimeoutError(_) => PublishError::Timeout(text),
        SdkError::DispatchFailure(_) if never_sent(e) => PublishError::Unavailable(text),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => PublishError::Timeout(text),
        SdkError::ServiceError(s) => {
            let status = s.raw().status_code();
            let code = s.err().code();
            if is_throttling(code, status) || status == 503 {
                PublishError::Unavailable(text)
            } else if (400..500).contains(&status) {
                PublishError::Rejected(text)
            } else {
                // A 500 may or may not have stored the message.
                PublishError::Timeout(text)
            }
        }
        _ => PublishError::Timeout(text),
    }
}

/// The backend error for any other failed call.
fn backend_error<E, R>(e: &SdkError<E, R>) -> BackendError
where
    E: std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let text = error_text(e);
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => BackendError::Unavailable(text),
        _ => BackendError::Other(text),
    }
}

/// The HTTP status of a raw response (implemented for the SDK's response type).
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_sqs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The URL of an existing queue (name or URL; a URL is returned as is).
async fn queue_url(client: &Client, queue: &str) -> Result<String, QueueLookupError> {
    if is_url(queue) {
        return Ok(queue.to_string());
    }
    match client.get_queue_url().queue_name(queue).send().await {
        Ok(out) => out.queue_url().map(str::to_string).ok_or_else(|| {
            QueueLookupError::Failed(BackendError::Other("GetQueueUrl answered no URL".into()))
        }),
        Err(e) if is_missing_queue(&e) => Err(QueueLookupError::Missing),
        Err(e) => Err(QueueLookupError::Failed(backend_error(&e))),
    }
}

/// Why a queue URL could not be found.
#[derive(Debug)]
enum QueueLookupError {
    /// The queue does not exist.
    Missing,
    /// The lookup failed.
    Failed(BackendError),
}

/// Whether an error says the queue does not exist.
fn is_missing_queue<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    let Some(s) = e.as_service_error() else {
        return false;
    };
    matches!(
        s.code(),
        Some("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue" | "NonExistentQueue")
    )
}

/// Resolves a queue name or URL to its URL, creating the queue when missing
/// (FIFO attributes when the name ends in `.fifo`; ContentBasedDeduplication
/// off, since the producer sets the message id as deduplication id).
///
/// Idempotent: an existing queue is never modified. A URL is checked with
/// `GetQueueAttributes` and, when its queue is missing, the queue is created
/// under the URL's last path segment (in the caller's account).
pub async fn ensure_queue(cfg: &SqsClientConfig, queue: &str) -> Result<String, BackendError> {
    let client = build_client(cfg, 3).await;
    ensure_queue_with(&client, queue).await
}

async fn ensure_queue_with(client: &Client, queue: &str) -> Result<String, BackendError> {
    if is_url(queue) {
        match client
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
        {
            Ok(_) => return Ok(queue.to_string()),
            Err(e) if is_missing_queue(&e) => {}
            Err(e) => return Err(backend_error(&e)),
        }
    } else {
        match queue_url(client, queue).await {
            Ok(url) => return Ok(url),
            Err(QueueLookupError::Missing) => {}
            Err(QueueLookupError::Failed(e)) => return Err(e),
        }
    }
    let name = queue_name(queue);
    let mut create = client.create_queue().queue_name(name);
    if is_fifo(name) {
        create = create
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    }
    let out = create.send().await.map_err(|e| backend_error(&e))?;
    let url = out
        .queue_url()
        .map(str::to_string)
        .ok_or_else(|| BackendError::Other("CreateQueue answered no URL".into()))?;
    tracing::info!(queue = name, url = %url, fifo = is_fifo(name), "created SQS queue");
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(is_url("http://127.0.0.1:5000/123456789012/q"));
        assert!(!is_url("q"));
        assert_eq!(queue_name("http://h/123/orders.fifo"), "orders.fifo");
        assert_eq!(queue_name("orders"), "orders");
        assert!(is_fifo("https://sqs.us-east-1.amazonaws.com/1/a.fifo"));
        assert!(!is_fifo("a"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let cfg = SqsClientConfig {
            region: "us-east-1".into(),
            endpoint_url: None,
            credentials: Some(SqsCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "very-secret".into(),
                session_token: Some("token-secret".into()),
            }),
        };
        let text = format!("{cfg:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(!text.contains("very-secret"));
        assert!(!text.contains("token-secret"));
    }
}
