//! What the tests of the `foldline` binary share: a world per test (schema, Redis prefix,
//! index directory), running the binary, appending, reading the read model back.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use example_bank::domain::AccountEvent;
use example_bank::projections::balances::{BalanceTarget, Balances};
use example_bank::transfer::{AccountDispatcher, Transfer};
use foldline::{
    AppendResult, Checkpoint, CommandExecutor, JsonCodec, Position, ProcessProjection,
    ProcessRunner, ProcessTarget, Projection, ProjectionTarget, ProjectionTargetExt, Projector,
    ProjectorOptions, SlotId, SlotState,
};
use foldline_postgres::PgEventStore;
use foldline_postgres::PgTestSchema;
use foldline_redis::RedisTarget;
use foldline_redis::RedisTestPrefix;
use foldline_redis::redis::{self, AsyncCommands};
use serde_json::Value;
use tempfile::TempDir;

/// The target of the `transfer` process manager's projector.
pub(crate) type TransferTarget = ProcessTarget<
    Transfer,
    PgEventStore,
    AccountDispatcher<PgEventStore>,
    PgEventStore,
    JsonCodec,
    RedisTarget,
>;

/// The binary under test.
pub(crate) const FOLDLINE: &str = env!("CARGO_BIN_EXE_foldline");

/// How long any one run of the binary may take before the test gives up on it.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's world: a PostgreSQL schema, a Redis prefix and a directory for the index.
pub(crate) struct Bank {
    pub(crate) schema: PgTestSchema,
    pub(crate) redis: RedisTestPrefix,
    pub(crate) dir: TempDir,
}

/// What a run of the binary left behind.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    /// Every stdout line as JSON, each checked for `type` and `version`.
    pub(crate) fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{self:?}"));
                assert!(value["type"].is_string(), "{line}");
                assert_eq!(value["version"], 1, "{line}");
                value
            })
            .collect()
    }

    /// The JSON lines of type `kind`.
    pub(crate) fn of_type(&self, kind: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }

    /// The `projection_status` line of `projection`.
    pub(crate) fn status_of(&self, projection: &str) -> Value {
        self.of_type("projection_status")
            .into_iter()
            .find(|r| r["projection"] == projection)
            .unwrap_or_else(|| panic!("no status line for {projection}: {self:?}"))
    }
}

impl Bank {
    pub(crate) async fn new() -> anyhow::Result<Self> {
        Ok(Bank {
            schema: PgTestSchema::create().await?,
            redis: RedisTestPrefix::create().await?,
            dir: tempfile::tempdir()?,
        })
    }

    pub(crate) fn store(&self) -> PgEventStore {
        self.schema.store().clone()
    }

    pub(crate) fn target(&self) -> RedisTarget {
        self.redis.target().clone()
    }

    /// The binary, pointed at this test's schema, prefix and directory.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let redis_url = std::env::var(foldline_redis::ENV_URL)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| foldline_redis::DEFAULT_URL.to_owned());
        let mut command = std::process::Command::new(FOLDLINE);
        command
            .args(args)
            .env("FOLDLINE_POSTGRES_URL", self.schema.url())
            .env("FOLDLINE_POSTGRES_SCHEMA", self.schema.name().as_str())
            .env("FOLDLINE_REDIS_URL", redis_url)
            .env("FOLDLINE_REDIS_PREFIX", self.redis.prefix())
            .env("FOLDLINE_TANTIVY_DIR", self.dir.path())
            .env_remove("RUST_LOG")
            // These tests are about the PostgreSQL store: a Kafka broker named in the
            // environment (a binary built with the `kafka` feature would use it) is not theirs.
            .env_remove(example_bank::KAFKA_BROKERS_VAR);
        command
    }

    /// Runs `foldline <args>` to its end, as [`run`] does.
    pub(crate) async fn foldline(&self, args: &[&str]) -> anyhow::Result<Ran> {
        run(self.command(args)).await
    }

    /// Starts `foldline <args>` without waiting for it: stdin empty, stdout and stderr piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        Ok(self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    }

    /// A projector of the real `Balances` into this test's prefix; quick to notice a pause.
    pub(crate) fn balances(&self) -> Projector<PgEventStore, Balances, RedisTarget> {
        Projector::new(self.store(), Balances, self.target())
            .with_options(ProjectorOptions::new().with_idle_interval(Duration::from_millis(100)))
    }

    /// The `transfer` process manager's projector, as the `foldline` binary registers it:
    /// its checkpoint beside the balances.
    pub(crate) fn transfers(
        &self,
    ) -> Projector<PgEventStore, ProcessProjection<Transfer>, TransferTarget> {
        let store = self.store();
        let accounts = AccountDispatcher::new(CommandExecutor::new(store.clone()));
        let runner = Arc::new(ProcessRunner::new(store.clone(), accounts, store.clone()));
        Projector::new(
            store,
            ProcessProjection::new(),
            ProcessTarget::new(runner, self.target()),
        )
    }

    /// Every balance `Balances` holds in the active slot, by account.
    pub(crate) async fn balances_now(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let accounts = self.target().view().accounts().await?;
        Ok(accounts
            .into_iter()
            .map(|a| (a.id.as_str().to_owned(), a.cents))
            .collect())
    }

    pub(crate) async fn active_slot(&self) -> anyhow::Result<Option<SlotId>> {
        let active = self.target().active_slot(&Balances::NAME).await?;
        Ok(active.map(|s| s.slot))
    }

    pub(crate) async fn checkpoint(&self, slot: SlotId) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self.target().checkpoint(&Balances::NAME, slot).await?)
    }
}

/// Runs `command` to its end (stdin a pipe, so not a terminal), off the runtime's threads so
/// in-process projectors keep running meanwhile.
pub(crate) async fn run(command: std::process::Command) -> anyhow::Result<Ran> {
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(RUN_TIMEOUT);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    Ok(Ran {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    })
}

/// Polls `target` (every 2 ms, for at most 30 s) until the rebuild of `Balances` that `child`
/// runs has a building slot with a commit past the start; returns the slot and its checkpoint.
/// Fails, with the child's stderr, when the child ends first.
pub(crate) async fn first_rebuild_commit(
    target: &RedisTarget,
    child: &mut Child,
) -> anyhow::Result<(SlotId, Checkpoint)> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_string(&mut stderr)?;
            }
            bail!(
                "the rebuild ended ({status}) before a first commit could be seen midway: make \
                 the store bigger\n{stderr}"
            );
        }
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the rebuild never committed"
        );
        let slots = target.slots(&Balances::NAME).await?;
        if let Some(slot) = slots.iter().find(|s| s.state == SlotState::Building) {
            let checkpoint = target.checkpoint(&Balances::NAME, slot.slot).await?;
            if let Some(checkpoint) = checkpoint.filter(|c| !c.is_start()) {
                return Ok((slot.slot, checkpoint));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Appends `events` to account `account`'s stream; returns the append's result.
pub(crate) async fn append(
    store: &PgEventStore,
    account: &str,
    events: &[AccountEvent],
) -> anyhow::Result<AppendResult> {
    // Returns once the feed shows the append (another test's open append, in another schema,
    // can hold it back a moment), so `status` sees it in `head`.
    foldline_tests::tally::append(store, &format!("account-{account}"), events).await
}

pub(crate) fn opened(owner: &str) -> AccountEvent {
    AccountEvent::Opened {
        owner: owner.to_owned(),
    }
}

pub(crate) fn deposited(cents: u64) -> AccountEvent {
    AccountEvent::Deposited {
        cents,
        transfer: None,
    }
}

/// Opens `accounts` accounts and gives each `deposits` deposits (1, 2, 3… cents), in appends
/// of 100 events; returns the position of the last one.
pub(crate) async fn fill(
    store: &PgEventStore,
    accounts: usize,
    deposits: u64,
) -> anyhow::Result<Position> {
    let mut last = None;
    for account in 0..accounts {
        let name = format!("acct{account}");
        let mut events = vec![opened(&name)];
        events.extend((1..=deposits).map(deposited));
        for chunk in events.chunks(100) {
            last = append(store, &name, chunk).await?.position;
        }
    }
    last.context("nothing appended")
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
pub(crate) async fn eventually<F>(what: &str, within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: AsyncFnMut() -> anyhow::Result<bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every data key of `slot` of `balances` under `target`'s prefix, without the slot's prefix,
/// with its value rendered as text (hash fields and set members sorted).
pub(crate) async fn dump(
    target: &RedisTarget,
    slot: SlotId,
) -> anyhow::Result<BTreeMap<String, String>> {
    let keys = target.slot_keys(&Balances::NAME, slot);
    let data = keys.data_prefix();
    let mut conn = target.connection();
    let mut found = Vec::new();
    {
        let mut scanning = conn.clone();
        let mut iter = scanning.scan_match::<_, String>(format!("{data}*")).await?;
        while let Some(key) = iter.next_item().await.transpose()? {
            found.push(key);
        }
    }
    let mut dumped = BTreeMap::new();
    for key in found {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
        let value = match kind.as_str() {
            "hash" => {
                let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                format!("{fields:?}")
            }
            "set" => {
                let mut members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                members.sort();
                format!("{members:?}")
            }
            "string" => redis::cmd("GET").arg(&key).query_async(&mut conn).await?,
            other => bail!("`{key}` holds a {other}, which Balances never writes"),
        };
        let user_key = key.strip_prefix(&data).unwrap_or(&key).to_owned();
        dumped.insert(format!("{kind} {user_key}"), value);
    }
    Ok(dumped)
}
