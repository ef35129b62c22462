//! Aggregate snapshots, in the store's schema beside the events.

use foldline::{DriverErrors, Error, Snapshot, StreamId, Version};

use crate::error::Postgres;
use crate::rows::{to_i64, to_u64};
use crate::store::PgEventStore;

pub(crate) async fn load(
    store: &PgEventStore,
    stream: &StreamId,
) -> Result<Option<Snapshot>, Error> {
    let context = || format!("loading the snapshot of `{stream}`");
    let client = store.client(&context()).await?;
    let statement = client
        .prepare_cached(&store.inner.sql.load_snapshot)
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    let Some(row) = client
        .query_opt(&statement, &[&stream.as_str()])
        .await
        .map_err(|e| Postgres::error(context(), e))?
    else {
        return Ok(None);
    };
    let schema_version: i64 = row.get(2);
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| Postgres::corrupt(format!("{}: negative schema version", context()), None))?;
    Ok(Some(Snapshot::new(
        stream.clone(),
        Version::new(to_u64(row.get(1))),
        schema_version,
        row.get(3),
    )))
}

pub(crate) async fn save(store: &PgEventStore, snapshot: Snapshot) -> Result<(), Error> {
    let context = || format!("saving the snapshot of `{}`", snapshot.stream_id);
    let client = store.client(&context()).await?;
    let statement = client
        .prepare_cached(&store.inner.sql.save_snapshot)
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    let schema_version = i64::from(snapshot.schema_version);
    client
        .execute(
            &statement,
            &[
                &snapshot.stream_id.as_str(),
                &to_i64(snapshot.version.get()),
                &schema_version,
                &snapshot.payload,
            ],
        )
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    Ok(())
}
