//! The balance read model `redis-projection` and `live-lag` build in Redis from the account
//! events, and the same writes as plain Redis commands for their raw limits.
//!
//! Per event, three operations on the account's hash and one global counter:
//!
//! | event | writes |
//! |---|---|
//! | `Opened { owner }` | `HSET account:<stream> owner <owner>`, `HSET account:<stream> version <v>`, `INCRBY events 1` |
//! | `Deposited { cents }` | `HINCRBY account:<stream> cents <cents>`, `HSET account:<stream> version <v>`, `INCRBY events 1` |

use foldline::{BoxError, Envelope, Projection, ProjectionName};
use foldline_redis::{RedisSlotKeys, RedisWrites};

use super::account::AccountEvent;

/// Redis operations per event.
pub(crate) const OPS_PER_EVENT: usize = 3;

/// The balance of every account, its owner and last version, and the number of events.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Balances;

impl Projection for Balances {
    const NAME: ProjectionName = ProjectionName::from_static("balances");
    type Event = AccountEvent;
    type Writes = RedisWrites;

    fn handle(
        &self,
        event: Envelope<'_, AccountEvent>,
        writes: &mut RedisWrites,
    ) -> Result<(), BoxError> {
        let account = account_key(event.recorded.stream_id.as_str());
        match &event.event {
            AccountEvent::Opened { owner } => {
                writes.hset(account.as_str(), "owner", owner.as_str())
            }
            AccountEvent::Deposited { cents } => {
                writes.hincr_by(account.as_str(), "cents", i64::try_from(*cents)?)
            }
        };
        writes
            .hset(
                account,
                "version",
                event.recorded.stream_version.get().to_string(),
            )
            .incr_by(EVENTS_KEY, 1);
        Ok(())
    }
}

/// Events per batch of the projection's writes.
pub(crate) fn events_in(writes: &RedisWrites) -> usize {
    writes.len() / OPS_PER_EVENT
}

/// The global counter of events.
const EVENTS_KEY: &str = "events";

/// The hash of the account whose stream is `stream`.
fn account_key(stream: &str) -> String {
    format!("account:{stream}")
}

/// One account event, decoded, for the raw limits: the index of its stream in a table of
/// stream ids (so a million events hold a hundred thousand strings, not a million), its
/// version and the event.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) stream: u32,
    pub(crate) version: u64,
    pub(crate) event: AccountEvent,
}

/// Adds the projection's writes for `event` (of stream `stream`) to `pipe`, as plain Redis
/// commands on the keys of `keys`' slot: the same commands, keys and values the projection's
/// handler produces (a unit test below checks it).
pub(crate) fn raw_writes(
    pipe: &mut redis::Pipeline,
    keys: &RedisSlotKeys,
    stream: &str,
    version: u64,
    event: &AccountEvent,
) {
    let account = keys.key(&account_key(stream));
    match event {
        AccountEvent::Opened { owner } => pipe.cmd("HSET").arg(&account).arg("owner").arg(owner),
        AccountEvent::Deposited { cents } => {
            pipe.cmd("HINCRBY").arg(&account).arg("cents").arg(*cents)
        }
    };
    pipe.cmd("HSET")
        .arg(&account)
        .arg("version")
        .arg(version.to_string())
        .cmd("INCRBY")
        .arg(keys.key(EVENTS_KEY))
        .arg(1);
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use foldline::{JsonCodec, NewEvent, Position, RecordedEvent, SlotId, StreamId, Version};
    use foldline_redis::RedisOp;

    use super::*;

    /// Each operation as the command, full key and arguments Redis receives.
    fn as_commands(writes: &RedisWrites, keys: &RedisSlotKeys) -> Vec<Vec<Vec<u8>>> {
        writes
            .ops()
            .iter()
            .map(|op| {
                let mut command = vec![
                    op.command().as_bytes().to_vec(),
                    keys.key(op.key()).into_bytes(),
                ];
                match op {
                    RedisOp::HSet { field, value, .. } => {
                        command.extend([field.clone(), value.clone()]);
                    }
                    RedisOp::HIncrBy { field, by, .. } => {
                        command.extend([field.clone(), by.to_string().into_bytes()]);
                    }
                    RedisOp::IncrBy { by, .. } => command.push(by.to_string().into_bytes()),
                    other => panic!("the projection does not write {other:?}"),
                }
                command
            })
            .collect()
    }

    fn pipeline_commands(pipe: &redis::Pipeline) -> Vec<Vec<Vec<u8>>> {
        pipe.cmd_iter()
            .map(|cmd| {
                cmd.args_iter()
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => bytes.to_vec(),
                        other => panic!("the projection sends no {other:?} argument"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_raw_limit_sends_the_projections_writes() {
        let keys = RedisSlotKeys::new("bench-f-0123456789ab", &Balances::NAME, SlotId::new(1));
        let stream = StreamId::new("account-f7").unwrap();
        for (version, event) in [
            (
                1,
                AccountEvent::Opened {
                    owner: "bench".into(),
                },
            ),
            (2, AccountEvent::Deposited { cents: 100 }),
        ] {
            let new = NewEvent::encode(&event, &JsonCodec).unwrap();
            let recorded = RecordedEvent::from_new(
                new,
                stream.clone(),
                Version::new(version),
                Position::new(0, 1, version),
                SystemTime::now(),
            );
            let mut writes = RedisWrites::new();
            Balances
                .handle(Envelope::new(event.clone(), &recorded), &mut writes)
                .unwrap();
            assert_eq!(events_in(&writes), 1);
            let mut pipe = redis::pipe();
            raw_writes(&mut pipe, &keys, stream.as_str(), version, &event);
            assert_eq!(as_commands(&writes, &keys), pipeline_commands(&pipe));
        }
    }
}
