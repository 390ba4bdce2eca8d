//! A map keyed by stream id, with a hash cheaper than the standard library's.
//!
//! Every frame of a stream looks its stream up, on both sides of the connection and in the
//! driver; SipHash costs more there than the rest of the lookup. A plain multiplicative hash
//! would do for ids this side assigns, but the peer chooses the ids of the streams it opens,
//! and with a known hash it could choose ids that all land in one bucket. So each map has a
//! random key (taken from the standard library's randomly keyed hasher), the id is combined
//! with it and then mixed by MurmurHash3's 64-bit finalizer, whose every output bit depends
//! on every input bit: without the key, a peer cannot tell which ids collide.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A map from stream id to `V`.
pub(crate) type IdMap<V> = HashMap<u32, V, IdHash>;

/// A new, empty [`IdMap`] with fresh keys.
pub(crate) fn id_map<V>() -> IdMap<V> {
    HashMap::with_hasher(IdHash::new())
}

/// The key of one map's hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHash {
    key: u64,
}

impl IdHash {
    fn new() -> IdHash {
        IdHash { key: std::collections::hash_map::RandomState::new().hash_one(0x5745_4654_u32) }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { keys: *self, hash: 0 }
    }
}

/// The hasher of an [`IdMap`]; it hashes the one `u32` a stream id is.
#[derive(Debug)]
pub(crate) struct IdHasher {
    keys: IdHash,
    hash: u64,
}

impl Hasher for IdHasher {
    fn write_u32(&mut self, id: u32) {
        let mut x = u64::from(id) ^ self.keys.key;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        self.hash = x ^ (x >> 33);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed here; any other input still hashes (byte by byte).
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.hash as u32));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hold_ids_apart_and_keys_differ_per_map() {
        let mut map = id_map();
        for id in (1..20_000u32).step_by(2) {
            map.insert(id, id * 3);
        }
        assert_eq!(map.len(), 10_000);
        assert!((1..20_000u32).step_by(2).all(|id| map[&id] == id * 3));
        assert!(!map.contains_key(&2));
        let (a, b) = (IdHash::new(), IdHash::new());
        assert_ne!(a.hash_one(7u32), b.hash_one(7u32));
    }

    #[test]
    fn ids_sharing_their_low_bits_spread_over_the_low_bits_of_the_hash() {
        // Ids a peer might pick to collide under a plain multiplicative hash: all multiples
        // of 2^16. Their hashes' low 10 bits (a table of 1,024 buckets) must still spread as
        // random ones would (about 647 distinct of 1,024), whatever the key.
        for _ in 0..50 {
            let keys = IdHash::new();
            let buckets: std::collections::HashSet<u64> =
                (1..=1024u32).map(|i| keys.hash_one(i << 16) & 1023).collect();
            assert!(buckets.len() > 550, "only {} distinct buckets", buckets.len());
        }
    }
}
