//! A circuit breaker per target: after `threshold` consecutive retryable
//! failures the target is *paused* for a cooldown; then one probe delivery
//! is let through (half-open): success closes the breaker, failure opens it
//! again. While paused, the worker parks the target's messages in the retry
//! set until the breaker may close, without counting an attempt, so a target
//! that is down neither burns its messages' retries nor holds up the others.
//!
//! Pure logic over a caller-supplied clock, so it is unit-tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether a delivery may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed breaker: deliver.
    Allowed,
    /// Half-open: this delivery is the probe.
    Probe,
    /// Open (or a probe is running): do not deliver before `until`.
    Paused {
        /// When to try again.
        until: Instant,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing_since: Instant },
}

/// One target's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures (0 disables the breaker),
    /// for `cooldown` at a time.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold,
            cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to deliver at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Paused { until },
            State::Open { .. } => {
                *state = State::HalfOpen { probing_since: now };
                Admission::Probe
            }
            State::HalfOpen { probing_since } => {
                // A probe that never reported back (its task died) must not
                // keep the breaker half-open forever.
                if now.duration_since(probing_since) > self.cooldown * 4 {
                    *state = State::HalfOpen { probing_since: now };
                    Admission::Probe
                } else {
                    Admission::Paused {
                        until: now + self.probe_wait(),
                    }
                }
            }
        }
    }

    /// How long others wait while a probe runs.
    fn probe_wait(&self) -> Duration {
        self.cooldown.min(Duration::from_secs(1))
    }

    /// The target accepted a delivery (or refused it permanently: the target
    /// is up, the message is bad).
    pub fn on_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// A retryable failure at `now`. Returns `true` when this opened the breaker.
    pub fn on_failure(&self, now: Instant) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut state = self.lock();
        match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                *state = State::Open {
                    until: now + self.cooldown,
                };
                true
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::HalfOpen { .. } => {
                *state = State::Open {
                    until: now + self.cooldown,
                };
                true
            }
            State::Open { .. } => false,
        }
    }

    /// Whether deliveries are currently held back.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = CircuitBreaker::new(3, Duration::from_secs(5));
        let t = Instant::now();
        assert!(!b.on_failure(t));
        assert!(!b.on_failure(t));
        assert_eq!(b.admit(t), Admission::Allowed);
        assert!(b.on_failure(t));
        assert_eq!(
            b.admit(t),
            Admission::Paused {
                until: t + Duration::from_secs(5)
            }
        );
        assert!(b.is_open());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = CircuitBreaker::new(2, Duration::from_secs(5));
        let t = Instant::now();
        b.on_failure(t);
        b.on_success();
        assert!(!b.on_failure(t));
        assert_eq!(b.admit(t), Admission::Allowed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.on_failure(t);
        let later = t + Duration::from_secs(6);
        assert_eq!(b.admit(later), Admission::Probe);
        assert!(matches!(b.admit(later), Admission::Paused { .. }));
        b.on_success();
        assert_eq!(b.admit(later), Admission::Allowed);
        assert!(!b.is_open());
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t = Instant::now();
        b.on_failure(t);
        let later = t + Duration::from_secs(6);
        assert_eq!(b.admit(later), Admission::Probe);
        assert!(b.on_failure(later));
        assert_eq!(
            b.admit(later),
            Admission::Paused {
                until: later + Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let b = CircuitBreaker::new(1, Duration::from_secs(1));
        let t = Instant::now();
        b.on_failure(t);
        let probe_at = t + Duration::from_secs(2);
        assert_eq!(b.admit(probe_at), Admission::Probe);
        assert_eq!(b.admit(probe_at + Duration::from_secs(5)), Admission::Probe);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = CircuitBreaker::new(0, Duration::from_secs(1));
        let t = Instant::now();
        for _ in 0..100 {
            assert!(!b.on_failure(t));
        }
        assert_eq!(b.admit(t), Admission::Allowed);
    }
}
