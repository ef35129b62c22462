//! Kafka store writers in processes of their own (`kafka-writer`), frozen and killed mid-append
//! against the real broker:
//!
//! - SIGKILL of the owning process at random moments, 20 times, under 4 concurrent writers
//!   with idempotency keys, each run retrying from the start: every key is stored exactly once,
//!   every acknowledged append with the version it was acknowledged with.
//! - A frozen owner (SIGSTOP) loses its partitions to another instance, which appends; resumed,
//!   the frozen one's appends in flight fail (fenced, or refused as the group has moved their
//!   partitions), and nothing it did not get acknowledged is ever read: every event read was
//!   acknowledged to exactly one writer, at the version read.
//! - Partitions move as instances join and leave mid-run (a second and a third join, the first
//!   leaves): each instance gives up keys refused as `NotOwner` and goes on with its own
//!   partitions; no refused key is ever stored, every acknowledged append is stored once.

// Progress and timings for `--nocapture` runs.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{Error, EventStore, StreamId};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
use foldline_tests::keyed;

const STREAMS: usize = 8;

/// What a writer process printed.
#[derive(Default)]
struct Printed {
    /// key → (stream, version) of each acknowledged append.
    acks: BTreeMap<String, (String, u64)>,
    refused: usize,
    done: bool,
}

/// A running `kafka-writer` and what it has printed so far.
struct Writer {
    child: Child,
    printed: Arc<Mutex<Printed>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(store: &KafkaEventStore, args: &[&str]) -> anyhow::Result<Self> {
        let options = store.options();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-writer"))
            .args(["--brokers", options.brokers()])
            .args(["--prefix", options.topic_prefix()])
            .args(["--streams", &STREAMS.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting kafka-writer")?;
        let stdout = child.stdout.take().context("kafka-writer's stdout")?;
        let printed = Arc::new(Mutex::new(Printed::default()));
        let into = Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut printed = into.lock().unwrap_or_else(|p| p.into_inner());
                let words: Vec<&str> = line.split(' ').collect();
                match words.as_slice() {
                    ["ack", key, stream, version] => {
                        let version = version.parse().unwrap_or(0);
                        printed
                            .acks
                            .insert((*key).to_owned(), ((*stream).to_owned(), version));
                    }
                    ["refused", ..] => printed.refused += 1,
                    ["done"] => printed.done = true,
                    _ => {}
                }
            }
        });
        Ok(Writer {
            child,
            printed,
            reader: Some(reader),
        })
    }

    fn acks(&self) -> usize {
        self.printed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acks
            .len()
    }

    fn refused(&self) -> usize {
        self.printed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill {signal} failed");
        Ok(())
    }

    /// Waits for the process to end (after a kill, or on its own) and returns what it printed.
    fn finish(mut self, within: Duration) -> anyhow::Result<Printed> {
        let deadline = Instant::now() + within;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                anyhow::bail!("kafka-writer did not finish within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(std::mem::take(
            &mut *self.printed.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event of the writer streams (`foldline_tests::keyed::stored_keys`).
async fn stored(store: &KafkaEventStore) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let streams = (0..STREAMS)
        .map(|n| StreamId::new(format!("stream-{n}")))
        .collect::<Result<Vec<_>, _>>()?;
    keyed::stored_keys(store, streams).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_20_times_mid_append_stores_every_keyed_append_exactly_once()
-> anyhow::Result<()> {
    const TASKS: usize = 4;
    const APPENDS: usize = 150;
    let test = KafkaTestTopics::create().await?;
    let store = test.store().clone();
    // One static member id: each run takes the killed run's partitions at once.
    let args = [
        "--member-id",
        "killed-writer",
        "--tasks",
        "4",
        "--appends",
        "150",
    ];
    let mut acks: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut killed_while_appending = 0;
    for round in 0..20 {
        let writer = Writer::start(&store, &args)?;
        // Killed once it has acknowledged something new, at a random moment after.
        let before = acks.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while writer.acks() <= before.min(TASKS * APPENDS - 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..400))).await;
        writer.signal("-KILL")?;
        let printed = writer.finish(Duration::from_secs(10))?;
        if !printed.done {
            killed_while_appending += 1;
        }
        for (key, at) in printed.acks {
            if let Some(first) = acks.get(&key) {
                ensure!(
                    *first == at,
                    "round {round}: {key} acknowledged as {at:?}, first as {first:?}"
                );
            }
            acks.insert(key, at);
        }
        eprintln!("round {round}: {} keys acknowledged so far", acks.len());
    }
    // The last run finishes: every key is acknowledged.
    let writer = Writer::start(&store, &args)?;
    let printed = writer.finish(Duration::from_secs(180))?;
    ensure!(printed.done, "the last run finished");
    for (key, at) in printed.acks {
        if let Some(first) = acks.get(&key) {
            ensure!(
                *first == at,
                "{key} acknowledged as {at:?}, first as {first:?}"
            );
        }
        acks.insert(key, at);
    }
    ensure!(
        killed_while_appending >= 10,
        "only {killed_while_appending} of 20 kills came while appending"
    );

    let stored = stored(&store).await?;
    ensure!(
        acks.len() == TASKS * APPENDS,
        "{} keys acknowledged",
        acks.len()
    );
    keyed::check_exactly_once(&acks, &stored)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_owner_is_fenced_and_nothing_unacknowledged_is_ever_read() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    // Short sessions (the brokers' 6 s floor): the frozen instance's partitions move soon.
    let options = test
        .store()
        .options()
        .clone()
        .with_session_timeout(Duration::from_secs(6));
    let frozen = Writer::start(
        test.store(),
        &[
            "--session-ms",
            "6000",
            "--tasks",
            "4",
            "--appends",
            "100000",
            "--key-prefix",
            "frozen",
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while frozen.acks() < 50 {
        ensure!(Instant::now() < deadline, "the writer acknowledged nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    frozen.signal("-STOP")?;

    // Another instance appends to every stream: refused while the frozen one owns the
    // partitions, accepted once its session expires and the group moves them.
    let other = KafkaEventStore::connect(options).await?;
    let started = Instant::now();
    let mut other_acks = BTreeMap::new();
    for n in 0..STREAMS {
        let stream = StreamId::new(format!("stream-{n}"))?;
        let key = format!("other-{n}");
        loop {
            match other.append(keyed::keyed_append(&stream, &key)?).await {
                Ok(result) => {
                    other_acks.insert(key, (stream.to_string(), result.current_version.get()));
                    break;
                }
                Err(Error::Backend(e)) if e.is_transient() => {
                    ensure!(
                        started.elapsed() < Duration::from_secs(60),
                        "the partitions never moved: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let moved_after = started.elapsed();
    ensure!(
        moved_after >= Duration::from_secs(3),
        "appends were accepted while the owner was only frozen ({moved_after:?})"
    );

    // Resumed, the frozen writer's appends in flight fail (fenced, or refused: the group has
    // moved its partitions). It is left running a while, then killed.
    let refused_before = frozen.refused();
    frozen.signal("-CONT")?;
    let resumed = Instant::now();
    while frozen.refused() == refused_before && resumed.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_after = frozen.refused() - refused_before;
    let first_refusal = resumed.elapsed();
    ensure!(refused_after > 0, "the resumed writer was never refused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    frozen.signal("-KILL")?;
    let printed = frozen.finish(Duration::from_secs(10))?;
    eprintln!(
        "partitions moved after {moved_after:?}; the resumed writer's first refusal came \
         {first_refusal:?} after it resumed"
    );

    // Every event read was acknowledged, to exactly one writer, at the version read.
    let stored = stored(test.store()).await?;
    let mut acks = printed.acks;
    for (key, at) in other_acks {
        ensure!(
            acks.insert(key.clone(), at).is_none(),
            "{key} acknowledged twice"
        );
    }
    let unacknowledged: BTreeSet<&String> =
        stored.keys().filter(|k| !acks.contains_key(*k)).collect();
    // A kill between commit and print may leave the frozen writer's last appends unprinted:
    // only its own, only the last per task.
    ensure!(
        unacknowledged.iter().all(|k| k.starts_with("frozen")) && unacknowledged.len() <= 4,
        "read but never acknowledged: {unacknowledged:?}"
    );
    keyed::check_acknowledged_stored(&acks, &stored)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_as_instances_join_and_leave_mid_run() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let writer = |prefix: &str, extra: &[&str]| -> anyhow::Result<Writer> {
        let mut args = vec![
            "--session-ms",
            "6000",
            "--tasks",
            "4",
            "--appends",
            "100000",
            "--key-prefix",
            prefix,
            // A key refused for a partition another instance owns is given up (and must then
            // never be stored), so each instance goes on with the streams it owns.
            "--skip-refused",
        ];
        args.extend_from_slice(extra);
        Writer::start(store, &args)
    };
    // The first instance owns every partition; it will leave after 20 s.
    let first = writer("a", &["--run-ms", "20000"])?;
    wait_for(&first, 50, "the first instance").await?;
    // A second and a third join: the group moves partitions to them.
    let second = writer("b", &[])?;
    wait_for(&second, 50, "the second instance").await?;
    let third = writer("c", &[])?;
    wait_for(&third, 50, "the third instance").await?;
    // The first leaves (it stops and drops its store): its partitions go to the others.
    let first = first.finish(Duration::from_secs(60))?;
    ensure!(first.done, "the first instance exited without finishing");
    let (b, c) = (second.acks(), third.acks());
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.acks() + third.acks() < b + c + 50 {
        ensure!(
            Instant::now() < deadline,
            "the others stopped appending after the first left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.signal("-KILL")?;
    third.signal("-KILL")?;
    let (second, third) = (
        second.finish(Duration::from_secs(10))?,
        third.finish(Duration::from_secs(10))?,
    );

    // Every acknowledged append is stored once at its version; versions never diverged.
    let stored = stored(store).await?;
    let mut acks = first.acks;
    for printed in [second.acks, third.acks] {
        for (key, at) in printed {
            ensure!(
                acks.insert(key.clone(), at).is_none(),
                "{key} acknowledged twice"
            );
        }
    }
    keyed::check_acknowledged_stored(&acks, &stored)?;
    // Killed between commit and print: at most the last append of each killed task.
    let unacknowledged: BTreeSet<&String> =
        stored.keys().filter(|k| !acks.contains_key(*k)).collect();
    ensure!(
        unacknowledged.len() <= 8 && unacknowledged.iter().all(|k| !k.starts_with('a')),
        "read but never acknowledged: {unacknowledged:?}"
    );
    Ok(())
}

/// Waits until `writer` has acknowledged `count` appends, for at most 60 s.
async fn wait_for(writer: &Writer, count: usize, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.acks() < count {
        ensure!(
            Instant::now() < deadline,
            "{what}: {} of {count} acknowledged",
            writer.acks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
