//! `RedisTarget`: the projection target on Redis.

use std::sync::Arc;
use std::time::Duration;

use foldline::{
    Checkpoint, Commit, CommitOutcome, DeadLetter, DriverErrors, Error, NewSlot, ProjectionControl,
    ProjectionName, ProjectionTarget, ProjectorHeartbeat, Result, Shown, SlotId, SlotInfo,
    SlotState, StoreIdentity,
};
use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, ScanOptions, Script, ScriptInvocation};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::commit::{Committer, parse_checkpoint};
use crate::error::Redis;
use crate::keys::{ProjectionKeys, RedisSlotKeys};
use crate::options::RedisTargetOptions;
use crate::reader::RedisReader;
use crate::writes::RedisWrites;

/// How many keys one `SCAN` step asks for (see [`scan_options`]).
const SCAN_COUNT: usize = 1000;

/// A [`ProjectionTarget`] on Redis: each slot's keys under one hash tag, every commit one Lua
/// script that checks the checkpoint, applies the batch and stores the new checkpoint.
///
/// Connects through a [`ConnectionManager`], which reconnects after a lost connection (the
/// command that saw the loss fails with a transient error; later ones wait for the new
/// connection). Clones share the connection.
///
/// See the crate docs for the key layout and what a commit guarantees.
#[derive(Clone)]
pub struct RedisTarget {
    conn: ConnectionManager,
    options: Arc<RedisTargetOptions>,
    scripts: Arc<Scripts>,
    committer: Arc<Committer>,
}

struct Scripts {
    create_slot: Script,
    activate: Script,
    drop_begin: Script,
    clear_begin: Script,
    clear_end: Script,
    acquire_lease: Script,
    release_lease: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            create_slot: Script::new(include_str!("lua/create_slot.lua")),
            activate: Script::new(include_str!("lua/activate.lua")),
            drop_begin: Script::new(include_str!("lua/drop_begin.lua")),
            clear_begin: Script::new(include_str!("lua/clear_begin.lua")),
            clear_end: Script::new(include_str!("lua/clear_end.lua")),
            acquire_lease: Script::new(include_str!("lua/acquire_lease.lua")),
            release_lease: Script::new(include_str!("lua/release_lease.lua")),
        }
    }
}

/// A slot's entry in `<prefix>:<projection>:slots`.
#[derive(Debug, Serialize, Deserialize)]
struct SlotEntry {
    version: u32,
    state: SlotState,
    /// Set by the first step of a drop; the slot is gone for everything but listing.
    #[serde(default)]
    dropping: bool,
    /// The store it is built from (absent in slots created before stores were recorded).
    #[serde(default)]
    store: Option<StoreIdentity>,
}

impl RedisTarget {
    /// Connects to the server `options` name.
    ///
    /// # Errors
    ///
    /// A transient [`Error::Backend`] when the server cannot be reached (after the
    /// configured reconnection retries).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect(options: RedisTargetOptions) -> Result<Self> {
        let conn = options.connect().await?;
        Ok(Self::with_connection(conn, options))
    }

    /// A target that connects on its first command, for tools that may never use it (an
    /// admin CLI whose inspection commands only read the event store): nothing is sent now,
    /// and an unreachable server shows as an [`Error::Backend`] from the first operation.
    ///
    /// # Errors
    ///
    /// Only when the connection manager cannot be set up (no Tokio runtime); the server is
    /// not contacted.
    pub fn connect_lazy(options: RedisTargetOptions) -> Result<Self> {
        let conn = options.connect_lazy()?;
        Ok(Self::with_connection(conn, options))
    }

    fn with_connection(conn: ConnectionManager, options: RedisTargetOptions) -> Self {
        let committer = Committer::new(options.client.clone(), options.commit_connection_config());
        RedisTarget {
            conn,
            options: Arc::new(options),
            scripts: Arc::new(Scripts::new()),
            committer: Arc::new(committer),
        }
    }

    /// The options it was connected with.
    pub fn options(&self) -> &RedisTargetOptions {
        &self.options
    }

    /// A reader of the projections' active slots, on the same connection.
    pub fn reader(&self) -> RedisReader {
        RedisReader::new(self.conn.clone(), self.options.prefix().to_owned())
    }

    /// The keys of `slot` of `projection` (active or not).
    pub fn slot_keys(&self, projection: &ProjectionName, slot: SlotId) -> RedisSlotKeys {
        RedisSlotKeys::new(self.options.prefix(), projection, slot)
    }

    /// The connection, for commands of your own (it is shared: clones are cheap).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// How many writes of committed batches Redis refused (`WRONGTYPE`, not an integer...)
    /// through this target and its clones since it connected. The same refusals are logged
    /// and counted in the metric `foldline_redis_rejected_writes_total`; see the crate docs.
    pub fn rejected_writes(&self) -> u64 {
        self.committer.rejected()
    }

    fn keys(&self, projection: &ProjectionName) -> ProjectionKeys {
        ProjectionKeys::new(self.options.prefix(), projection)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        key: String,
        what: &str,
    ) -> Result<Option<T>> {
        let text: Option<String> = self
            .query(redis::cmd("GET").arg(&key), || format!("reading {what}"))
            .await?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                Redis::corrupt(
                    format!("reading {what}: `{key}` does not hold one"),
                    Some(Box::new(e)),
                )
            })
        })
        .transpose()
    }

    async fn set_json<T: Serialize>(&self, key: String, value: &T, what: &str) -> Result<()> {
        let text = serde_json::to_string(value).map_err(|e| {
            Redis::corrupt(
                format!("encoding {what}: not representable as JSON"),
                Some(Box::new(e)),
            )
        })?;
        self.query(redis::cmd("SET").arg(key).arg(text), || {
            format!("storing {what}")
        })
        .await
    }

    /// Sends `cmd`; a failure says it happened while `doing`.
    async fn query<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        doing: impl FnOnce() -> String,
    ) -> Result<T> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(|e| Redis::error(doing(), e))
    }

    /// Runs a script; a failure says it happened while `doing`.
    async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        doing: impl FnOnce() -> String,
    ) -> Result<T> {
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| Redis::error(doing(), e))
    }
}

/// `SCAN` over the keys matching `pattern`, [`SCAN_COUNT`] keys a step.
pub(crate) fn scan_options(pattern: &str) -> ScanOptions {
    ScanOptions::default()
        .with_pattern(pattern)
        .with_count(SCAN_COUNT)
}

/// Unlinks every key matching `pattern` but `keep`, one `SCAN` batch at a time (never holding
/// more than a batch of keys).
async fn unlink_matching(
    conn: &mut ConnectionManager,
    pattern: &str,
    keep: Option<&str>,
) -> redis::RedisResult<()> {
    let keep = keep.map(str::as_bytes);
    let mut cursor = 0;
    loop {
        let (next, mut keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .cursor_arg(cursor)
            .arg(scan_options(pattern))
            .query_async(conn)
            .await?;
        keys.retain(|k| Some(k.as_slice()) != keep);
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).exec_async(conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn not_found(projection: &ProjectionName, slot: SlotId) -> Error {
    Error::SlotNotFound {
        projection: projection.clone(),
        slot,
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ProjectionTarget for RedisTarget {
    type Writes = RedisWrites;

    async fn slots(&self, projection: &ProjectionName) -> Result<Vec<SlotInfo>> {
        let entries: Vec<(String, String)> = self
            .query(
                redis::cmd("HGETALL").arg(self.keys(projection).slots()),
                || format!("listing the slots of projection `{projection}`"),
            )
            .await?;
        let mut slots = entries
            .into_iter()
            .map(|(number, json)| {
                let slot: SlotId = number.parse().map_err(|_| {
                    Redis::corrupt(
                        format!(
                            "listing the slots of projection `{projection}`: slot `{}`",
                            Shown::new(&number)
                        ),
                        None,
                    )
                })?;
                let entry: SlotEntry = serde_json::from_str(&json).map_err(|e| {
                    Redis::corrupt(
                        format!("listing the slots of projection `{projection}`: slot {slot}"),
                        Some(Box::new(e)),
                    )
                })?;
                // A slot whose drop was interrupted is retired: about to be dropped.
                let state = if entry.dropping {
                    SlotState::Retired
                } else {
                    entry.state
                };
                Ok(SlotInfo::new(slot, entry.version, state, entry.store))
            })
            .collect::<Result<Vec<_>>>()?;
        slots.sort_by_key(|s| s.slot);
        Ok(slots)
    }

    async fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> Result<SlotInfo> {
        let keys = self.keys(projection);
        let (slot, _created): (u32, i64) = self
            .invoke(
                self.scripts
                    .create_slot
                    .key(keys.slots())
                    .key(keys.next_slot())
                    .arg(version)
                    .arg(if how == NewSlot::Resume { "1" } else { "0" })
                    .arg(keys.tag_start())
                    .arg(store.as_str()),
                || format!("creating a slot for version {version} of projection `{projection}`"),
            )
            .await?;
        Ok(SlotInfo::new(
            SlotId::new(slot),
            version,
            SlotState::Building,
            Some(store.clone()),
        ))
    }

    async fn activate(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        let keys = self.keys(projection);
        let found: i64 = self
            .invoke(
                self.scripts
                    .activate
                    .key(keys.slots())
                    .key(keys.active())
                    .arg(slot.get()),
                || format!("activating slot {slot} of projection `{projection}`"),
            )
            .await?;
        if found == 1 {
            Ok(())
        } else {
            Err(not_found(projection, slot))
        }
    }

    async fn drop_slot(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        let keys = self.keys(projection);
        let slot_keys = keys.slot(slot);
        let dropping = || format!("dropping slot {slot} of projection `{projection}`");
        let begun: i64 = self
            .invoke(
                self.scripts
                    .drop_begin
                    .key(keys.slots())
                    .key(keys.active())
                    .key(slot_keys.checkpoint())
                    .key(slot_keys.lease())
                    .arg(slot.get()),
                dropping,
            )
            .await?;
        match begun {
            0 => return Ok(()),
            -1 => {
                return Err(Error::SlotActive {
                    projection: projection.clone(),
                    slot,
                });
            }
            _ => {}
        }
        unlink_matching(&mut self.conn.clone(), &slot_keys.pattern(), None)
            .await
            .map_err(|e| Redis::error(dropping(), e))?;
        self.query::<()>(
            redis::cmd("HDEL").arg(keys.slots()).arg(slot.get()),
            dropping,
        )
        .await?;
        self.committer.forget(projection, slot);
        Ok(())
    }

    async fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> Result<()> {
        let keys = self.keys(projection);
        let slot_keys = keys.slot(slot);
        let clearing = || format!("clearing slot {slot} of projection `{projection}`");
        // `clear_begin` and `clear_end` take the same keys and arguments (`clear_end` ignores
        // the store) and say 0 when the slot is gone.
        let step = async |script: &Script| -> Result<()> {
            let found: i64 = self
                .invoke(
                    script
                        .key(keys.slots())
                        .key(slot_keys.checkpoint())
                        .arg(slot.get())
                        .arg(store.as_str()),
                    clearing,
                )
                .await?;
            if found == 1 {
                Ok(())
            } else {
                Err(not_found(projection, slot))
            }
        };
        step(&self.scripts.clear_begin).await?;
        unlink_matching(
            &mut self.conn.clone(),
            &slot_keys.pattern(),
            Some(&slot_keys.lease()),
        )
        .await
        .map_err(|e| Redis::error(clearing(), e))?;
        step(&self.scripts.clear_end).await
    }

    async fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Option<Checkpoint>> {
        let text: Option<String> = self
            .query(
                redis::cmd("GET").arg(self.slot_keys(projection, slot).checkpoint()),
                || format!("reading the checkpoint of slot {slot} of projection `{projection}`"),
            )
            .await?;
        text.map(|text| parse_checkpoint(&text, projection, slot))
            .transpose()
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<RedisWrites>,
    ) -> Result<CommitOutcome> {
        let span = tracing::debug_span!(
            "redis.commit",
            %projection,
            slot = slot.get(),
            ops = commit.writes.len(),
            checkpoint = %commit.checkpoint,
        );
        self.committer
            .commit(&self.slot_keys(projection, slot), projection, slot, commit)
            .instrument(span)
            .await
    }

    async fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let keys = self.slot_keys(projection, slot);
        let held: i64 = self
            .invoke(
                self.scripts
                    .acquire_lease
                    .key(keys.lease())
                    .key(keys.checkpoint())
                    .arg(owner)
                    .arg(millis(ttl)),
                || format!("taking the lease of slot {slot} of projection `{projection}`"),
            )
            .await?;
        match held {
            -1 => Err(not_found(projection, slot)),
            held => Ok(held == 1),
        }
    }

    async fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> Result<()> {
        self.invoke(
            self.scripts
                .release_lease
                .key(self.slot_keys(projection, slot).lease())
                .arg(owner),
            || format!("giving up the lease of slot {slot} of projection `{projection}`"),
        )
        .await
    }

    async fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Vec<DeadLetter>> {
        let keys = self.slot_keys(projection, slot);
        let what = format!("the dead letters of slot {slot} of projection `{projection}`");
        let (order, mut letters): (Vec<String>, std::collections::HashMap<String, String>) =
            redis::pipe()
                .atomic()
                .cmd("ZRANGE")
                .arg(keys.dead_order())
                .arg(0)
                .arg(-1)
                .cmd("HGETALL")
                .arg(keys.dead())
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| Redis::error(format!("reading {what}"), e))?;
        order
            .into_iter()
            .filter_map(|id| letters.remove(&id))
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| Redis::corrupt(format!("reading {what}"), Some(Box::new(e))))
            })
            .collect()
    }

    async fn control(&self, projection: &ProjectionName) -> Result<ProjectionControl> {
        let what = format!("the control flags of projection `{projection}`");
        Ok(self
            .get_json(self.keys(projection).control(), &what)
            .await?
            .unwrap_or_default())
    }

    async fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> Result<()> {
        let what = format!("the control flags of projection `{projection}`");
        self.set_json(self.keys(projection).control(), &control, &what)
            .await
    }

    async fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        heartbeat: &ProjectorHeartbeat,
    ) -> Result<()> {
        let what = format!("the projector status of projection `{projection}`");
        self.set_json(self.keys(projection).status(), heartbeat, &what)
            .await
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        let what = format!("the projector status of projection `{projection}`");
        self.get_json(self.keys(projection).status(), &what).await
    }
}
