//! The key layout: which Redis key holds what (described in the crate docs).

use foldline::{ProjectionName, SlotId};

/// The keys of one projection that are not about one slot: `<prefix>:<projection>:…`.
#[derive(Clone, Debug)]
pub(crate) struct ProjectionKeys {
    /// `<prefix>:<projection>`.
    base: String,
    /// `{<prefix>:<projection>:`, the start of every slot's hash tag.
    tag_start: String,
}

impl ProjectionKeys {
    pub(crate) fn new(prefix: &str, projection: &ProjectionName) -> Self {
        ProjectionKeys {
            base: format!("{prefix}:{projection}"),
            tag_start: format!("{{{prefix}:{projection}:"),
        }
    }

    /// Hash: slot number → `{"version":N,"state":"building"}` (and `"dropping":true` while a
    /// drop is under way).
    pub(crate) fn slots(&self) -> String {
        format!("{}:slots", self.base)
    }

    /// Counter: the last slot number handed out.
    pub(crate) fn next_slot(&self) -> String {
        format!("{}:next_slot", self.base)
    }

    /// String: the active slot's number, the alias readers resolve.
    pub(crate) fn active(&self) -> String {
        format!("{}:active", self.base)
    }

    /// String: the operator's flags, JSON.
    pub(crate) fn control(&self) -> String {
        format!("{}:control", self.base)
    }

    /// String: the last projector status, JSON.
    pub(crate) fn status(&self) -> String {
        format!("{}:status", self.base)
    }

    /// `{<prefix>:<projection>:`, to which a script appends `<slot>}:checkpoint`.
    pub(crate) fn tag_start(&self) -> &str {
        &self.tag_start
    }

    /// The keys of `slot`.
    pub(crate) fn slot(&self, slot: SlotId) -> RedisSlotKeys {
        RedisSlotKeys {
            tag: format!("{}{slot}}}", self.tag_start),
            slot,
        }
    }
}

/// The keys of one slot (one build of a projection): all of them start with the slot's hash
/// tag `{<prefix>:<projection>:<slot>}`, so they live in one Redis Cluster hash slot and a
/// commit touches only keys of one node.
///
/// Get one from [`RedisReader::resolve`](crate::RedisReader::resolve) (the active slot) or
/// [`RedisTarget::slot_keys`](crate::RedisTarget::slot_keys) (any slot), then name the keys a
/// projection wrote with [`key`](RedisSlotKeys::key).
///
/// ```
/// use foldline::{ProjectionName, SlotId};
/// use foldline_redis::RedisSlotKeys;
///
/// let keys = RedisSlotKeys::new("foldline", &ProjectionName::new("balances")?, SlotId::new(3));
/// assert_eq!(keys.hash_tag(), "{foldline:balances:3}");
/// assert_eq!(keys.key("account:7"), "{foldline:balances:3}:d:account:7");
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisSlotKeys {
    tag: String,
    slot: SlotId,
}

impl RedisSlotKeys {
    /// The keys of `slot` of `projection` under `prefix` (see
    /// [`RedisTargetOptions::with_prefix`](crate::RedisTargetOptions::with_prefix)).
    pub fn new(prefix: &str, projection: &ProjectionName, slot: SlotId) -> Self {
        ProjectionKeys::new(prefix, projection).slot(slot)
    }

    /// The slot's number.
    pub fn slot(&self) -> SlotId {
        self.slot
    }

    /// The hash tag every key of the slot starts with: `{<prefix>:<projection>:<slot>}`.
    pub fn hash_tag(&self) -> &str {
        &self.tag
    }

    /// The full Redis key of the projection's key `user_key` (as written in
    /// [`RedisWrites`](crate::RedisWrites)): `{<prefix>:<projection>:<slot>}:d:<user_key>`.
    pub fn key(&self, user_key: &str) -> String {
        let mut key = String::with_capacity(self.tag.len() + ":d:".len() + user_key.len());
        key.push_str(&self.tag);
        key.push_str(":d:");
        key.push_str(user_key);
        key
    }

    /// What every data key of the slot starts with: `{<prefix>:<projection>:<slot>}:d:`.
    /// Strip it from a full key to get the projection's own key back.
    pub fn data_prefix(&self) -> String {
        format!("{}:d:", self.tag)
    }

    /// String: the slot's checkpoint (`start` for [`Checkpoint::START`](foldline::Checkpoint::START));
    /// absent once the slot is dropped (or while it is being cleared).
    pub(crate) fn checkpoint(&self) -> String {
        format!("{}:checkpoint", self.tag)
    }

    /// Hash: event id → dead letter, JSON.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }

    /// Sorted set: event id by the order it was parked in.
    pub(crate) fn dead_order(&self) -> String {
        format!("{}:dead_order", self.tag)
    }

    /// String with a TTL: the lease holder.
    pub(crate) fn lease(&self) -> String {
        format!("{}:lease", self.tag)
    }

    /// A `SCAN MATCH` pattern for every key of the slot.
    pub(crate) fn pattern(&self) -> String {
        let mut pattern = escape_glob(&self.tag);
        pattern.push_str(":*");
        pattern
    }
}

/// `text` with the characters `SCAN MATCH` reads as a glob (`* ? [ ] \`) escaped. (`{` and `}`
/// are not glob characters; prefixes and projection names cannot hold the others, so this
/// only guards against a future change of those rules.)
pub(crate) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use foldline::{ProjectionName, SlotId};

    use super::{ProjectionKeys, escape_glob};

    #[test]
    fn lays_out_keys() {
        let projection = ProjectionName::new("orders").unwrap();
        let keys = ProjectionKeys::new("app", &projection);
        assert_eq!(keys.slots(), "app:orders:slots");
        assert_eq!(keys.next_slot(), "app:orders:next_slot");
        assert_eq!(keys.active(), "app:orders:active");
        assert_eq!(keys.control(), "app:orders:control");
        assert_eq!(keys.status(), "app:orders:status");
        let slot = keys.slot(SlotId::new(12));
        assert_eq!(slot.slot(), SlotId::new(12));
        assert_eq!(slot.checkpoint(), "{app:orders:12}:checkpoint");
        assert_eq!(
            format!("{}12}}:checkpoint", keys.tag_start()),
            slot.checkpoint()
        );
        assert_eq!(slot.dead(), "{app:orders:12}:dead");
        assert_eq!(slot.dead_order(), "{app:orders:12}:dead_order");
        assert_eq!(slot.lease(), "{app:orders:12}:lease");
        assert_eq!(slot.key("{x}"), "{app:orders:12}:d:{x}");
        assert_eq!(slot.pattern(), "{app:orders:12}:*");
    }

    #[test]
    fn escapes_globs() {
        assert_eq!(escape_glob(r"a*b?c[d]e\f{g}"), r"a\*b\?c\[d\]e\\f{g}");
    }
}
