//! `RedisReader`: how applications read a projection's active slot.

use std::future::Future;

use foldline::{BackendErrorKind, DriverErrors, ProjectionName, Result, Shown};
use redis::aio::ConnectionManager;

use crate::error::Redis;
use crate::keys::{ProjectionKeys, RedisSlotKeys};
use crate::options::RedisTargetOptions;

/// How many times [`RedisReader::read`] runs a read whose slot stopped being active meanwhile.
const READ_ATTEMPTS: u32 = 5;

/// Reads projections the way applications should: through the alias that names each
/// projection's active slot.
///
/// A rebuild builds version N+1 in a new slot while readers keep reading N; then the alias
/// switches to N+1 and slot N is dropped, key by key. A reader that resolved N just before the
/// switch could still be reading it while it is deleted, and see half of it.
/// [`read`](RedisReader::read) rules that out: after the read it checks that the alias still
/// names the slot it read and, if not, reads again from the new one. A slot is dropped only
/// once it is no longer active (the target refuses to drop the active slot), and a dropped
/// slot never becomes active again, so a read that ends with its slot still active read only
/// keys that were never deleted under it: it saw all of version N, or all of N+1, never a mix
/// or a half.
///
/// ```no_run
/// use foldline::ProjectionName;
/// use foldline_redis::{RedisReader, RedisTargetOptions};
///
/// # #[tokio::main]
/// # async fn main() -> foldline::Result<()> {
/// let reader = RedisReader::connect(RedisTargetOptions::from_env()?).await?;
/// let balances = ProjectionName::new("balances")?;
/// let balance: Option<Option<i64>> = reader
///     .read(&balances, |mut conn, keys| async move {
///         redis::cmd("GET").arg(keys.key("account:7")).query_async(&mut conn).await
///     })
///     .await?;
/// // `None`: no slot of `balances` is active yet; `Some(None)`: no such account.
/// # let _ = balance;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisReader {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisReader {
    pub(crate) fn new(conn: ConnectionManager, prefix: String) -> Self {
        RedisReader { conn, prefix }
    }

    /// Connects to the server `options` name, reading keys under its prefix.
    ///
    /// # Errors
    ///
    /// A transient [`Error::Backend`](foldline::Error::Backend) when the server cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connect(options: RedisTargetOptions) -> Result<Self> {
        let conn = options.connect().await?;
        Ok(RedisReader::new(conn, options.prefix().to_owned()))
    }

    /// The keys of `projection`'s active slot; `None` when no slot is active yet.
    ///
    /// Keys resolved once may be dropped after the next rebuild: resolve for every read, or
    /// use [`read`](RedisReader::read), which also checks that the slot stayed active.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](foldline::Error::Backend) when Redis fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn resolve(&self, projection: &ProjectionName) -> Result<Option<RedisSlotKeys>> {
        let keys = ProjectionKeys::new(&self.prefix, projection);
        let active: Option<String> = redis::cmd("GET")
            .arg(keys.active())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| {
                Redis::error(
                    format!("resolving the active slot of projection `{projection}`"),
                    e,
                )
            })?;
        active
            .map(|text| {
                text.parse().map(|slot| keys.slot(slot)).map_err(|_| {
                    Redis::corrupt(
                        format!(
                            "resolving the active slot of projection `{projection}`: \
                             the alias holds `{}`",
                            Shown::new(&text)
                        ),
                        None,
                    )
                })
            })
            .transpose()
    }

    /// Runs `read` on `projection`'s active slot and returns what it returned; `None` when no
    /// slot is active. `read` gets a connection (a cheap clone of the reader's) and the slot's
    /// keys, and may send as many commands as it likes.
    ///
    /// If the active slot changed while `read` ran (a rebuild switched versions), its result
    /// is thrown away and `read` runs again on the new slot, up to 5 times, so the value
    /// returned comes from one complete version (see the type's docs for why).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](foldline::Error::Backend) when Redis fails or `read` returns an error (its error is the
    /// source), and a transient one when the active slot changed during every attempt.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as far as foldline goes (it only reads); `read`'s own future is dropped
    /// with it.
    pub async fn read<T, F, Fut>(
        &self,
        projection: &ProjectionName,
        mut read: F,
    ) -> Result<Option<T>>
    where
        F: FnMut(ConnectionManager, RedisSlotKeys) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        for _ in 0..READ_ATTEMPTS {
            let Some(keys) = self.resolve(projection).await? else {
                return Ok(None);
            };
            let slot = keys.slot();
            let result = read(self.conn.clone(), keys).await;
            let still = self.resolve(projection).await?;
            if still.is_some_and(|k| k.slot() == slot) {
                return result.map(Some).map_err(|e| {
                    Redis::error(
                        format!("reading slot {slot} of projection `{projection}`"),
                        e,
                    )
                });
            }
            tracing::debug!(%projection, slot = slot.get(), "the active slot changed during a read; reading again");
        }
        Err(Redis::failure(
            BackendErrorKind::Unavailable,
            format!(
                "reading projection `{projection}`: its active slot changed during each of \
                 {READ_ATTEMPTS} attempts"
            ),
            None,
        ))
    }
}

impl std::fmt::Debug for RedisReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReader")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
