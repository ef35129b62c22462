//! `RedisTargetOptions`: where the target connects and how its keys are named.

use std::fmt;
use std::time::Duration;

use foldline::{BackendErrorKind, DriverErrors, Error, NameKind, redact_url};

use crate::error::Redis;

/// The environment variable [`RedisTargetOptions::from_env`] reads the server's URL from.
pub const ENV_URL: &str = "FOLDLINE_REDIS_URL";

/// The URL used when [`ENV_URL`] (`FOLDLINE_REDIS_URL`) is not set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

/// The key prefix used unless [`RedisTargetOptions::with_prefix`] sets another.
pub const DEFAULT_PREFIX: &str = "foldline";

/// Settings of a [`RedisTarget`](crate::RedisTarget): a builder with documented defaults.
///
/// ```
/// use std::time::Duration;
/// use foldline_redis::RedisTargetOptions;
///
/// let options = RedisTargetOptions::from_url("redis://:secret@cache.internal:6379/2")?
///     .with_prefix("bank")?
///     .with_response_timeout(Duration::from_secs(10));
/// assert_eq!(options.redacted_url(), "redis://:***@cache.internal:6379/2");
/// assert_eq!(options.prefix(), "bank");
/// assert!(!format!("{options:?}").contains("secret"));
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisTargetOptions {
    pub(crate) client: redis::Client,
    redacted_url: String,
    prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
}

impl RedisTargetOptions {
    /// Options for the server at `url` (`redis://[user][:password@]host[:port][/db]`, or
    /// `redis+unix:///path`; TLS `rediss://` URLs need a TLS feature of the `redis` crate, which
    /// this build does not enable), with the defaults: key prefix [`DEFAULT_PREFIX`], a 2 s
    /// connection timeout, a 5 s response timeout, 2 reconnection retries per attempt.
    ///
    /// # Errors
    ///
    /// A [`BackendError`](foldline::BackendError) of kind `Rejected` when `url` is not a Redis
    /// URL.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| {
            Redis::failure(
                BackendErrorKind::Rejected,
                format!("parsing the Redis URL `{}`", redact_url(url)),
                Some(Redis::into_source(e)),
            )
        })?;
        Ok(RedisTargetOptions {
            client,
            redacted_url: redact_url(url),
            prefix: DEFAULT_PREFIX.to_owned(),
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 2,
        })
    }

    /// Options from the URL in [`ENV_URL`] (`FOLDLINE_REDIS_URL`), or [`DEFAULT_URL`] when it
    /// is not set.
    ///
    /// # Errors
    ///
    /// As [`from_url`](RedisTargetOptions::from_url).
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var(ENV_URL).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        Self::from_url(&url)
    }

    /// The namespace of every key the target writes (default [`DEFAULT_PREFIX`]): 1 to 64
    /// characters out of `A-Z a-z 0-9 _ . -`. Applications sharing one Redis database, and
    /// tests, keep apart by prefix.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (kind [`NameKind::KeyPrefix`]) when `prefix` breaks those
    /// rules; nothing is connected.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self, Error> {
        self.prefix = NameKind::KeyPrefix.validate(prefix.into())?;
        Ok(self)
    }

    /// How long one attempt to connect may take (default 2 s).
    #[must_use]
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long a command may wait for its answer (default 5 s). A commit is one script that
    /// runs every write of a batch, so this bounds the size of a batch too. A commit that
    /// times out may still have been applied: the next commit with the same expected
    /// checkpoint returns [`CommitOutcome::Moved`](foldline::CommitOutcome::Moved) then.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times a lost connection is retried, with exponential backoff from 100 ms,
    /// before the waiting commands fail (default 2). Every later command starts a new round.
    #[must_use]
    pub fn with_reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL with its password replaced by `***`, safe for logs and errors.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// A connection manager to the server, with these timeouts and retries.
    pub(crate) async fn connect(&self) -> Result<redis::aio::ConnectionManager, Error> {
        redis::aio::ConnectionManager::new_with_config(self.client.clone(), self.manager_config())
            .await
            .map_err(|e| self.connect_error(e))
    }

    /// A connection manager that connects on its first command.
    pub(crate) fn connect_lazy(&self) -> Result<redis::aio::ConnectionManager, Error> {
        redis::aio::ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config(),
        )
        .map_err(|e| self.connect_error(e))
    }

    /// The settings of a slot's commit connection (see `commit.rs`): the same timeouts, and
    /// no reconnection of its own.
    pub(crate) fn commit_connection_config(&self) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
    }

    fn manager_config(&self) -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(Duration::from_secs(2))
    }

    fn connect_error(&self, error: redis::RedisError) -> Error {
        Redis::error(
            format!("connecting to Redis at {}", self.redacted_url),
            error,
        )
    }
}

impl fmt::Debug for RedisTargetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTargetOptions")
            .field("url", &self.redacted_url)
            .field("prefix", &self.prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use foldline::NameKind;

    use super::RedisTargetOptions;

    #[test]
    fn debug_hides_the_password() {
        let options = RedisTargetOptions::from_url("redis://user:hunter2@127.0.0.1:6379/").unwrap();
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("user:***@127.0.0.1"), "{debug}");
    }

    #[test]
    fn checks_prefixes() {
        for good in ["foldline", "a", "test-1.2_X", &"p".repeat(64)] {
            assert_eq!(NameKind::KeyPrefix.check(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a:b", "{a}", "a*", "ä", &"p".repeat(65)] {
            assert!(NameKind::KeyPrefix.check(bad).is_err(), "{bad}");
        }
        let error = RedisTargetOptions::from_url("redis://127.0.0.1/")
            .unwrap()
            .with_prefix("a:b")
            .unwrap_err();
        assert!(!error.is_transient());
        assert!(error.to_string().contains("`a:b`"), "{error}");
    }

    #[test]
    fn refuses_urls_that_are_not_redis() {
        let error = RedisTargetOptions::from_url("postgres://u:pw@h/db").unwrap_err();
        assert!(!error.to_string().contains("pw"), "{error}");
    }
}
