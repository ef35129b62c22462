//! A stable 64-bit hash (FNV-1a) for advisory-lock keys, channel names and migration checksums.
//!
//! It must give the same value in every process and every release (two application versions
//! may lock the same stream at once), which rules out `std`'s `DefaultHasher`. FNV-1a is ten
//! lines, so it is written here rather than pulled in as a crate.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the parts, with a 0xff separator so `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash = OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The same hash as an `i64`, the type of PostgreSQL's `bigint` advisory-lock keys.
pub(crate) fn stable_key(parts: &[&[u8]]) -> i64 {
    i64::from_ne_bytes(stable_hash(parts).to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_never_change() {
        // Changing these breaks locking between application versions running side by side.
        assert_eq!(stable_hash(&[]), OFFSET);
        // FNV-1a of "a", then the 0xff separator (checked against a Python implementation).
        assert_eq!(stable_hash(&[b"a"]), 620_310_408_636_712_809);
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }
}
