//! Running the story on PostgreSQL: a store in a schema of its own, emptied first.

use anyhow::Context;
use foldline::{SchemaName, redact_url};
use foldline_postgres::{ENV_URL, PgEventStore, PgStoreOptions};
use tokio_postgres::NoTls;

/// The schema `main` runs the story in when `FOLDLINE_POSTGRES_URL` is set.
pub const SCHEMA: &str = "example_bank";

/// Connects to PostgreSQL at `url`, drops schema `schema` with everything in it if it exists
/// (the story needs an empty store), and returns a store migrated into it afresh.
///
/// # Errors
///
/// PostgreSQL unreachable (the message says how to start it), an invalid schema name, or a
/// failed migration.
pub async fn fresh_store(url: &str, schema: &str) -> anyhow::Result<PgEventStore> {
    let schema = SchemaName::new(schema)?;
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!(
            "cannot connect to PostgreSQL at {}: start it with `scripts/postgres.sh start`, \
                 or point {ENV_URL} at a running server",
            redact_url(url)
        )
    })?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .with_context(|| format!("dropping schema {schema}"))?;
    drop(client);
    driver.await??;

    let options = PgStoreOptions::from_url(url)?.with_schema(schema);
    let store = PgEventStore::connect(options).await?;
    store.migrate().await?;
    Ok(store)
}
