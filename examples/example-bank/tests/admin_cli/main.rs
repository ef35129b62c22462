//! The `foldline` binary (`src/bin/foldline.rs`), run as a real process against real services:
//! PostgreSQL (`FOLDLINE_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`)
//! with a schema per test, Redis (`FOLDLINE_REDIS_URL`, default `redis://127.0.0.1:6379/`) with
//! a key prefix per test, and a temporary directory per test for the Tantivy index; all three
//! handed to the binary through its `FOLDLINE_*` variables. Its stdin is a pipe, never a
//! terminal, as in a script. Projectors the tests need running run in-process, on the same
//! store and Redis prefix. With a service unreachable these tests fail with a message saying
//! how to start it; they never skip.

mod poison;
mod redis_restart;
mod store_identity;
mod support;

use anyhow::{Context, ensure};
use example_bank::domain::AccountEvent;
use example_bank::projections::balances::Balances;
use example_bank::projections::memos::{self, TransferMemos};
use foldline::{
    BoxError, Checkpoint, Envelope, EventStore, PoisonPolicy, Projection, ProjectionName,
    ProjectionTarget, Projector, ProjectorOptions, ProjectorState, RecordedEvent, SlotId,
    SlotState, StreamId, Version,
};
use foldline_redis::RedisTestPrefix;
use foldline_redis::RedisWrites;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use support::{Bank, append, deposited, dump, eventually, fill, first_rebuild_commit, opened, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_lag_and_the_state_in_json_and_as_a_table() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    let last = fill(&store, 3, 9).await?;
    // A projector that ran and stopped: it reports `stopped`.
    let projector = bank.balances();
    let running = projector.spawn();
    running.wait_for(&last, Duration::from_secs(20)).await?;
    running.shutdown().await?;
    let more: Vec<_> = (1..=7).map(deposited).collect();
    append(&store, "acct0", &more).await?;

    let ran = bank.foldline(&["status", "--json"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stderr.is_empty(), "{ran:?}");
    let balances = ran.status_of("balances");
    assert_eq!(balances["lag_events"], 7, "{ran:?}");
    assert_eq!(balances["state"], "stopped", "{ran:?}");
    assert_eq!(balances["paused"], false, "{ran:?}");
    assert_eq!(balances["active_slot"], 1, "{ran:?}");
    assert_eq!(balances["code_version"], 1, "{ran:?}");
    assert_eq!(balances["dead_letters"], 0, "{ran:?}");
    let head = store.head().await?.to_string();
    assert_eq!(balances["head"], head.as_str(), "{ran:?}");
    assert!(
        balances["lag_seconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{ran:?}"
    );
    // The memo index never ran: no slot, everything to do. 3 × 10 + 7 events.
    let memos = ran.status_of("transfer_memos");
    assert_eq!(memos["active_slot"], Value::Null, "{ran:?}");
    assert_eq!(memos["lag_events"], 37, "{ran:?}");
    assert_eq!(memos["state"], "stopped", "{ran:?}");

    let ran = bank.foldline(&["status"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout
            .contains("PROJECTION      VERSION  SLOT    STATE    CHECKPOINT"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("LAG  WAITING  LAG (s)  DEAD LETTERS"),
        "{}",
        ran.stdout
    );
    let row = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("balances "))
        .context("a row for balances")?;
    let cells: Vec<_> = row.split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["balances", "1", "1", "(v1)", "stopped"],
        "{row}"
    );
    assert_eq!(cells[6], head, "{row}");
    assert_eq!(cells[7], "7", "the lag in events: {row}");
    assert_eq!(cells[8], "0", "nothing waits behind a holder: {row}");
    assert!(
        ran.stdout.starts_with("store: PostgreSQL at postgres://"),
        "{}",
        ran.stdout
    );

    // One projection by name.
    let ran = bank.foldline(&["status", "balances", "--json"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.of_type("projection_status").len(), 1, "{ran:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_blue_green_rebuild_resumes_its_slot_and_equals_a_fresh_build()
-> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    fill(&store, 20, 399).await?;
    let total = Checkpoint::START.distance_to(&store.head().await?);
    assert!(total >= 8000, "{total}");
    bank.balances().catch_up().await?;
    assert_eq!(bank.active_slot().await?, Some(SlotId::new(1)));

    // Start a blue/green rebuild and kill it (SIGKILL) once its slot has some of the events.
    let mut child = bank.spawn(&["rebuild", "balances"])?;
    let target = bank.target();
    let head = store.head().await?;
    let (building, reached) = first_rebuild_commit(&target, &mut child).await?;
    child.kill()?;
    let killed = child.wait()?;
    assert_eq!(killed.signal(), Some(9), "SIGKILL: {killed}");
    // Let a commit the process sent just before it died land before looking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Midway: still building, still short of the head; the old slot still serves reads.
    let slots = target.slots(&Balances::NAME).await?;
    let slot = slots
        .iter()
        .find(|s| s.slot == building)
        .context("the building slot")?;
    assert_eq!(slot.state, SlotState::Building, "{slots:?}");
    let at_kill = bank.checkpoint(building).await?.context("its checkpoint")?;
    assert!(!at_kill.covers_checkpoint(&head), "{at_kill} vs {head}");
    assert!(
        at_kill.covers_checkpoint(&reached),
        "{at_kill} vs {reached}"
    );
    assert_eq!(bank.active_slot().await?, Some(SlotId::new(1)));
    let left = at_kill.distance_to(&head);
    assert!(left > 0 && left < total, "{left} of {total} left");

    // Again: the same slot is resumed (after the dead process's lease runs out), finished
    // and activated; the old slot is dropped.
    let ran = bank.foldline(&["rebuild", "balances"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let done = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("rebuilt balances into slot "))
        .with_context(|| format!("the result line: {ran:?}"))?;
    assert!(
        done.starts_with(&format!(
            "rebuilt balances into slot {building} (version 1): "
        )),
        "{done}"
    );
    let applied: u64 = done
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .context("the number of events")?
        .parse()?;
    assert_eq!(applied, left, "only what was left is applied: {done}");
    // Not a terminal: plain progress lines on stderr, one every 2 s, no bar. The dead
    // process's lease keeps the slot for up to 10 s: the lines say so meanwhile.
    let progress: Vec<_> = ran.stderr.lines().collect();
    let waiting = format!(
        "rebuilding: waiting for the lease on slot {building}: another process holds it \
         (a stopped one's lease runs out on its own)"
    );
    assert!(progress.contains(&waiting.as_str()), "{ran:?}");
    let counting = format!("rebuilding: slot {building}: ");
    for line in &progress {
        let counted = line.strip_prefix(&counting).is_some_and(|rest| {
            rest.contains(&format!("/{total} events, ")) && rest.ends_with(" events/s")
        });
        assert!(*line == waiting || counted, "{line}");
        assert!(!line.contains('\r') && !line.contains('\u{1b}'), "{line:?}");
    }
    let slots = target.slots(&Balances::NAME).await?;
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(bank.active_slot().await?, Some(building));

    // The read model equals a fresh build of the same store, key by key.
    let fresh = RedisTestPrefix::create().await?;
    Projector::new(store.clone(), Balances, fresh.target().clone())
        .catch_up()
        .await?;
    let rebuilt = dump(&target, building).await?;
    assert_eq!(rebuilt.len(), 21, "20 accounts and the set of them");
    assert_eq!(rebuilt, dump(fresh.target(), SlotId::new(1)).await?);
    let checkpoint = bank.checkpoint(building).await?.context("a checkpoint")?;
    assert!(
        checkpoint.covers_checkpoint(&store.head().await?),
        "{checkpoint}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_reach_a_running_projector() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    let last = fill(&store, 2, 4).await?;
    let running = bank.balances().spawn();
    running.wait_for(&last, Duration::from_secs(20)).await?;
    let before = bank.balances_now().await?;
    assert_eq!(before["acct1"], 10);

    let ran = bank.foldline(&["pause", "balances"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.starts_with("paused balances"), "{ran:?}");
    eventually(
        "the projector pauses",
        Duration::from_secs(10),
        async || Ok(running.progress().state == ProjectorState::Paused),
    )
    .await?;

    let later = append(&store, "acct1", &[deposited(1000)])
        .await?
        .position
        .context("a position")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running.progress().state, ProjectorState::Paused);
    assert!(!running.progress().is_visible(&later));
    assert_eq!(
        bank.balances_now().await?,
        before,
        "nothing applied while paused"
    );
    let ran = bank.foldline(&["status", "balances", "--json"]).await?;
    let status = ran.status_of("balances");
    assert_eq!(status["state"], "paused", "{ran:?}");
    assert_eq!(status["paused"], true, "{ran:?}");
    assert_eq!(status["lag_events"], 1, "{ran:?}");

    let ran = bank.foldline(&["resume", "balances", "--json"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let control = ran.of_type("projection_control");
    assert_eq!(control.len(), 1, "{ran:?}");
    assert_eq!(control[0]["paused"], false, "{ran:?}");
    running.wait_for(&later, Duration::from_secs(10)).await?;
    assert_eq!(bank.balances_now().await?["acct1"], 1010);
    running.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_asks_for_yes_offers_a_dry_run_and_needs_the_slot() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    let last = fill(&store, 3, 5).await?;
    let running = bank.balances().spawn();
    running.wait_for(&last, Duration::from_secs(20)).await?;
    let before = bank.balances_now().await?;
    assert_eq!(before.len(), 3);
    let checkpoint = bank.checkpoint(SlotId::new(1)).await?;

    // No --yes, and stdin is not a terminal to ask on: refused, nothing reset.
    let ran = bank.foldline(&["reset", "balances"]).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr.contains(
            "error: refusing to reset projection `balances` without --yes: stdin is not a \
             terminal to ask on"
        ),
        "{ran:?}"
    );
    assert!(ran.stdout.is_empty(), "{ran:?}");
    assert_eq!(bank.checkpoint(SlotId::new(1)).await?, checkpoint);
    assert_eq!(bank.balances_now().await?, before);

    // --dry-run says what it would do, and does nothing.
    let ran = bank.foldline(&["reset", "balances", "--dry-run"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout
            .starts_with("dry run: would reset projection `balances`: slot 1 (version 1)"),
        "{ran:?}"
    );
    let ran = bank
        .foldline(&["reset", "balances", "--dry-run", "--json"])
        .await?;
    let line = &ran.of_type("projection_reset")[0];
    assert_eq!(line["dry_run"], true, "{ran:?}");
    assert_eq!(line["slot"], 1, "{ran:?}");
    assert_eq!(bank.checkpoint(SlotId::new(1)).await?, checkpoint);
    assert_eq!(bank.balances_now().await?, before);

    // --yes while a projector holds the slot: busy (after waiting a lease's lifetime).
    let ran = bank.foldline(&["reset", "balances", "--yes"]).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .contains("is held by a running projector; pause the projection first"),
        "{ran:?}"
    );
    assert_eq!(bank.balances_now().await?, before);

    // Paused, the projector gives the slot up: the reset goes through.
    let ran = bank.foldline(&["pause", "balances"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    eventually(
        "the projector pauses",
        Duration::from_secs(10),
        async || Ok(running.progress().state == ProjectorState::Paused),
    )
    .await?;
    let ran = bank.foldline(&["reset", "balances", "--yes"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout
            .starts_with("reset balances (slot 1); running projectors rebuild it"),
        "{ran:?}"
    );
    assert_eq!(
        bank.checkpoint(SlotId::new(1)).await?,
        Some(Checkpoint::START)
    );
    assert!(bank.balances_now().await?.is_empty());

    // Resumed, the running projector builds it again from the first event.
    bank.foldline(&["resume", "balances"]).await?;
    eventually(
        "the balances come back",
        Duration::from_secs(20),
        async || Ok(bank.balances_now().await? == before),
    )
    .await?;
    running.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_what_happened_and_passwords_are_never_printed() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    fill(&store, 2, 3).await?;

    // Lag: the check fails with 1; the status is still printed.
    let ran = bank
        .foldline(&["status", "--check", "--max-lag", "0", "--json"])
        .await?;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert_eq!(ran.status_of("balances")["lag_events"], 8, "{ran:?}");
    assert!(
        ran.stderr
            .contains("check failed: `balances` lags 8 events (--max-lag 0)\n"),
        "{ran:?}"
    );

    // All caught up: 0. (The targets are dropped first: the index's writer is let go.)
    bank.balances().catch_up().await?;
    bank.transfers().catch_up().await?;
    let ran = bank
        .foldline(&["status", "balances", "--check", "--max-lag", "0"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let ran = bank
        .foldline(&["status", "--check", "--max-lag", "0"])
        .await?;
    assert_eq!(ran.code, Some(1), "transfer_memos still lags: {ran:?}");
    {
        let index = memos::open_target(bank.dir.path())?;
        Projector::new(store.clone(), TransferMemos::new(), index)
            .catch_up()
            .await?;
    }
    let ran = bank
        .foldline(&["status", "--check", "--max-lag", "0"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    append(&store, "acct0", &[deposited(5)]).await?;
    let ran = bank
        .foldline(&[
            "status",
            "--check",
            "--max-lag",
            "0",
            "--max-lag-seconds",
            "3600",
        ])
        .await?;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let ran = bank
        .foldline(&["status", "--check", "--max-lag", "1"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");

    // An unknown projection: 2, naming the known ones.
    for args in [
        &["status", "nope"][..],
        &["rebuild", "nope"],
        &["pause", "nope"],
        &["dead-letters", "list", "nope"],
    ] {
        let ran = bank.foldline(args).await?;
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert!(
            ran.stderr.contains(
                "error: no projection named `nope` (known: balances, transfer_memos, transfer)"
            ),
            "{args:?}: {ran:?}"
        );
    }

    // Bad arguments: 2 (clap's usage error).
    let ran = bank.foldline(&["status", "--max-lag", "lots"]).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");

    // PostgreSQL unreachable: 2, with the causes, and the password never printed.
    let ran = bank
        .foldline(&[
            "status",
            "--postgres-url",
            "postgres://nobody:secret@127.0.0.1:1/x",
        ])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .starts_with("error: setting up the store and projections failed\n  caused by: "),
        "{ran:?}"
    );
    assert!(ran.stderr.contains("127.0.0.1:1"), "{ran:?}");
    assert_causes_printed_once(&ran.stderr);
    assert!(!ran.stderr.contains("secret"), "{ran:?}");
    assert!(!ran.stdout.contains("secret"), "{ran:?}");
    // The same through the variable (Redis: in the next test).
    let mut command = bank.command(&["status"]);
    command.env(
        "FOLDLINE_POSTGRES_URL",
        "postgres://nobody:secret@127.0.0.1:1/x",
    );
    let ran = run(command).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(!ran.stderr.contains("secret"));
    // `--help` names the variables but never shows their values.
    let mut command = bank.command(&["--help"]);
    command
        .env(
            "FOLDLINE_POSTGRES_URL",
            "postgres://nobody:secret@db:5432/x",
        )
        .env("FOLDLINE_REDIS_URL", "redis://:secret@cache:6379/");
    let ran = run(command).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let help = ran.stdout;
    assert!(help.contains("FOLDLINE_POSTGRES_URL"), "{help}");
    assert!(help.contains("FOLDLINE_REDIS_URL"), "{help}");
    assert!(!help.contains("secret"), "{help}");
    assert!(help.contains("Exit codes:"), "{help}");
    Ok(())
}

/// Redis down: the commands that only read the store work, `status` shows the projections it
/// can read and fails (2) naming the one it cannot, once, without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_leaves_the_store_and_the_other_projections_readable() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    fill(&bank.store(), 2, 3).await?;
    let dead = "redis://:secret@127.0.0.1:1/";

    let ran = bank.foldline(&["status", "--redis-url", dead]).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    let row = |name: &str| {
        ran.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .with_context(|| format!("a row for {name}: {ran:?}"))
    };
    assert_eq!(row("balances")?[..4], ["balances", "1", "?", "unreadable"]);
    // The `transfer` process manager keeps its checkpoint in Redis too.
    assert_eq!(row("transfer")?[..4], ["transfer", "1", "?", "unreadable"]);
    assert_eq!(
        row("transfer_memos")?[..4],
        ["transfer_memos", "1", "-", "stopped"]
    );
    assert!(
        ran.stderr.starts_with(
            "error: cannot read the state of balances, transfer\n  caused by: redis failed \
             while "
        ),
        "{ran:?}"
    );
    assert_causes_printed_once(&ran.stderr);
    assert!(!ran.stderr.contains("secret"), "{ran:?}");
    assert!(!ran.stdout.contains("secret"), "{ran:?}");

    let ran = bank
        .foldline(&["status", "--json", "--redis-url", dead])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    let unreadable = ran.of_type("projection_unreadable");
    assert_eq!(unreadable.len(), 2, "{ran:?}");
    assert_eq!(unreadable[0]["projection"], "balances", "{ran:?}");
    assert_eq!(unreadable[1]["projection"], "transfer", "{ran:?}");
    assert_eq!(ran.status_of("transfer_memos")["lag_events"], 8, "{ran:?}");

    for args in [
        &["streams"][..],
        &["events", "--all"],
        &["events", "account-acct0"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--json", "--redis-url", dead]);
        let ran = bank.foldline(&args).await?;
        assert_eq!(ran.code, Some(0), "{args:?}: {ran:?}");
        assert!(!ran.records().is_empty(), "{args:?}: {ran:?}");
    }
    Ok(())
}

/// No `caused by:` line of `stderr` repeats a message an earlier line already printed.
fn assert_causes_printed_once(stderr: &str) {
    let messages: Vec<&str> = stderr
        .lines()
        .map(|l| {
            l.trim_start()
                .trim_start_matches("error: ")
                .trim_start_matches("caused by: ")
        })
        .collect();
    for (i, cause) in messages.iter().enumerate().skip(1) {
        assert!(
            !messages[..i].iter().any(|earlier| earlier.contains(cause)),
            "`{cause}` is printed twice:\n{stderr}"
        );
    }
}

/// A schema that is not migrated (a typo in --schema): every command but `migrate` says so
/// and what to do, instead of the server's "relation does not exist".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_migrations_is_named_with_what_to_do() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let schema = format!("{}_typo", bank.store().schema());
    for args in [&["status"][..], &["streams"], &["rebuild", "balances"]] {
        let mut args = args.to_vec();
        args.extend(["--schema", &schema]);
        let ran = bank.foldline(&args).await?;
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert!(
            ran.stderr.contains(&format!("schema {schema} lacks "))
                && ran
                    .stderr
                    .contains(" of this release's migrations: run `migrate`"),
            "{args:?}: {ran:?}"
        );
    }
    let ran = bank
        .foldline(&["migrate", "--check", "--schema", &schema])
        .await?;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    Ok(())
}

/// `Balances` as it was with a bug: the same name, version, events and writes, but its handler
/// fails on one event.
struct BuggyBalances {
    fails_on: String,
}

impl Projection for BuggyBalances {
    const NAME: ProjectionName = Balances::NAME;
    const VERSION: u32 = Balances::VERSION;
    type Event = AccountEvent;
    type Writes = RedisWrites;

    fn handle(
        &self,
        event: Envelope<'_, AccountEvent>,
        writes: &mut RedisWrites,
    ) -> Result<(), BoxError> {
        if event.recorded.event_id.to_string() == self.fails_on {
            return Err("the bug: this handler cannot take that deposit".into());
        }
        Balances.handle(event, writes)
    }
}

/// Runs the buggy `Balances` to the head, parking the event it fails on.
async fn park(bank: &Bank, event: &RecordedEvent) -> anyhow::Result<()> {
    let buggy = BuggyBalances {
        fails_on: event.event_id.to_string(),
    };
    let options = ProjectorOptions::new()
        .with_poison_policy(PoisonPolicy::DeadLetter)
        .with_retries(1, Duration::ZERO);
    let progress = Projector::new(bank.store(), buggy, bank.target())
        .with_options(options)
        .catch_up()
        .await?;
    ensure!(progress.dead_lettered == 1, "{progress:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_retried_with_the_fixed_handler_and_discarded() -> anyhow::Result<()>
{
    let bank = Bank::new().await?;
    let store = bank.store();
    let stream = StreamId::new("account-dora")?;
    append(
        &store,
        "dora",
        &[opened("Dora"), deposited(100), deposited(250), deposited(5)],
    )
    .await?;
    let events = store.read_stream(&stream, Version::new(1), 10).await?;
    let poison = &events[2];
    park(&bank, poison).await?;
    assert_eq!(
        bank.balances_now().await?["dora"],
        105,
        "the deposit of 250 is parked"
    );
    let id = poison.event_id.to_string();

    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let letters = ran.of_type("dead_letter");
    assert_eq!(letters.len(), 1, "{ran:?}");
    assert_eq!(letters[0]["event_id"], id.as_str());
    assert_eq!(letters[0]["projection"], "balances");
    assert_eq!(letters[0]["stream"], "account-dora");
    assert_eq!(letters[0]["stream_version"], 3);
    assert_eq!(letters[0]["attempts"], 1);
    assert!(
        letters[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the bug")),
        "{ran:?}"
    );
    let ran = bank.foldline(&["dead-letters", "list", "balances"]).await?;
    let header: Vec<_> = ran
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["EVENT", "STREAM", "VERSION", "TYPE", "ATTEMPTS", "ERROR"],
        "{ran:?}"
    );
    assert!(ran.stdout.contains(&id), "{ran:?}");
    let ran = bank.foldline(&["status", "balances", "--json"]).await?;
    assert_eq!(ran.status_of("balances")["dead_letters"], 1, "{ran:?}");

    // The binary runs the fixed handler: the retry applies the deposit and removes the letter.
    let ran = bank
        .foldline(&["dead-letters", "retry", "balances", &id])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        ran.stdout,
        format!("retried {id}: applied and removed from the list\n")
    );
    assert_eq!(bank.balances_now().await?["dora"], 355);
    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    assert!(ran.of_type("dead_letter").is_empty(), "{ran:?}");
    // Again: no such letter any more, an error.
    let ran = bank
        .foldline(&["dead-letters", "retry", "balances", &id])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert_eq!(bank.balances_now().await?["dora"], 355, "not applied twice");

    // Another one, discarded: only with --yes.
    append(&store, "dora", &[deposited(40)]).await?;
    let events = store.read_stream(&stream, Version::new(5), 1).await?;
    let second = &events[0];
    park(&bank, second).await?;
    let id = second.event_id.to_string();
    let ran = bank
        .foldline(&["dead-letters", "discard", "balances", &id])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .contains("error: refusing to discard 1 dead letter(s) of `balances` without --yes"),
        "{ran:?}"
    );
    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    assert_eq!(ran.of_type("dead_letter").len(), 1, "still there: {ran:?}");
    // --dry-run says what would go, and checks the ids.
    let ran = bank
        .foldline(&["dead-letters", "discard", "balances", &id, "--dry-run"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        ran.stdout,
        format!(
            "dry run: would discard dead letter {id} of balances (account-dora version 5, \
             Deposited)\n"
        )
    );
    let unknown = "01a20b34-0000-7000-8000-000000000000";
    let ran = bank
        .foldline(&["dead-letters", "discard", "balances", unknown, "--dry-run"])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stdout.contains(&format!(
            "dry run: {unknown}: no such dead letter in balances"
        )),
        "{ran:?}"
    );
    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    assert_eq!(ran.of_type("dead_letter").len(), 1, "still there: {ran:?}");
    let ran = bank
        .foldline(&[
            "dead-letters",
            "discard",
            "balances",
            &id,
            "--yes",
            "--json",
        ])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let settled = ran.of_type("dead_letter_settled");
    assert_eq!(settled.len(), 1, "{ran:?}");
    assert_eq!(settled[0]["action"], "discard", "{ran:?}");
    assert_eq!(settled[0]["found"], true, "{ran:?}");
    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    assert!(ran.of_type("dead_letter").is_empty(), "{ran:?}");
    assert_eq!(
        bank.balances_now().await?["dora"],
        355,
        "discarded, never applied"
    );
    Ok(())
}
