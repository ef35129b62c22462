//! Where `main` keeps the read models: the balances in Redis (when `FOLDLINE_REDIS_URL` is set)
//! and the memo index in a directory, each emptied first: the story needs to start from
//! nothing.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::Context;
use foldline::Projection;
use foldline_redis::redis::{self, AsyncCommands};
use foldline_redis::{ENV_URL, RedisTarget, RedisTargetOptions};
use foldline_tantivy::TantivyTarget;

use crate::projections::memos::{self, TransferMemos};

/// The key prefix `main` keeps the read models under in Redis.
pub const REDIS_PREFIX: &str = "example_bank";

/// Connects to Redis at `url` and deletes every key under `prefix` (the read models of an
/// earlier run), then returns a target that writes under `prefix`.
///
/// # Errors
///
/// Redis unreachable (the message says how to start it), an invalid URL or prefix.
pub async fn fresh_redis(url: &str, prefix: &str) -> anyhow::Result<RedisTarget> {
    let options = RedisTargetOptions::from_url(url)?.with_prefix(prefix)?;
    let target = RedisTarget::connect(options.clone())
        .await
        .with_context(|| {
            format!(
                "cannot connect to Redis at {}: start it with `scripts/redis.sh start`, or \
                 point {ENV_URL} at a running server",
                options.redacted_url()
            )
        })?;
    delete_keys(&target, prefix)
        .await
        .with_context(|| format!("deleting the keys under prefix {prefix}"))?;
    Ok(target)
}

/// Deletes every key the target writes under `prefix`: `<prefix>:…` (per projection) and
/// `{<prefix>:…}…` (per slot). A prefix holds no glob characters, so it is safe in a pattern.
async fn delete_keys(target: &RedisTarget, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = target.connection();
    for pattern in [format!("{prefix}:*"), format!("{{{prefix}:*")] {
        let keys: Vec<String> = {
            let mut scanning = conn.clone();
            let mut iter = scanning.scan_match::<_, String>(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await.transpose()? {
                keys.push(key);
            }
            keys
        };
        for chunk in keys.chunks(1000) {
            redis::cmd("UNLINK")
                .arg(chunk)
                .query_async::<()>(&mut conn)
                .await?;
        }
    }
    Ok(())
}

/// Opens the memo index under `root`, creating `root` if needed, after deleting the index of
/// an earlier run (`<root>/transfer_memos`; nothing else under `root` is touched).
///
/// # Errors
///
/// When the directory cannot be deleted or created.
pub async fn fresh_memo_index(root: &Path) -> anyhow::Result<TantivyTarget> {
    let index = root.join(TransferMemos::NAME.as_str());
    match tokio::fs::remove_dir_all(&index).await {
        Err(error) if error.kind() != ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("deleting {}", index.display()));
        }
        _ => {}
    }
    tokio::fs::create_dir_all(root)
        .await
        .with_context(|| format!("creating {}", root.display()))?;
    Ok(memos::open_target(root)?)
}
