//! The example's story on Apache Kafka (feature `kafka`; `FOLDLINE_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`), under a topic prefix of its own (the transfers' timers in memory), with
//! the balances in Redis
//! (`FOLDLINE_REDIS_URL`, default `redis://127.0.0.1:6379/`) under a key prefix of its own and
//! the memo index in a temporary directory; then the `foldline` binary on the same store. With
//! a service unreachable these tests fail with a message saying how to start it; they never
//! skip.

use std::time::{SystemTime, UNIX_EPOCH};

use example_bank::domain::dollars;
use example_bank::kafka::{delete_topics, fresh_store};
use example_bank::targets::fresh_memo_index;
use foldline::{
    EventStore, EventStoreExt, ExpectedVersion, InMemoryTimerStore, ManagedStore, StreamId,
};
use foldline_kafka::{DEFAULT_BROKERS, ENV_BROKERS};
use foldline_redis::RedisTestPrefix;
use serde_json::Value;

/// Balances in cents, `i64` as the read model keeps them.
fn cents(amount: u64) -> Option<i64> {
    i64::try_from(dollars(amount)).ok()
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_on_kafka_and_the_admin_reads_it() -> anyhow::Result<()> {
    let brokers = var_or(ENV_BROKERS, DEFAULT_BROKERS);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let prefix = format!("example_bank_test_{}_{nanos}", std::process::id());
    let told = story_on_kafka(&brokers, &prefix).await;
    // Whatever happened, the test's topics go.
    delete_topics(&brokers, &prefix).await?;
    told
}

async fn story_on_kafka(brokers: &str, prefix: &str) -> anyhow::Result<()> {
    // A store with something in it: `fresh_store` empties it, as the PostgreSQL path drops
    // its schema.
    let earlier = fresh_store(brokers, prefix).await?;
    earlier
        .append_events(
            StreamId::new("account-left-over")?,
            ExpectedVersion::Any,
            &[example_bank::domain::AccountEvent::Opened {
                owner: "Nobody".into(),
            }],
        )
        .await?;
    drop(earlier);
    let store = fresh_store(brokers, prefix).await?;
    assert!(store.streams(None, 10).await?.is_empty(), "emptied first");

    let redis = RedisTestPrefix::create().await?;
    let dir = tempfile::tempdir()?;
    let memos = fresh_memo_index(dir.path()).await?;
    let mut out = Vec::new();
    // The Kafka store keeps no timers: the transfers' stay in memory, as `main` keeps them.
    let timers = InMemoryTimerStore::new();
    let end = example_bank::run(
        store.clone(),
        timers,
        redis.target().clone(),
        memos,
        &mut out,
    )
    .await?;
    let out = String::from_utf8(out)?;

    assert_eq!(end.balance("alice"), cents(430), "{out}");
    assert_eq!(end.balance("bob"), cents(270), "{out}");
    assert_eq!(end.balance("carol"), cents(905), "{out}");
    assert_eq!(end.balance("dave"), cents(0), "{out}");
    assert_eq!(end.accounts.len(), 4, "{out}");
    let ended: Vec<_> = end.transfers.iter().map(|t| t.status.name()).collect();
    assert_eq!(
        ended,
        ["completed", "completed", "failed", "failed"],
        "{out}"
    );
    assert!(
        end.checkpoint.covers_checkpoint(&store.head().await?),
        "caught up to the head: {out}"
    );
    assert_eq!(end.memo_hits.len(), 2, "{out}");
    assert!(out.contains("replayed: nothing appended"), "{out}");
    assert!(out.contains("refused: insufficient funds"), "{out}");
    assert!(
        out.contains("attempts 2: its first append conflicted"),
        "{out}"
    );
    // Snapshots in `<prefix>.snapshots`.
    assert!(
        out.contains("snapshot of account-alice saved at v5"),
        "{out}"
    );
    assert!(out.contains("snapshot at v5 + 1 later event(s)"), "{out}");
    assert!(out.contains("upcast on read"), "{out}");
    let streams: Vec<String> = store
        .streams(None, 100)
        .await?
        .into_iter()
        .map(|(s, _)| s.to_string())
        .collect();
    assert!(
        streams.iter().any(|s| s == "account-alice")
            && !streams.iter().any(|s| s.contains("left-over")),
        "{streams:?}"
    );

    // The admin binary, pointed at the same store by its Kafka variables.
    let foldline_on = |prefix: &str, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_foldline"));
        command
            .args(args)
            .env(ENV_BROKERS, brokers)
            .env("FOLDLINE_KAFKA_TOPIC_PREFIX", prefix)
            .env(
                "FOLDLINE_REDIS_URL",
                var_or(foldline_redis::ENV_URL, foldline_redis::DEFAULT_URL),
            )
            .env("FOLDLINE_REDIS_PREFIX", redis.prefix())
            .env("FOLDLINE_TANTIVY_DIR", dir.path())
            .env_remove("RUST_LOG");
        command.output()
    };
    let foldline = |args: &[&str]| foldline_on(prefix, args);
    let ran = foldline(&["status", "--json"])?;
    let stdout = String::from_utf8(ran.stdout)?;
    let stderr = String::from_utf8(ran.stderr)?;
    assert_eq!(ran.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for projection in ["balances", "transfer_memos"] {
        let status = lines
            .iter()
            .find(|l| l["type"] == "projection_status" && l["projection"] == projection)
            .unwrap_or_else(|| panic!("a status line for {projection}: {stdout}"));
        assert_eq!(status["lag_events"], 0, "caught up: {status}");
        assert_eq!(status["head"], store.head().await?.to_string(), "{status}");
    }
    let feed = lines
        .iter()
        .find(|l| l["type"] == "feed")
        .unwrap_or_else(|| panic!("a feed line: {stdout}"));
    assert_eq!(feed["held_back"], false, "{feed}");

    let ran = foldline(&["status"])?;
    let stdout = String::from_utf8(ran.stdout)?;
    assert!(
        stdout.starts_with(&format!(
            "store: Apache Kafka at {brokers}, topics {prefix}.*"
        )),
        "{stdout}"
    );
    let ran = foldline(&["streams", "--json"])?;
    let stdout = String::from_utf8(ran.stdout)?;
    assert_eq!(ran.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("\"account-alice\""), "{stdout}");

    // One stream's events, the feed, the feed from its start as `tail` follows it, and a
    // blue-green rebuild, from a process that owns no partition of the store.
    let alice = store
        .read_stream(
            &StreamId::new("account-alice")?,
            foldline::Version::new(1),
            100,
        )
        .await?;
    let ran = foldline(&["events", "account-alice", "--json"])?;
    let events = event_lines(&ran)?;
    let versions: Vec<u64> = events
        .iter()
        .filter_map(|l| l["stream_version"].as_u64())
        .collect();
    assert_eq!(
        versions,
        (1..=alice.len() as u64).collect::<Vec<_>>(),
        "{events:?}"
    );
    let all = store.read_all(&foldline::Checkpoint::START, 10_000).await?;
    let ran = foldline(&["events", "--all", "--json", "--limit", "10000"])?;
    assert_eq!(event_lines(&ran)?.len(), all.events.len());
    let ran = foldline(&["tail", "--after", "start", "--limit", "3", "--json"])?;
    assert_eq!(event_lines(&ran)?.len(), 3);
    let ran = foldline(&["rebuild", "balances"])?;
    let (stdout, stderr) = (
        String::from_utf8(ran.stdout)?,
        String::from_utf8(ran.stderr)?,
    );
    assert_eq!(ran.status.code(), Some(0), "{stdout}{stderr}");
    let ran = foldline(&["status", "--json"])?;
    let stdout = String::from_utf8(ran.stdout)?;
    let balances = stdout
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|l| l["type"] == "projection_status" && l["projection"] == "balances")
        .unwrap_or_else(|| panic!("a status line for balances: {stdout}"));
    assert_eq!(
        balances["active_slot"], 2,
        "rebuilt into a new slot: {balances}"
    );
    assert_eq!(balances["lag_events"], 0, "{balances}");

    // A mistyped prefix names what is missing and creates nothing.
    let typo = format!("{prefix}_typo");
    let ran = foldline_on(&typo, &["status"])?;
    let stderr = String::from_utf8(ran.stderr)?;
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no store at topics `{typo}.*` on Apache Kafka at {brokers}"
        )),
        "{stderr}"
    );
    Ok(())
}

/// The `event` lines of a successful `--json` run.
fn event_lines(ran: &std::process::Output) -> anyhow::Result<Vec<Value>> {
    let stdout = String::from_utf8_lossy(&ran.stdout);
    anyhow::ensure!(
        ran.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    Ok(stdout
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l["type"] == "event")
        .collect())
}
