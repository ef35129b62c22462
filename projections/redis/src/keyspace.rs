//! `RedisKeyspace`: the operations of `RedisWrites`, applied in memory as Redis applies them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use foldline::MemoryModel;

use crate::writes::{RedisOp, RedisWrites};

/// An in-memory Redis keyspace that applies [`RedisWrites`] as Redis does: strings, hashes,
/// sets and sorted sets, with Redis' rules for each operation. Keep it in a
/// [`foldline::InMemoryTarget`] and a projection written for Redis runs without a server, in
/// unit tests and examples, with the same results.
///
/// The rules it follows, as Redis does:
///
/// - an operation on a key of another type (`HSET` on a string) is refused (`WRONGTYPE`), as
///   is `INCRBY`/`HINCRBY` on text that is not a 64-bit integer (Redis' strict form: no `+`,
///   no leading zeros, no spaces), an increment that would overflow, and `ZADD` with a NaN
///   score. A refused operation changes nothing and the next ones still run (Redis cannot roll
///   back a script either); [`rejected`](RedisKeyspace::rejected) counts them;
/// - a hash, set or sorted set disappears with its last field or member;
/// - `SET` and `DEL` work on keys of any type.
///
/// Reads of a key of another type return `None` or nothing (Redis would answer `WRONGTYPE`).
///
/// ```
/// use foldline::MemoryModel;
/// use foldline_redis::{RedisKeyspace, RedisWrites};
///
/// let mut keyspace = RedisKeyspace::default();
/// let mut writes = RedisWrites::new();
/// writes.incr_by("deposits", 2).hset("account:7", "owner", "ada").hset("account:7", "owner", "bob");
/// writes.incr_by("account:7", 1); // WRONGTYPE: refused, nothing else is affected
/// keyspace.apply(writes);
/// assert_eq!(keyspace.get_str("deposits"), Some("2"));
/// assert_eq!(keyspace.hget("account:7", "owner"), Some(&b"bob"[..]));
/// assert_eq!(keyspace.rejected(), 1);
/// ```
#[derive(Clone, Default)]
pub struct RedisKeyspace {
    keys: BTreeMap<String, Value>,
    rejected: u64,
}

#[derive(Clone, PartialEq)]
enum Value {
    String(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    SortedSet(BTreeMap<Vec<u8>, f64>),
}

impl fmt::Debug for RedisKeyspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyspace")
            .field("keys", &self.keys)
            .field("rejected", &self.rejected)
            .finish()
    }
}

/// Values as Redis shows them: bytes as text, with anything but printable ASCII escaped.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(value) => Bytes(value).fmt(f),
            Value::Hash(hash) => f
                .debug_map()
                .entries(hash.iter().map(|(k, v)| (Bytes(k), Bytes(v))))
                .finish(),
            Value::Set(set) => f.debug_set().entries(set.iter().map(|m| Bytes(m))).finish(),
            Value::SortedSet(zset) => f
                .debug_map()
                .entries(zset.iter().map(|(m, s)| (Bytes(m), s)))
                .finish(),
        }
    }
}

struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Why Redis refuses an operation (only the fact matters here: it is counted).
#[derive(Debug)]
struct Refused;

impl RedisKeyspace {
    /// An empty keyspace.
    pub fn new() -> Self {
        Self::default()
    }

    /// The string at `key`; `None` when absent or not a string.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        match self.keys.get(key)? {
            Value::String(value) => Some(value),
            _ => None,
        }
    }

    /// The string at `key` as text; `None` when absent, not a string, or not UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        std::str::from_utf8(self.get(key)?).ok()
    }

    /// The value of `field` in the hash at `key`.
    pub fn hget(&self, key: &str, field: impl AsRef<[u8]>) -> Option<&[u8]> {
        match self.keys.get(key)? {
            Value::Hash(hash) => hash.get(field.as_ref()).map(Vec::as_slice),
            _ => None,
        }
    }

    /// Every field and value of the hash at `key`, ordered by field (empty when absent).
    pub fn hgetall(&self, key: &str) -> Vec<(&[u8], &[u8])> {
        match self.keys.get(key) {
            Some(Value::Hash(hash)) => hash
                .iter()
                .map(|(f, v)| (f.as_slice(), v.as_slice()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every member of the set at `key`, ordered (empty when absent).
    pub fn smembers(&self, key: &str) -> Vec<&[u8]> {
        match self.keys.get(key) {
            Some(Value::Set(set)) => set.iter().map(Vec::as_slice).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `member` is in the set at `key`.
    pub fn sismember(&self, key: &str, member: impl AsRef<[u8]>) -> bool {
        matches!(self.keys.get(key), Some(Value::Set(set)) if set.contains(member.as_ref()))
    }

    /// The score of `member` in the sorted set at `key`.
    pub fn zscore(&self, key: &str, member: impl AsRef<[u8]>) -> Option<f64> {
        match self.keys.get(key)? {
            Value::SortedSet(zset) => zset.get(member.as_ref()).copied(),
            _ => None,
        }
    }

    /// The members of the sorted set at `key` with a score in `min..=max`, with their scores,
    /// ordered as `ZRANGEBYSCORE` orders them: by score, then by member bytes.
    pub fn zrange_by_score(&self, key: &str, min: f64, max: f64) -> Vec<(&[u8], f64)> {
        let Some(Value::SortedSet(zset)) = self.keys.get(key) else {
            return Vec::new();
        };
        let mut members: Vec<_> = zset
            .iter()
            .filter(|(_, score)| (min..=max).contains(*score))
            .map(|(m, s)| (m.as_slice(), *s))
            .collect();
        members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        members
    }

    /// Whether `key` exists (of any type).
    pub fn contains_key(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Every key, ordered.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// How many keys exist.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key exists.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many operations were refused so far, as Redis would refuse them (`WRONGTYPE`, not
    /// an integer, overflow, NaN score). [`RedisTarget`](crate::RedisTarget) counts the same
    /// refusals in the metric `foldline_redis_rejected_writes_total`.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn run(&mut self, op: RedisOp) -> Result<(), Refused> {
        match op {
            RedisOp::Set { key, value } => {
                self.keys.insert(key, Value::String(value));
            }
            RedisOp::Del { key } => {
                self.keys.remove(&key);
            }
            RedisOp::IncrBy { key, by } => {
                let current = match self.keys.get(&key) {
                    None => 0,
                    Some(Value::String(text)) => parse_integer(text).ok_or(Refused)?,
                    Some(_) => return Err(Refused),
                };
                let next = current.checked_add(by).ok_or(Refused)?;
                self.keys
                    .insert(key, Value::String(next.to_string().into_bytes()));
            }
            RedisOp::HSet { key, field, value } => {
                self.hash(key)?.insert(field, value);
            }
            RedisOp::HDel { key, field } => {
                if let Some(Value::Hash(hash)) = self.existing(&key, is_hash)? {
                    hash.remove(&field);
                    if hash.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
            RedisOp::HIncrBy { key, field, by } => {
                let hash = self.hash(key)?;
                let current = match hash.get(&field) {
                    None => 0,
                    Some(text) => parse_integer(text).ok_or(Refused)?,
                };
                let next = current.checked_add(by).ok_or(Refused)?;
                hash.insert(field, next.to_string().into_bytes());
            }
            RedisOp::SAdd { key, member } => {
                let value = self
                    .keys
                    .entry(key)
                    .or_insert_with(|| Value::Set(BTreeSet::new()));
                let Value::Set(set) = value else {
                    return Err(Refused);
                };
                set.insert(member);
            }
            RedisOp::SRem { key, member } => {
                if let Some(Value::Set(set)) = self.existing(&key, is_set)? {
                    set.remove(&member);
                    if set.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
            RedisOp::ZAdd { key, member, score } => {
                if score.is_nan() {
                    return Err(Refused);
                }
                let value = self
                    .keys
                    .entry(key)
                    .or_insert_with(|| Value::SortedSet(BTreeMap::new()));
                let Value::SortedSet(zset) = value else {
                    return Err(Refused);
                };
                zset.insert(member, score);
            }
            RedisOp::ZRem { key, member } => {
                if let Some(Value::SortedSet(zset)) = self.existing(&key, is_sorted_set)? {
                    zset.remove(&member);
                    if zset.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    /// The hash at `key`, created empty when absent; refused when `key` holds another type.
    /// (An empty hash left behind by a refused `HINCRBY` cannot happen: the field's value is
    /// checked before anything is inserted, and a new hash only stays with a field in it.)
    fn hash(&mut self, key: String) -> Result<&mut BTreeMap<Vec<u8>, Vec<u8>>, Refused> {
        if self.keys.get(&key).is_some_and(|v| !is_hash(v)) {
            return Err(Refused);
        }
        match self
            .keys
            .entry(key)
            .or_insert_with(|| Value::Hash(BTreeMap::new()))
        {
            Value::Hash(hash) => Ok(hash),
            _ => Err(Refused),
        }
    }

    /// The value at `key` if it exists and has the type `is_type` accepts; refused when it
    /// exists with another type.
    fn existing(
        &mut self,
        key: &str,
        is_type: fn(&Value) -> bool,
    ) -> Result<Option<&mut Value>, Refused> {
        match self.keys.get_mut(key) {
            None => Ok(None),
            Some(value) if is_type(value) => Ok(Some(value)),
            Some(_) => Err(Refused),
        }
    }
}

fn is_hash(value: &Value) -> bool {
    matches!(value, Value::Hash(_))
}

fn is_set(value: &Value) -> bool {
    matches!(value, Value::Set(_))
}

fn is_sorted_set(value: &Value) -> bool {
    matches!(value, Value::SortedSet(_))
}

/// Reads an integer as Redis' `string2ll` does: `0`, or an optional `-` and a digit 1-9 then
/// digits, fitting in an `i64`; nothing else (no `+`, no leading zeros, no spaces).
fn parse_integer(text: &[u8]) -> Option<i64> {
    if text == b"0" {
        return Some(0);
    }
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let (first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(first) || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

impl PartialEq for RedisKeyspace {
    /// Two keyspaces are equal when they hold the same keys and values; the counts of
    /// refused operations are not compared.
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

impl MemoryModel for RedisKeyspace {
    type Writes = RedisWrites;

    fn apply(&mut self, writes: RedisWrites) {
        for op in writes {
            if self.run(op).is_err() {
                self.rejected += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use foldline::MemoryModel;

    use super::{RedisKeyspace, parse_integer};
    use crate::writes::RedisWrites;

    fn apply(keyspace: &mut RedisKeyspace, build: impl FnOnce(&mut RedisWrites)) {
        let mut writes = RedisWrites::new();
        build(&mut writes);
        keyspace.apply(writes);
    }

    #[test]
    fn strings_and_counters() {
        let mut ks = RedisKeyspace::new();
        apply(&mut ks, |w| {
            w.set("a", "x")
                .incr_by("n", 5)
                .incr_by("n", -7)
                .set("m", "10");
            w.incr_by("m", 1).del("a").del("missing");
        });
        assert_eq!(ks.get("a"), None);
        assert_eq!(ks.get_str("n"), Some("-2"));
        assert_eq!(ks.get_str("m"), Some("11"));
        assert_eq!(ks.rejected(), 0);
        assert_eq!(ks.keys().collect::<Vec<_>>(), ["m", "n"]);
    }

    #[test]
    fn refuses_what_redis_refuses_and_goes_on() {
        let mut ks = RedisKeyspace::new();
        apply(&mut ks, |w| {
            w.set("text", "abc").set("zero", "007").hset("h", "f", "1");
            w.set("max", i64::MAX.to_string());
            w.incr_by("text", 1) // not an integer
                .incr_by("zero", 1) // leading zeros
                .incr_by("h", 1) // WRONGTYPE
                .incr_by("max", 1) // overflow
                .sadd("h", "m") // WRONGTYPE
                .zadd("h", "m", 1.0) // WRONGTYPE
                .zadd("z", "m", f64::NAN) // not a float
                .hdel("text", "f") // WRONGTYPE even for a missing field
                .srem("text", "m")
                .zrem("text", "m")
                .hincr_by("text", "f", 1)
                .hset("h", "bad", "+1")
                .hincr_by("h", "bad", 1) // not an integer
                .hincr_by("h", "f", 2);
        });
        assert_eq!(ks.rejected(), 12);
        assert_eq!(ks.get_str("text"), Some("abc"));
        assert_eq!(ks.get_str("max"), Some(i64::MAX.to_string().as_str()));
        assert_eq!(ks.hget("h", "f"), Some(&b"3"[..]));
        assert!(!ks.contains_key("z"));
        // SET and DEL take any type.
        apply(&mut ks, |w| {
            w.set("h", "now a string").del("text");
        });
        assert_eq!(ks.get_str("h"), Some("now a string"));
        assert!(!ks.contains_key("text"));
    }

    #[test]
    fn collections_disappear_when_emptied() {
        let mut ks = RedisKeyspace::new();
        apply(&mut ks, |w| {
            w.hset("h", "a", "1")
                .hset("h", "b", "2")
                .hincr_by("h", "c", 4);
            w.sadd("s", "x").sadd("s", "y").sadd("s", "x");
            w.zadd("z", "b", 2.0)
                .zadd("z", "a", 2.0)
                .zadd("z", "c", -1.0);
        });
        assert_eq!(
            ks.hgetall("h"),
            [(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"4")]
        );
        assert_eq!(ks.smembers("s"), [&b"x"[..], b"y"]);
        assert!(ks.sismember("s", "y"));
        assert_eq!(
            ks.zrange_by_score("z", f64::NEG_INFINITY, f64::INFINITY),
            [(&b"c"[..], -1.0), (b"a", 2.0), (b"b", 2.0)]
        );
        assert_eq!(ks.zrange_by_score("z", 0.0, 10.0).len(), 2);
        assert_eq!(ks.zscore("z", "a"), Some(2.0));
        apply(&mut ks, |w| {
            w.hdel("h", "a")
                .hdel("h", "b")
                .hdel("h", "c")
                .hdel("h", "c");
            w.srem("s", "x").srem("s", "y");
            w.zrem("z", "a").zrem("z", "b").zrem("z", "c");
        });
        assert!(ks.is_empty(), "{ks:?}");
        assert_eq!(ks.rejected(), 0);
        // Emptied keys can be reused as any type.
        apply(&mut ks, |w| {
            w.incr_by("h", 1).hset("s", "f", "v");
        });
        assert_eq!(ks.len(), 2);
    }

    #[test]
    fn compares_data_only() {
        let mut a = RedisKeyspace::new();
        let mut b = RedisKeyspace::new();
        apply(&mut a, |w| {
            w.set("k", "v").incr_by("k", 1);
        });
        apply(&mut b, |w| {
            w.set("k", "v");
        });
        assert_eq!(a, b);
        assert_eq!(a.rejected(), 1);
    }

    #[test]
    fn shows_values_as_text() {
        let mut ks = RedisKeyspace::new();
        apply(&mut ks, |w| {
            w.set("s", b"a\"\xff".to_vec())
                .hset("h", "f", "v")
                .sadd("t", "m")
                .zadd("z", "m", 1.5);
        });
        assert_eq!(
            format!("{ks:?}"),
            r#"RedisKeyspace { keys: {"h": {"f": "v"}, "s": "a\"\xff", "t": {"m"}, "z": {"m": 1.5}}, rejected: 0 }"#
        );
    }

    #[test]
    fn parses_integers_strictly() {
        for (text, expected) in [
            ("0", Some(0)),
            ("17", Some(17)),
            ("-17", Some(-17)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.0", None),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), expected, "{text:?}");
        }
    }
}
