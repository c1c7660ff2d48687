//! A circuit breaker per target, judged by its failure rate: once a window
//! (`WAL_BREAKER_WINDOW_MS`) holds at least `WAL_BREAKER_MIN_CALLS`
//! deliveries and at least `WAL_BREAKER_FAILURE_RATE` % of them failed
//! retryably, the target is *open* for a cooldown; then it is *half-open*
//! and admits `WAL_BREAKER_PROBES` probe deliveries at once: as many
//! successes close it, one failure opens it again.
//!
//! A target that is alive but flaky (some calls fail, retries succeed) stays
//! closed while its traffic is below the minimum or its failure rate below
//! the threshold: its messages are retried on their own schedule, not held
//! back. A dead target opens, and its messages are *parked* (see
//! `parking.rs`) until [`CircuitBreaker::release`] says to let probes or
//! everything through.
//!
//! Pure logic over a caller-supplied clock, so it is unit-tested without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a breaker judges its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// The window failure rates are measured over.
    pub window: Duration,
    /// Fewest deliveries in the window before the rate counts.
    pub min_calls: u32,
    /// Failure rate (percent) that opens the breaker; 0 disables it.
    pub failure_rate_percent: u32,
    /// How long an open breaker waits before admitting probes.
    pub cooldown: Duration,
    /// Probes a half-open breaker admits at once (and successes that close it).
    pub probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(30),
            min_calls: 50,
            failure_rate_percent: 50,
            cooldown: Duration::from_secs(5),
            probes: 5,
        }
    }
}

/// Whether a delivery may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed breaker: deliver.
    Allowed,
    /// Half-open: this delivery is one of the probes.
    Probe,
    /// Open, or every probe is out: do not deliver; park the message.
    Paused,
}

/// What to do with the target's parked messages now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Nothing: the breaker is open and cooling down, or probes are out.
    Hold,
    /// Let this many through as probes.
    Probes(u32),
    /// The breaker is closed and the target answers: let every one through.
    All,
}

/// What the breaker looks like, for status pages and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Deliveries in the current window.
    pub calls: u32,
    /// Retryable failures among them.
    pub failures: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        since: Instant,
        left: u32,
        successes: u32,
    },
}

const BUCKETS: usize = 10;

/// Call and failure counts over a sliding window of [`BUCKETS`] buckets.
#[derive(Debug)]
struct Window {
    origin: Instant,
    width: Duration,
    buckets: [(u64, u32, u32); BUCKETS],
}

impl Window {
    fn new(origin: Instant, window: Duration) -> Self {
        Self {
            origin,
            width: (window / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_nanos() / self.width.as_nanos()) as u64
    }

    fn record(&mut self, now: Instant, failed: bool) {
        let i = self.index(now);
        let b = &mut self.buckets[(i % BUCKETS as u64) as usize];
        if b.0 != i {
            *b = (i, 0, 0);
        }
        b.1 += 1;
        b.2 += u32::from(failed);
    }

    fn totals(&self, now: Instant) -> (u32, u32) {
        let i = self.index(now);
        self.buckets
            .iter()
            .filter(|b| b.0 != u64::MAX && b.0 <= i && i - b.0 < BUCKETS as u64)
            .fold((0, 0), |(c, f), b| (c + b.1, f + b.2))
    }

    fn clear(&mut self) {
        self.buckets = [(u64::MAX, 0, 0); BUCKETS];
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: Window,
    /// When a closed breaker without evidence last let probes go.
    last_blind_release: Option<Instant>,
}

/// One target's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    inner: Mutex<Inner>,
    settings: BreakerSettings,
}

impl CircuitBreaker {
    /// A closed breaker judging by `settings`, its window starting at `now`.
    pub fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: State::Closed,
                window: Window::new(now, settings.window),
                last_blind_release: None,
            }),
            settings,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Half-open with every probe available, from `now`.
    fn half_open(&self, now: Instant) -> State {
        State::HalfOpen {
            since: now,
            left: self.settings.probes.max(1),
            successes: 0,
        }
    }

    /// A half-open breaker whose probes never reported back (their tasks
    /// died) must not stay half-open forever.
    fn probes_lost(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) > self.settings.cooldown * 4
    }

    /// Asks to deliver at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Admission::Allowed,
            State::Open { until } if now < until => Admission::Paused,
            State::Open { .. } => {
                inner.state = self.half_open(now);
                self.take_probe(&mut inner)
            }
            State::HalfOpen { since, .. } if self.probes_lost(since, now) => {
                inner.state = self.half_open(now);
                self.take_probe(&mut inner)
            }
            State::HalfOpen { .. } => self.take_probe(&mut inner),
        }
    }

    fn take_probe(&self, inner: &mut Inner) -> Admission {
        match &mut inner.state {
            State::HalfOpen { left, .. } if *left > 0 => {
                *left -= 1;
                Admission::Probe
            }
            _ => Admission::Paused,
        }
    }

    /// What to do with parked messages at `now`; moving to half-open when
    /// the cooldown is over, so the probes it answers are handed out once.
    pub fn release(&self, now: Instant) -> Release {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {
                let (calls, failures) = inner.window.totals(now);
                if calls > failures {
                    // This worker sees the target answer.
                    return Release::All;
                }
                // Parked by another worker (whose breaker opened), and no
                // evidence here either way: try a few, once per cooldown.
                let due = inner
                    .last_blind_release
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.settings.cooldown);
                if due {
                    inner.last_blind_release = Some(now);
                    Release::Probes(self.settings.probes.max(1))
                } else {
                    Release::Hold
                }
            }
            State::Open { until } if now >= until => {
                inner.state = self.half_open(now);
                Release::Probes(self.settings.probes.max(1))
            }
            State::HalfOpen { since, .. } if self.probes_lost(since, now) => {
                inner.state = self.half_open(now);
                Release::Probes(self.settings.probes.max(1))
            }
            State::Open { .. } | State::HalfOpen { .. } => Release::Hold,
        }
    }

    /// The target accepted a delivery (or refused it permanently: the target
    /// is up, the message is what it refuses).
    pub fn on_success(&self, now: Instant) {
        let mut inner = self.lock();
        match &mut inner.state {
            State::Closed => inner.window.record(now, false),
            State::HalfOpen { successes, .. } => {
                *successes += 1;
                if *successes >= self.settings.probes.max(1) {
                    let successes = *successes;
                    inner.state = State::Closed;
                    // A fresh window, holding the probes' successes.
                    inner.window.clear();
                    for _ in 0..successes {
                        inner.window.record(now, false);
                    }
                }
            }
            // A delivery admitted before the breaker opened.
            State::Open { .. } => {}
        }
    }

    /// A retryable failure at `now`. Returns `true` when this opened the breaker.
    pub fn on_failure(&self, now: Instant) -> bool {
        if self.settings.failure_rate_percent == 0 {
            return false;
        }
        let mut inner = self.lock();
        let open = State::Open {
            until: now + self.settings.cooldown,
        };
        match inner.state {
            State::Closed => {
                inner.window.record(now, true);
                let (calls, failures) = inner.window.totals(now);
                let tripped = calls >= self.settings.min_calls.max(1)
                    && u64::from(failures) * 100
                        >= u64::from(self.settings.failure_rate_percent) * u64::from(calls);
                if tripped {
                    inner.state = open;
                }
                tripped
            }
            State::HalfOpen { .. } => {
                inner.state = open;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// The breaker's state and window at `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let inner = self.lock();
        let (calls, failures) = inner.window.totals(now);
        Snapshot {
            state: match inner.state {
                State::Closed => "closed",
                State::Open { .. } => "open",
                State::HalfOpen { .. } => "half_open",
            },
            calls,
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min_calls: u32, rate: u32, probes: u32) -> BreakerSettings {
        BreakerSettings {
            window: Duration::from_secs(10),
            min_calls,
            failure_rate_percent: rate,
            cooldown: Duration::from_secs(5),
            probes,
        }
    }

    #[test]
    fn opens_on_the_failure_rate_once_the_window_holds_enough_calls() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(10, 50, 1), t);
        // 9 failures: below the minimum, however bad.
        for _ in 0..9 {
            assert!(!b.on_failure(t));
        }
        assert_eq!(b.admit(t), Admission::Allowed);
        assert!(b.on_failure(t), "10 calls, 100 % failed");
        assert_eq!(b.admit(t), Admission::Paused);
        assert_eq!(b.snapshot(t).state, "open");
    }

    #[test]
    fn a_flaky_target_below_the_rate_stays_closed() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(10, 50, 1), t);
        for _ in 0..100 {
            b.on_success(t);
            assert!(!b.on_failure(t), "one call in three failed");
            b.on_success(t);
        }
        assert_eq!(b.admit(t), Admission::Allowed);
    }

    #[test]
    fn old_calls_leave_the_window() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(10, 50, 1), t);
        for _ in 0..9 {
            b.on_failure(t);
        }
        let later = t + Duration::from_secs(11);
        assert!(!b.on_failure(later), "the 9 earlier failures expired");
        assert_eq!(b.snapshot(later).calls, 1);
    }

    #[test]
    fn half_open_admits_several_probes_and_closes_when_they_all_succeed() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(1, 50, 3), t);
        assert!(b.on_failure(t));
        assert_eq!(b.release(t), Release::Hold, "cooling down");
        let later = t + Duration::from_secs(6);
        assert_eq!(b.release(later), Release::Probes(3));
        assert_eq!(
            b.release(later),
            Release::Hold,
            "probes are handed out once"
        );
        for _ in 0..3 {
            assert_eq!(b.admit(later), Admission::Probe);
        }
        assert_eq!(b.admit(later), Admission::Paused);
        b.on_success(later);
        b.on_success(later);
        assert_eq!(b.snapshot(later).state, "half_open");
        b.on_success(later);
        assert_eq!(b.admit(later), Admission::Allowed);
        assert_eq!(b.release(later), Release::All);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(1, 50, 2), t);
        b.on_failure(t);
        let later = t + Duration::from_secs(6);
        assert_eq!(b.admit(later), Admission::Probe);
        assert!(b.on_failure(later));
        assert_eq!(b.admit(later), Admission::Paused);
        assert_eq!(b.release(later), Release::Hold);
    }

    #[test]
    fn lost_probes_do_not_wedge_the_breaker() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(1, 50, 1), t);
        b.on_failure(t);
        let probe_at = t + Duration::from_secs(6);
        assert_eq!(b.admit(probe_at), Admission::Probe);
        assert_eq!(b.admit(probe_at), Admission::Paused);
        let much_later = probe_at + Duration::from_secs(21);
        assert_eq!(b.release(much_later), Release::Probes(1));
    }

    #[test]
    fn a_closed_breaker_without_evidence_lets_probes_go_once_per_cooldown() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(10, 50, 2), t);
        assert_eq!(b.release(t), Release::Probes(2));
        assert_eq!(b.release(t + Duration::from_secs(1)), Release::Hold);
        assert_eq!(b.release(t + Duration::from_secs(6)), Release::Probes(2));
        b.on_success(t + Duration::from_secs(6));
        assert_eq!(b.release(t + Duration::from_secs(6)), Release::All);
    }

    #[test]
    fn a_zero_rate_never_opens() {
        let t = Instant::now();
        let b = CircuitBreaker::new(settings(1, 0, 1), t);
        for _ in 0..100 {
            assert!(!b.on_failure(t));
        }
        assert_eq!(b.admit(t), Admission::Allowed);
    }
}
