//! Runs every attempt of a target inside a `deliver` span.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use crate::{Delivery, DeliveryOutcome, Target};

/// A target whose attempts run in a `deliver` span (namespace, target,
/// message id, attempt) and end with one `debug` event naming the outcome.
pub(crate) struct Traced {
    pub namespace: String,
    pub identifier: String,
    pub inner: Arc<dyn Target>,
}

#[async_trait]
impl Target for Traced {
    async fn deliver(&self, delivery: Delivery<'_>) -> DeliveryOutcome {
        let span = tracing::info_span!(
            "deliver",
            namespace = %self.namespace,
            target = %self.identifier,
            message_id = %delivery.envelope.id,
            attempt = delivery.attempt,
        );
        async {
            let outcome = self.inner.deliver(delivery).await;
            match &outcome {
                DeliveryOutcome::Delivered => tracing::debug!(outcome = "delivered"),
                DeliveryOutcome::Retry { after, reason } => {
                    tracing::debug!(outcome = "retry", ?after, %reason)
                }
                DeliveryOutcome::Permanent { reason } => {
                    tracing::debug!(outcome = "permanent", %reason)
                }
            }
            outcome
        }
        .instrument(span)
        .await
    }

    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}
