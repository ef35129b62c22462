//! Redis for the projection benchmarks: where it is, plain connections for the raw limits, and
//! a unique key prefix per pass whose keys are deleted afterwards.

use std::time::Duration;

use anyhow::Context;
use foldline_redis::{RedisTarget, RedisTargetOptions};
use redis::aio::MultiplexedConnection;

/// Where Redis is: `FOLDLINE_REDIS_URL`, or the local default.
pub(crate) fn url() -> String {
    std::env::var(foldline_redis::ENV_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| foldline_redis::DEFAULT_URL.to_owned())
}

fn unreachable() -> String {
    format!(
        "cannot connect to Redis at {}: start it with `scripts/redis.sh start`, or set \
         {}",
        foldline::redact_url(&url()),
        foldline_redis::ENV_URL,
    )
}

/// A plain multiplexed connection (what `RedisTarget`'s connection manager wraps), for the
/// raw limits.
pub(crate) async fn connect() -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url()).with_context(unreachable)?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(unreachable)
}

/// A key prefix of this run, `bench-<tag>-<12 hex digits>`: every prefix with the same tag
/// length has the same length, so foldline's keys and the raw limit's are equally long. Its
/// keys are deleted by [`clear`](RedisPrefix::clear), or on drop if that was not called (on a
/// runtime of its own, so an error path cleans up too).
#[derive(Debug)]
pub(crate) struct RedisPrefix {
    prefix: String,
    client: Option<redis::Client>,
}

impl RedisPrefix {
    pub(crate) fn new(tag: &str) -> anyhow::Result<Self> {
        let random = uuid::Uuid::now_v7().simple().to_string();
        Ok(RedisPrefix {
            prefix: format!("bench-{tag}-{}", &random[random.len() - 12..]),
            client: Some(redis::Client::open(url()).with_context(unreachable)?),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.prefix
    }

    /// A projection target under this prefix.
    pub(crate) async fn target(&self) -> anyhow::Result<RedisTarget> {
        let options = RedisTargetOptions::from_url(&url())?.with_prefix(self.prefix.clone())?;
        RedisTarget::connect(options)
            .await
            .with_context(unreachable)
    }

    /// Deletes every key under the prefix and returns how many there were.
    pub(crate) async fn clear(mut self) -> anyhow::Result<u64> {
        let mut conn = connect().await?;
        let deleted = unlink_all(&mut conn, &self.prefix).await?;
        self.client = None;
        Ok(deleted)
    }
}

/// Keys per `SCAN` step.
const SCAN_COUNT: usize = 10_000;

/// `SCAN` patterns for every key foldline-redis (and the raw limits) write under `prefix`:
/// `<prefix>:…` and the slots' hash-tagged `{<prefix>:…`. Prefixes are made of characters
/// that are not glob patterns.
fn patterns(prefix: &str) -> [String; 2] {
    [format!("{prefix}:*"), format!("{{{prefix}:*")]
}

/// Deletes every key under `prefix` (`SCAN` of each of its [`patterns`], `UNLINK` of each
/// step's keys) and returns how many there were.
async fn unlink_all(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for pattern in patterns(prefix) {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .cursor_arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(conn)
                .await
                .with_context(|| format!("listing the keys under {prefix}"))?;
            if !keys.is_empty() {
                deleted += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<u64>(conn)
                    .await
                    .with_context(|| format!("deleting the keys under {prefix}"))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let prefix = self.prefix.clone();
        // Inside the runtime: a runtime of its own on a thread of its own, waited for.
        let deleted = std::thread::spawn(move || -> anyhow::Result<u64> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.get_multiplexed_async_connection(),
                )
                .await??;
                unlink_all(&mut conn, &prefix).await
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(_))) {
            eprintln!("   could not delete the Redis keys under {}", self.prefix);
        }
    }
}
