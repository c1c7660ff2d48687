//! Routing: which partition of a namespace's log a message is appended to.
//!
//! A message with a `partitionKey` always goes to the partition of that key's
//! hash, whatever the strategy, so that one key keeps its order. Without one,
//! the namespace's `shardConfig.strategy` decides. The hash is FNV-1a (64 bit):
//! stable across processes, versions and machines, unlike std's `DefaultHasher`.

use serde::{Deserialize, Serialize};

/// How messages without a `partitionKey` are spread over partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShardStrategy {
    /// Hash of the payload bytes: identical payloads share a partition.
    #[default]
    Hash,
    /// Each gateway instance cycles through the partitions.
    RoundRobin,
    /// Uniformly random partition.
    Random,
}

/// What the router needs to know about one message.
#[derive(Clone, Copy, Debug)]
pub struct RoutingInput<'a> {
    /// The request's `partitionKey`, if any.
    pub partition_key: Option<&'a str>,
    /// The payload as sent.
    pub payload: &'a [u8],
    /// This instance's next round-robin ticket for the namespace.
    pub round_robin_ticket: u64,
    /// A random number, used by [`ShardStrategy::Random`].
    pub random: u64,
}

/// The partition (`0..partition_count`) for a message.
pub fn choose_partition(
    strategy: ShardStrategy,
    partition_count: u32,
    input: RoutingInput<'_>,
) -> u32 {
    let n = u64::from(partition_count.max(1));
    let slot = match (input.partition_key, strategy) {
        (Some(key), _) => fnv1a(key.as_bytes()) % n,
        (None, ShardStrategy::Hash) => fnv1a(input.payload) % n,
        (None, ShardStrategy::RoundRobin) => input.round_robin_ticket % n,
        (None, ShardStrategy::Random) => input.random % n,
    };
    slot as u32
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input<'a>(
        key: Option<&'a str>,
        payload: &'a [u8],
        rr: u64,
        random: u64,
    ) -> RoutingInput<'a> {
        RoutingInput {
            partition_key: key,
            payload,
            round_robin_ticket: rr,
            random,
        }
    }

    #[test]
    fn fnv_known_vector() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn round_robin_cycles() {
        let got: Vec<u32> = (0..8)
            .map(|t| choose_partition(ShardStrategy::RoundRobin, 4, input(None, b"{}", t, 0)))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    proptest! {
        #[test]
        fn partition_key_wins_and_is_stable(key in ".{1,40}", rr: u64, r: u64, n in 1u32..64) {
            let a = choose_partition(ShardStrategy::RoundRobin, n, input(Some(&key), b"{}", rr, r));
            let b = choose_partition(ShardStrategy::Random, n, input(Some(&key), b"{\"x\":1}", rr + 1, r / 2));
            prop_assert_eq!(a, b);
            prop_assert!(a < n);
        }

        #[test]
        fn always_in_range(payload: Vec<u8>, rr: u64, r: u64, n in 0u32..1000) {
            for s in [ShardStrategy::Hash, ShardStrategy::RoundRobin, ShardStrategy::Random] {
                prop_assert!(choose_partition(s, n, input(None, &payload, rr, r)) < n.max(1));
            }
        }
    }
}
