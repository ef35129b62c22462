//! The store's identity: which feed its positions belong to.

use foldline::{DriverErrors, Error, StoreIdentity};

use crate::error::Postgres;
use crate::sql::quoted;
use crate::store::PgEventStore;

/// `postgres:<system identifier>/<database>/<schema>/<store id>`: the cluster (another server,
/// or one restored from a logical dump, has another system identifier), the database, the
/// schema, and the id drawn when the schema was created (a schema dropped and created again
/// starts its positions over).
///
/// Asked once per store handle and kept: none of it changes while the store is connected.
pub(crate) async fn identity(store: &PgEventStore) -> Result<StoreIdentity, Error> {
    store
        .inner
        .identity
        .get_or_try_init(|| read(store))
        .await
        .cloned()
}

async fn read(store: &PgEventStore) -> Result<StoreIdentity, Error> {
    let schema = store.schema();
    let context = || format!("reading the identity of schema `{schema}` (is it migrated?)");
    let client = store.client(&context()).await?;
    let sql = format!(
        "SELECT control.system_identifier::text, current_database()::text, store.id::text \
         FROM pg_control_system() AS control, {}.store AS store",
        quoted(schema)
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    let (system, database, id): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    Ok(StoreIdentity::new(format!(
        "postgres:{system}/{database}/{schema}/{id}"
    )))
}
