//! `foldline status` names the transaction that holds the PostgreSQL feed back, and `--check`
//! fails once it has held the feed longer than `--max-held-seconds`. Alone in its
//! binary: an open transaction holds back the feed of every schema in the database, which
//! would stall the other tests' projectors while it lasts.

#[path = "admin_cli/support.rs"]
mod support;

use anyhow::Context;
use std::time::Duration;
use support::{Bank, fill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_transaction_that_holds_the_feed_back() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    fill(&bank.store(), 1, 2).await?;
    let (client, connection) =
        tokio_postgres::connect(bank.schema.url(), tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute("SET application_name = 'admin_cli_holder'")
        .await?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    client.batch_execute("BEGIN").await?;
    client.query_one("SELECT pg_current_xact_id()", &[]).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let ran = bank.foldline(&["status", "--json"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let holders = ran.of_type("feed_holder");
    let holder = holders
        .iter()
        .find(|h| h["pid"] == pid)
        .with_context(|| format!("no feed_holder with pid {pid}: {ran:?}"))?;
    assert!(holder["xid"].as_u64().is_some(), "{holder}");
    assert!(
        holder["age_seconds"].as_f64().is_some_and(|age| age >= 1.0),
        "{holder}"
    );
    assert_eq!(holder["state"], "idle in transaction", "{holder}");
    assert_eq!(holder["application_name"], "admin_cli_holder", "{holder}");

    // Held for more than a second, less than the default limit (300 s).
    let ran = bank.foldline(&["status", "--check"]).await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let ran = bank
        .foldline(&["status", "--check", "--max-held-seconds", "1"])
        .await?;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    // The oldest holder is named; on a server shared with other tests it may be another's.
    assert!(
        ran.stderr
            .starts_with("check failed: the feed has been held back for ")
            && ran.stderr.contains(" (--max-held-seconds 1) by "),
        "{ran:?}"
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("feed held back for ") && l.contains(" committed event")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("the feed is held back by open transactions (end or terminate them):\nPID"),
        "{}",
        ran.stdout
    );
    let row = ran
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{pid} ")))
        .with_context(|| format!("a row for pid {pid}: {}", ran.stdout))?;
    assert!(row.contains("idle in transaction"), "{row}");
    assert!(row.contains("admin_cli_holder"), "{row}");

    client.batch_execute("ROLLBACK").await?;
    drop(client);
    driver.await??;
    let ran = bank.foldline(&["status", "--json"]).await?;
    assert!(
        ran.of_type("feed_holder").iter().all(|h| h["pid"] != pid),
        "{ran:?}"
    );
    Ok(())
}
