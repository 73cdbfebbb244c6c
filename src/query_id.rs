//! Query ids, and the part of each id that names the coordinator that created it.
//!
//! A query id has Presto's shape, `YYYYMMdd_HHmmss_NNNNN_sssss`: the creating coordinator's wall
//! clock, a per-coordinator counter, and a suffix derived from the coordinator's node id. The
//! suffix is what lets any RM find a query's owner before any heartbeat has mentioned the query
//! (a client may ask about an id moments after it got it), so the coordinator that makes ids and
//! the RM that reads them must agree on it exactly. Both import it from here, below either role.

use std::fmt;

/// Base-32 alphabet of the suffix (RFC 4648, lower case): safe in URLs and file names.
const SUFFIX_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters in a suffix: 25 bits of the hash, like Presto's five-character coordinator id part.
pub const SUFFIX_LEN: usize = 5;
/// The counter wraps here, so it always prints as five digits.
const NUMBER_MODULUS: u64 = 100_000;

/// The five base-32 characters every id a coordinator creates ends with. Derived from the node
/// id with 64-bit FNV-1a: deterministic (no seed, no state), so every node computes the same
/// suffix for a coordinator it has only heard of through discovery.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoordinatorSuffix(String);

impl CoordinatorSuffix {
    pub fn of_node(node_id: &str) -> CoordinatorSuffix {
        let hash = fnv1a_64(node_id.as_bytes());
        let suffix: String = (0..SUFFIX_LEN).map(|index| SUFFIX_ALPHABET[((hash >> (index * 5)) & 31) as usize] as char).collect();
        debug_assert_eq!(suffix.len(), SUFFIX_LEN);
        CoordinatorSuffix(suffix)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CoordinatorSuffix {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One query's id, as handed to the client and used in every path (`/v1/query/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(String);

impl QueryId {
    /// The id of the `number`th query a coordinator created, at `wall_ms` (epoch milliseconds,
    /// the coordinator's wall clock: ids read like Presto's, in UTC). Only the low five decimal
    /// digits of `number` are kept: the time and the suffix keep ids apart.
    pub fn new(wall_ms: u64, number: u64, suffix: &CoordinatorSuffix) -> QueryId {
        let prefix = crate::runtime::clock::format_query_id_prefix(wall_ms);
        QueryId(format!("{prefix}_{:05}_{suffix}", number % NUMBER_MODULUS))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The coordinator suffix a query id ends with (whatever follows its last `_`). The text comes
/// from a request path, so it is not trusted to have the right shape: anything is accepted and
/// simply matches no coordinator when it is not an id.
pub fn suffix_of(query_id: &str) -> &str {
    query_id.rsplit('_').next().unwrap_or(query_id)
}

/// Whether `query_id` was created by the coordinator whose suffix is `suffix`.
pub fn created_by(query_id: &str, suffix: &CoordinatorSuffix) -> bool {
    suffix_of(query_id) == suffix.as_str()
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Suffixes of ids already handed out (the values `coordinator::id_suffix` produced when this
    /// type replaced it): changing them would orphan every id a client holds during an upgrade.
    #[test]
    fn suffixes_are_the_ones_coordinators_have_always_used() {
        assert_eq!(CoordinatorSuffix::of_node("coordinator-1").as_str(), "7yxa4");
        assert_eq!(CoordinatorSuffix::of_node("coordinator-2").as_str(), "sgya4");
        assert_eq!(CoordinatorSuffix::of_node("rm-1").as_str(), "kil7z");
        assert_eq!(CoordinatorSuffix::of_node("").as_str(), "fziec");
    }

    #[test]
    fn an_id_has_prestos_shape_and_names_its_coordinator() {
        let suffix = CoordinatorSuffix::of_node("coordinator-1");
        // 2026-11-21T01:02:03.456Z
        let id = QueryId::new(1_795_222_923_456, 1_234_567, &suffix);
        assert_eq!(id.as_str(), "20261121_010203_34567_7yxa4");
        assert_eq!(suffix_of(id.as_str()), "7yxa4");
        assert!(created_by(id.as_str(), &suffix));
        assert!(!created_by(id.as_str(), &CoordinatorSuffix::of_node("coordinator-2")));
        assert_eq!(QueryId::new(0, 7, &suffix).to_string(), "19700101_000000_00007_7yxa4");
    }

    #[test]
    fn text_that_is_no_id_matches_no_coordinator() {
        let suffix = CoordinatorSuffix::of_node("coordinator-1");
        assert!(!created_by("", &suffix));
        assert!(!created_by("garbage", &suffix));
        assert!(!created_by("20261121_010203_00001_", &suffix));
        assert_eq!(suffix_of("no-underscore"), "no-underscore");
    }

    proptest! {
        #[test]
        fn every_id_ends_with_its_creators_suffix(node_id in ".{0,40}", wall_ms in 0u64..4_102_444_800_000, number: u64) {
            let suffix = CoordinatorSuffix::of_node(&node_id);
            prop_assert_eq!(suffix.as_str().len(), SUFFIX_LEN);
            prop_assert!(suffix.as_str().bytes().all(|byte| SUFFIX_ALPHABET.contains(&byte)));
            let id = QueryId::new(wall_ms, number, &suffix);
            prop_assert!(created_by(id.as_str(), &suffix));
            prop_assert_eq!(id.as_str().len(), "YYYYMMdd_HHmmss_NNNNN_".len() + SUFFIX_LEN);
        }
    }
}
