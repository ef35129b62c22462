//! The account domain every command benchmark drives, and the rotation of accounts that keeps
//! streams short.

use std::fmt;

use foldline::{
    Aggregate, Command, DomainEvent, EventMetadata, EventType, JsonCodec, NewEvent, StreamId,
};
use serde::{Deserialize, Serialize};

use super::Options;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
pub(crate) enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: u64 },
}

#[derive(Debug, Command)]
pub(crate) enum AccountCommand {
    Open {
        #[foldline(id)]
        id: AccountId,
        owner: String,
    },
    Deposit {
        #[foldline(id)]
        id: AccountId,
        cents: u64,
    },
}

impl AccountCommand {
    /// The command for `step`: `Open` for a fresh account, `Deposit` after that.
    pub(crate) fn for_step(step: Step<'_>) -> Self {
        if step.version == 0 {
            AccountCommand::Open {
                id: step.id,
                owner: OWNER.to_owned(),
            }
        } else {
            AccountCommand::Deposit {
                id: step.id,
                cents: CENTS,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
}

/// A plain account; no snapshots (streams stay short, see [`Rotation`]).
#[derive(Debug, Default, Aggregate)]
#[foldline(id = AccountId, command = AccountCommand, event = AccountEvent, error = AccountError)]
pub(crate) struct Account {
    open: bool,
    balance: u64,
}

impl Account {
    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents, .. } => {
                Ok(vec![AccountEvent::Deposited { cents: *cents }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { cents } => self.balance += cents,
        }
    }
}

/// Account `slot`, in its `generation`-th life: stream `account-<slot>.<generation>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccountId {
    slot: u32,
    generation: u32,
}

impl AccountId {
    /// Account `slot` in its `generation`-th life.
    pub(crate) fn new(slot: u32, generation: u32) -> Self {
        AccountId { slot, generation }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

pub(crate) const OWNER: &str = "bench";
pub(crate) const CENTS: u64 = 100;

/// Generations apart that two phases start, so their streams never meet.
const GENERATION_STRIDE: u32 = 10_000;

/// The first generation of each phase that shares a store with others (see
/// [`Rotation::with`]): every phase writes accounts of its own.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    next: u32,
}

impl Generations {
    /// The next phase's first generation.
    pub(crate) fn fresh(&mut self) -> u32 {
        let generation = self.next;
        self.next += GENERATION_STRIDE;
        generation
    }
}

/// Which account the next operation goes to: round robin over this task's slots, each slot
/// moving to a fresh account after `events_per_stream` operations.
pub(crate) struct Rotation {
    slots: Vec<Slot>,
    next: usize,
    events_per_stream: u32,
}

struct Slot {
    id: AccountId,
    stream: StreamId,
    version: u32,
}

/// One operation: the account, its stream, and how many operations the account had before.
#[derive(Clone, Copy)]
pub(crate) struct Step<'a> {
    pub(crate) id: AccountId,
    pub(crate) stream: &'a StreamId,
    pub(crate) version: u32,
}

impl Rotation {
    /// Task `task` of `tasks` owns slots `task`, `task + tasks`, `task + 2 * tasks`... of
    /// `streams`, each retired after `--events-per-stream` operations.
    pub(crate) fn new(
        task: usize,
        tasks: usize,
        streams: u32,
        options: &Options,
    ) -> anyhow::Result<Self> {
        Self::with(task, tasks, streams, options.events_per_stream, 0)
    }

    /// As [`new`](Rotation::new) with explicit sizes, the accounts starting at generation
    /// `first_generation`: phases that share a store start at different generations, so each
    /// writes streams of its own.
    pub(crate) fn with(
        task: usize,
        tasks: usize,
        streams: u32,
        events_per_stream: u32,
        first_generation: u32,
    ) -> anyhow::Result<Self> {
        let slots = (0..streams)
            .skip(task)
            .step_by(tasks)
            .map(|slot| {
                Slot::new(AccountId {
                    slot,
                    generation: first_generation,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!slots.is_empty(), "task {task} of {tasks} has no stream");
        Ok(Rotation {
            slots,
            next: 0,
            events_per_stream,
        })
    }

    /// Moves on to the next slot and returns it, after retiring the previous account of that
    /// slot if it is full.
    pub(crate) fn advance(&mut self) -> anyhow::Result<Step<'_>> {
        let index = self.next;
        self.next = (self.next + 1) % self.slots.len();
        let slot = &mut self.slots[index];
        if slot.version == self.events_per_stream {
            *slot = Slot::new(AccountId {
                slot: slot.id.slot,
                generation: slot.id.generation + 1,
            })?;
        }
        slot.version += 1;
        Ok(Step {
            id: slot.id,
            stream: &slot.stream,
            version: slot.version - 1,
        })
    }
}

impl Slot {
    fn new(id: AccountId) -> anyhow::Result<Self> {
        Ok(Slot {
            id,
            stream: StreamId::for_aggregate(Account::NAME, &id)?,
            version: 0,
        })
    }
}

/// An account event encoded once, for the paths that append without the executor.
#[derive(Clone)]
pub(crate) struct Encoded {
    pub(crate) event_type: EventType,
    pub(crate) schema_version: u32,
    pub(crate) payload: Vec<u8>,
}

impl Encoded {
    pub(crate) fn of(event: &AccountEvent) -> anyhow::Result<Self> {
        Ok(Encoded {
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            payload: event.encode(&JsonCodec).map_err(|e| anyhow::anyhow!(e))?,
        })
    }

    /// A fresh event (new id) of this type and payload, with `metadata`.
    pub(crate) fn event(&self, metadata: &EventMetadata) -> NewEvent {
        NewEvent::new(
            self.event_type.clone(),
            self.schema_version,
            self.payload.clone(),
        )
        .with_metadata(metadata.clone())
    }

    /// The payload as the text PostgreSQL's `jsonb` column takes.
    pub(crate) fn payload_text(&self) -> anyhow::Result<&str> {
        Ok(std::str::from_utf8(&self.payload)?)
    }
}

/// One command handler: the next account's command, executed and awaited.
pub(crate) struct Handler<S> {
    pub(crate) executor: foldline::CommandExecutor<S>,
    pub(crate) rotation: Rotation,
}

impl<S: foldline::EventStore + Clone> crate::timed::Worker for Handler<S> {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let step = self.rotation.advance()?;
        self.executor
            .execute::<Account>(AccountCommand::for_step(step))
            .await?;
        Ok(1)
    }
}

/// Accounts opened for a contention phase: `count` slots of generation `generation`.
pub(crate) async fn open_accounts<S: foldline::EventStore + Clone>(
    executor: &foldline::CommandExecutor<S>,
    count: u32,
    generation: u32,
) -> anyhow::Result<Vec<AccountId>> {
    let mut accounts = Vec::new();
    for slot in 0..count {
        let id = AccountId { slot, generation };
        executor
            .execute::<Account>(AccountCommand::Open {
                id,
                owner: OWNER.to_owned(),
            })
            .await?;
        accounts.push(id);
    }
    Ok(accounts)
}

/// A handler depositing into open accounts in turn, starting at its own offset: with more
/// handlers than accounts, several handlers write each account at once.
pub(crate) struct Depositor<S> {
    pub(crate) executor: foldline::CommandExecutor<S>,
    pub(crate) accounts: Vec<AccountId>,
    pub(crate) next: usize,
}

impl<S: foldline::EventStore + Clone> crate::timed::Worker for Depositor<S> {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let id = self.accounts[self.next % self.accounts.len()];
        self.next += 1;
        self.executor
            .execute::<Account>(AccountCommand::Deposit { id, cents: CENTS })
            .await?;
        Ok(1)
    }
}
