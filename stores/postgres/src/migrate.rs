//! Versioned schema migrations, embedded in the crate and applied by `PgEventStore::migrate`.

use foldline::{BackendError, BackendErrorKind, Error};

use crate::error::{BACKEND, backend, pool};
use crate::hash::{stable_hash, stable_key};
use crate::store::PgEventStore;

/// One migration: its version, a short name and its SQL with `{schema}` placeholders.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Never edit one that was released: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events",
    sql: include_str!("../migrations/0001_events.sql"),
}];

/// What [`PgEventStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// The versions applied by this call, in order (empty when the schema was current).
    pub applied: Vec<i32>,
    /// The schema's version after the call.
    pub current: i32,
}

impl Migration {
    fn checksum(&self) -> i64 {
        i64::from_ne_bytes(stable_hash(&[self.sql.as_bytes()]).to_ne_bytes())
    }
}

pub(crate) async fn migrate(store: &PgEventStore) -> Result<MigrationReport, Error> {
    let schema = store.schema().as_str();
    let quoted = crate::sql::quoted(store.schema());
    let context = || format!("migrating schema `{schema}`");
    let mut client = store
        .inner
        .pool
        .get()
        .await
        .map_err(|e| pool(context(), e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend(context(), e))?;
    // One migrator per schema at a time; the lock ends with the transaction, whatever happens.
    let lock = stable_key(&[b"foldline-migrate", schema.as_bytes()]);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await
        .map_err(|e| backend(context(), e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             checksum bigint NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(|e| backend(context(), e))?;
    let rows = tx
        .query(
            &format!("SELECT version, checksum FROM {quoted}.schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .map_err(|e| backend(context(), e))?;
    let mut applied = Vec::new();
    let mut current = 0;
    for migration in MIGRATIONS {
        let done = rows
            .iter()
            .find(|r| r.get::<_, i32>(0) == migration.version);
        match done {
            Some(row) if row.get::<_, i64>(1) != migration.checksum() => {
                return Err(Error::Backend(BackendError::new(
                    BACKEND,
                    BackendErrorKind::Corrupt,
                    format!(
                        "migrating schema `{schema}`: migration {} ({}) differs from the one applied; \
                         released migrations must never be edited",
                        migration.version, migration.name
                    ),
                    None,
                )));
            }
            Some(_) => {}
            None => {
                tracing::info!(
                    schema,
                    version = migration.version,
                    name = migration.name,
                    "applying migration"
                );
                tx.batch_execute(&migration.sql.replace("{schema}", &quoted))
                    .await
                    .map_err(|e| {
                        backend(
                            format!("applying migration {} to `{schema}`", migration.version),
                            e,
                        )
                    })?;
                tx.execute(
                    &format!("INSERT INTO {quoted}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"),
                    &[&migration.version, &migration.name, &migration.checksum()],
                )
                .await
                .map_err(|e| backend(context(), e))?;
                applied.push(migration.version);
            }
        }
        current = migration.version;
    }
    if let Some(newer) = rows
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .find(|v| *v > current)
    {
        return Err(Error::Backend(BackendError::new(
            BACKEND,
            BackendErrorKind::Rejected,
            format!(
                "schema `{schema}` is at migration {newer}, newer than this foldline-postgres knows ({current}): upgrade foldline"
            ),
            None,
        )));
    }
    tx.commit().await.map_err(|e| backend(context(), e))?;
    Ok(MigrationReport { applied, current })
}
