//! Test support (feature `testing`): a random key prefix per test.

use std::time::Duration;

use foldline::testing::target_conformance::TargetProbe;
use foldline::{BackendErrorKind, DriverErrors, ProjectionName, Result, SlotId};
use redis::{AsyncCommands, Commands};

use crate::error::Redis;
use crate::options::{ENV_URL, RedisTargetOptions};
use crate::target::{RedisTarget, scan_options};
use crate::writes::RedisWrites;

/// A random key prefix `test-<16 hex digits>` on the server at [`ENV_URL`](crate::ENV_URL)
/// (`FOLDLINE_REDIS_URL`, default [`DEFAULT_URL`](crate::DEFAULT_URL)), with a target
/// connected under it. Dropping it deletes every key
/// under the prefix, so tests sharing one Redis never see each other's keys.
///
/// ```no_run
/// use foldline::{NewSlot, ProjectionName, ProjectionTarget, SlotId, StoreIdentity};
/// use foldline_redis::RedisTestPrefix;
///
/// # #[tokio::main]
/// # async fn main() -> foldline::Result<()> {
/// let test = RedisTestPrefix::create().await?;
/// let orders = ProjectionName::new("orders")?;
/// let slot = test.target().create_slot(&orders, 1, NewSlot::Fresh, &StoreIdentity::new("example")).await?;
/// assert_eq!(slot.slot, SlotId::new(1));
/// assert!(!test.keys().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisTestPrefix {
    target: RedisTarget,
}

impl RedisTestPrefix {
    /// Creates a prefix and connects a target under it.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached, an error that says how to start it.
    pub async fn create() -> Result<Self> {
        Self::create_with(|options| options).await
    }

    /// Creates a prefix and connects a target with options adjusted by `configure` (the
    /// prefix is set after).
    ///
    /// # Errors
    ///
    /// As [`create`](RedisTestPrefix::create).
    pub async fn create_with(
        configure: impl FnOnce(RedisTargetOptions) -> RedisTargetOptions,
    ) -> Result<Self> {
        let options = configure(RedisTargetOptions::from_env()?)
            .with_prefix(format!("test-{:016x}", fastrand::u64(..)))?;
        let target = RedisTarget::connect(options.clone())
            .await
            .map_err(|error| {
                Redis::failure(
                    BackendErrorKind::Unavailable,
                    format!(
                        "connecting to Redis at {} for a test: start it with `scripts/redis.sh start` \
                         (or run the whole suite with `scripts/test.sh`), or point {ENV_URL} \
                         at a server",
                        options.redacted_url()
                    ),
                    Some(Box::new(error)),
                )
            })?;
        Ok(RedisTestPrefix { target })
    }

    /// The target under this prefix.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        self.target.options().prefix()
    }

    /// A second, independent target (its own connection) under the same prefix, as another
    /// process would have.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached.
    pub async fn connect_another(&self) -> Result<RedisTarget> {
        RedisTarget::connect(self.target.options().clone()).await
    }

    /// Every key under the prefix, sorted (found with `SCAN`).
    ///
    /// # Errors
    ///
    /// When Redis fails.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut conn = self.target.connection();
        let mut keys = Vec::new();
        let listed: redis::RedisResult<()> = async {
            for pattern in patterns(self.prefix()) {
                let mut iter = conn.scan_options::<String>(scan_options(&pattern)).await?;
                while let Some(key) = iter.next_item().await.transpose()? {
                    keys.push(key);
                }
            }
            Ok(())
        }
        .await;
        listed.map_err(|e| Redis::error("listing a test's keys", e))?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// The conformance suite's counter `key` is the string at the slot's data key `key`, holding
/// the number as text.
impl TargetProbe for RedisTarget {
    fn put(writes: &mut RedisWrites, key: &str, value: u64) {
        writes.set(key, value.to_string());
    }

    async fn read(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> Result<Option<u64>> {
        let full = self.slot_keys(projection, slot).key(key);
        let text: Option<String> = redis::cmd("GET")
            .arg(&full)
            .query_async(&mut self.connection())
            .await
            .map_err(|e| Redis::error(format!("reading `{full}`"), e))?;
        text.map(|text| {
            text.parse().map_err(|_| {
                Redis::corrupt(format!("reading `{full}`: `{text}` is not a counter"), None)
            })
        })
        .transpose()
    }
}

/// `SCAN` patterns for every key under `prefix`: per projection and per slot.
fn patterns(prefix: &str) -> [String; 2] {
    let prefix = crate::keys::escape_glob(prefix);
    [format!("{prefix}:*"), format!("{{{prefix}:*")]
}

/// Deletes every key under `prefix` on a blocking connection.
fn delete_all(client: &redis::Client, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    for pattern in patterns(prefix) {
        let keys: Vec<Vec<u8>> = conn
            .scan_options(scan_options(&pattern))?
            .collect::<redis::RedisResult<_>>()?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).exec(&mut conn)?;
        }
    }
    Ok(())
}

impl Drop for RedisTestPrefix {
    fn drop(&mut self) {
        let client = self.target.options().client.clone();
        let prefix = self.prefix().to_owned();
        // Drop runs inside the test's runtime, which must not be blocked on by async work:
        // use a blocking connection on a thread of its own, and wait for it so the keys are
        // gone when the test ends.
        let deleted = std::thread::spawn(move || delete_all(&client, &prefix)).join();
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(prefix = %self.prefix(), "could not delete a test's Redis keys");
        }
    }
}
