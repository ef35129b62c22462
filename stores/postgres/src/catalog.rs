//! What the store holds, for operators: the streams and their versions.

use foldline::{DriverErrors, Error, StreamId, Version};

use crate::error::Postgres;
use crate::rows::to_u64;
use crate::sql::quoted;
use crate::store::PgEventStore;

pub(crate) async fn streams(
    store: &PgEventStore,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<(StreamId, Version)>, Error> {
    let context = "listing streams";
    let sql = format!(
        "SELECT stream_id, version FROM {}.streams \
         WHERE $1::text IS NULL OR stream_id > $1 ORDER BY stream_id LIMIT $2",
        quoted(store.schema())
    );
    let client = store.client(context).await?;
    let after = after.map(StreamId::as_str);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&sql, &[&after, &limit])
        .await
        .map_err(|e| Postgres::error(context, e))?;
    rows.iter()
        .map(|row| {
            Ok((
                StreamId::new(row.get::<_, String>(0))?,
                Version::new(to_u64(row.get(1))),
            ))
        })
        .collect()
}
