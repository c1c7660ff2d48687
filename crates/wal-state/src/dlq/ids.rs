//! Stream entry ids and the filters that pick DLQ entries.
//!
//! A DLQ entry's id is assigned by Redis (`XADD … *`), so its milliseconds
//! are the time it was dead-lettered: a time filter is a range of ids
//! ([`DlqFilter::id_range`]), the reason and target conditions are checked
//! on each record while scanning ([`DlqFilter::matches`]). A page cursor is
//! the id where the next page starts.

use std::fmt;
use std::str::FromStr;

use wal_core::delivery::{DlqReason, DlqRecord};

/// A Redis stream entry id, `<ms>-<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The smallest id.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The first id of millisecond `ms`.
    pub fn first_of(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The last id of millisecond `ms`.
    pub fn last_of(ms: u64) -> Self {
        Self { ms, seq: u64::MAX }
    }

    /// The id just before this one, if any.
    pub fn pred(self) -> Option<Self> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(Self::last_of(ms - 1)),
            (ms, seq) => Some(Self { ms, seq: seq - 1 }),
        }
    }

    /// The id just after this one, if any.
    pub fn succ(self) -> Option<Self> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(Self::first_of(ms + 1)),
            (ms, seq) => Some(Self { ms, seq: seq + 1 }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Error for text that is not a stream id.
#[derive(Debug, thiserror::Error)]
#[error("not a stream entry id (expected <ms>-<seq>)")]
pub struct InvalidStreamId;

impl FromStr for StreamId {
    type Err = InvalidStreamId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(InvalidStreamId)?;
        let digits = |p: &str| {
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(InvalidStreamId)
            } else {
                p.parse::<u64>().map_err(|_| InvalidStreamId)
            }
        };
        Ok(Self {
            ms: digits(ms)?,
            seq: digits(seq)?,
        })
    }
}

/// Which DLQ entries an operation applies to. Every set condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DlqFilter {
    /// Only entries dead-lettered for this reason.
    pub reason: Option<DlqReason>,
    /// Only entries of this target (exact identifier).
    pub target: Option<String>,
    /// Only entries dead-lettered at or after this time (ms since epoch).
    pub from_ms: Option<u64>,
    /// Only entries dead-lettered at or before this time (ms since epoch).
    pub to_ms: Option<u64>,
}

impl DlqFilter {
    /// Whether no condition is set (the filter matches every entry).
    pub fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.target.is_none()
            && self.from_ms.is_none()
            && self.to_ms.is_none()
    }

    /// Whether `record` passes the reason and target conditions (the time
    /// conditions are applied as the scanned stream-id range).
    pub fn matches(&self, record: &DlqRecord) -> bool {
        self.reason.is_none_or(|r| r == record.reason)
            && self.target.as_deref().is_none_or(|t| t == record.target)
    }

    /// The stream-id range of the time conditions, `(lowest, highest)`.
    pub(crate) fn id_range(&self) -> (StreamId, StreamId) {
        (
            self.from_ms
                .map(StreamId::first_of)
                .unwrap_or(StreamId::MIN),
            self.to_ms.map(StreamId::last_of).unwrap_or(StreamId::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_print_and_step() {
        let id: StreamId = "1700000000000-5".parse().unwrap();
        assert_eq!(
            id,
            StreamId {
                ms: 1_700_000_000_000,
                seq: 5
            }
        );
        assert_eq!(id.to_string(), "1700000000000-5");
        assert_eq!(id.pred().unwrap().to_string(), "1700000000000-4");
        assert_eq!(StreamId::first_of(7).pred().unwrap(), StreamId::last_of(6));
        assert_eq!(StreamId::last_of(6).succ().unwrap(), StreamId::first_of(7));
        assert!(StreamId::MIN.pred().is_none());
        assert!(StreamId::MAX.succ().is_none());
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_match_reason_and_target() {
        let rec = DlqRecord {
            message_id: "m".into(),
            reason: DlqReason::Permanent,
            target: "sink".into(),
            error: "HTTP 400".into(),
            attempts: 1,
            partition: 0,
            at_ms: 1,
            body: vec![],
        };
        assert!(DlqFilter::default().matches(&rec));
        assert!(DlqFilter::default().is_empty());
        let by_reason = DlqFilter {
            reason: Some(DlqReason::Permanent),
            ..Default::default()
        };
        assert!(by_reason.matches(&rec));
        let other_reason = DlqFilter {
            reason: Some(DlqReason::Expired),
            ..Default::default()
        };
        assert!(!other_reason.matches(&rec));
        let other_target = DlqFilter {
            target: Some("cache".into()),
            ..Default::default()
        };
        assert!(!other_target.matches(&rec));
        let times = DlqFilter {
            from_ms: Some(10),
            to_ms: Some(20),
            ..Default::default()
        };
        assert!(!times.is_empty());
        assert_eq!(
            times.id_range(),
            (StreamId::first_of(10), StreamId::last_of(20))
        );
    }
}
