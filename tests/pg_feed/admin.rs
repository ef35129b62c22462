//! `foldline status`, run in-process on a store of a private PostgreSQL server: the admin
//! library with the tally projection registered, its output captured and read back.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use foldline::testing::KeyValueModel;
use foldline::{
    EventStoreExt, ExpectedVersion, InMemoryTarget, ManagedStore, Projector, SchemaName, StreamId,
};
use foldline_admin::{Admin, Cli, Outcome, Output};
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_tests::pg_server::PgServer;
use foldline_tests::tally::{Tally, counted};
use serde_json::Value;

/// Everything a command wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tests build their store themselves: no connection flags.
#[derive(Debug, clap::Args)]
struct NoConnections {}

/// What a run of a command left.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) outcome: Outcome,
    pub(crate) stdout: String,
}

impl Ran {
    /// The JSON lines of type `kind`.
    pub(crate) fn of_type(&self, kind: &str) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"))
            .filter(|record| record["type"] == kind)
            .collect()
    }

    /// The one JSON line of type `kind`.
    pub(crate) fn one(&self, kind: &str) -> Value {
        let mut found = self.of_type(kind);
        assert_eq!(found.len(), 1, "one `{kind}` line: {}", self.stdout);
        found.remove(0)
    }
}

/// The admin of `store` with the tally projection (kept in memory, never run) registered.
pub(crate) fn admin(store: &PgEventStore) -> Admin<PgEventStore> {
    let target = InMemoryTarget::<KeyValueModel>::new();
    Admin::new(store.clone()).with_projection(Projector::new(
        store.clone(),
        Tally::<1>::default(),
        target,
    ))
}

/// Runs `foldline <args>` on `admin`, in JSON mode when `args` holds `--json`.
pub(crate) async fn run(admin: &Admin<PgEventStore>, args: &[&str]) -> anyhow::Result<Ran> {
    let cli = Cli::<NoConnections>::try_parse_from(
        std::iter::once("foldline").chain(args.iter().copied()),
    )?;
    let captured = Captured::default();
    let mut out = Output::to_writer(cli.json, captured.clone());
    let outcome = admin.execute(&cli.command, &mut out).await?;
    let bytes = captured
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Ran {
        outcome,
        stdout: String::from_utf8(bytes)?,
    })
}

/// A store in schema `feed` of `server`, migrated.
pub(crate) async fn store_on(server: &PgServer) -> anyhow::Result<PgEventStore> {
    let options = PgStoreOptions::from_url(&server.url())?.with_schema(SchemaName::new("feed")?);
    let store = PgEventStore::connect(options).await?;
    store.migrate().await?;
    Ok(store)
}

/// `count` tally events appended to `stream`, in appends of up to 20: committed, and in the
/// feed only once nothing older holds it back.
pub(crate) async fn append_counted(
    store: &PgEventStore,
    stream: &str,
    count: u64,
) -> anyhow::Result<()> {
    let events = counted(count);
    for chunk in events.chunks(20) {
        store
            .append_events(StreamId::new(stream)?, ExpectedVersion::Any, chunk)
            .await?;
    }
    Ok(())
}

/// Polls `store` until nothing holds its feed back, for at most 10 s (a private server's own
/// autovacuum may hold it for a moment).
pub(crate) async fn until_released(store: &PgEventStore) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = store.feed_held_back().await?;
        if !held.is_held() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the feed is still held back 10 s after its holder ended: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
