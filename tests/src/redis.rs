//! Redis for the tests: a key prefix of its own per test, and a slot's keys read back into a
//! [`RedisKeyspace`] so they compare with what the in-memory model holds.

use foldline::MemoryModel;
use foldline_redis::RedisTestPrefix;
use foldline_redis::redis::{self, AsyncCommands, aio::ConnectionManager};
use foldline_redis::{RedisKeyspace, RedisSlotKeys, RedisWrites};

/// A fresh key prefix with a target under it; its keys are deleted when it is dropped.
///
/// # Panics
///
/// When Redis cannot be reached, with a message saying how to start it.
pub async fn test_prefix() -> RedisTestPrefix {
    match RedisTestPrefix::create().await {
        Ok(prefix) => prefix,
        Err(error) => panic!("{}", foldline::error_chain(&error, ": ")),
    }
}

/// The hash tag Redis Cluster hashes `key` by: what is between the first `{` and the first
/// `}` after it, when that is not empty.
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &key[open + 1..close])
}

/// Every key whose name starts with `prefix` (`SCAN MATCH <prefix>*`, so `prefix` must hold no
/// glob characters), sorted.
///
/// # Errors
///
/// When Redis fails.
pub async fn scan(conn: &mut ConnectionManager, prefix: &str) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut iter = conn.scan_match::<_, String>(format!("{prefix}*")).await?;
    while let Some(key) = iter.next_item().await.transpose()? {
        keys.push(key);
    }
    drop(iter);
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// The projection's keys in slot `keys`, read from Redis into a [`RedisKeyspace`] (as if the
/// writes that recreate them were applied to an empty one).
///
/// # Errors
///
/// When Redis fails.
pub async fn dump_slot(
    conn: &mut ConnectionManager,
    keys: &RedisSlotKeys,
) -> redis::RedisResult<RedisKeyspace> {
    let data_prefix = keys.data_prefix();
    let mut writes = RedisWrites::new();
    for full in scan(conn, &data_prefix).await? {
        let key = &full[data_prefix.len()..];
        let kind: String = redis::cmd("TYPE").arg(&full).query_async(conn).await?;
        match kind.as_str() {
            "string" => {
                let value: Vec<u8> = redis::cmd("GET").arg(&full).query_async(conn).await?;
                writes.set(key, value);
            }
            "hash" => {
                let fields: Vec<(Vec<u8>, Vec<u8>)> =
                    redis::cmd("HGETALL").arg(&full).query_async(conn).await?;
                for (field, value) in fields {
                    writes.hset(key, field, value);
                }
            }
            "set" => {
                let members: Vec<Vec<u8>> =
                    redis::cmd("SMEMBERS").arg(&full).query_async(conn).await?;
                for member in members {
                    writes.sadd(key, member);
                }
            }
            "zset" => {
                let members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                    .arg(&full)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await?;
                for (member, score) in members {
                    writes.zadd(key, member, score);
                }
            }
            other => panic!("key `{full}` has type `{other}`, which no RedisWrites writes"),
        }
    }
    let mut keyspace = RedisKeyspace::new();
    keyspace.apply(writes);
    Ok(keyspace)
}

#[cfg(test)]
mod tests {
    use super::hash_tag;

    #[test]
    fn finds_hash_tags_as_redis_does() {
        assert_eq!(hash_tag("{a:b:1}:d:x"), Some("a:b:1"));
        assert_eq!(hash_tag("{a:b:1}:d:{x}"), Some("a:b:1"));
        assert_eq!(hash_tag("p:x:slots"), None);
        assert_eq!(hash_tag("{}x{y}"), None);
        assert_eq!(hash_tag("x{y"), None);
    }
}
