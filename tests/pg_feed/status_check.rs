//! `foldline status` while a transaction left open holds the feed back: the projection's lag
//! leaves out the events committed behind it, so `status` shows them beside it as waiting, says
//! for how long the feed has been held, and `--check` fails once that is longer than
//! `--max-held-seconds`. On a private server, so that no other test's transaction holds the
//! feed when this one has let it go.

use std::time::{Duration, Instant};

use foldline_admin::Outcome;
use foldline_tests::pg::{backend_pid, connect, take_xid};
use foldline_tests::pg_server::PgServer;
use foldline_tests::tally::{self, counted};

use crate::admin::{Ran, admin, append_counted, run, store_on, until_released};

/// The `LAG` and `WAITING` cells of `projection`'s row in `status`'s table: the two after its
/// head (`0:<xid>:<position>`).
fn lag_and_waiting(ran: &Ran, projection: &str) -> (String, String) {
    let row = ran
        .stdout
        .lines()
        .find(|line| line.starts_with(&format!("{projection} ")))
        .unwrap_or_else(|| panic!("no row for {projection}:\n{}", ran.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let head = cells
        .iter()
        .position(|cell| cell.starts_with("0:"))
        .unwrap_or_else(|| panic!("no head in {row:?}"));
    (cells[head + 1].to_owned(), cells[head + 2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_the_events_waiting_behind_an_open_transaction_and_check_fails_while_held()
-> anyhow::Result<()> {
    let server = PgServer::start()?;
    let store = store_on(&server).await?;
    let admin = admin(&store);
    // Three events in the feed: the tally, never run, lags three.
    tally::append(&store, "before", &counted(3)).await?;
    let check = ["--json", "status", "--check", "--max-held-seconds", "1"];
    let ran = run(&admin, &check).await?;
    assert_eq!(ran.outcome, Outcome::Ok, "{ran:?}");
    let feed = ran.one("feed");
    assert_eq!(feed["held_back"], false, "{feed}");
    assert_eq!(feed["waiting_events"], 0, "{feed}");
    assert_eq!(feed["holders"], 0, "{feed}");
    assert!(feed["held_for_seconds"].is_null(), "{feed}");

    let holder = connect(&server.url()).await?;
    holder
        .batch_execute("SET application_name = 'held_open'")
        .await?;
    let pid = backend_pid(&holder).await?;
    holder.batch_execute("BEGIN").await?;
    let xid = take_xid(&holder).await?;
    let held_since = Instant::now();
    append_counted(&store, "behind", 51).await?;
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(held_since.elapsed())).await;

    let ran = run(&admin, &check).await?;
    assert_eq!(ran.outcome, Outcome::CheckFailed, "{ran:?}");
    let status = ran.one("projection_status");
    assert_eq!(status["lag_events"], 3, "{status}");
    assert_eq!(status["waiting_events"], 51, "{status}");
    let feed = ran.one("feed");
    assert_eq!(feed["held_back"], true, "{feed}");
    assert_eq!(feed["holders"], 1, "{feed}");
    assert_eq!(feed["waiting_events"], 51, "{feed}");
    let held_for = feed["held_for_seconds"].as_f64().unwrap_or_default();
    assert!(
        (1.0..=held_since.elapsed().as_secs_f64() + 1.0).contains(&held_for),
        "{feed}"
    );
    let named = ran.one("feed_holder");
    assert_eq!(named["kind"], "session", "{named}");
    assert_eq!(named["pid"], pid, "{named}");
    assert_eq!(named["xid"], xid, "{named}");
    assert_eq!(named["state"], "idle in transaction", "{named}");
    assert_eq!(named["application_name"], "held_open", "{named}");
    assert_eq!(named["owner"], "postgres", "{named}");
    assert_eq!(named["database"], "postgres", "{named}");
    assert!(named["gid"].is_null(), "{named}");
    // Held for less than the default limit (300 s): the check passes.
    let ran = run(&admin, &["--json", "status", "--check"]).await?;
    assert_eq!(ran.outcome, Outcome::Ok, "{ran:?}");

    let ran = run(&admin, &["status"]).await?;
    assert_eq!(ran.outcome, Outcome::Ok, "{ran:?}");
    let summary = ran
        .stdout
        .lines()
        .find(|line| line.starts_with("feed held back for "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", ran.stdout));
    assert!(
        summary.ends_with(" by 1 transaction; 51 committed events waiting"),
        "{summary}"
    );
    let header = ran
        .stdout
        .lines()
        .find(|line| line.starts_with("PROJECTION"))
        .unwrap_or_default();
    assert!(header.contains(" LAG  WAITING  LAG (s) "), "{header}");
    assert_eq!(
        lag_and_waiting(&ran, "tally"),
        ("3".to_owned(), "51".to_owned())
    );
    assert!(
        ran.stdout
            .contains("the feed is held back by open transactions (end or terminate them):\nPID"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{pid} "))),
        "{}",
        ran.stdout
    );

    holder.batch_execute("COMMIT").await?;
    until_released(&store).await?;
    let ran = run(&admin, &check).await?;
    assert_eq!(ran.outcome, Outcome::Ok, "{ran:?}");
    let status = ran.one("projection_status");
    assert_eq!(status["lag_events"], 54, "{status}");
    assert_eq!(status["waiting_events"], 0, "{status}");
    assert_eq!(ran.one("feed")["held_back"], false, "{ran:?}");
    assert!(ran.of_type("feed_holder").is_empty(), "{ran:?}");
    Ok(())
}
