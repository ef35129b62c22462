//! Test support (feature `testing`): a fresh, migrated schema per test.

use foldline::{BackendErrorKind, DriverErrors, Error, SchemaName};

use crate::error::Postgres;
use crate::options::{DEFAULT_URL, ENV_URL, PgStoreOptions};
use crate::store::PgEventStore;

/// A fresh schema `test_<random>` on the server at [`ENV_URL`](crate::ENV_URL)
/// (`FOLDLINE_POSTGRES_URL`, default [`DEFAULT_URL`](crate::DEFAULT_URL)), migrated, with a
/// store connected to it. Dropping it drops the schema and everything in it.
///
/// ```no_run
/// use foldline::EventStore;
/// use foldline_postgres::PgTestSchema;
///
/// # #[tokio::main]
/// # async fn main() -> foldline::Result<()> {
/// let schema = PgTestSchema::create().await?;
/// let head = schema.store().head().await?;
/// assert!(head.is_start());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgTestSchema {
    store: PgEventStore,
    url: String,
}

impl PgTestSchema {
    /// Creates the schema with the default test options (8 connections).
    ///
    /// # Errors
    ///
    /// When PostgreSQL cannot be reached, an error that says how to start it.
    pub async fn create() -> Result<Self, Error> {
        Self::create_with(|options| options).await
    }

    /// Creates the schema with options adjusted by `configure` (the schema name is set after).
    ///
    /// # Errors
    ///
    /// As [`create`](PgTestSchema::create).
    pub async fn create_with(
        configure: impl FnOnce(PgStoreOptions) -> PgStoreOptions,
    ) -> Result<Self, Error> {
        let url = std::env::var(ENV_URL).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let name = SchemaName::new(format!("test_{}", uuid::Uuid::now_v7().simple()))?;
        let options =
            configure(PgStoreOptions::from_url(&url)?.with_pool_size(8)).with_schema(name);
        let store = PgEventStore::connect(options.clone()).await.map_err(|error| {
            Postgres::failure(
                BackendErrorKind::Unavailable,
                format!(
                    "connecting to PostgreSQL at {} for a test: start it with `scripts/postgres.sh start` \
                     (or run the whole suite with `scripts/test.sh`), or point {ENV_URL} at a server",
                    options.redacted_url()
                ),
                Some(Box::new(error)),
            )
        })?;
        store.migrate().await?;
        Ok(PgTestSchema { store, url })
    }

    /// The store on this schema.
    pub fn store(&self) -> &PgEventStore {
        &self.store
    }

    /// A second, independent store instance (its own pool and group-commit writer) on the same
    /// schema, as another process would have.
    ///
    /// # Errors
    ///
    /// When PostgreSQL cannot be reached.
    pub async fn connect_another(&self) -> Result<PgEventStore, Error> {
        PgEventStore::connect(self.store.options().clone()).await
    }

    /// The schema's name.
    pub fn name(&self) -> &SchemaName {
        self.store.schema()
    }

    /// The server's URL, password included: for tests' own raw connections only.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgTestSchema {
    fn drop(&mut self) {
        let config = self.store.options().config.clone();
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            crate::sql::quoted(self.name())
        );
        // Drop runs inside the test's runtime, which must not be blocked on: use a thread with
        // its own small runtime, and wait for it so the schema is gone when the test ends.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            tracing::warn!(schema = %self.name(), "could not drop a test schema");
        }
    }
}
