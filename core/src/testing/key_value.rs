use std::collections::BTreeMap;

use crate::projection::MemoryModel;

/// A tiny read model for tests of projection targets and the projector runtime: named
/// counters, set or incremented. Keep it in an [`InMemoryTarget`](crate::InMemoryTarget).
///
/// ```
/// use foldline::testing::{KeyValueModel, KeyValueWrites};
/// use foldline::MemoryModel;
///
/// let mut model = KeyValueModel::default();
/// let mut writes = KeyValueWrites::default();
/// writes.put("a", 5);
/// writes.add("a", 2);
/// model.apply(writes);
/// assert_eq!(model.get("a"), Some(7));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValueModel {
    /// The counters.
    pub values: BTreeMap<String, u64>,
}

impl KeyValueModel {
    /// The counter `key`, if it was ever written.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.values.get(key).copied()
    }
}

/// A batch of writes to a [`KeyValueModel`], applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValueWrites {
    /// The operations, in order.
    pub ops: Vec<KeyValueOp>,
}

/// One write to a [`KeyValueModel`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyValueOp {
    /// Sets a counter.
    Put(String, u64),
    /// Adds to a counter (from 0 when absent).
    Add(String, u64),
}

impl KeyValueWrites {
    /// Sets counter `key` to `value`.
    pub fn put(&mut self, key: impl Into<String>, value: u64) {
        self.ops.push(KeyValueOp::Put(key.into(), value));
    }

    /// Adds `amount` to counter `key`.
    pub fn add(&mut self, key: impl Into<String>, amount: u64) {
        self.ops.push(KeyValueOp::Add(key.into(), amount));
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl MemoryModel for KeyValueModel {
    type Writes = KeyValueWrites;

    fn apply(&mut self, writes: KeyValueWrites) {
        for op in writes.ops {
            match op {
                KeyValueOp::Put(key, value) => {
                    self.values.insert(key, value);
                }
                KeyValueOp::Add(key, amount) => *self.values.entry(key).or_default() += amount,
            }
        }
    }
}
