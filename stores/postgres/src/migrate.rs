//! Versioned schema migrations, embedded in the crate and applied by `PgEventStore::migrate`.

use foldline::{BackendErrorKind, DriverErrors, Error};

use crate::error::{Postgres, pool};
use crate::hash::{stable_hash, stable_key};
use crate::store::PgEventStore;

/// One migration: its version, a short name and its SQL with `{schema}` placeholders.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Never edit one that was released: add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../migrations/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "store",
        sql: include_str!("../migrations/0002_store.sql"),
    },
    Migration {
        version: 3,
        name: "append_one",
        sql: include_str!("../migrations/0003_append_one.sql"),
    },
    Migration {
        version: 4,
        name: "process_timers",
        sql: include_str!("../migrations/0004_process_timers.sql"),
    },
    Migration {
        version: 5,
        name: "correlation_index",
        sql: include_str!("../migrations/0005_correlation_index.sql"),
    },
];

/// What [`PgEventStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgMigrationReport {
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

pub(crate) async fn migrate(store: &PgEventStore) -> Result<PgMigrationReport, Error> {
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
        .map_err(|e| Postgres::error(context(), e))?;
    // One migrator per schema at a time; the lock ends with the transaction, whatever happens.
    let lock = stable_key(&[b"foldline-migrate", schema.as_bytes()]);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await
        .map_err(|e| Postgres::error(context(), e))?;
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
    .map_err(|e| Postgres::error(context(), e))?;
    let rows = tx
        .query(
            &format!("SELECT version, checksum FROM {quoted}.schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    let applied_rows: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut applied = Vec::new();
    for migration in plan(schema, &applied_rows)? {
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "applying migration"
        );
        tx.batch_execute(&migration.sql.replace("{schema}", &quoted))
            .await
            .map_err(|e| {
                Postgres::error(
                    format!("applying migration {} to `{schema}`", migration.version),
                    e,
                )
            })?;
        tx.execute(
            &format!("INSERT INTO {quoted}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"),
            &[&migration.version, &migration.name, &migration.checksum()],
        )
        .await
        .map_err(|e| Postgres::error(context(), e))?;
        applied.push(migration.version);
    }
    tx.commit()
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    Ok(PgMigrationReport {
        applied,
        current: latest(),
    })
}

/// The versions [`migrate`] would apply, without changing anything (no lock, no `CREATE`): all
/// of them when the schema or its `schema_migrations` table does not exist.
pub(crate) async fn pending(store: &PgEventStore) -> Result<Vec<i32>, Error> {
    let schema = store.schema().as_str();
    let quoted = crate::sql::quoted(store.schema());
    let context = || format!("checking the migrations of schema `{schema}`");
    let client = store.client(&context()).await?;
    let exists = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'schema_migrations')",
            &[&schema],
        )
        .await
        .map_err(|e| Postgres::error(context(), e))?
        .get::<_, bool>(0);
    let applied_rows: Vec<(i32, i64)> = if exists {
        client
            .query(
                &format!(
                    "SELECT version, checksum FROM {quoted}.schema_migrations ORDER BY version"
                ),
                &[],
            )
            .await
            .map_err(|e| Postgres::error(context(), e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(plan(schema, &applied_rows)?
        .iter()
        .map(|m| m.version)
        .collect())
}

/// The latest version this release knows.
fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The migrations still to apply, given the `(version, checksum)` rows already applied.
///
/// # Errors
///
/// A corrupt-kind error when an applied migration differs from this release's; a rejected-kind
/// error when the schema holds a migration newer than this release knows.
fn plan(schema: &str, applied: &[(i32, i64)]) -> Result<Vec<&'static Migration>, Error> {
    let mut pending = Vec::new();
    for migration in MIGRATIONS {
        match applied
            .iter()
            .find(|(version, _)| *version == migration.version)
        {
            Some((_, checksum)) if *checksum != migration.checksum() => {
                return Err(Postgres::corrupt(
                    format!(
                        "migrating schema `{schema}`: migration {} ({}) differs from the one applied; \
                         released migrations must never be edited",
                        migration.version, migration.name
                    ),
                    None,
                ));
            }
            Some(_) => {}
            None => pending.push(migration),
        }
    }
    let current = latest();
    if let Some(newer) = applied.iter().map(|(v, _)| *v).find(|v| *v > current) {
        return Err(Postgres::failure(
            BackendErrorKind::Rejected,
            format!(
                "schema `{schema}` is at migration {newer}, newer than this foldline-postgres knows ({current}): upgrade foldline"
            ),
            None,
        ));
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(error: &Error) -> Option<BackendErrorKind> {
        match error {
            Error::Backend(backend) => Some(backend.kind()),
            _ => None,
        }
    }

    #[test]
    fn plans_what_is_missing_and_refuses_edited_or_newer_migrations() {
        let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let versions = |plan: Vec<&Migration>| plan.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(plan("s", &[]).unwrap()), all);

        let applied: Vec<(i32, i64)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.checksum()))
            .collect();
        assert!(plan("s", &applied).unwrap().is_empty());

        let edited = [(MIGRATIONS[0].version, MIGRATIONS[0].checksum() ^ 1)];
        let error = plan("s", &edited).map(|_| ()).unwrap_err();
        assert_eq!(kind(&error), Some(BackendErrorKind::Corrupt));

        let mut newer = applied.clone();
        newer.push((latest() + 1, 0));
        let error = plan("s", &newer).map(|_| ()).unwrap_err();
        assert_eq!(kind(&error), Some(BackendErrorKind::Rejected));
    }
}
