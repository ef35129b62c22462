//! `PgStoreOptions`: where the store connects and how it behaves.

use std::fmt;
use std::time::Duration;

use foldline::{BackendErrorKind, DriverErrors, Error, SchemaName, StoreLimits, redact_url};

use crate::error::Postgres;

/// The environment variable [`PgStoreOptions::from_env`] reads the server's URL from.
pub const ENV_URL: &str = "FOLDLINE_POSTGRES_URL";

/// The URL used when [`ENV_URL`] (`FOLDLINE_POSTGRES_URL`) is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Settings of a [`PgEventStore`](crate::PgEventStore): a builder with documented defaults.
///
/// ```
/// use std::time::Duration;
/// use foldline::SchemaName;
/// use foldline_postgres::PgStoreOptions;
///
/// let options = PgStoreOptions::from_url("postgres://app:secret@db.internal:5432/bank")?
///     .with_schema(SchemaName::new("bank_events")?)
///     .with_pool_size(32)
///     .with_poll_interval(Duration::from_millis(250));
/// assert_eq!(options.redacted_url(), "postgres://app:***@db.internal:5432/bank");
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone)]
pub struct PgStoreOptions {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) redacted_url: String,
    pub(crate) schema: SchemaName,
    pub(crate) pool_size: usize,
    pub(crate) limits: StoreLimits,
    pub(crate) max_batch: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) poll_interval: Duration,
}

impl PgStoreOptions {
    /// Options for the server at `url` (`postgres://user:password@host:port/database?...`, or a
    /// key-value connection string), with the defaults: schema `foldline`, 16 connections,
    /// [`StoreLimits::default`], up to 512 appends per group commit and 2 group commits in
    /// flight, a 500 ms fallback poll.
    ///
    /// # Errors
    ///
    /// A [`BackendError`](foldline::BackendError) of kind `Rejected` when `url` is not a
    /// PostgreSQL connection string.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Postgres::failure(
                BackendErrorKind::Rejected,
                format!("parsing the PostgreSQL URL `{}`", redact_url(url)),
                Some(Box::new(e)),
            )
        })?;
        if config.get_application_name().is_none() {
            config.application_name("foldline");
        }
        Ok(PgStoreOptions {
            config,
            redacted_url: redact_url(url),
            schema: SchemaName::from_static("foldline"),
            pool_size: 16,
            limits: StoreLimits::default(),
            max_batch: 512,
            max_in_flight: 2,
            poll_interval: Duration::from_millis(500),
        })
    }

    /// Options from the URL in [`ENV_URL`] (`FOLDLINE_POSTGRES_URL`), or [`DEFAULT_URL`] when
    /// it is not set.
    ///
    /// # Errors
    ///
    /// As [`from_url`](PgStoreOptions::from_url).
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var(ENV_URL).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        Self::from_url(&url)
    }

    /// The schema the store's tables live in (created by [`migrate`](crate::PgEventStore::migrate)).
    #[must_use]
    pub fn with_schema(mut self, schema: SchemaName) -> Self {
        self.schema = schema;
        self
    }

    /// How many pooled connections readers and the writer share (at least 2).
    #[must_use]
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(2);
        self
    }

    /// The limits every append is checked against before anything is sent.
    #[must_use]
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Group commit: the most appends coalesced into one transaction (at least 1).
    #[must_use]
    pub fn with_max_batch(mut self, appends: usize) -> Self {
        self.max_batch = appends.max(1);
        self
    }

    /// Group commit: how many batch transactions may be committing at once (at least 1).
    /// While one waits for its commit to reach the disk the next batch is built and sent.
    #[must_use]
    pub fn with_max_in_flight(mut self, transactions: usize) -> Self {
        self.max_in_flight = transactions.max(1);
        self
    }

    /// How often a subscription re-reads when no notification arrived. LISTEN/NOTIFY wakes
    /// subscribers at once on every commit through this store; the poll catches commits of
    /// transactions that held the feed back and were not this store's.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The configured schema.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// The URL with its password replaced by `***`, safe for logs and errors.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }
}

impl fmt::Debug for PgStoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStoreOptions")
            .field("url", &self.redacted_url)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("limits", &self.limits)
            .field("max_batch", &self.max_batch)
            .field("max_in_flight", &self.max_in_flight)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}
