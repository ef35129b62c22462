//! The Redis projection target against a real Redis (`FOLDLINE_REDIS_URL`), each test under a
//! key prefix of its own: what the Lua commit guarantees, the key layout, drops, the reader's
//! alias re-check, agreement with the in-memory `RedisKeyspace`, and connection failures.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use foldline::error_chain;
use foldline::{
    BackendErrorKind, Checkpoint, Commit, CommitOutcome, DeadLetter, Error, EventType, MemoryModel,
    NewEvent, NewSlot, Position, ProjectionName, ProjectionTarget, RecordedEvent, SlotId, StreamId,
    Version,
};
use foldline_redis::redis;
use foldline_redis::{
    RedisKeyspace, RedisOp, RedisSlotKeys, RedisTarget, RedisTargetOptions, RedisWrites,
};
use foldline_tests::AccountEvent;
use foldline_tests::redis::{dump_slot, hash_tag, scan, test_prefix};

fn name(text: &str) -> ProjectionName {
    ProjectionName::new(text).unwrap()
}

/// The checkpoint after event `n` of partition 0.
fn cp(n: u64) -> Checkpoint {
    let mut checkpoint = Checkpoint::START;
    checkpoint.advance(Position::new(0, 0, n));
    checkpoint
}

fn letter(n: u64) -> DeadLetter {
    let event = RecordedEvent::from_new(
        NewEvent::new(EventType::new("t").unwrap(), 1, b"{}".to_vec()),
        StreamId::new("s-1").unwrap(),
        Version::new(n),
        Position::new(0, 0, n),
        SystemTime::now(),
    );
    DeadLetter::new(&event, format!("boom {n}"), 3)
}

fn writes(build: impl FnOnce(&mut RedisWrites)) -> RedisWrites {
    let mut writes = RedisWrites::new();
    build(&mut writes);
    writes
}

async fn get(target: &RedisTarget, key: String) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut target.connection())
        .await
        .unwrap()
}

async fn commit(
    target: &RedisTarget,
    projection: &ProjectionName,
    slot: SlotId,
    commit: Commit<RedisWrites>,
) -> CommitOutcome {
    target.commit(projection, slot, commit).await.unwrap()
}

async fn new_slot(
    target: &RedisTarget,
    projection: &ProjectionName,
    version: u32,
    how: NewSlot,
) -> SlotId {
    target
        .create_slot(projection, version, how, &foldline_tests::test_store())
        .await
        .unwrap()
        .slot
}

/// A batch of one `SET`.
fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> RedisWrites {
    writes(|w| {
        w.set(key, value);
    })
}

/// A new slot's first commit: `batch` up to `cp(1)`, parking `letter(1)`.
fn first_commit(batch: RedisWrites) -> Commit<RedisWrites> {
    Commit::new(Checkpoint::START, cp(1), batch).with_park(vec![letter(1)])
}

/// Whether `owner` got the slot's lease for `ttl`.
async fn lease(
    target: &RedisTarget,
    projection: &ProjectionName,
    slot: SlotId,
    owner: &str,
    ttl: Duration,
) -> bool {
    target
        .acquire_lease(projection, slot, owner, ttl)
        .await
        .unwrap()
}

/// The slot's keys as they are in Redis.
async fn read_slot(target: &RedisTarget, keys: &RedisSlotKeys) -> RedisKeyspace {
    dump_slot(&mut target.connection(), keys).await.unwrap()
}

#[tokio::test]
async fn redis_commit_stores_writes_and_checkpoint_or_nothing() {
    let test = test_prefix().await;
    let target = test.target();
    let orders = name("orders");
    let slot = new_slot(target, &orders, 1, NewSlot::Resume).await;
    let keys = target.slot_keys(&orders, slot);
    // A new slot's checkpoint key exists and says `start`: a dropped slot has none.
    assert_eq!(
        get(target, format!("{}:checkpoint", keys.hash_tag())).await,
        Some("start".into())
    );

    let batch = writes(|w| {
        w.set("a", "1")
            .incr_by("n", 5)
            .hset("h", "f", "v")
            .sadd("s", "m")
            .zadd("z", "m", 2.5);
    });
    let parked = letter(1);
    let outcome = commit(
        target,
        &orders,
        slot,
        Commit::new(Checkpoint::START, cp(1), batch).with_park(vec![parked.clone()]),
    )
    .await;
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(target.checkpoint(&orders, slot).await.unwrap(), Some(cp(1)));
    let stored = read_slot(target, &keys).await;
    assert_eq!(stored.get_str("a"), Some("1"));
    assert_eq!(stored.get_str("n"), Some("5"));
    assert_eq!(stored.hget("h", "f"), Some(&b"v"[..]));
    assert!(stored.sismember("s", "m"));
    assert_eq!(stored.zscore("z", "m"), Some(2.5));

    // A stale expected checkpoint: nothing at all is written.
    let stale = Commit::new(
        Checkpoint::START,
        cp(2),
        writes(|w| {
            w.set("a", "2").del("n").hset("h", "g", "w");
        }),
    )
    .with_park(vec![letter(2)])
    .with_unpark(vec![parked.event_id]);
    assert_eq!(
        commit(target, &orders, slot, stale).await,
        CommitOutcome::Moved {
            actual: Some(cp(1))
        }
    );
    assert_eq!(read_slot(target, &keys).await, stored);
    assert_eq!(target.checkpoint(&orders, slot).await.unwrap(), Some(cp(1)));
    assert_eq!(
        target.dead_letters(&orders, slot).await.unwrap(),
        [parked],
        "a refused commit parks and unparks nothing"
    );

    // A slot that does not exist: `Moved { actual: None }`, and nothing appears.
    let missing = Commit::new(Checkpoint::START, cp(1), set("x", "1"));
    assert_eq!(
        commit(target, &orders, SlotId::new(99), missing).await,
        CommitOutcome::Moved { actual: None }
    );
    assert!(
        scan(
            &mut target.connection(),
            target.slot_keys(&orders, SlotId::new(99)).hash_tag()
        )
        .await
        .unwrap()
        .is_empty()
    );
}

/// A commit without dead letters is a `MULTI … EXEC` on the slot's own connection, run only if
/// the checkpoint it watched is unchanged: a commit of another target in between, a rewrite of
/// the same checkpoint, a deleted checkpoint — each is seen, and a stale commit writes nothing.
#[tokio::test]
async fn redis_commit_is_fenced_by_the_checkpoint_it_watched() {
    let test = test_prefix().await;
    let a = test.target();
    let b = RedisTarget::connect(a.options().clone()).await.unwrap();
    let p = name("watched");
    let slot = new_slot(a, &p, 1, NewSlot::Fresh).await;
    let keys = a.slot_keys(&p, slot);
    let checkpoint_key = format!("{}:checkpoint", keys.hash_tag());
    let value_of_a = async || read_slot(a, &keys).await.get_str("a").map(str::to_owned);

    for (from, to) in [(Checkpoint::START, cp(1)), (cp(1), cp(2))] {
        let batch = set("a", to.to_string());
        assert_eq!(
            commit(a, &p, slot, Commit::new(from, to, batch)).await,
            CommitOutcome::Committed
        );
    }
    // Another target (its own connection) moves the checkpoint on.
    let other = Commit::new(cp(2), cp(3), set("b", "3"));
    assert_eq!(commit(&b, &p, slot, other).await, CommitOutcome::Committed);
    // `a` last saw cp(2): its stale commit is refused and writes nothing.
    let stale = Commit::new(cp(2), cp(4), set("a", "stale"));
    assert_eq!(
        commit(a, &p, slot, stale).await,
        CommitOutcome::Moved {
            actual: Some(cp(3))
        }
    );
    assert_eq!(
        value_of_a().await.as_deref(),
        Some(cp(2).to_string().as_str())
    );

    // The same checkpoint written again by someone else aborts the transaction once; the
    // commit reads it back, finds what it expected and commits.
    let mut conn = a.connection();
    redis::cmd("SET")
        .arg(&checkpoint_key)
        .arg(cp(3).to_string())
        .exec_async(&mut conn)
        .await
        .unwrap();
    let after_rewrite = Commit::new(cp(3), cp(6), set("a", "6"));
    assert_eq!(
        commit(a, &p, slot, after_rewrite).await,
        CommitOutcome::Committed
    );
    assert_eq!(a.checkpoint(&p, slot).await.unwrap(), Some(cp(6)));
    assert_eq!(value_of_a().await.as_deref(), Some("6"));

    // A deleted checkpoint (a drop or a clear under way): `Moved { actual: None }`, nothing
    // written.
    redis::cmd("DEL")
        .arg(&checkpoint_key)
        .exec_async(&mut conn)
        .await
        .unwrap();
    let late = Commit::new(cp(6), cp(7), set("a", "7"));
    assert_eq!(
        commit(a, &p, slot, late).await,
        CommitOutcome::Moved { actual: None }
    );
    assert_eq!(value_of_a().await.as_deref(), Some("6"));
    assert_eq!(get(a, checkpoint_key).await, None);
}

/// An observer reading the checkpoint and the data key together (MULTI) while commits run
/// never sees one without the other: the script is atomic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_commit_is_atomic_for_observers() {
    let test = test_prefix().await;
    let target = test.target().clone();
    let counter = name("counter");
    let slot = new_slot(&target, &counter, 1, NewSlot::Fresh).await;
    let keys = target.slot_keys(&counter, slot);
    let checkpoint_key = format!("{}:checkpoint", keys.hash_tag());
    let data_key = keys.key("n");

    let writer = {
        let target = target.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            let mut expected = Checkpoint::START;
            for n in 1..=200u64 {
                let batch = writes(|w| {
                    w.set("n", n.to_string()).set("other", "x");
                });
                let outcome =
                    commit(&target, &counter, slot, Commit::new(expected, cp(n), batch)).await;
                assert_eq!(outcome, CommitOutcome::Committed);
                expected = cp(n);
            }
        })
    };
    let mut conn = test.connect_another().await.unwrap().connection();
    let mut seen = 0;
    while !writer.is_finished() || seen == 0 {
        let (checkpoint, value): (String, Option<String>) = redis::pipe()
            .atomic()
            .get(&checkpoint_key)
            .get(&data_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        match value {
            None => assert_eq!(checkpoint, "start"),
            Some(n) => assert_eq!(checkpoint, cp(n.parse().unwrap()).to_string()),
        }
        seen += 1;
    }
    writer.await.unwrap();
    assert_eq!(get(&target, data_key).await, Some("200".into()));
}

/// Redis refuses `HSET` on a string and `INCRBY` on text: those two writes are lost, counted
/// and logged; the others and the checkpoint are stored, and the commit counts.
#[tokio::test]
async fn redis_refused_writes_are_counted_and_the_rest_is_committed() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("typed");
    let slot = new_slot(target, &p, 1, NewSlot::Fresh).await;
    let first = set("text", "abc");
    assert_eq!(
        commit(
            target,
            &p,
            slot,
            Commit::new(Checkpoint::START, cp(1), first)
        )
        .await,
        CommitOutcome::Committed
    );
    assert_eq!(target.rejected_writes(), 0);

    let batch = writes(|w| {
        w.set("before", "1")
            .hset("text", "f", "v") // WRONGTYPE
            .incr_by("text", 1) // not an integer
            .set("after", "2");
    });
    let parked = letter(2);
    let outcome = commit(
        target,
        &p,
        slot,
        Commit::new(cp(1), cp(2), batch.clone()).with_park(vec![parked.clone()]),
    )
    .await;
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(target.rejected_writes(), 2);
    assert_eq!(target.checkpoint(&p, slot).await.unwrap(), Some(cp(2)));
    assert_eq!(target.dead_letters(&p, slot).await.unwrap(), [parked]);

    // The in-memory model refuses exactly the same writes and ends with the same data.
    let mut model = RedisKeyspace::new();
    model.apply(set("text", "abc"));
    model.apply(batch);
    assert_eq!(model.rejected(), 2);
    let stored = read_slot(target, &target.slot_keys(&p, slot)).await;
    assert_eq!(stored, model);
    assert_eq!(stored.get_str("text"), Some("abc"));
    assert_eq!(stored.get_str("after"), Some("2"));

    // The same without dead letters (a transaction instead of the script): the refused write
    // is counted, the rest and the checkpoint are stored.
    let batch = writes(|w| {
        w.zadd("text", "m", 1.0).set("later", "3"); // WRONGTYPE, then fine
    });
    let outcome = commit(target, &p, slot, Commit::new(cp(2), cp(3), batch)).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(target.rejected_writes(), 3);
    assert_eq!(target.checkpoint(&p, slot).await.unwrap(), Some(cp(3)));
    let stored = read_slot(target, &target.slot_keys(&p, slot)).await;
    assert_eq!(stored.get_str("later"), Some("3"));
}

/// Every key of a slot — data (even user keys with braces), checkpoint, dead letters, lease —
/// carries the slot's hash tag, so a Redis Cluster keeps them on one node; per-projection keys
/// carry none.
#[tokio::test]
async fn redis_keys_of_one_slot_share_its_hash_tag() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("tagged");
    let mut tags = Vec::new();
    for version in [1, 2] {
        let slot = new_slot(target, &p, version, NewSlot::Fresh).await;
        let batch = writes(|w| {
            w.set("plain", "1")
                .set("{other}:tag", "2")
                .hset("}odd{", "f", "v")
                .sadd("s", "m")
                .zadd("z", "m", 1.0);
        });
        assert_eq!(
            commit(target, &p, slot, first_commit(batch)).await,
            CommitOutcome::Committed
        );
        assert!(lease(target, &p, slot, "me", Duration::from_secs(30)).await);
        tags.push(target.slot_keys(&p, slot).hash_tag().to_owned());
    }
    target.activate(&p, SlotId::new(2)).await.unwrap();

    let keys = test.keys().await.unwrap();
    let mut per_tag = std::collections::BTreeMap::<String, Vec<&str>>::new();
    for key in &keys {
        match hash_tag(key) {
            Some(tag) => per_tag.entry(format!("{{{tag}}}")).or_default().push(key),
            None => assert!(
                key.starts_with(&format!("{}:tagged:", test.prefix())),
                "key `{key}` has no hash tag"
            ),
        }
    }
    assert_eq!(per_tag.keys().cloned().collect::<Vec<_>>(), tags);
    for (tag, keys) in per_tag {
        let suffixes: BTreeSet<_> = keys.iter().map(|k| &k[tag.len()..]).collect();
        let expected: BTreeSet<_> = [
            ":checkpoint",
            ":dead",
            ":dead_order",
            ":lease",
            ":d:plain",
            ":d:{other}:tag",
            ":d:}odd{",
            ":d:s",
            ":d:z",
        ]
        .into_iter()
        .collect();
        assert_eq!(suffixes, expected, "keys of {tag}");
    }
}

/// Dropping a slot deletes every one of its keys (more than one SCAN batch of them), and
/// nothing of the other slot or of another projection; the dropped slot refuses commits.
#[tokio::test]
async fn redis_drop_deletes_every_key_of_the_slot_and_nothing_else() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("dropped");
    let other = name("bystander");
    let old = new_slot(target, &p, 1, NewSlot::Fresh).await;
    let new = new_slot(target, &p, 2, NewSlot::Fresh).await;
    let theirs = new_slot(target, &other, 1, NewSlot::Fresh).await;
    for (projection, slot, count) in [(&p, old, 2500), (&p, new, 10), (&other, theirs, 10)] {
        let batch: RedisWrites = (0..count)
            .map(|i| RedisOp::Set {
                key: format!("k{i}"),
                value: b"v".to_vec(),
            })
            .collect();
        assert_eq!(
            commit(target, projection, slot, first_commit(batch)).await,
            CommitOutcome::Committed
        );
        lease(target, projection, slot, "me", Duration::from_secs(30)).await;
    }
    target.activate(&p, old).await.unwrap();
    assert!(matches!(
        target.drop_slot(&p, old).await,
        Err(Error::SlotActive { slot, .. }) if slot == old
    ));
    target.activate(&p, new).await.unwrap();

    let old_tag = target.slot_keys(&p, old).hash_tag().to_owned();
    let before = test.keys().await.unwrap();
    assert!(before.iter().filter(|k| k.starts_with(&old_tag)).count() > 2500);
    target.drop_slot(&p, old).await.unwrap();
    let after = test.keys().await.unwrap();
    let expected: Vec<_> = before
        .into_iter()
        .filter(|k| !k.starts_with(&old_tag))
        .collect();
    assert_eq!(after, expected);

    assert_eq!(target.checkpoint(&p, old).await.unwrap(), None);
    assert_eq!(
        target
            .slots(&p)
            .await
            .unwrap()
            .iter()
            .map(|s| s.slot)
            .collect::<Vec<_>>(),
        [new]
    );
    let late = Commit::new(cp(1), cp(2), set("late", "1"));
    assert_eq!(
        commit(target, &p, old, late).await,
        CommitOutcome::Moved { actual: None }
    );
    assert!(matches!(
        target
            .acquire_lease(&p, old, "me", Duration::from_secs(1))
            .await,
        Err(Error::SlotNotFound { .. })
    ));
    assert_eq!(
        test.keys().await.unwrap(),
        after,
        "a refused commit writes nothing"
    );
    // Dropping again is fine.
    target.drop_slot(&p, old).await.unwrap();
}

/// Clearing keeps the slot (number, version, state, lease) and empties the rest.
#[tokio::test]
async fn redis_clear_empties_the_slot_but_keeps_its_lease() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("cleared");
    let slot = new_slot(target, &p, 3, NewSlot::Fresh).await;
    let batch = writes(|w| {
        w.set("a", "1").hset("h", "f", "v");
    });
    commit(target, &p, slot, first_commit(batch)).await;
    assert!(lease(target, &p, slot, "me", Duration::from_secs(30)).await);
    target
        .clear_slot(&p, slot, &foldline_tests::test_store())
        .await
        .unwrap();

    let tag = target.slot_keys(&p, slot).hash_tag().to_owned();
    let keys: Vec<_> = test
        .keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with(&tag))
        .collect();
    assert_eq!(keys, [format!("{tag}:checkpoint"), format!("{tag}:lease")]);
    assert_eq!(
        target.checkpoint(&p, slot).await.unwrap(),
        Some(Checkpoint::START)
    );
    assert!(!lease(target, &p, slot, "other", Duration::from_secs(1)).await);
    assert!(matches!(
        target
            .clear_slot(&p, slot.next(), &foldline_tests::test_store())
            .await,
        Err(Error::SlotNotFound { .. })
    ));
}

/// A read that overlaps an activation (and the drop of the slot it was reading) is thrown
/// away and done again on the new active slot.
#[tokio::test]
async fn redis_reader_reads_again_when_the_alias_moves() {
    let test = test_prefix().await;
    let target = test.target().clone();
    let p = name("aliased");
    let reader = target.reader();
    assert_eq!(reader.resolve(&p).await.unwrap(), None);
    let none: Option<()> = reader
        .read(&p, |_, _| async {
            panic!("no slot is active: nothing to read")
        })
        .await
        .unwrap();
    assert_eq!(none, None);

    let mut slots = Vec::new();
    for version in [1, 2] {
        let slot = new_slot(&target, &p, version, NewSlot::Fresh).await;
        let batch = set("version", version.to_string());
        commit(
            &target,
            &p,
            slot,
            Commit::new(Checkpoint::START, cp(1), batch),
        )
        .await;
        slots.push(slot);
    }
    target.activate(&p, slots[0]).await.unwrap();
    assert_eq!(
        reader.resolve(&p).await.unwrap(),
        Some(RedisSlotKeys::new(test.prefix(), &p, slots[0]))
    );

    let calls = Arc::new(AtomicU32::new(0));
    let read = reader
        .read(&p, |mut conn, keys| {
            let (target, p, calls, slots) =
                (target.clone(), p.clone(), calls.clone(), slots.clone());
            async move {
                let version: Option<String> = redis::cmd("GET")
                    .arg(keys.key("version"))
                    .query_async(&mut conn)
                    .await?;
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    assert_eq!(keys.slot(), slots[0]);
                    // A rebuild finishes while this read runs: switch, then drop the old slot.
                    target.activate(&p, slots[1]).await.unwrap();
                    target.drop_slot(&p, slots[0]).await.unwrap();
                }
                Ok((keys.slot(), version))
            }
        })
        .await
        .unwrap();
    assert_eq!(read, Some((slots[1], Some("2".to_owned()))));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Random batches (keys reused across types, so Redis refuses some writes) give the same keys
/// and values, and the same number of refusals, in Redis and in `RedisKeyspace`.
#[tokio::test]
async fn redis_target_and_keyspace_agree_on_random_writes() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("random");
    let slot = new_slot(target, &p, 1, NewSlot::Fresh).await;
    let keys = target.slot_keys(&p, slot);
    let seed = std::env::var("FOLDLINE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = RedisKeyspace::new();
    let mut checkpoint = Checkpoint::START;
    for n in 1..=150u64 {
        let batch: RedisWrites = (0..rng.usize(1..10)).map(|_| random_op(&mut rng)).collect();
        model.apply(batch.clone());
        let outcome = commit(target, &p, slot, Commit::new(checkpoint, cp(n), batch)).await;
        assert_eq!(outcome, CommitOutcome::Committed);
        checkpoint = cp(n);
        if n % 25 == 0 {
            let stored = read_slot(target, &keys).await;
            assert_eq!(stored, model, "after batch {n} (FOLDLINE_TEST_SEED={seed})");
            assert_eq!(
                target.rejected_writes(),
                model.rejected(),
                "refusals after batch {n} (FOLDLINE_TEST_SEED={seed})"
            );
        }
    }
    assert!(
        model.rejected() > 0,
        "the random batches should hit refusals too"
    );
    assert!(!model.is_empty());
}

fn random_op(rng: &mut fastrand::Rng) -> RedisOp {
    const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
    const ITEMS: [&str; 3] = ["x", "y", "z"];
    const SCORES: [f64; 8] = [-1.5, 0.0, -0.0, 2.0, 0.1, 1e300, f64::INFINITY, f64::NAN];
    let key = KEYS[rng.usize(..KEYS.len())].to_owned();
    let item = || ITEMS[fastrand::usize(..ITEMS.len())].as_bytes().to_vec();
    let value = |rng: &mut fastrand::Rng| -> Vec<u8> {
        match rng.u8(..10) {
            0 => b"abc".to_vec(),
            1 => b"007".to_vec(),
            2 => i64::MAX.to_string().into_bytes(),
            _ => rng.i64(-100..100).to_string().into_bytes(),
        }
    };
    let by = |rng: &mut fastrand::Rng| rng.i64(-10..10);
    match rng.u8(..13) {
        0 | 1 => RedisOp::Set {
            key,
            value: value(rng),
        },
        2 => RedisOp::Del { key },
        3 => RedisOp::IncrBy { key, by: by(rng) },
        4 | 5 => RedisOp::HSet {
            key,
            field: item(),
            value: value(rng),
        },
        6 => RedisOp::HDel { key, field: item() },
        7 => RedisOp::HIncrBy {
            key,
            field: item(),
            by: by(rng),
        },
        8 => RedisOp::SAdd {
            key,
            member: item(),
        },
        9 => RedisOp::SRem {
            key,
            member: item(),
        },
        10 | 11 => RedisOp::ZAdd {
            key,
            member: item(),
            score: SCORES[rng.usize(..SCORES.len())],
        },
        _ => RedisOp::ZRem {
            key,
            member: item(),
        },
    }
}

/// Nothing listens on port 1: connecting fails at once with a transient error.
#[tokio::test]
async fn redis_connection_refused_is_transient_and_quick() {
    let started = Instant::now();
    let options = RedisTargetOptions::from_url("redis://127.0.0.1:1/").unwrap();
    let error = RedisTarget::connect(options).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.is_transient(), "{}", error_chain(&error, ": "));
    assert!(
        matches!(&error, Error::Backend(e) if e.kind() == BackendErrorKind::Unavailable),
        "{error:?}"
    );
    assert!(
        error_chain(&error, ": ").contains("127.0.0.1:1"),
        "{}",
        error_chain(&error, ": ")
    );
}

/// The server closes the target's connection (`CLIENT KILL`): at most the next command fails,
/// with a transient error, and the connection manager reconnects.
#[tokio::test]
async fn redis_target_recovers_after_its_connection_is_killed() {
    let test = test_prefix().await;
    let target = test.target();
    let p = name("killed");
    let slot = new_slot(target, &p, 1, NewSlot::Fresh).await;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut target.connection())
        .await
        .unwrap();
    // Kill this target's connection only (`TYPE normal` would cut the other tests' too).
    let mut killer = test.connect_another().await.unwrap().connection();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut killer)
        .await
        .unwrap();
    assert_eq!(killed, 1);

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    loop {
        match target.checkpoint(&p, slot).await {
            Ok(checkpoint) => {
                assert_eq!(checkpoint, Some(Checkpoint::START));
                break;
            }
            Err(error) => {
                assert!(error.is_transient(), "{}", error_chain(&error, ": "));
                failures += 1;
                assert!(
                    Instant::now() < deadline,
                    "no reconnection: {}",
                    error_chain(&error, ": ")
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(failures <= 1, "{failures} commands failed after the kill");
    let new_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut target.connection())
        .await
        .unwrap();
    assert_ne!(new_id, id);
    let batch = set("after", "kill");
    assert_eq!(
        commit(
            target,
            &p,
            slot,
            Commit::new(Checkpoint::START, cp(1), batch)
        )
        .await,
        CommitOutcome::Committed
    );
}

foldline::projection_target_conformance_tests!(
    test = foldline_tests::redis::test_prefix().await => test.target().clone()
);

/// The cases also pass one after another on one shared target and key prefix, as they would
/// on a long-lived server: they isolate themselves by projection name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_conformance_on_one_shared_target() {
    let test = test_prefix().await;
    foldline::testing::target_conformance::run_all(async || test.target().clone()).await;
}

/// Balances in Redis hashes and sets: a projection written once for `RedisWrites`.
struct Balances;

impl foldline::Projection for Balances {
    const NAME: ProjectionName = ProjectionName::from_static("balances");
    type Event = AccountEvent;
    type Writes = RedisWrites;

    fn handle(
        &self,
        event: foldline::Envelope<'_, AccountEvent>,
        writes: &mut RedisWrites,
    ) -> Result<(), foldline::BoxError> {
        let account = event.recorded.stream_id.as_str();
        let key = format!("account:{account}");
        match &event.event {
            AccountEvent::Opened { owner } => {
                writes
                    .hset(&key, "owner", owner.as_str())
                    .sadd("open", account);
            }
            AccountEvent::Deposited { cents, .. } => {
                let cents = i64::try_from(*cents)?;
                writes
                    .hincr_by(&key, "balance", cents)
                    .incr_by("deposits", 1);
            }
            AccountEvent::Withdrawn { cents } => {
                writes.hincr_by(&key, "balance", -i64::try_from(*cents)?);
            }
            AccountEvent::Frozen => {
                writes.srem("open", account).zadd(
                    "frozen",
                    account,
                    event.recorded.stream_version.get() as f64,
                );
            }
        }
        Ok(())
    }
}

/// The same projection, run by the projector runtime into `InMemoryTarget<RedisKeyspace>` and
/// into Redis, leaves the same keys and values; a blue/green rebuild on Redis moves readers to
/// a new slot with the same content and deletes the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_projector_matches_the_in_memory_keyspace_and_rebuilds_blue_green() {
    use foldline::{CommandExecutor, InMemoryEventStore, InMemoryTarget, Projection, Projector};
    use foldline_tests::{Account, AccountCommand};

    let store = InMemoryEventStore::new();
    let bank = CommandExecutor::new(store.clone());
    for command in [
        AccountCommand::open("a1", "ada"),
        AccountCommand::open("a2", "bob"),
        AccountCommand::deposit("a1", 500),
        AccountCommand::deposit("a2", 70),
        AccountCommand::withdraw("a1", 120),
        AccountCommand::deposit("a1", 5),
        AccountCommand::freeze("a2"),
    ] {
        bank.execute::<Account>(command).await.unwrap();
    }

    let memory = InMemoryTarget::<RedisKeyspace>::new();
    Projector::new(store.clone(), Balances, memory.clone())
        .catch_up()
        .await
        .unwrap();
    let expected = memory.read(&Balances::NAME, RedisKeyspace::clone).unwrap();
    assert_eq!(
        expected.hget("account:account-a1", "balance"),
        Some(&b"385"[..]),
        "{expected:?}"
    );
    assert_eq!(expected.smembers("open"), [&b"account-a1"[..]]);

    let test = test_prefix().await;
    let target = test.target().clone();
    let projector = Projector::new(store.clone(), Balances, target.clone());
    projector.catch_up().await.unwrap();
    let reader = target.reader();
    let first = reader.resolve(&Balances::NAME).await.unwrap().unwrap();
    let stored = read_slot(&target, &first).await;
    assert_eq!(stored, expected);
    assert_eq!(target.rejected_writes(), 0);

    let rebuilt = projector
        .rebuild(foldline::RebuildMode::BlueGreen, |_| {})
        .await
        .unwrap();
    assert!(rebuilt.slot > first.slot());
    let second = reader.resolve(&Balances::NAME).await.unwrap().unwrap();
    assert_eq!(second.slot(), rebuilt.slot);
    let stored = read_slot(&target, &second).await;
    assert_eq!(stored, expected);
    let left: Vec<_> = test
        .keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.starts_with(first.hash_tag()))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "the old slot is dropped");
}
