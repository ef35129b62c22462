//! A prepared transaction (`PREPARE TRANSACTION`, the first phase of a two-phase commit) holds
//! the feed back like an open one, with no session left to end it: an orphan of a crashed
//! transaction manager holds it for good. `feed_held_back()` names it by its gid and counts the
//! events waiting behind it; `status` shows it with what to do, and `--check` fails. Prepared
//! transactions need `max_prepared_transactions > 0`, which the shared server does not have:
//! a private server runs these.

use std::time::{Duration, Instant};

use foldline::{Checkpoint, EventStore, FeedHolderKind, ManagedStore};
use foldline_admin::Outcome;
use foldline_tests::pg::{connect, take_xid};
use foldline_tests::pg_server::PgServer;

use crate::admin::{admin, append_counted, run, store_on, until_released};

const GID: &str = "foldline-orphan";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_transaction_holds_the_feed_back_and_is_named_by_its_gid() -> anyhow::Result<()>
{
    let server = PgServer::start()?;
    let store = store_on(&server).await?;
    let admin = admin(&store);

    let session = connect(&server.url()).await?;
    session.batch_execute("BEGIN").await?;
    let xid = take_xid(&session).await?;
    session
        .batch_execute(&format!("PREPARE TRANSACTION '{GID}'"))
        .await?;
    let prepared_at = Instant::now();
    // The session is gone; the prepared transaction stays.
    drop(session);

    // A session's transaction beside it, younger: with nothing finished since, both xids are
    // at or past the snapshot's xmax, from which the store widens the 32-bit xids it is given.
    let younger = connect(&server.url()).await?;
    younger.batch_execute("BEGIN").await?;
    let younger_xid = take_xid(&younger).await?;
    let held = store.feed_held_back().await?;
    let xids: Vec<(FeedHolderKind, Option<u64>)> =
        held.holders.iter().map(|h| (h.kind, h.xid)).collect();
    assert_eq!(
        xids,
        [
            (FeedHolderKind::PreparedTransaction, Some(xid)),
            (FeedHolderKind::Session, Some(younger_xid))
        ],
        "oldest first, each with its transaction id: {held:?}"
    );
    younger.batch_execute("ROLLBACK").await?;
    drop(younger);

    append_counted(&store, "behind", 7).await?;

    let held = store.feed_held_back().await?;
    assert_eq!(held.waiting_events, 7, "{held:?}");
    let prepared: Vec<_> = held
        .holders
        .iter()
        .filter(|h| h.kind == FeedHolderKind::PreparedTransaction)
        .collect();
    let [holder] = prepared[..] else {
        panic!("feed_held_back() does not name the one prepared transaction: {held:?}");
    };
    assert_eq!(holder.gid.as_deref(), Some(GID), "{holder:?}");
    assert_eq!(holder.pid, None, "{holder:?}");
    assert_eq!(holder.xid, Some(xid), "{holder:?}");
    assert_eq!(holder.owner.as_deref(), Some("postgres"), "{holder:?}");
    assert_eq!(holder.database.as_deref(), Some("postgres"), "{holder:?}");
    assert!(
        holder.age <= prepared_at.elapsed() + Duration::from_secs(1),
        "{holder:?}"
    );
    assert!(held.held_for >= Some(holder.age), "{held:?}");
    let batch = store.read_all(&Checkpoint::START, 100).await?;
    assert!(
        batch.is_empty(),
        "the feed went past a prepared transaction: {:?}",
        batch.events
    );

    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(prepared_at.elapsed())).await;
    let check = ["--json", "status", "--check", "--max-held-seconds", "1"];
    let ran = run(&admin, &check).await?;
    assert_eq!(ran.outcome, Outcome::CheckFailed, "{ran:?}");
    let named = ran.one("feed_holder");
    assert_eq!(named["kind"], "prepared_transaction", "{named}");
    assert_eq!(named["gid"], GID, "{named}");
    assert!(named["pid"].is_null(), "{named}");
    assert_eq!(named["xid"], xid, "{named}");
    assert_eq!(named["owner"], "postgres", "{named}");
    let feed = ran.one("feed");
    assert_eq!(feed["held_back"], true, "{feed}");
    assert_eq!(feed["waiting_events"], 7, "{feed}");
    assert_eq!(ran.one("projection_status")["waiting_events"], 7, "{ran:?}");

    let ran = run(&admin, &["status"]).await?;
    let text = &ran.stdout;
    assert!(
        text.lines()
            .any(|line| line.starts_with("feed held back for ")
                && line.ends_with(" by 1 prepared transaction; 7 committed events waiting")),
        "{text}"
    );
    assert!(
        text.contains(
            "the feed is held back by prepared transactions (COMMIT PREPARED or ROLLBACK \
             PREPARED them):\nGID"
        ),
        "{text}"
    );
    let row = text
        .lines()
        .find(|line| line.starts_with(&format!("{GID} ")))
        .unwrap_or_else(|| panic!("no row for {GID}:\n{text}"));
    assert!(row.contains(&format!(" {xid} ")), "{row}");
    assert!(
        !text.contains("open transactions"),
        "a prepared transaction is not an open session's: {text}"
    );

    let operator = connect(&server.url()).await?;
    operator
        .batch_execute(&format!("ROLLBACK PREPARED '{GID}'"))
        .await?;
    until_released(&store).await?;
    let ran = run(&admin, &check).await?;
    assert_eq!(ran.outcome, Outcome::Ok, "{ran:?}");
    assert!(ran.of_type("feed_holder").is_empty(), "{ran:?}");
    assert_eq!(ran.one("feed")["waiting_events"], 0, "{ran:?}");
    let batch = store.read_all(&Checkpoint::START, 100).await?;
    assert_eq!(
        batch.events.len(),
        7,
        "the events behind it arrive once it ends"
    );
    Ok(())
}
