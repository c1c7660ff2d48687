//! The bodies the load generator writes. Each message's payload is a JSON
//! object of a fixed serialized size carrying `sentAtUs` (wall-clock µs,
//! taken just before the request is sent) and a sequence number:
//!
//! ```json
//! {"sentAtUs":1732000000000000,"seq":17,"pad":"xxxx…"}
//! ```

/// How every message of a run is written.
#[derive(Clone, Debug)]
pub struct PayloadSpec {
    /// Namespace written to.
    pub namespace: String,
    /// Serialized size of each payload, in bytes (at least the fixed fields).
    pub payload_bytes: usize,
    /// `lifecycle.delay` in seconds (0: no lifecycle, immediate delivery).
    pub delay_secs: u64,
}

impl PayloadSpec {
    /// The payload of message `seq` sent at `sent_at_us`, appended to `out`.
    pub fn write_payload(&self, out: &mut String, sent_at_us: u64, seq: u64) {
        use std::fmt::Write;
        let start = out.len();
        let _ = write!(out, "{{\"sentAtUs\":{sent_at_us},\"seq\":{seq},\"pad\":\"");
        // 2 bytes for the closing `"}`.
        let used = out.len() - start + 2;
        let pad = self.payload_bytes.saturating_sub(used);
        out.extend(std::iter::repeat_n('x', pad));
        out.push_str("\"}");
    }

    /// One write request (`POST /api/v1/wal/write`) body, appended to `out`.
    pub fn write_message(&self, out: &mut String, sent_at_us: u64, seq: u64) {
        out.push_str("{\"namespace\":\"");
        out.push_str(&self.namespace);
        out.push_str("\",\"payload\":");
        self.write_payload(out, sent_at_us, seq);
        if self.delay_secs > 0 {
            use std::fmt::Write;
            let _ = write!(out, ",\"lifecycle\":{{\"delay\":{}}}", self.delay_secs);
        }
        out.push('}');
    }

    /// A batch request (`POST /api/v1/wal/write/batch`) body of `count`
    /// messages numbered from `first_seq`.
    pub fn batch_body(&self, sent_at_us: u64, first_seq: u64, count: u64) -> String {
        let mut out = String::with_capacity((count as usize) * (self.payload_bytes + 80) + 16);
        out.push_str("{\"messages\":[");
        for i in 0..count {
            if i > 0 {
                out.push(',');
            }
            self.write_message(&mut out, sent_at_us, first_seq + i);
        }
        out.push_str("]}");
        out
    }

    /// A single write request body.
    pub fn single_body(&self, sent_at_us: u64, seq: u64) -> String {
        let mut out = String::with_capacity(self.payload_bytes + 96);
        self.write_message(&mut out, sent_at_us, seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay_secs: u64) -> PayloadSpec {
        PayloadSpec {
            namespace: "bench".into(),
            payload_bytes: 200,
            delay_secs,
        }
    }

    #[test]
    fn payload_has_the_requested_size_and_fields() {
        let mut s = String::new();
        spec(0).write_payload(&mut s, 1_732_000_000_000_000, 123_456);
        assert_eq!(s.len(), 200);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["sentAtUs"], 1_732_000_000_000_000u64);
        assert_eq!(v["seq"], 123_456);
    }

    #[test]
    fn single_and_batch_bodies_are_valid_json() {
        let one: serde_json::Value = serde_json::from_str(&spec(2).single_body(5, 1)).unwrap();
        assert_eq!(one["namespace"], "bench");
        assert_eq!(one["lifecycle"]["delay"], 2);
        let batch: serde_json::Value = serde_json::from_str(&spec(0).batch_body(5, 10, 3)).unwrap();
        let msgs = batch["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2]["payload"]["seq"], 12);
        assert!(msgs[0].get("lifecycle").is_none());
    }
}
