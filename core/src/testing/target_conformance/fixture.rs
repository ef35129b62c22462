//! What every case shares: fresh projection names, checked calls to the target, and
//! assertions that name the case.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::TargetProbe;
use crate::error::Result;
use crate::event::{NewEvent, RecordedEvent, UnreadableEvent};
use crate::names::{EventType, ProjectionName, StreamId};
use crate::position::{Checkpoint, Position};
use crate::projection::{Commit, CommitOutcome, DeadLetter, NewSlot, SlotId, SlotInfo, SlotState};
use crate::store::StoreIdentity;
use crate::version::Version;

/// How far apart two times a target stored may be and still count as equal: a target may
/// keep coarser time than [`SystemTime`] (seconds, milliseconds).
pub(super) const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// One run of one case: its name, in every failure message.
pub(super) struct Fixture {
    case: &'static str,
    store: StoreIdentity,
}

impl Fixture {
    pub(super) fn new(case: &'static str) -> Self {
        Fixture {
            case,
            store: StoreIdentity::new("conformance:store-a"),
        }
    }

    /// The store the case's slots are built from.
    pub(super) fn store(&self) -> &StoreIdentity {
        &self.store
    }

    /// A slot as [`ProjectionTarget::slots`](crate::ProjectionTarget::slots) lists it,
    /// built from the case's store.
    pub(super) fn slot_info(&self, slot: SlotId, version: u32, state: SlotState) -> SlotInfo {
        SlotInfo::new(slot, version, state, Some(self.store.clone()))
    }

    /// A projection name no other case run uses, so cases can share a target.
    pub(super) fn projection(&self) -> ProjectionName {
        ProjectionName::new(format!("conf_{:016x}", fastrand::u64(..)))
            .unwrap_or_else(|e| self.fail(format_args!("test projection name is invalid: {e}")))
    }

    /// Fails the case.
    #[track_caller]
    pub(super) fn fail(&self, message: impl fmt::Display) -> ! {
        panic!("target conformance case `{}` failed: {message}", self.case)
    }

    /// Fails the case with `message()` unless `condition` holds.
    #[track_caller]
    pub(super) fn check(&self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.fail(message());
        }
    }

    /// Fails the case unless `actual` equals `expected`.
    #[track_caller]
    pub(super) fn check_eq<V>(&self, actual: V, expected: V, what: impl fmt::Display)
    where
        V: PartialEq + fmt::Debug,
    {
        if actual != expected {
            self.fail(format_args!(
                "{what}: expected {expected:?}, got {actual:?}"
            ));
        }
    }

    /// The value of a target call that must succeed.
    #[track_caller]
    pub(super) fn ok<V>(&self, result: Result<V>, doing: impl fmt::Display) -> V {
        result.unwrap_or_else(|e| self.fail(format_args!("target failed while {doing}: {e:?}")))
    }

    pub(super) async fn slots<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
    ) -> Vec<SlotInfo> {
        self.ok(
            target.slots(projection).await,
            format_args!("listing the slots of `{projection}`"),
        )
    }

    pub(super) async fn create<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
    ) -> SlotInfo {
        self.ok(
            target
                .create_slot(projection, version, how, &self.store)
                .await,
            format_args!("creating a slot ({how:?}) for version {version} of `{projection}`"),
        )
    }

    pub(super) async fn activate<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
    ) {
        self.ok(
            target.activate(projection, slot).await,
            format_args!("activating slot {slot} of `{projection}`"),
        );
    }

    pub(super) async fn checkpoint<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Option<Checkpoint> {
        self.ok(
            target.checkpoint(projection, slot).await,
            format_args!("reading the checkpoint of slot {slot} of `{projection}`"),
        )
    }

    pub(super) async fn commit<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<T::Writes>,
    ) -> CommitOutcome {
        let doing = format!(
            "committing {} -> {} to slot {slot} of `{projection}`",
            commit.expected, commit.checkpoint
        );
        self.ok(target.commit(projection, slot, commit).await, doing)
    }

    /// Commits `commit`, which must be accepted.
    pub(super) async fn committed<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<T::Writes>,
    ) {
        let what = format!(
            "a commit {} -> {} to slot {slot} of `{projection}` whose expected checkpoint is \
             the stored one",
            commit.expected, commit.checkpoint
        );
        let outcome = self.commit(target, projection, slot, commit).await;
        self.check_eq(outcome, CommitOutcome::Committed, what);
    }

    pub(super) async fn read<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> Option<u64> {
        self.ok(
            target.read(projection, slot, key).await,
            format_args!("reading `{key}` in slot {slot} of `{projection}`"),
        )
    }

    pub(super) async fn dead_letters<T: TargetProbe>(
        &self,
        target: &T,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Vec<DeadLetter> {
        self.ok(
            target.dead_letters(projection, slot).await,
            format_args!("listing the dead letters of slot {slot} of `{projection}`"),
        )
    }

    /// A dead letter for a fresh event of stream `s-1` at `version` and `position`.
    pub(super) fn letter(&self, version: u64, position: Position, attempts: u32) -> DeadLetter {
        let event_type = EventType::new("t")
            .unwrap_or_else(|e| self.fail(format_args!("test event type is invalid: {e}")));
        let stream = StreamId::new("s-1")
            .unwrap_or_else(|e| self.fail(format_args!("test stream id is invalid: {e}")));
        let event = RecordedEvent::from_new(
            NewEvent::new(event_type, 1, b"{}".to_vec()),
            stream,
            Version::new(version),
            position,
            SystemTime::now(),
        );
        DeadLetter::new(&event, format!("boom at {position}"), attempts)
    }

    /// A dead letter for an event the store could not read, with its raw values.
    pub(super) fn unreadable_letter(&self, position: Position) -> DeadLetter {
        let raw = [
            ("stream_id", "bad\nid \u{1b}[31m"),
            ("metadata", "{not json"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let event = RecordedEvent::from_new(
            NewEvent::new(UnreadableEvent::TYPE, 0, b"{}".to_vec()),
            UnreadableEvent::STREAM,
            Version::new(1),
            position,
            SystemTime::now(),
        )
        .with_unreadable(UnreadableEvent::new("invalid stream id", raw));
        DeadLetter::new(&event, format!("unreadable at {position}"), 1)
    }

    /// Checks `read` are `parked`, in order, field by field (`parked_at` within
    /// [`CLOCK_SLACK`]).
    #[track_caller]
    pub(super) fn check_letters(
        &self,
        read: &[DeadLetter],
        parked: &[&DeadLetter],
        what: impl fmt::Display,
    ) {
        let ids = |letters: &mut dyn Iterator<Item = &DeadLetter>| {
            letters.map(|l| l.event_id).collect::<Vec<_>>()
        };
        self.check(read.len() == parked.len(), || {
            format!(
                "{what}: expected {} dead letters (ids {:?}, oldest first), got {} (ids {:?})",
                parked.len(),
                ids(&mut parked.iter().copied()),
                read.len(),
                ids(&mut read.iter()),
            )
        });
        for (i, (r, p)) in read.iter().zip(parked).enumerate() {
            self.check(
                r.event_id == p.event_id
                    && r.position == p.position
                    && r.stream_id == p.stream_id
                    && r.stream_version == p.stream_version
                    && r.event_type == p.event_type
                    && r.error == p.error
                    && r.attempts == p.attempts
                    && r.unreadable == p.unreadable
                    && close(r.parked_at, p.parked_at),
                || {
                    format!(
                        "{what}: dead letter {i} should be {p:?} (parked_at within \
                         {CLOCK_SLACK:?}), got {r:?}"
                    )
                },
            );
        }
    }
}

/// A checkpoint at these positions.
pub(super) fn checkpoint(positions: &[Position]) -> Checkpoint {
    let mut checkpoint = Checkpoint::START;
    for position in positions {
        checkpoint.advance(*position);
    }
    checkpoint
}

/// A batch of writes setting each `(key, value)`.
pub(super) fn puts<T: TargetProbe>(values: &[(&str, u64)]) -> T::Writes {
    let mut writes = T::Writes::default();
    for (key, value) in values {
        T::put(&mut writes, key, *value);
    }
    writes
}

/// Whether two times are at most [`CLOCK_SLACK`] apart.
pub(super) fn close(a: SystemTime, b: SystemTime) -> bool {
    let apart = a.duration_since(b).unwrap_or_else(|e| e.duration());
    apart <= CLOCK_SLACK
}
