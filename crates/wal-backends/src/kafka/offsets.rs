//! Out-of-order ack tracking for one partition.
//!
//! Kafka commits a single position per partition: "everything below this
//! offset is done". The worker, though, handles the entries of one batch
//! concurrently and acks them in whatever order they finish. The tracker
//! turns those acks into a position that never passes an entry still being
//! handled:
//!
//! * while some received offset is not handled yet, the position is the
//!   *lowest* such offset (it and everything after it are read again after a
//!   rebalance or a crash: at-least-once);
//! * when none is pending, it is the highest handled offset + 1.

use std::collections::BTreeSet;

/// Received-but-unhandled offsets of one partition, and what may be committed.
#[derive(Clone, Debug, Default)]
pub(crate) struct OffsetTracker {
    /// Offsets handed out and not acked yet.
    pending: BTreeSet<i64>,
    /// Highest offset acked so far.
    highest_handled: Option<i64>,
    /// The position last stored for commit, if any.
    stored: Option<i64>,
}

impl OffsetTracker {
    /// `offset` was handed to the worker.
    pub(crate) fn received(&mut self, offset: i64) {
        self.pending.insert(offset);
    }

    /// `offset` is handled. Answers whether it was pending (an offset this
    /// tracker never handed out, or already acked, changes nothing).
    pub(crate) fn handled(&mut self, offset: i64) -> bool {
        if !self.pending.remove(&offset) {
            return false;
        }
        self.highest_handled = Some(self.highest_handled.map_or(offset, |h| h.max(offset)));
        true
    }

    /// The next offset to consume that may be committed: the lowest pending
    /// offset, or the highest handled + 1 when none is pending; `None` before
    /// anything was received.
    pub(crate) fn committable(&self) -> Option<i64> {
        match self.pending.first() {
            Some(&lowest) => Some(lowest),
            None => self.highest_handled.map(|h| h + 1),
        }
    }

    /// The committable position when it differs from the one last stored.
    pub(crate) fn to_store(&self) -> Option<i64> {
        self.committable().filter(|&c| Some(c) != self.stored)
    }

    /// Records that `position` was stored.
    pub(crate) fn mark_stored(&mut self, position: i64) {
        self.stored = Some(position);
    }

    /// How many offsets are handed out and not acked.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tracker_commits_nothing() {
        let t = OffsetTracker::default();
        assert_eq!(t.committable(), None);
        assert_eq!(t.to_store(), None);
    }

    #[test]
    fn in_order_acks_advance_past_the_last() {
        let mut t = OffsetTracker::default();
        for o in 10..13 {
            t.received(o);
        }
        assert_eq!(t.committable(), Some(10));
        assert!(t.handled(10));
        assert_eq!(t.committable(), Some(11));
        assert!(t.handled(11));
        assert!(t.handled(12));
        assert_eq!(t.committable(), Some(13));
    }

    #[test]
    fn a_gap_holds_the_position_back() {
        let mut t = OffsetTracker::default();
        for o in 0..4 {
            t.received(o);
        }
        assert!(t.handled(0));
        assert!(t.handled(2));
        assert!(t.handled(3));
        assert_eq!(t.committable(), Some(1), "offset 1 is still being handled");
        assert!(t.handled(1));
        assert_eq!(t.committable(), Some(4));
    }

    #[test]
    fn unknown_and_repeated_acks_change_nothing() {
        let mut t = OffsetTracker::default();
        t.received(5);
        assert!(!t.handled(4));
        assert!(!t.handled(99));
        assert_eq!(t.committable(), Some(5));
        assert!(t.handled(5));
        assert!(!t.handled(5));
        assert_eq!(t.committable(), Some(6));
    }

    #[test]
    fn to_store_answers_only_changes() {
        let mut t = OffsetTracker::default();
        t.received(0);
        t.received(1);
        assert_eq!(t.to_store(), Some(0));
        t.mark_stored(0);
        assert_eq!(t.to_store(), None);
        t.handled(1);
        assert_eq!(t.to_store(), None, "still 0: offset 0 pending");
        t.handled(0);
        assert_eq!(t.to_store(), Some(2));
    }

    /// A tiny deterministic generator (xorshift64*), so the property cases
    /// below need no extra dependency and replay identically.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Property: receiving consecutive offsets in batches and acking them in
    /// random order (with duplicate and stray acks), the committable position
    /// after every step is exactly "lowest unacked received offset, else
    /// highest acked + 1", never passes an unacked offset, never moves
    /// backwards, and ends past the last offset.
    #[test]
    fn random_ack_orders_never_skip_an_unhandled_offset() {
        for seed in 1..=500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let start = rng.below(1000) as i64;
            let total = 1 + rng.below(60) as i64;
            let mut t = OffsetTracker::default();
            let mut next = start;
            let mut outstanding: Vec<i64> = Vec::new();
            let mut acked: BTreeSet<i64> = BTreeSet::new();
            let mut last: Option<i64> = None;
            while next < start + total || !outstanding.is_empty() {
                let receive = next < start + total && (outstanding.is_empty() || rng.below(3) == 0);
                if receive {
                    let batch = 1 + rng.below(8) as i64;
                    for _ in 0..batch {
                        if next < start + total {
                            t.received(next);
                            outstanding.push(next);
                            next += 1;
                        }
                    }
                } else {
                    let i = rng.below(outstanding.len());
                    let o = outstanding.swap_remove(i);
                    assert!(t.handled(o), "seed {seed}: {o} was pending");
                    acked.insert(o);
                    // Duplicate and stray acks are ignored.
                    assert!(!t.handled(o));
                    assert!(!t.handled(start + total + 5));
                }
                let expected = outstanding
                    .iter()
                    .copied()
                    .min()
                    .or_else(|| acked.last().map(|h| h + 1));
                let got = t.committable();
                assert_eq!(got, expected, "seed {seed}");
                if let Some(c) = got {
                    assert!(
                        (start..c).all(|o| acked.contains(&o)),
                        "seed {seed}: position {c} passes an unhandled offset"
                    );
                    assert!(last.is_none_or(|l| c >= l), "seed {seed}: moved back");
                    last = Some(c);
                }
                assert_eq!(t.pending(), outstanding.len());
            }
            assert_eq!(t.committable(), Some(start + total), "seed {seed}");
        }
    }
}
