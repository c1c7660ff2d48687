//! Sends envelopes to a namespace's queue: `SendMessage` for one message,
//! `SendMessageBatch` in chunks (at most 10 entries and
//! [`SQS_MAX_ENTRY_BYTES`] per call) for more, each entry's answer mapped
//! back to its message. Chunks go out concurrently on a standard queue and
//! one after the other on a FIFO queue, where a group's order is the order
//! of the batch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_sdk_sqs::Client;
use tracing::Instrument;
use wal_core::backend::{
    BackendError, LogProducer, LogSettings, OutgoingMessage, PublishError, PublishOutcome,
};
use wal_core::{Durability, Envelope};

use super::{
    backend_error, build_client, is_fifo, publish_error, queue_url, QueueLookupError,
    SqsClientConfig, MAX_BATCH_ENTRIES, SQS_MAX_ENTRY_BYTES, SQS_MAX_NATIVE_DELAY,
};

/// Room kept for message attributes when telling the gateway the largest
/// envelope it may send ([`LogProducer::max_entry_bytes`]); the attributes
/// without `wal-metadata` take a few hundred bytes.
const ATTRIBUTE_RESERVE: usize = 1024;

/// Longest SQS `MessageGroupId`.
const MAX_GROUP_ID_LEN: usize = 128;

/// The SQS [`LogProducer`]. Cheap to clone; clones share the client and the
/// queue-URL cache.
#[derive(Clone)]
pub struct SqsProducer {
    client: Client,
    /// Queue name → URL, filled by `GetQueueUrl` on first use.
    urls: Arc<RwLock<HashMap<String, String>>>,
}

impl SqsProducer {
    /// A producer reaching SQS as `cfg` says. Makes no call yet: a gateway
    /// can start while SQS is unreachable (it answers `FALSE` until it is back).
    pub async fn new(cfg: &SqsClientConfig) -> Self {
        Self {
            client: build_client(cfg, 1).await,
            urls: Arc::default(),
        }
    }

    /// The URL of `topic` (a name or a URL), from the cache or `GetQueueUrl`.
    /// Queues are never created here: [`ensure_queue`](super::ensure_queue)
    /// does that when a namespace is set up.
    async fn resolve(&self, topic: &str) -> Result<String, PublishError> {
        if let Some(url) = self.urls.read().ok().and_then(|m| m.get(topic).cloned()) {
            return Ok(url);
        }
        match queue_url(&self.client, topic).await {
            Ok(url) => {
                if let Ok(mut m) = self.urls.write() {
                    m.insert(topic.to_string(), url.clone());
                }
                Ok(url)
            }
            Err(QueueLookupError::Missing) => Err(PublishError::Rejected(format!(
                "SQS queue {topic} does not exist"
            ))),
            // Nothing was sent: the message is certainly not recorded.
            Err(QueueLookupError::Failed(e)) => Err(PublishError::Unavailable(format!(
                "could not resolve SQS queue {topic}: {e}"
            ))),
        }
    }
}

/// One message ready to send.
#[derive(Clone, Debug)]
struct Prepared {
    body: String,
    attributes: HashMap<String, MessageAttributeValue>,
    /// Body plus attributes, as SQS counts them.
    size: usize,
    /// `DelaySeconds`, when not 0 (never on a FIFO queue).
    delay_seconds: Option<i32>,
    /// `MessageGroupId` and `MessageDeduplicationId` on a FIFO queue.
    fifo: Option<(String, String)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `DelaySeconds` for a message due at `due_at_ms`: the whole seconds until
/// it is due when that is within SQS's native maximum, otherwise 0 (the
/// worker's Redis delayed set holds it); always 0 on a FIFO queue.
pub(super) fn delay_seconds(due_at_ms: u64, now_ms: u64, fifo: bool) -> i32 {
    let d = due_at_ms.saturating_sub(now_ms);
    if fifo || d == 0 || u128::from(d) > SQS_MAX_NATIVE_DELAY.as_millis() {
        0
    } else {
        (d / 1000) as i32
    }
}

/// A valid `MessageGroupId` for a partition key: printable ASCII kept, other
/// bytes and `%` escaped as `%XX`, cut at 128 characters (keys that then
/// collide merely share a group, which only serializes them further).
pub(super) fn group_id(key: &str) -> String {
    let mut out = String::with_capacity(key.len().min(MAX_GROUP_ID_LEN));
    for b in key.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            if out.len() + 1 > MAX_GROUP_ID_LEN {
                break;
            }
            out.push(b as char);
        } else {
            if out.len() + 3 > MAX_GROUP_ID_LEN {
                break;
            }
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Adds a `String`/`Number` attribute and returns its size as SQS counts it.
fn put_attribute(
    attrs: &mut HashMap<String, MessageAttributeValue>,
    name: &str,
    data_type: &str,
    value: String,
) -> Result<usize, PublishError> {
    if value.is_empty() {
        // SQS refuses empty attribute values.
        return Ok(0);
    }
    let size = name.len() + data_type.len() + value.len();
    let v = MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Rejected(format!("attribute {name}: {e}")))?;
    attrs.insert(name.to_string(), v);
    Ok(size)
}

/// Body, attributes, delay and FIFO ids of one message; `Rejected` when it
/// exceeds [`SQS_MAX_ENTRY_BYTES`].
fn prepare(envelope: &Envelope, fifo: bool, now_ms: u64) -> Result<Prepared, PublishError> {
    let body = String::from_utf8(envelope.encode())
        .map_err(|e| PublishError::Rejected(format!("envelope is not UTF-8: {e}")))?;
    // The promise of `max_entry_bytes`: an envelope above it is refused,
    // whatever its attributes come to.
    let limit = SQS_MAX_ENTRY_BYTES - ATTRIBUTE_RESERVE;
    if body.len() > limit {
        return Err(PublishError::Rejected(format!(
            "entry of {} bytes exceeds the SQS limit of {limit} bytes (262,144 less room for the message attributes)",
            body.len()
        )));
    }
    let message_id = envelope.id.to_string();
    let mut attributes = HashMap::new();
    let mut size = body.len();
    size += put_attribute(
        &mut attributes,
        "wal-message-id",
        "String",
        message_id.clone(),
    )?;
    size += put_attribute(
        &mut attributes,
        "wal-namespace",
        "String",
        envelope.namespace.clone(),
    )?;
    size += put_attribute(
        &mut attributes,
        "wal-partition",
        "Number",
        envelope.partition.to_string(),
    )?;
    size += put_attribute(
        &mut attributes,
        "wal-request-id",
        "String",
        envelope.request_id.clone(),
    )?;
    if let Some(tp) = &envelope.trace.traceparent {
        size += put_attribute(&mut attributes, "traceparent", "String", tp.clone())?;
    }
    size += put_attribute(
        &mut attributes,
        "wal-due-at-ms",
        "Number",
        envelope.due_at_ms.to_string(),
    )?;
    if size > SQS_MAX_ENTRY_BYTES {
        return Err(PublishError::Rejected(format!(
            "entry of {size} bytes exceeds the SQS limit of {SQS_MAX_ENTRY_BYTES} bytes"
        )));
    }
    // The metadata is in the body too: as an attribute only when it fits.
    if let Some(meta) = envelope.metadata.as_ref().filter(|m| !m.is_empty()) {
        if let Ok(json) = serde_json::to_string(meta) {
            let extra = "wal-metadata".len() + "String".len() + json.len();
            if size + extra <= SQS_MAX_ENTRY_BYTES {
                size += put_attribute(&mut attributes, "wal-metadata", "String", json)?;
            }
        }
    }
    let delay = delay_seconds(envelope.due_at_ms, now_ms, fifo);
    let fifo_ids = fifo.then(|| {
        let group = envelope
            .partition_key
            .as_deref()
            .map(group_id)
            .unwrap_or_else(|| message_id.clone());
        (group, message_id)
    });
    Ok(Prepared {
        body,
        attributes,
        size,
        delay_seconds: (delay > 0).then_some(delay),
        fifo: fifo_ids,
    })
}

/// Splits `entries` into calls of at most 10 entries and
/// [`SQS_MAX_ENTRY_BYTES`] in total, keeping their order.
fn chunk(entries: Vec<(usize, Prepared)>) -> Vec<Vec<(usize, Prepared)>> {
    let mut chunks: Vec<Vec<(usize, Prepared)>> = Vec::new();
    let mut current: Vec<(usize, Prepared)> = Vec::new();
    let mut bytes = 0usize;
    for (i, p) in entries {
        if !current.is_empty()
            && (current.len() == MAX_BATCH_ENTRIES || bytes + p.size > SQS_MAX_ENTRY_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += p.size;
        current.push((i, p));
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn appended(message_id: &str) -> PublishOutcome {
    PublishOutcome::Appended {
        position: message_id.to_string(),
        durability: Durability::True,
    }
}

/// `SendMessage` of one message.
async fn send_one(client: &Client, url: &str, p: Prepared) -> PublishOutcome {
    let mut req = client
        .send_message()
        .queue_url(url)
        .message_body(p.body)
        .set_message_attributes(Some(p.attributes))
        .set_delay_seconds(p.delay_seconds);
    if let Some((group, dedup)) = p.fifo {
        req = req.message_group_id(group).message_deduplication_id(dedup);
    }
    match req.send().await {
        Ok(out) => match out.message_id() {
            Some(id) => appended(id),
            // SQS answered success: the message is stored, even without an id.
            None => appended(""),
        },
        Err(e) => {
            let err = publish_error(&e);
            tracing::warn!(error = %err, "SQS SendMessage failed");
            PublishOutcome::Failed(err)
        }
    }
}

/// `SendMessageBatch` of one chunk; one outcome per entry, by batch index.
async fn send_chunk(
    client: Client,
    url: String,
    chunk: Vec<(usize, Prepared)>,
) -> Vec<(usize, PublishOutcome)> {
    let mut entries = Vec::with_capacity(chunk.len());
    let mut outcomes: Vec<(usize, PublishOutcome)> = Vec::with_capacity(chunk.len());
    let mut sent: Vec<usize> = Vec::with_capacity(chunk.len());
    for (n, (i, p)) in chunk.into_iter().enumerate() {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(n.to_string())
            .message_body(p.body)
            .set_message_attributes(Some(p.attributes))
            .set_delay_seconds(p.delay_seconds);
        if let Some((group, dedup)) = p.fifo {
            entry = entry
                .message_group_id(group)
                .message_deduplication_id(dedup);
        }
        match entry.build() {
            Ok(e) => {
                entries.push(e);
                sent.push(i);
            }
            Err(e) => outcomes.push((
                i,
                PublishOutcome::Failed(PublishError::Rejected(format!("invalid batch entry: {e}"))),
            )),
        }
    }
    if entries.is_empty() {
        return outcomes;
    }
    let reply = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await;
    match reply {
        Ok(out) => {
            let mut by_id: HashMap<&str, PublishOutcome> = HashMap::new();
            for ok in out.successful() {
                by_id.insert(ok.id(), appended(ok.message_id()));
            }
            for failed in out.failed() {
                let text = format!(
                    "{}: {}",
                    failed.code(),
                    failed.message().unwrap_or("no message")
                );
                let err = if failed.sender_fault() {
                    PublishError::Rejected(text)
                } else {
                    // SQS reported the entry failed: it was not stored.
                    PublishError::Unavailable(text)
                };
                tracing::warn!(error = %err, "SQS batch entry failed");
                by_id.insert(failed.id(), PublishOutcome::Failed(err));
            }
            for (n, i) in sent.into_iter().enumerate() {
                let outcome = by_id.remove(n.to_string().as_str()).unwrap_or_else(|| {
                    PublishOutcome::Failed(PublishError::Timeout(
                        "SQS answered the batch without this entry".into(),
                    ))
                });
                outcomes.push((i, outcome));
            }
        }
        Err(e) => {
            let err = publish_error(&e);
            tracing::warn!(error = %err, entries = sent.len(), "SQS SendMessageBatch failed");
            outcomes.extend(
                sent.into_iter()
                    .map(|i| (i, PublishOutcome::Failed(err.clone()))),
            );
        }
    }
    outcomes
}

#[async_trait]
impl LogProducer for SqsProducer {
    #[tracing::instrument(skip_all, fields(namespace = %settings.namespace, queue = %settings.topic, batch = batch.len()))]
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let url = match self.resolve(&settings.topic).await {
            Ok(url) => url,
            Err(err) => {
                tracing::warn!(error = %err, "cannot publish to SQS");
                return batch
                    .iter()
                    .map(|_| PublishOutcome::Failed(err.clone()))
                    .collect();
            }
        };
        let fifo = is_fifo(&url);
        let now = now_ms();
        let mut outcomes: Vec<Option<PublishOutcome>> = vec![None; batch.len()];
        let mut ready: Vec<(usize, Prepared)> = Vec::with_capacity(batch.len());
        for (i, msg) in batch.iter().enumerate() {
            match prepare(&msg.envelope, fifo, now) {
                Ok(p) => ready.push((i, p)),
                Err(e) => outcomes[i] = Some(PublishOutcome::Failed(e)),
            }
        }

        if ready.len() == 1 {
            let (i, p) = ready.pop().expect("one entry");
            outcomes[i] = Some(send_one(&self.client, &url, p).await);
        } else if !ready.is_empty() {
            let chunks = chunk(ready);
            if chunks.len() == 1 || fifo {
                // FIFO: one chunk after the other, so a group's order is
                // the batch's order.
                for c in chunks {
                    for (i, o) in send_chunk(self.client.clone(), url.clone(), c).await {
                        outcomes[i] = Some(o);
                    }
                }
            } else {
                let mut tasks = tokio::task::JoinSet::new();
                for c in chunks {
                    tasks.spawn(
                        send_chunk(self.client.clone(), url.clone(), c)
                            .instrument(tracing::Span::current()),
                    );
                }
                while let Some(res) = tasks.join_next().await {
                    match res {
                        Ok(done) => {
                            for (i, o) in done {
                                outcomes[i] = Some(o);
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "SQS batch task failed"),
                    }
                }
            }
        }

        // An entry without an answer (its task panicked): maybe sent.
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    PublishOutcome::Failed(PublishError::Timeout(
                        "the SQS send did not complete".into(),
                    ))
                })
            })
            .collect()
    }

    /// `ListQueues` with at most one result.
    async fn ping(&self) -> Result<(), BackendError> {
        self.client
            .list_queues()
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend_error(&e))
    }

    /// [`SQS_MAX_ENTRY_BYTES`] less room for the message attributes.
    fn max_entry_bytes(&self) -> Option<usize> {
        Some(SQS_MAX_ENTRY_BYTES - ATTRIBUTE_RESERVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(size: usize) -> Prepared {
        Prepared {
            body: String::new(),
            attributes: HashMap::new(),
            size,
            delay_seconds: None,
            fifo: None,
        }
    }

    #[test]
    fn delays() {
        let now = 1_000_000;
        assert_eq!(delay_seconds(now, now, false), 0);
        assert_eq!(delay_seconds(now - 5, now, false), 0);
        assert_eq!(delay_seconds(now + 999, now, false), 0);
        assert_eq!(delay_seconds(now + 3_500, now, false), 3);
        assert_eq!(delay_seconds(now + 900_000, now, false), 900);
        assert_eq!(delay_seconds(now + 900_001, now, false), 0);
        assert_eq!(delay_seconds(now + 3_500, now, true), 0);
    }

    #[test]
    fn group_ids_are_valid() {
        assert_eq!(group_id("customer-42"), "customer-42");
        assert_eq!(group_id("a b%"), "a%20b%25");
        assert_eq!(group_id("é"), "%C3%A9");
        assert_eq!(group_id(""), "-");
        assert_eq!(group_id(&"x".repeat(300)).len(), MAX_GROUP_ID_LEN);
        assert!(group_id(&"é".repeat(100)).len() <= MAX_GROUP_ID_LEN);
    }

    #[test]
    fn chunks_by_count_and_bytes() {
        let sizes: Vec<(usize, Prepared)> = (0..25).map(|i| (i, prepared(10))).collect();
        let chunks = chunk(sizes);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        assert_eq!(chunks[2][0].0, 20);

        let big = SQS_MAX_ENTRY_BYTES / 2;
        let sizes: Vec<(usize, Prepared)> = (0..3).map(|i| (i, prepared(big))).collect();
        assert_eq!(
            chunk(sizes).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let sizes: Vec<(usize, Prepared)> = (0..3).map(|i| (i, prepared(big + 1))).collect();
        assert_eq!(
            chunk(sizes).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }
}
