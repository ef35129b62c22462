//! Which partition a stream lives in: Kafka's own default partitioner for keyed records, so
//! that any client (Java's, librdkafka's `murmur2_random`) puts a stream where foldline does.

use foldline::StreamId;

/// The seed of the murmur2 hash in Kafka's `Utils.murmur2`.
const KAFKA_MURMUR2_SEED: u32 = 0x9747_b28c;

/// The partition of `stream` among `partitions`: `toPositive(murmur2(key)) % partitions`, as
/// Kafka's `BuiltInPartitioner.partitionForKey` computes it for the stream id's UTF-8 bytes.
pub(crate) fn partition_of(stream: &StreamId, partitions: u32) -> u32 {
    partition_for_key(stream.as_str().as_bytes(), partitions)
}

/// The partition of a record keyed `key` among `partitions`.
pub(crate) fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    // `Utils.toPositive`: the sign bit cleared, not the absolute value.
    let hash = murmurhash32::murmurhash2_with_seed::<KAFKA_MURMUR2_SEED>(key) & 0x7fff_ffff;
    hash % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka 4.4.0's own figures (`Utils.murmur2`, and `toPositive(h) % 8`, `% 16`), printed by
    /// a Java program against `kafka-clients-4.4.0.jar`.
    #[test]
    fn streams_land_where_kafka_puts_their_keys() {
        let expected: [(&str, i32, u32, u32); 11] = [
            ("", 275_646_681, 1, 9),
            ("a", -1_563_381_124, 4, 12),
            ("ab", 316_155_434, 2, 10),
            ("abc", 479_470_107, 3, 11),
            ("abcd", -1_323_649_548, 4, 4),
            ("account-1", 1_835_529_620, 4, 4),
            ("account-alice", 384_841_052, 4, 12),
            ("21", -973_932_308, 4, 12),
            ("foobar", -790_332_482, 6, 14),
            ("stream-with-a-longer-id-0123456789", 1_777_798_061, 5, 13),
            ("ü-ñ", -359_537_958, 2, 10),
        ];
        for (key, hash, of_8, of_16) in expected {
            let ours = murmurhash32::murmurhash2_with_seed::<KAFKA_MURMUR2_SEED>(key.as_bytes());
            assert_eq!(ours, hash.cast_unsigned(), "murmur2 of {key:?}");
            assert_eq!(partition_for_key(key.as_bytes(), 8), of_8, "{key:?} of 8");
            assert_eq!(
                partition_for_key(key.as_bytes(), 16),
                of_16,
                "{key:?} of 16"
            );
        }
    }
}
