//! `RedisWrites`: the batch of Redis operations a projection's handler builds.

use std::fmt;

/// One batch of writes to a projection's Redis keys: a plain list of typed operations, applied
/// in order by [`RedisTarget`](crate::RedisTarget) (in one Redis transaction, together with the
/// checkpoint) or by [`RedisKeyspace`](crate::RedisKeyspace) (in memory).
///
/// Keys are *relative to the slot*: write `"account:7"`, and the target stores it as
/// `{<prefix>:<projection>:<slot>}:d:account:7` (see the crate docs for the layout). Keys are
/// text; values, hash fields and set members are bytes, so anything that converts into
/// `Vec<u8>` works (`&str`, `String`, `Vec<u8>`, `&[u8]`, the output of `serde_json::to_vec`).
/// Numbers go in as text (`balance.to_string()`), which is also what Redis' own `INCRBY`
/// reads and writes.
///
/// The builder methods return `&mut Self`, so calls chain:
///
/// ```
/// use foldline_redis::{RedisOp, RedisWrites};
///
/// let mut writes = RedisWrites::new();
/// writes
///     .hset("account:7", "owner", "ada")
///     .incr_by("accounts:count", 1)
///     .zadd("accounts:by_balance", "7", 250.0);
/// assert_eq!(writes.len(), 3);
/// assert_eq!(
///     writes.ops()[1],
///     RedisOp::IncrBy { key: "accounts:count".into(), by: 1 }
/// );
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct RedisWrites {
    ops: Vec<RedisOp>,
}

/// One Redis operation of a [`RedisWrites`] batch; keys are relative to the slot.
///
/// Each one behaves as the Redis command of the same name. New operations may be added.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RedisOp {
    /// `SET key value`: replaces whatever `key` held, of any type.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
    },
    /// `DEL key`: removes `key`, of any type.
    Del {
        /// The key.
        key: String,
    },
    /// `INCRBY key by`: adds to the integer held as text in `key` (from 0 when absent).
    IncrBy {
        /// The key.
        key: String,
        /// How much to add (negative to subtract).
        by: i64,
    },
    /// `HSET key field value`.
    HSet {
        /// The hash.
        key: String,
        /// The field.
        field: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// `HDEL key field`; the hash disappears with its last field.
    HDel {
        /// The hash.
        key: String,
        /// The field.
        field: Vec<u8>,
    },
    /// `HINCRBY key field by`: adds to the integer held as text in the field (from 0).
    HIncrBy {
        /// The hash.
        key: String,
        /// The field.
        field: Vec<u8>,
        /// How much to add (negative to subtract).
        by: i64,
    },
    /// `SADD key member`.
    SAdd {
        /// The set.
        key: String,
        /// The member.
        member: Vec<u8>,
    },
    /// `SREM key member`; the set disappears with its last member.
    SRem {
        /// The set.
        key: String,
        /// The member.
        member: Vec<u8>,
    },
    /// `ZADD key score member`: adds the member or changes its score.
    ZAdd {
        /// The sorted set.
        key: String,
        /// The member.
        member: Vec<u8>,
        /// Its score. Redis refuses NaN.
        score: f64,
    },
    /// `ZREM key member`; the sorted set disappears with its last member.
    ZRem {
        /// The sorted set.
        key: String,
        /// The member.
        member: Vec<u8>,
    },
}

impl RedisOp {
    /// The key the operation writes, relative to the slot.
    pub fn key(&self) -> &str {
        match self {
            RedisOp::Set { key, .. }
            | RedisOp::Del { key }
            | RedisOp::IncrBy { key, .. }
            | RedisOp::HSet { key, .. }
            | RedisOp::HDel { key, .. }
            | RedisOp::HIncrBy { key, .. }
            | RedisOp::SAdd { key, .. }
            | RedisOp::SRem { key, .. }
            | RedisOp::ZAdd { key, .. }
            | RedisOp::ZRem { key, .. } => key,
        }
    }

    /// The name of the Redis command it runs (`"HSET"`).
    pub fn command(&self) -> &'static str {
        match self {
            RedisOp::Set { .. } => "SET",
            RedisOp::Del { .. } => "DEL",
            RedisOp::IncrBy { .. } => "INCRBY",
            RedisOp::HSet { .. } => "HSET",
            RedisOp::HDel { .. } => "HDEL",
            RedisOp::HIncrBy { .. } => "HINCRBY",
            RedisOp::SAdd { .. } => "SADD",
            RedisOp::SRem { .. } => "SREM",
            RedisOp::ZAdd { .. } => "ZADD",
            RedisOp::ZRem { .. } => "ZREM",
        }
    }
}

impl RedisWrites {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SET key value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(RedisOp::Set {
            key: key.into(),
            value: value.into(),
        })
    }

    /// `DEL key`.
    pub fn del(&mut self, key: impl Into<String>) -> &mut Self {
        self.push(RedisOp::Del { key: key.into() })
    }

    /// `INCRBY key by`.
    pub fn incr_by(&mut self, key: impl Into<String>, by: i64) -> &mut Self {
        self.push(RedisOp::IncrBy {
            key: key.into(),
            by,
        })
    }

    /// `HSET key field value`.
    pub fn hset(
        &mut self,
        key: impl Into<String>,
        field: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.push(RedisOp::HSet {
            key: key.into(),
            field: field.into(),
            value: value.into(),
        })
    }

    /// `HDEL key field`.
    pub fn hdel(&mut self, key: impl Into<String>, field: impl Into<Vec<u8>>) -> &mut Self {
        self.push(RedisOp::HDel {
            key: key.into(),
            field: field.into(),
        })
    }

    /// `HINCRBY key field by`.
    pub fn hincr_by(
        &mut self,
        key: impl Into<String>,
        field: impl Into<Vec<u8>>,
        by: i64,
    ) -> &mut Self {
        self.push(RedisOp::HIncrBy {
            key: key.into(),
            field: field.into(),
            by,
        })
    }

    /// `SADD key member`.
    pub fn sadd(&mut self, key: impl Into<String>, member: impl Into<Vec<u8>>) -> &mut Self {
        self.push(RedisOp::SAdd {
            key: key.into(),
            member: member.into(),
        })
    }

    /// `SREM key member`.
    pub fn srem(&mut self, key: impl Into<String>, member: impl Into<Vec<u8>>) -> &mut Self {
        self.push(RedisOp::SRem {
            key: key.into(),
            member: member.into(),
        })
    }

    /// `ZADD key score member`.
    pub fn zadd(
        &mut self,
        key: impl Into<String>,
        member: impl Into<Vec<u8>>,
        score: f64,
    ) -> &mut Self {
        self.push(RedisOp::ZAdd {
            key: key.into(),
            member: member.into(),
            score,
        })
    }

    /// `ZREM key member`.
    pub fn zrem(&mut self, key: impl Into<String>, member: impl Into<Vec<u8>>) -> &mut Self {
        self.push(RedisOp::ZRem {
            key: key.into(),
            member: member.into(),
        })
    }

    /// Appends an operation.
    pub fn push(&mut self, op: RedisOp) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// The operations, in the order they will run.
    pub fn ops(&self) -> &[RedisOp] {
        &self.ops
    }

    /// The operations, taken out of the batch.
    pub fn into_ops(self) -> Vec<RedisOp> {
        self.ops
    }

    /// How many operations the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl fmt::Debug for RedisWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.ops).finish()
    }
}

impl Extend<RedisOp> for RedisWrites {
    fn extend<I: IntoIterator<Item = RedisOp>>(&mut self, ops: I) {
        self.ops.extend(ops);
    }
}

impl FromIterator<RedisOp> for RedisWrites {
    fn from_iter<I: IntoIterator<Item = RedisOp>>(ops: I) -> Self {
        RedisWrites {
            ops: ops.into_iter().collect(),
        }
    }
}

impl IntoIterator for RedisWrites {
    type Item = RedisOp;
    type IntoIter = std::vec::IntoIter<RedisOp>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.into_iter()
    }
}

impl<'a> IntoIterator for &'a RedisWrites {
    type Item = &'a RedisOp;
    type IntoIter = std::slice::Iter<'a, RedisOp>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::{RedisOp, RedisWrites};

    #[test]
    fn builds_ops_in_order() {
        let mut writes = RedisWrites::new();
        writes
            .set("a", "1")
            .del("b")
            .incr_by("c", -2)
            .hset("h", "f", b"v".to_vec())
            .hdel("h", "g")
            .hincr_by("h", "n", 3)
            .sadd("s", "m")
            .srem("s", "n")
            .zadd("z", "m", 1.5)
            .zrem("z", "n");
        let commands: Vec<_> = writes.ops().iter().map(RedisOp::command).collect();
        assert_eq!(
            commands,
            [
                "SET", "DEL", "INCRBY", "HSET", "HDEL", "HINCRBY", "SADD", "SREM", "ZADD", "ZREM"
            ]
        );
        let keys: String = writes.ops().iter().map(RedisOp::key).collect();
        assert_eq!(keys, "abchhhsszz");
        assert_eq!(writes.len(), 10);
        assert!(!writes.is_empty());
        assert_eq!(writes.clone().into_ops().len(), 10);
        assert!(RedisWrites::default().is_empty());
    }
}
