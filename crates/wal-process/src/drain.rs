//! The drain deadline: once a stop was asked for, in-flight work (HTTP
//! requests, deliveries) may run until the grace period ends; what is left
//! then is cut off (the gateway closes connections, the worker hands entries
//! back). Kubernetes' `terminationGracePeriodSeconds` must exceed it.

use std::time::{Duration, Instant};

/// The moment in-flight work must be done by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainDeadline(Instant);

impl DrainDeadline {
    /// `grace` from now (call it when the stop is asked for).
    pub fn after(grace: Duration) -> Self {
        Self(Instant::now() + grace)
    }

    /// `grace_secs` seconds from now (the programs' `WAL_SHUTDOWN_GRACE_SECS`).
    pub fn after_secs(grace_secs: u64) -> Self {
        Self::after(Duration::from_secs(grace_secs))
    }

    /// The deadline as an instant.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Whether it has passed.
    pub fn passed(self) -> bool {
        Instant::now() >= self.0
    }

    /// Sleeps until the deadline.
    pub async fn sleep(self) {
        tokio::time::sleep_until(self.0.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_grace_has_passed_at_once() {
        assert!(DrainDeadline::after(Duration::ZERO).passed());
        assert!(!DrainDeadline::after_secs(60).passed());
    }
}
