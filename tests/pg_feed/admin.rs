//! `foldline status`, run in-process on a store of a private PostgreSQL server: the admin
//! library with the tally projection registered, its output captured and read back.

use std::time::{Duration, Instant};

use foldline::testing::KeyValueModel;
use foldline::{
    EventStoreExt, ExpectedVersion, InMemoryTarget, ManagedStore, Projector, SchemaName, StreamId,
};
use foldline_admin::Admin;
use foldline_postgres::{PgEventStore, PgStoreOptions};
pub(crate) use foldline_tests::cli::{Ran, run};
use foldline_tests::pg_server::PgServer;
use foldline_tests::tally::{Tally, counted};

/// The admin of `store` with the tally projection (kept in memory, never run) registered.
pub(crate) fn admin(store: &PgEventStore) -> Admin<PgEventStore> {
    let target = InMemoryTarget::<KeyValueModel>::new();
    Admin::new(store.clone()).with_projection(Projector::new(
        store.clone(),
        Tally::<1>::default(),
        target,
    ))
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
