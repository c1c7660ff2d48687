//! Retry policy: *when* to try again. Whether an outcome is retryable at all is
//! decided by each target; this module only computes delays, purely.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// How the delay grows from one attempt to the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackoffStrategy {
    /// `initialDelayMs * 2^(attempt-1)`.
    #[default]
    Exponential,
    /// `initialDelayMs * attempt`.
    Linear,
    /// Always `initialDelayMs`.
    Constant,
}

/// Largest `maxAttempts` accepted (SPEC §2).
pub const MAX_ATTEMPTS_LIMIT: u32 = 20;
/// Largest `maxDelayMs` accepted: one day.
pub const MAX_DELAY_LIMIT_MS: u64 = 86_400_000;
/// Largest `jitterMs` accepted: one minute.
pub const MAX_JITTER_LIMIT_MS: u64 = 60_000;

/// A complete retry policy (the namespace default, or a request's override
/// merged onto it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Total delivery attempts per target before the message is dead-lettered
    /// (0 and 1 both mean: no retry).
    pub max_attempts: u32,
    /// Growth of the delay between attempts.
    pub backoff_strategy: BackoffStrategy,
    /// Delay before the first retry, in milliseconds.
    pub initial_delay_ms: u64,
    /// Cap on the delay (before jitter), in milliseconds.
    pub max_delay_ms: u64,
    /// Uniform random extra delay in `[0, jitterMs]` added to each retry.
    pub jitter_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_strategy: BackoffStrategy::Exponential,
            initial_delay_ms: 1_000,
            max_delay_ms: 30_000,
            jitter_ms: 500,
        }
    }
}

/// A partial retry policy as sent in a write request; absent fields keep the
/// namespace's values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicyOverride {
    /// See [`RetryPolicy::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`RetryPolicy::backoff_strategy`].
    pub backoff_strategy: Option<BackoffStrategy>,
    /// See [`RetryPolicy::initial_delay_ms`].
    pub initial_delay_ms: Option<u64>,
    /// See [`RetryPolicy::max_delay_ms`].
    pub max_delay_ms: Option<u64>,
    /// See [`RetryPolicy::jitter_ms`].
    pub jitter_ms: Option<u64>,
}

impl RetryPolicy {
    /// This policy with the fields of `over` that are set replacing its own.
    pub fn merged(&self, over: &RetryPolicyOverride) -> RetryPolicy {
        RetryPolicy {
            max_attempts: over.max_attempts.unwrap_or(self.max_attempts),
            backoff_strategy: over.backoff_strategy.unwrap_or(self.backoff_strategy),
            initial_delay_ms: over.initial_delay_ms.unwrap_or(self.initial_delay_ms),
            max_delay_ms: over.max_delay_ms.unwrap_or(self.max_delay_ms),
            jitter_ms: over.jitter_ms.unwrap_or(self.jitter_ms),
        }
    }

    /// Checks the bounds of every field; `prefix` is the field path of the
    /// policy (e.g. `lifecycle.retryPolicy`).
    pub fn validate(&self, prefix: &str, errors: &mut FieldErrors) {
        if self.max_attempts > MAX_ATTEMPTS_LIMIT {
            errors.push(
                format!("{prefix}.maxAttempts"),
                format!("must be between 0 and {MAX_ATTEMPTS_LIMIT}"),
            );
        }
        if self.max_delay_ms > MAX_DELAY_LIMIT_MS {
            errors.push(
                format!("{prefix}.maxDelayMs"),
                format!("must be at most {MAX_DELAY_LIMIT_MS}"),
            );
        }
        if self.initial_delay_ms > self.max_delay_ms {
            errors.push(
                format!("{prefix}.initialDelayMs"),
                "must not exceed maxDelayMs".to_string(),
            );
        }
        if self.jitter_ms > MAX_JITTER_LIMIT_MS {
            errors.push(
                format!("{prefix}.jitterMs"),
                format!("must be at most {MAX_JITTER_LIMIT_MS}"),
            );
        }
    }

    /// The delay before the retry that follows failed attempt number
    /// `attempt` (1-based), capped at `maxDelayMs`, without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let n = u64::from(attempt.max(1));
        let raw = match self.backoff_strategy {
            BackoffStrategy::Constant => self.initial_delay_ms,
            BackoffStrategy::Linear => self.initial_delay_ms.saturating_mul(n),
            BackoffStrategy::Exponential => {
                let shift = (n - 1).min(63) as u32;
                self.initial_delay_ms
                    .saturating_mul(1u64.checked_shl(shift).unwrap_or(u64::MAX))
            }
        };
        Duration::from_millis(raw.min(self.max_delay_ms))
    }

    /// [`base_delay`](Self::base_delay) plus a uniform jitter in `[0, jitterMs]`.
    pub fn next_delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let jitter = if self.jitter_ms == 0 {
            0
        } else {
            rng.random_range(0..=self.jitter_ms)
        };
        self.base_delay(attempt) + Duration::from_millis(jitter)
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another_attempt(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn strategy() -> impl Strategy<Value = BackoffStrategy> {
        prop_oneof![
            Just(BackoffStrategy::Exponential),
            Just(BackoffStrategy::Linear),
            Just(BackoffStrategy::Constant)
        ]
    }

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (
            0u32..=20,
            strategy(),
            0u64..=100_000,
            0u64..=MAX_DELAY_LIMIT_MS,
            0u64..=MAX_JITTER_LIMIT_MS,
        )
            .prop_map(
                |(max_attempts, backoff_strategy, initial, max, jitter_ms)| RetryPolicy {
                    max_attempts,
                    backoff_strategy,
                    initial_delay_ms: initial.min(max),
                    max_delay_ms: max,
                    jitter_ms,
                },
            )
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff_strategy: BackoffStrategy::Exponential,
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            jitter_ms: 0,
        };
        let got: Vec<u128> = (1..=6).map(|a| p.base_delay(a).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn linear_and_constant() {
        let mut p = RetryPolicy {
            backoff_strategy: BackoffStrategy::Linear,
            initial_delay_ms: 250,
            max_delay_ms: 1_000,
            jitter_ms: 0,
            ..RetryPolicy::default()
        };
        let got: Vec<u128> = (1..=5).map(|a| p.base_delay(a).as_millis()).collect();
        assert_eq!(got, vec![250, 500, 750, 1000, 1000]);
        p.backoff_strategy = BackoffStrategy::Constant;
        assert!((1..=5).all(|a| p.base_delay(a).as_millis() == 250));
    }

    #[test]
    fn merge_keeps_unset_fields() {
        let base = RetryPolicy::default();
        let merged = base.merged(&RetryPolicyOverride {
            max_attempts: Some(2),
            ..Default::default()
        });
        assert_eq!(merged.max_attempts, 2);
        assert_eq!(merged.initial_delay_ms, base.initial_delay_ms);
    }

    proptest! {
        #[test]
        fn delay_is_capped_and_jitter_bounded(p in policy(), attempt in 0u32..10_000, seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let base = p.base_delay(attempt);
            let d = p.next_delay(attempt, &mut rng);
            prop_assert!(base <= Duration::from_millis(p.max_delay_ms));
            prop_assert!(d >= base);
            prop_assert!(d <= base + Duration::from_millis(p.jitter_ms));
        }

        #[test]
        fn base_delay_never_decreases(p in policy(), attempt in 1u32..10_000) {
            prop_assert!(p.base_delay(attempt + 1) >= p.base_delay(attempt));
        }

        #[test]
        fn validated_policies_have_bounded_attempts(p in policy()) {
            let mut errors = FieldErrors::default();
            p.validate("retryPolicy", &mut errors);
            prop_assert!(errors.is_empty());
            prop_assert!(p.allows_another_attempt(0));
            prop_assert!(!p.allows_another_attempt(p.max_attempts.max(1)));
        }
    }
}
