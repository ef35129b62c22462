//! The command executor against the in-memory store: load, decide, append; rejections;
//! contention and retries; idempotency keys; snapshots; the state cache. The checks that need
//! only the store traits are `pub(crate)` functions, run on PostgreSQL too (`pg_commands`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldline::{
    AppendRequest, AppendResult, Checkpoint, CommandError, CommandExecutor, CommandOptions,
    DomainEvent, Error, EventBatch, EventStore, ExpectedVersion, IdempotencyKey,
    InMemoryEventStore, JsonCodec, NewEvent, RecordedEvent, Result, RetryPolicy, Snapshot,
    SnapshotStore, StreamId, Subscription, Version,
};
use foldline_tests::{Account, AccountCommand as Cmd, AccountError, AccountEvent, SNAPSHOT_EVERY};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;
use uuid::Uuid;

pub(crate) fn stream(account: &str) -> StreamId {
    StreamId::for_aggregate(<Account as foldline::Aggregate>::NAME, &account).unwrap()
}

pub(crate) async fn read(store: &impl EventStore, account: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(&stream(account), Version::new(1), 100_000)
        .await
        .unwrap()
}

pub(crate) fn decode(recorded: &[RecordedEvent]) -> Vec<AccountEvent> {
    recorded
        .iter()
        .map(|r| r.decode(&JsonCodec).unwrap())
        .collect()
}

pub(crate) fn deposited(cents: u64) -> AccountEvent {
    AccountEvent::Deposited { cents, memo: None }
}

#[tokio::test]
async fn load_decide_append() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let bank = CommandExecutor::new(store.clone());

    let opened = bank.execute::<Account>(Cmd::open("a1", "ada")).await?;
    assert_eq!(
        opened.events,
        [AccountEvent::Opened {
            owner: "ada".into()
        }]
    );
    assert_eq!(opened.append.stream_id, stream("a1"));
    assert_eq!(opened.append.previous_version, Version::ZERO);
    assert_eq!(opened.append.current_version, Version::new(1));
    assert_eq!((opened.attempts, opened.is_replay()), (1, false));

    let correlation = Uuid::now_v7();
    let options = CommandOptions::new()
        .with_correlation_id(correlation)
        .with_user_metadata("user", "ada");
    let deposit = bank
        .execute_with::<Account>(Cmd::deposit("a1", 250), options)
        .await?;
    assert_eq!(deposit.events, [deposited(250)]);
    assert_eq!(deposit.append.previous_version, Version::new(1));
    assert_eq!(deposit.append.current_version, Version::new(2));

    let recorded = read(&store, "a1").await;
    assert_eq!(recorded.len(), 2);
    let (open, deposit_event) = (&recorded[0], &recorded[1]);
    assert_eq!(deposit.append.position, Some(deposit_event.position));
    assert_eq!(
        (open.event_type.as_str(), open.schema_version),
        ("Opened", 1)
    );
    assert_eq!(
        (
            deposit_event.event_type.as_str(),
            deposit_event.schema_version
        ),
        ("account.deposited", 3)
    );
    assert_eq!(deposit_event.metadata.correlation_id, Some(correlation));
    assert_eq!(deposit_event.metadata.user["user"], "ada");
    assert!(open.metadata.correlation_id.is_none());
    let command_ids = (open.metadata.command_id, deposit_event.metadata.command_id);
    assert!(command_ids.0.is_some() && command_ids.1.is_some() && command_ids.0 != command_ids.1);
    assert_eq!(
        decode(&recorded),
        [opened.events[0].clone(), deposited(250)]
    );

    let account = bank.load::<Account>(&"a1".to_owned()).await?;
    assert_eq!(account.stream_id, stream("a1"));
    assert_eq!(account.version, Version::new(2));
    assert_eq!(account.snapshot_version, None);
    assert_eq!(
        account.state,
        Account {
            owner: Some("ada".into()),
            balance: 250,
            frozen: false,
            deposits: 1,
        }
    );

    let unknown = bank.load::<Account>(&"nobody".to_owned()).await?;
    assert_eq!(
        (unknown.version, unknown.state),
        (Version::ZERO, Account::default())
    );
    Ok(())
}

#[tokio::test]
async fn rejection_writes_nothing() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let bank = CommandExecutor::new(store.clone());

    let error = bank
        .execute::<Account>(Cmd::deposit("r1", 5))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        CommandError::Rejected(AccountError::NotOpen)
    ));
    assert!(error.is_rejected() && !error.is_conflict() && error.store_error().is_none());
    assert!(store.is_empty());

    bank.execute::<Account>(Cmd::open("r1", "ada")).await?;
    let head = store.head().await?;
    let error = bank
        .execute::<Account>(Cmd::withdraw("r1", 10))
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&AccountError::InsufficientFunds {
            balance: 0,
            requested: 10
        })
    );
    assert_eq!(read(&store, "r1").await.len(), 1);
    assert_eq!(store.head().await?, head);
    Ok(())
}

/// Two executors on one store (two processes, as far as the aggregates can tell), 8 tasks
/// each: their commands conflict, are retried, and lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn contended_commands_lose_nothing() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 3] = ["c0", "c1", "c2"];
    let store = InMemoryEventStore::new();
    let banks = [
        CommandExecutor::new(store.clone()),
        CommandExecutor::new(store),
    ];
    contended_deposits(&banks, &ACCOUNTS, 16, 100, |task, i| {
        usize::try_from((task + i) % 3).unwrap()
    })
    .await?;
    Ok(())
}

/// 16 tasks through one executor on 3 accounts: commands on one aggregate are decided in turn
/// inside the process, so not one of them conflicts (and nothing is lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn commands_on_one_aggregate_take_turns_in_one_process() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 3] = ["t0", "t1", "t2"];
    let banks = [CommandExecutor::new(InMemoryEventStore::new())];
    contended_deposits(&banks, &ACCOUNTS, 16, 100, |task, i| {
        usize::try_from((task + i) % 3).unwrap()
    })
    .await?;
    Ok(())
}

/// 16 tasks × 100 deposits on one account through one executor: the commands queued while an
/// append is on its way are decided together and share the next append, so there are far
/// fewer appends than commands, and each outcome still names its own versions (checked by
/// `contended_deposits`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(
    clippy::print_stderr,
    reason = "the appends per command are part of what this test reports"
)]
async fn commands_queued_on_one_aggregate_share_appends() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 1] = ["g0"];
    let store = InstrumentedStore::new(InMemoryEventStore::new());
    let banks = [CommandExecutor::new(store.clone())];
    let contention = contended_deposits(&banks, &ACCOUNTS, 16, 100, |_, _| 0).await?;
    // The account's opening is one append of its own.
    let appends = store.take_appends() - 1;
    eprintln!(
        "{} commands on one account in {appends} appends",
        contention.commands
    );
    assert!(
        appends * 2 <= contention.commands,
        "{appends} appends for {} commands: queued commands did not share appends",
        contention.commands
    );
    Ok(())
}

/// Ten withdrawals of 10 at once from an account holding 50, while another process deposits 30
/// just before the first of their appends: whatever the groups, the first append conflicts and
/// its group is decided again on the stored 80, so exactly eight withdrawals succeed, two are
/// refused for want of funds, and the balance ends at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_is_decided_again_after_a_conflict_and_its_refusals_stand() -> anyhow::Result<()> {
    let store = InstrumentedStore::new(InMemoryEventStore::new());
    let bank = CommandExecutor::new(store.clone());
    bank.execute::<Account>(Cmd::open("w1", "ada")).await?;
    bank.execute::<Account>(Cmd::deposit("w1", 50)).await?;
    store.rival_appends_first("w1", &deposited(30));
    let withdrawals: Vec<_> = (0..10)
        .map(|_| {
            let bank = bank.clone();
            tokio::spawn(async move { bank.execute::<Account>(Cmd::withdraw("w1", 10)).await })
        })
        .collect();
    let (mut done, mut refused) = (0, 0);
    for withdrawal in withdrawals {
        match withdrawal.await? {
            Ok(outcome) => {
                assert_eq!(outcome.events, [AccountEvent::Withdrawn { cents: 10 }]);
                done += 1;
            }
            Err(error) => {
                assert!(
                    matches!(
                        error.rejection(),
                        Some(AccountError::InsufficientFunds { requested: 10, .. })
                    ),
                    "{error:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((done, refused), (8, 2));
    let loaded = bank.load::<Account>(&"w1".to_owned()).await?;
    assert_eq!(loaded.state.balance, 0);
    assert_eq!(loaded.version.get(), 3 + 8);
    Ok(())
}

/// What [`contended_deposits`] saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Contention {
    /// Commands executed (all succeeded).
    pub(crate) commands: u64,
    /// Decisions made: one per command plus one per conflict retried.
    pub(crate) attempts: u64,
}

/// `tasks` tasks each execute `commands` deposits at once, into `accounts[pick(task, i)]`,
/// task `t` through `banks[t % banks.len()]` (their retry policies raised so no command gives
/// up). Every command must succeed. With several executors (processes, as far as the
/// aggregates can tell) some must have been retried after a conflict, or the run proved
/// nothing; with one, none may have been: its commands on one aggregate are decided in turn. Then, per
/// account: versions contiguous from 1, every deposit stored exactly once at the version its
/// outcome reported, and the loaded balance is the sum of the deposits.
pub(crate) async fn contended_deposits<S, N>(
    banks: &[CommandExecutor<S, N>],
    accounts: &'static [&'static str],
    tasks: u64,
    commands: u64,
    pick: fn(u64, u64) -> usize,
) -> anyhow::Result<Contention>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
{
    let retry = RetryPolicy::default()
        .with_max_attempts(1_000)
        .with_delays(Duration::from_micros(20), Duration::from_millis(2));
    let banks: Vec<CommandExecutor<S, N>> = banks
        .iter()
        .map(|bank| bank.clone().with_retry(retry))
        .collect();
    let bank = &banks[0];
    for account in accounts {
        bank.execute::<Account>(Cmd::open(account, "ada")).await?;
    }

    let barrier = Arc::new(Barrier::new(usize::try_from(tasks)?));
    let mut handles = Vec::new();
    for task in 0..tasks {
        let bank = banks[usize::try_from(task)? % banks.len()].clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut done = Vec::new();
            for i in 0..commands {
                let account = accounts[pick(task, i)];
                // Every deposit has its own amount, so a lost or doubled one shows.
                let cents = task * commands + i + 1;
                let outcome = bank
                    .execute::<Account>(Cmd::deposit(account, cents))
                    .await?;
                done.push((account, cents, outcome));
            }
            anyhow::Ok(done)
        }));
    }
    let mut sent: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut reported: BTreeMap<&str, BTreeMap<Version, u64>> = BTreeMap::new();
    let mut attempts = 0;
    for handle in handles {
        for (account, cents, outcome) in handle.await?? {
            assert_eq!(outcome.events, [deposited(cents)]);
            assert_eq!(outcome.append.event_count(), 1);
            attempts += u64::from(outcome.attempts);
            sent.entry(account).or_default().push(cents);
            let previous = reported
                .entry(account)
                .or_default()
                .insert(outcome.append.current_version, cents);
            assert_eq!(previous, None, "two commands reported the same version");
        }
    }
    let contention = Contention {
        commands: tasks * commands,
        attempts,
    };
    if banks.len() > 1 {
        assert!(
            contention.attempts > contention.commands,
            "no command was retried ({attempts} attempts): the test did not contend"
        );
    } else {
        assert_eq!(
            contention.attempts, contention.commands,
            "commands through one executor conflicted: they were not decided in turn"
        );
    }

    let from_events = CommandExecutor::new(bank.store().clone());
    let mut total = 0;
    for account in accounts {
        let recorded = read(bank.store(), account).await;
        let versions: Vec<u64> = recorded.iter().map(|r| r.stream_version.get()).collect();
        let expected: Vec<u64> = (1..=recorded.len() as u64).collect();
        assert_eq!(
            versions, expected,
            "versions of {account} are not contiguous"
        );
        let events = decode(&recorded);
        let mut stored: Vec<u64> = Vec::new();
        for (event, record) in events.iter().zip(&recorded).skip(1) {
            let AccountEvent::Deposited { cents, .. } = event else {
                panic!("unexpected event {event:?}");
            };
            stored.push(*cents);
            // Each outcome names the version its event really got.
            assert_eq!(reported[account].get(&record.stream_version), Some(cents));
        }
        let mut sent = sent.remove(account).unwrap_or_default();
        sent.sort_unstable();
        stored.sort_unstable();
        assert_eq!(stored, sent, "deposits into {account} lost or doubled");
        let loaded = bank.load::<Account>(&(*account).to_owned()).await?;
        assert_eq!(loaded.state.balance, sent.iter().sum::<u64>());
        assert_eq!(loaded.version.get(), 1 + sent.len() as u64);
        let folded = from_events.load::<Account>(&(*account).to_owned()).await?;
        assert_eq!(
            loaded.state, folded.state,
            "{account}: snapshot and events disagree"
        );
        total += loaded.state.balance;
    }
    let deposited: u64 = (1..=contention.commands).sum();
    assert_eq!(
        total, deposited,
        "the balances do not add up to the deposits"
    );
    Ok(contention)
}

#[tokio::test]
async fn conflicts_are_retried_or_surface() -> anyhow::Result<()> {
    let store = InstrumentedStore::new(InMemoryEventStore::new());
    // No cache: a conflict on a cached state is decided again at once, whatever the policy.
    let bank = CommandExecutor::new(store.clone()).with_cache(0);
    bank.execute::<Account>(Cmd::open("x1", "ada")).await?;

    // Without retries the conflict reaches the caller, and the command wrote nothing.
    let strict = bank.clone().with_retry(RetryPolicy::never());
    store.rival_appends_first("x1", &deposited(7));
    let error = strict
        .execute::<Account>(Cmd::deposit("x1", 5))
        .await
        .unwrap_err();
    assert!(error.is_conflict() && error.is_transient() && !error.is_rejected());
    match error.store_error() {
        Some(Error::Conflict {
            stream: s,
            expected,
            actual,
        }) => {
            assert_eq!(s, &stream("x1"));
            assert_eq!(*expected, ExpectedVersion::Exact(Version::new(1)));
            assert_eq!(*actual, Version::new(2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        decode(&read(&store, "x1").await)[1..],
        [deposited(7)],
        "the conflicting command must write nothing"
    );

    // With the default policy the decision is made again on the new state, and succeeds.
    store.rival_appends_first("x1", &deposited(7));
    let outcome = bank.execute::<Account>(Cmd::deposit("x1", 5)).await?;
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.append.previous_version, Version::new(3));
    assert_eq!(
        decode(&read(&store, "x1").await)[1..],
        [deposited(7), deposited(7), deposited(5)]
    );
    Ok(())
}

#[tokio::test]
async fn cache_stale_conflict_spares_the_retry_budget() -> anyhow::Result<()> {
    let store = InstrumentedStore::new(InMemoryEventStore::new());
    let retry = RetryPolicy::default().with_max_attempts(2);
    let bank = CommandExecutor::new(store.clone())
        .with_cache(4)
        .with_retry(retry);
    bank.execute::<Account>(Cmd::open("x2", "ada")).await?;
    // The cached state's append conflicts, and so does the first one on the stored state:
    // the policy's one retry is still there for the second.
    store.rival_appends_first("x2", &deposited(7));
    store.rival_appends_first("x2", &deposited(8));
    let outcome = bank.execute::<Account>(Cmd::deposit("x2", 5)).await?;
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.append.previous_version, Version::new(3));
    // Without the cache, two conflicts use up that policy.
    let uncached = CommandExecutor::new(store.clone()).with_retry(retry);
    store.rival_appends_first("x2", &deposited(7));
    store.rival_appends_first("x2", &deposited(8));
    let error = uncached
        .execute::<Account>(Cmd::deposit("x2", 5))
        .await
        .unwrap_err();
    assert!(error.is_conflict());
    assert_eq!(
        decode(&read(&store, "x2").await)[1..],
        [
            deposited(7),
            deposited(8),
            deposited(5),
            deposited(7),
            deposited(8)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn idempotency_key_appends_once() -> anyhow::Result<()> {
    idempotent_redelivery(InMemoryEventStore::new()).await
}

/// A keyed command redelivered (after other commands, and eight times at once) appends once and
/// returns its first outcome.
pub(crate) async fn idempotent_redelivery<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let bank = CommandExecutor::new(store.clone());
    let keyed =
        |key: &str| CommandOptions::new().with_idempotency_key(IdempotencyKey::new(key).unwrap());

    let first = bank
        .execute_with::<Account>(Cmd::open("i1", "ada"), keyed("open-i1"))
        .await?;
    assert!(!first.is_replay());
    bank.execute::<Account>(Cmd::deposit("i1", 40)).await?;
    // Deciding `open` again would now be refused...
    let error = bank
        .execute::<Account>(Cmd::open("i1", "ada"))
        .await
        .unwrap_err();
    assert_eq!(error.rejection(), Some(&AccountError::AlreadyOpen));
    // ...but with the same key it is a redelivery: the first outcome, nothing appended.
    let again = bank
        .execute_with::<Account>(Cmd::open("i1", "ada"), keyed("open-i1"))
        .await?;
    assert!(again.is_replay());
    assert_eq!(again.events, first.events);
    assert_eq!(again.append.stream_id, first.append.stream_id);
    assert_eq!(again.append.previous_version, first.append.previous_version);
    assert_eq!(again.append.current_version, first.append.current_version);
    assert_eq!(again.append.position, first.append.position);
    assert_eq!(read(&store, "i1").await.len(), 2);

    // Concurrent redeliveries of one keyed command: exactly one appends.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (bank, options) = (bank.clone(), keyed("deposit-i1-7"));
        tasks.push(tokio::spawn(async move {
            bank.execute_with::<Account>(Cmd::deposit("i1", 7), options)
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await??);
    }
    assert_eq!(outcomes.iter().filter(|o| !o.is_replay()).count(), 1);
    assert!(
        outcomes
            .iter()
            .all(|o| { o.append.current_version == Version::new(3) && o.events == [deposited(7)] })
    );
    assert_eq!(
        decode(&read(&store, "i1").await)[1..],
        [deposited(40), deposited(7)]
    );
    Ok(())
}

/// Deposits one cent `n` times into `account`.
pub(crate) async fn deposit_times<S, N>(
    bank: &CommandExecutor<S, N>,
    account: &str,
    n: u64,
) -> anyhow::Result<()>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
{
    for _ in 0..n {
        bank.execute::<Account>(Cmd::deposit(account, 1)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn snapshots_every_n_events() -> anyhow::Result<()> {
    snapshot_every_n_events(InMemoryEventStore::new()).await
}

/// The executor snapshots `Account` every `SNAPSHOT_EVERY` events, and loading starts from
/// the latest snapshot.
pub(crate) async fn snapshot_every_n_events<S>(store: S) -> anyhow::Result<()>
where
    S: EventStore + SnapshotStore + Clone,
{
    assert_eq!(
        <Account as foldline::Aggregate>::SNAPSHOT_EVERY,
        Some(SNAPSHOT_EVERY)
    );
    let bank = CommandExecutor::new(store.clone()).with_snapshots(store.clone());
    let from_events = CommandExecutor::new(store.clone());
    let id = "s1".to_owned();

    bank.execute::<Account>(Cmd::open("s1", "ada")).await?;
    deposit_times(&bank, "s1", SNAPSHOT_EVERY - 2).await?;
    assert_eq!(store.load_snapshot(&stream("s1")).await?, None);
    deposit_times(&bank, "s1", 1).await?;
    let snapshot = store
        .load_snapshot(&stream("s1"))
        .await?
        .expect("a snapshot after SNAPSHOT_EVERY events");
    assert_eq!(snapshot.version, Version::new(SNAPSHOT_EVERY));
    assert_eq!(snapshot.schema_version, 1);
    let folded = from_events.load::<Account>(&id).await?;
    assert_eq!(
        serde_json::from_slice::<Account>(&snapshot.payload)?,
        folded.state
    );

    deposit_times(&bank, "s1", 4).await?;
    let loaded = bank.load::<Account>(&id).await?;
    let folded = from_events.load::<Account>(&id).await?;
    assert_eq!(loaded.snapshot_version, Some(Version::new(SNAPSHOT_EVERY)));
    assert_eq!(folded.snapshot_version, None);
    assert_eq!(loaded.version, Version::new(SNAPSHOT_EVERY + 4));
    assert_eq!(loaded.state, folded.state);
    assert_eq!(loaded.state.deposits, SNAPSHOT_EVERY + 3);

    deposit_times(&bank, "s1", 6).await?;
    let snapshot = store.load_snapshot(&stream("s1")).await?.unwrap();
    assert_eq!(snapshot.version, Version::new(2 * SNAPSHOT_EVERY));
    Ok(())
}

#[tokio::test]
async fn loading_starts_from_the_snapshot() -> anyhow::Result<()> {
    load_from_snapshot(InMemoryEventStore::new()).await
}

/// A loaded aggregate is the snapshot plus the events after it (a snapshot that disagrees
/// with the events shows which one was used).
pub(crate) async fn load_from_snapshot<S>(store: S) -> anyhow::Result<()>
where
    S: EventStore + SnapshotStore + Clone,
{
    let bank = CommandExecutor::new(store.clone()).with_snapshots(store.clone());
    bank.execute::<Account>(Cmd::open("s2", "ada")).await?;
    deposit_times(&bank, "s2", 11).await?;

    // A snapshot that disagrees with the events shows whether loading really starts from it.
    let marked = Account {
        balance: 999_999,
        ..bank.load::<Account>(&"s2".to_owned()).await?.state
    };
    let payload = serde_json::to_vec(&marked)?;
    store
        .save_snapshot(Snapshot::new(stream("s2"), Version::new(12), 1, payload))
        .await?;
    deposit_times(&bank, "s2", 1).await?;
    let loaded = bank.load::<Account>(&"s2".to_owned()).await?;
    assert_eq!(loaded.snapshot_version, Some(Version::new(12)));
    assert_eq!(loaded.version, Version::new(13));
    assert_eq!(loaded.state.balance, 999_999 + 1);
    Ok(())
}

#[tokio::test]
async fn stale_or_corrupt_snapshots_are_ignored() -> anyhow::Result<()> {
    ignore_stale_or_corrupt_snapshots(InMemoryEventStore::new()).await
}

/// A snapshot of an old schema version, or one that does not decode, is ignored: the state is
/// folded from the events.
pub(crate) async fn ignore_stale_or_corrupt_snapshots<S>(store: S) -> anyhow::Result<()>
where
    S: EventStore + SnapshotStore + Clone,
{
    let bank = CommandExecutor::new(store.clone()).with_snapshots(store.clone());
    let from_events = CommandExecutor::new(store.clone());
    let id = "s3".to_owned();
    bank.execute::<Account>(Cmd::open("s3", "ada")).await?;
    deposit_times(&bank, "s3", 11).await?;
    let truth = from_events.load::<Account>(&id).await?.state;
    let bogus = serde_json::to_vec(&Account {
        balance: 999_999,
        ..truth.clone()
    })?;

    let stale = Snapshot::new(stream("s3"), Version::new(12), 0, bogus);
    let corrupt = Snapshot::new(stream("s3"), Version::new(12), 1, b"{\"owner\": 4".to_vec());
    for (what, snapshot) in [("stale", stale), ("corrupt", corrupt)] {
        store.save_snapshot(snapshot.clone()).await?;
        assert_eq!(
            store.load_snapshot(&stream("s3")).await?,
            Some(snapshot),
            "the {what} snapshot should be the latest"
        );
        let loaded = bank.load::<Account>(&id).await?;
        assert_eq!(loaded.snapshot_version, None, "{what} snapshot used");
        assert_eq!(loaded.version, Version::new(12));
        assert_eq!(loaded.state, truth, "{what} snapshot changed the state");
    }
    let outcome = bank.execute::<Account>(Cmd::withdraw("s3", 11)).await?;
    assert_eq!(outcome.attempts, 1);
    assert_eq!(bank.load::<Account>(&id).await?.state.balance, 0);
    Ok(())
}

/// Any store, instrumented for these tests: it counts the calls to `read_stream` (one per load
/// of a short stream, so a command that decided on a cached state shows as one that read
/// nothing), and it can let a rival writer get its append in just before the next append
/// (one queued rival append before each): a conflict on demand, with no timing involved. It
/// yields to the runtime before each append, so concurrent commands interleave. It can also
/// leave one event out of what `read_stream` returns, as a row deleted by hand would be.
#[derive(Clone)]
pub(crate) struct InstrumentedStore<S> {
    inner: S,
    reads: Arc<AtomicU64>,
    appends: Arc<AtomicU64>,
    rivals: Arc<Mutex<VecDeque<AppendRequest>>>,
    hidden: Arc<Mutex<Option<(StreamId, Version)>>>,
}

impl<S> InstrumentedStore<S> {
    pub(crate) fn new(inner: S) -> Self {
        InstrumentedStore {
            inner,
            reads: Arc::default(),
            appends: Arc::default(),
            rivals: Arc::default(),
            hidden: Arc::default(),
        }
    }

    /// From now on, `read_stream` leaves version `version` of `stream` out.
    fn hide(&self, stream: StreamId, version: Version) {
        *self.hidden.lock().unwrap_or_else(PoisonError::into_inner) = Some((stream, version));
    }

    /// The reads since the last call.
    pub(crate) fn take_reads(&self) -> u64 {
        self.reads.swap(0, Ordering::SeqCst)
    }

    /// The appends (rivals' not counted) since the last call.
    pub(crate) fn take_appends(&self) -> u64 {
        self.appends.swap(0, Ordering::SeqCst)
    }

    fn rival_appends_first(&self, account: &str, event: &AccountEvent) {
        let new = NewEvent::encode(event, &JsonCodec).unwrap();
        let request = AppendRequest::new(stream(account), ExpectedVersion::Any, vec![new]);
        self.rivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(request);
    }
}

impl<S: EventStore> EventStore for InstrumentedStore<S> {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        let rival = self
            .rivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        if let Some(rival) = rival {
            self.inner.append(rival).await?;
        }
        // An in-memory store never waits, so a command would run from load to append without
        // giving other tasks a turn, and contention would hang on the OS preempting a thread
        // at the right moment (a 2-core machine often ran a whole contended test without one
        // conflict). Yielding here lets a concurrent command decide on the same state first.
        tokio::task::yield_now().await;
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let hidden = self
            .hidden
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut events = self.inner.read_stream(stream, from, limit).await?;
        if let Some((_, version)) = hidden.filter(|(hidden, _)| hidden == stream) {
            events.retain(|e| e.stream_version != version);
        }
        Ok(events)
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch> {
        self.inner.read_all(after, limit).await
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription> {
        self.inner.subscribe(after).await
    }

    async fn head(&self) -> Result<Checkpoint> {
        self.inner.head().await
    }

    async fn identity(&self) -> Result<foldline::StoreIdentity> {
        self.inner.identity().await
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>> {
        self.inner.find_idempotent(key).await
    }
}

/// An executor with a cache over `store` (reads counted), and another executor without one,
/// standing for another process writing the same aggregates.
fn cached_and_rival<S: EventStore + Clone>(
    store: &S,
) -> (
    CommandExecutor<InstrumentedStore<S>>,
    InstrumentedStore<S>,
    CommandExecutor<S>,
) {
    let counting = InstrumentedStore::new(store.clone());
    let bank = CommandExecutor::new(counting.clone()).with_cache(16);
    (bank, counting, CommandExecutor::new(store.clone()))
}

#[tokio::test]
async fn cache_hit_skips_the_read() -> anyhow::Result<()> {
    cache_hit_skips_read(InMemoryEventStore::new()).await
}

/// After its first command on an aggregate, a cached executor decides without reading the
/// store; an executor without a cache reads on every command; `load` always reads.
pub(crate) async fn cache_hit_skips_read<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let (bank, counting, _) = cached_and_rival(&store);
    bank.execute::<Account>(Cmd::open("k1", "ada")).await?;
    assert_eq!(counting.take_reads(), 1, "the first command loads");
    for (cents, version) in [(100, 2), (50, 3)] {
        let outcome = bank.execute::<Account>(Cmd::deposit("k1", cents)).await?;
        assert_eq!(outcome.attempts, 1);
        assert_eq!(outcome.append.current_version, Version::new(version));
        assert_eq!(counting.take_reads(), 0, "a cache hit read the store");
    }
    // Another aggregate of the same type is cached on its own.
    bank.execute::<Account>(Cmd::open("k1b", "bob")).await?;
    bank.execute::<Account>(Cmd::deposit("k1b", 7)).await?;
    assert_eq!(counting.take_reads(), 1);

    let loaded = bank.load::<Account>(&"k1".to_owned()).await?;
    assert_eq!(
        (loaded.version, loaded.state.balance),
        (Version::new(3), 150)
    );
    assert_eq!(counting.take_reads(), 1, "load reads the store");

    // Without a cache, every command reads.
    let uncached = CommandExecutor::new(counting.clone()).with_cache(0);
    uncached.execute::<Account>(Cmd::deposit("k1b", 1)).await?;
    uncached.execute::<Account>(Cmd::deposit("k1b", 1)).await?;
    assert_eq!(counting.take_reads(), 2);
    assert_eq!(
        bank.load::<Account>(&"k1b".to_owned()).await?.state.balance,
        9
    );
    Ok(())
}

#[tokio::test]
async fn cache_stale_after_another_writer() -> anyhow::Result<()> {
    cache_stale_after_rival(InMemoryEventStore::new()).await
}

/// Another process appends to an aggregate this executor has cached: the next command's
/// append conflicts, is decided again on the stored state and succeeds (2 attempts), even with
/// a policy that never retries; the cache is then fresh again.
pub(crate) async fn cache_stale_after_rival<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let (bank, counting, rival) = cached_and_rival(&store);
    bank.execute::<Account>(Cmd::open("k2", "ada")).await?;
    bank.execute::<Account>(Cmd::deposit("k2", 100)).await?;
    rival.execute::<Account>(Cmd::deposit("k2", 50)).await?;
    counting.take_reads();

    let outcome = bank.execute::<Account>(Cmd::deposit("k2", 10)).await?;
    assert_eq!(
        outcome.attempts, 2,
        "the stale cached state should conflict"
    );
    assert_eq!(outcome.events, [deposited(10)]);
    assert_eq!(outcome.append.previous_version, Version::new(3));
    assert_eq!(outcome.append.current_version, Version::new(4));
    assert_eq!(counting.take_reads(), 1, "the retry loads from the store");
    assert_eq!(
        decode(&read(&store, "k2").await)[1..],
        [deposited(100), deposited(50), deposited(10)]
    );

    // The state cached after that append is the stored one.
    let outcome = bank.execute::<Account>(Cmd::withdraw("k2", 160)).await?;
    assert_eq!((outcome.attempts, counting.take_reads()), (1, 0));
    assert_eq!(outcome.append.current_version, Version::new(5));

    // A stale entry is no contention: it does not use up the retry policy (clones of an
    // executor share its cache).
    let strict = bank.clone().with_retry(RetryPolicy::never());
    rival.execute::<Account>(Cmd::deposit("k2", 5)).await?;
    let outcome = strict.execute::<Account>(Cmd::deposit("k2", 1)).await?;
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.append.current_version, Version::new(7));
    let loaded = rival.load::<Account>(&"k2".to_owned()).await?;
    assert_eq!((loaded.version, loaded.state.balance), (Version::new(7), 6));
    Ok(())
}

#[tokio::test]
async fn cache_refusal_decided_again() -> anyhow::Result<()> {
    cache_refusal_rechecked(InMemoryEventStore::new()).await
}

/// A withdrawal refused on a stale cached balance is decided again on the stored balance and
/// succeeds; a refusal is only returned when the stored state refuses too, and it names the
/// stored balance.
pub(crate) async fn cache_refusal_rechecked<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let (bank, counting, rival) = cached_and_rival(&store);
    bank.execute::<Account>(Cmd::open("k3", "ada")).await?;
    rival.execute::<Account>(Cmd::deposit("k3", 100)).await?;
    counting.take_reads();

    // The cached balance is 0: refused there, allowed on the stored 100.
    let outcome = bank.execute::<Account>(Cmd::withdraw("k3", 60)).await?;
    assert_eq!(outcome.events, [AccountEvent::Withdrawn { cents: 60 }]);
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.append.previous_version, Version::new(2));
    assert_eq!(
        counting.take_reads(),
        1,
        "decided again on the stored state"
    );

    // Refused on both: the refusal is the stored state's (45, not the cached 40).
    rival.execute::<Account>(Cmd::deposit("k3", 5)).await?;
    let error = bank
        .execute::<Account>(Cmd::withdraw("k3", 1_000))
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&AccountError::InsufficientFunds {
            balance: 45,
            requested: 1_000
        })
    );
    assert_eq!(counting.take_reads(), 1);
    assert_eq!(
        read(&store, "k3").await.len(),
        4,
        "a refusal writes nothing"
    );

    // The state the refusal was decided on is cached: the next command reads nothing.
    let outcome = bank.execute::<Account>(Cmd::withdraw("k3", 45)).await?;
    assert_eq!((outcome.attempts, counting.take_reads()), (1, 0));
    assert_eq!(outcome.append.previous_version, Version::new(4));
    assert_eq!(
        rival.load::<Account>(&"k3".to_owned()).await?.state.balance,
        0
    );
    Ok(())
}

/// Something that is on or off; turning it on when it is on changes nothing (no events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
enum SwitchEvent {
    TurnedOn,
    TurnedOff,
}

#[derive(Debug, foldline::Command)]
enum SwitchCommand {
    TurnOn {
        #[foldline(id)]
        id: String,
    },
    TurnOff {
        #[foldline(id)]
        id: String,
    },
}

#[derive(Debug, Default, foldline::Aggregate)]
#[foldline(
    id = String,
    command = SwitchCommand,
    event = SwitchEvent,
    error = std::convert::Infallible
)]
struct Switch {
    on: bool,
}

impl Switch {
    fn handle(
        &self,
        command: &SwitchCommand,
    ) -> Result<Vec<SwitchEvent>, std::convert::Infallible> {
        Ok(match command {
            SwitchCommand::TurnOn { .. } if !self.on => vec![SwitchEvent::TurnedOn],
            SwitchCommand::TurnOff { .. } if self.on => vec![SwitchEvent::TurnedOff],
            _ => Vec::new(),
        })
    }

    fn apply(&mut self, event: &SwitchEvent) {
        self.on = matches!(event, SwitchEvent::TurnedOn);
    }
}

#[tokio::test]
async fn cache_no_op_decided_again() -> anyhow::Result<()> {
    cache_no_op_rechecked(InMemoryEventStore::new()).await
}

/// A command that changes nothing on a stale cached state (on, but another process turned it
/// off) is decided again on the stored state and appends; a no-op on the stored state too
/// is returned as one, at the stored version.
pub(crate) async fn cache_no_op_rechecked<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let (bank, counting, rival) = cached_and_rival(&store);
    let (on, off) = (
        || SwitchCommand::TurnOn { id: "k4".into() },
        || SwitchCommand::TurnOff { id: "k4".into() },
    );
    bank.execute::<Switch>(on()).await?;
    rival.execute::<Switch>(off()).await?;
    counting.take_reads();

    let outcome = bank.execute::<Switch>(on()).await?;
    assert_eq!(outcome.events, [SwitchEvent::TurnedOn]);
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.append.current_version, Version::new(3));
    assert_eq!(counting.take_reads(), 1);

    let outcome = bank.execute::<Switch>(on()).await?;
    assert!(outcome.events.is_empty());
    assert_eq!(outcome.append.previous_version, Version::new(3));
    assert_eq!(outcome.append.current_version, Version::new(3));
    assert_eq!(
        counting.take_reads(),
        1,
        "a no-op on a cached state is checked"
    );
    assert!(bank.load::<Switch>(&"k4".to_owned()).await?.state.on);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn contended_commands_lose_nothing_with_cache() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 3] = ["c0", "c1", "c2"];
    let store = InMemoryEventStore::new();
    contended_deposits_cached(store.clone(), store, &ACCOUNTS, 16, 100, |task, i| {
        usize::try_from((task + i) % 3).unwrap()
    })
    .await?;
    Ok(())
}

/// [`contended_deposits`] through one executor with a cache (for every account) over `store`:
/// nothing lost or doubled, versions contiguous, no conflict (the commands are decided in turn); some
/// commands decided on a cached state (fewer reads than decisions). Afterwards the cache holds each account's stored state:
/// withdrawing the whole balance is decided without a read, and one more cent is refused.
pub(crate) async fn contended_deposits_cached<S, N>(
    store: S,
    snapshots: N,
    accounts: &'static [&'static str],
    tasks: u64,
    commands: u64,
    pick: fn(u64, u64) -> usize,
) -> anyhow::Result<Contention>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
{
    let counting = InstrumentedStore::new(store);
    let bank = CommandExecutor::new(counting.clone())
        .with_snapshots(snapshots)
        .with_cache(accounts.len());
    let contention =
        contended_deposits(std::slice::from_ref(&bank), accounts, tasks, commands, pick).await?;
    let reads = counting.take_reads();
    assert!(
        reads < contention.attempts,
        "{reads} reads for {} decisions: the cache was never used",
        contention.attempts
    );

    for account in accounts {
        let stored = bank.load::<Account>(&(*account).to_owned()).await?;
        counting.take_reads();
        let balance = stored.state.balance;
        let outcome = bank
            .execute::<Account>(Cmd::withdraw(account, balance))
            .await?;
        assert_eq!(outcome.append.previous_version, stored.version);
        assert_eq!(
            (outcome.attempts, counting.take_reads()),
            (1, 0),
            "{account}: the cached state was not the stored one"
        );
        let error = bank
            .execute::<Account>(Cmd::withdraw(account, 1))
            .await
            .unwrap_err();
        assert_eq!(
            error.rejection(),
            Some(&AccountError::InsufficientFunds {
                balance: 0,
                requested: 1
            })
        );
        let emptied = bank.load::<Account>(&(*account).to_owned()).await?;
        assert_eq!(emptied.state.balance, 0);
        assert_eq!(emptied.version, stored.version.next());
    }
    Ok(contention)
}

/// Asserts that `error` is `Error::StreamGap` on `stream`, missing version `missing` and
/// finding version `found` in its place: damaged data, neither transient nor bad input.
#[track_caller]
pub(crate) fn assert_gap(error: &Error, stream: &StreamId, missing: u64, found: u64) {
    match error {
        Error::StreamGap {
            stream: s,
            expected,
            found: f,
        } => assert_eq!(
            (s, *expected, *f),
            (stream, Version::new(missing), Version::new(found))
        ),
        other => panic!("expected Error::StreamGap, got {other:?}"),
    }
    assert!(error.is_corrupt(), "{error:?}");
    assert!(
        !error.is_transient() && !error.is_invalid_input(),
        "{error:?}"
    );
}

/// A store that skips a version of a stream (here the instrumented store leaves one out; on
/// PostgreSQL a row deleted by hand, in `pg_bad_input`) makes `load` and `execute` fail with
/// `Error::StreamGap` naming the stream and the missing version, and nothing is appended on
/// top of the gap.
#[tokio::test]
async fn a_stream_that_skips_a_version_is_refused() -> anyhow::Result<()> {
    let inner = InMemoryEventStore::new();
    let store = InstrumentedStore::new(inner.clone());
    // No cache: every command loads, which is what meets the gap.
    let bank = CommandExecutor::new(store.clone()).with_cache(0);
    bank.execute::<Account>(Cmd::open("g1", "ada")).await?;
    deposit_times(&bank, "g1", 3).await?;
    store.hide(stream("g1"), Version::new(2));

    let error = bank.load::<Account>(&"g1".to_owned()).await.unwrap_err();
    assert_gap(&error, &stream("g1"), 2, 3);
    let refused = bank
        .execute::<Account>(Cmd::deposit("g1", 1))
        .await
        .unwrap_err();
    let error = refused
        .store_error()
        .expect("a store error, not a rejection");
    assert_gap(error, &stream("g1"), 2, 3);
    assert!(!refused.is_transient());
    assert_eq!(
        read(&inner, "g1").await.len(),
        4,
        "appended on top of a gap"
    );
    Ok(())
}

/// An aggregate whose `handle` panics when asked to blow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, foldline::DomainEvent)]
enum FuseEvent {
    Lit,
}

#[derive(Debug, foldline::Command)]
enum FuseCommand {
    Light {
        #[foldline(id)]
        id: u32,
        blow: bool,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("never refused")]
struct NeverRefused;

#[derive(Debug, Default, foldline::Aggregate)]
#[foldline(id = u32, command = FuseCommand, event = FuseEvent, error = NeverRefused)]
struct Fuse;

impl Fuse {
    fn handle(&self, command: &FuseCommand) -> Result<Vec<FuseEvent>, NeverRefused> {
        let FuseCommand::Light { blow, .. } = command;
        assert!(!blow, "the fuse blew (on purpose, in a test)");
        Ok(vec![FuseEvent::Lit])
    }

    fn apply(&mut self, _event: &FuseEvent) {}
}

/// A panic in an aggregate's `handle` ends the task deciding its commands: the command gets
/// `Error::CommandAbandoned`, and the next command on that aggregate is decided by a new task
/// (nothing waits forever on the dead one's queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_aggregate_abandons_its_command_and_the_next_one_runs() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let executor = CommandExecutor::new(store.clone());
    let error = executor
        .execute::<Fuse>(FuseCommand::Light { id: 1, blow: true })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.store_error(),
            Some(foldline::Error::CommandAbandoned { stream }) if stream.as_str() == "fuse-1"
        ),
        "{error:?}"
    );
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        executor.execute::<Fuse>(FuseCommand::Light { id: 1, blow: false }),
    )
    .await??;
    assert_eq!(next.events, [FuseEvent::Lit]);
    assert_eq!(next.append.current_version.get(), 1);
    Ok(())
}
