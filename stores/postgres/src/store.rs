//! `PgEventStore`: the `EventStore` and `SnapshotStore` on PostgreSQL.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use foldline::{
    AppendRequest, AppendResult, BoxError, Checkpoint, DriverErrors, Error, EventBatch, EventStore,
    IdempotencyKey, NewEvent, RecordedEvent, SchemaName, Snapshot, SnapshotStore, StoreIdentity,
    StreamId, Subscription, Version,
};
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_postgres::NoTls;

use crate::error::{Postgres, pool};
use crate::feed::Listener;
use crate::hash::stable_hash;
use crate::jsonb;
use crate::migrate::{self, PgMigrationReport};
use crate::options::PgStoreOptions;
use crate::rows::{append_result, recorded_event, to_i64};
use crate::sql::Sql;
use crate::writer::{Notifier, PendingAppend, Writer};

/// How many appends may wait for the group-commit writer before `append` waits for room.
const QUEUE_DEPTH: usize = 8192;

/// An event store in PostgreSQL. Cheap to clone: clones share the pool, the group-commit
/// writer and the notification listener.
///
/// See the crate documentation for the schema, the global feed and group commit.
#[derive(Clone, Debug)]
pub struct PgEventStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) options: PgStoreOptions,
    pub(crate) sql: Arc<Sql>,
    writer: mpsc::Sender<PendingAppend>,
    pub(crate) listener: Listener,
    /// Read on first use ([`crate::identity`]).
    pub(crate) identity: OnceCell<StoreIdentity>,
}

impl PgEventStore {
    /// Connects to the server in `options` and starts the group-commit writer. Does not create
    /// or change tables: call [`migrate`](PgEventStore::migrate) once at start-up.
    ///
    /// # Errors
    ///
    /// A transient [`Error::Backend`] when the server cannot be reached (the message names the
    /// URL without its password).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped, nothing is left running (the pool and the writer task go with it).
    pub async fn connect(options: PgStoreOptions) -> Result<Self, Error> {
        let manager = Manager::from_config(
            options.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|e| {
                Postgres::failure(
                    foldline::BackendErrorKind::Rejected,
                    "building the connection pool",
                    Some(Box::new(e)),
                )
            })?;
        // Fail now, with the address, rather than at the first append.
        drop(
            pool.get()
                .await
                .map_err(|e| pool_error_with_url(&options, e))?,
        );

        let schema = options.schema.clone();
        let sql = Arc::new(Sql::new(&schema));
        let channel = format!(
            "foldline_{:016x}",
            stable_hash(&[schema.as_str().as_bytes()])
        );
        let (writer, queue) = mpsc::channel(QUEUE_DEPTH);
        let task = Writer {
            pool: pool.clone(),
            sql: sql.clone(),
            schema: schema.as_str().to_owned(),
            notifier: Notifier::start(pool.clone(), channel.clone()),
            max_batch: options.max_batch,
            max_in_flight: options.max_in_flight,
        };
        tokio::spawn(task.run(queue));
        let listener = Listener::new(options.config.clone(), channel);
        Ok(PgEventStore {
            inner: Arc::new(Inner {
                pool,
                options,
                sql,
                writer,
                listener,
                identity: OnceCell::new(),
            }),
        })
    }

    /// Creates the schema and its tables, or brings them up to date. Safe to call from every
    /// instance at start-up: migrations run under an advisory lock, each exactly once.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when a migration fails (nothing of it is kept), or when the schema
    /// holds a migration that differs from this release's or is newer than it knows.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the migration in flight may still commit (each is one transaction, so
    /// whole or not at all). Call it again: applied migrations are skipped.
    pub async fn migrate(&self) -> Result<PgMigrationReport, Error> {
        migrate::migrate(self).await
    }

    /// The schema this store's tables live in.
    pub fn schema(&self) -> &SchemaName {
        &self.inner.options.schema
    }

    /// The options the store was built with.
    pub fn options(&self) -> &PgStoreOptions {
        &self.inner.options
    }

    pub(crate) async fn client(&self, context: &str) -> Result<deadpool_postgres::Object, Error> {
        self.inner.pool.get().await.map_err(|e| pool(context, e))
    }
}

fn pool_error_with_url(options: &PgStoreOptions, error: deadpool_postgres::PoolError) -> Error {
    pool(
        format!("connecting to PostgreSQL at {}", options.redacted_url()),
        error,
    )
}

impl EventStore for PgEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, Error> {
        self.inner.options.limits.check(&request)?;
        check_payloads(&request)?;
        let (reply, result) = oneshot::channel();
        self.inner
            .writer
            .send(PendingAppend { request, reply })
            .await
            .map_err(|_| Error::Closed {
                what: "PostgreSQL group-commit writer",
            })?;
        result.await.map_err(|_| Error::Closed {
            what: "PostgreSQL group-commit writer",
        })?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let context = || format!("reading stream `{stream}`");
        let client = self.client(&context()).await?;
        let statement = client
            .prepare_cached(&self.inner.sql.read_stream)
            .await
            .map_err(|e| Postgres::error(context(), e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&stream.as_str(), &to_i64(from.get()), &limit])
            .await
            .map_err(|e| Postgres::error(context(), e))?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch, Error> {
        crate::feed::read_all(self, after, limit).await
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription, Error> {
        crate::feed::subscribe(self, after).await
    }

    async fn head(&self) -> Result<Checkpoint, Error> {
        crate::feed::head(self).await
    }

    async fn identity(&self) -> Result<StoreIdentity, Error> {
        crate::identity::identity(self).await
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>, Error> {
        let context = || format!("looking up idempotency key `{key}`");
        let client = self.client(&context()).await?;
        let statement = client
            .prepare_cached(&self.inner.sql.find_key)
            .await
            .map_err(|e| Postgres::error(context(), e))?;
        let row = client
            .query_opt(&statement, &[&key.as_str()])
            .await
            .map_err(|e| Postgres::error(context(), e))?;
        row.as_ref().map(append_result).transpose()
    }
}

impl SnapshotStore for PgEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, Error> {
        crate::snapshot::load(self, stream).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), Error> {
        crate::snapshot::save(self, snapshot).await
    }
}

/// The events table keeps payloads and metadata as `jsonb`: refuse what the server would
/// refuse before the append is queued, so that it fails alone and never reaches the group
/// commit it would have joined (`jsonb.rs` says what is refused).
fn check_payloads(request: &AppendRequest) -> Result<(), Error> {
    for event in request.events() {
        check_event(event).map_err(|source| Error::InvalidPayload {
            stream: request.stream().clone(),
            event_type: event.event_type.clone(),
            source,
        })?;
    }
    Ok(())
}

fn check_event(event: &NewEvent) -> Result<(), BoxError> {
    jsonb::check("the payload", &event.payload)?;
    // Only the user map holds `serde_json::Value`s (a string may hold NUL, a value may nest
    // deep); the ids are UUIDs, always valid. Skipping the rest spares most events a second
    // encoding of their metadata (the writer encodes it for the insert).
    if !event.metadata.user.is_empty() {
        jsonb::check("the metadata", &serde_json::to_vec(&event.metadata)?)?;
    }
    Ok(())
}
