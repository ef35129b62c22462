//! The PostgreSQL global feed when transactions commit out of position order.
//!
//! Positions are allocated when a row is inserted, not when its transaction commits, so a
//! reader that trusts positions alone skips rows that commit late. These tests make commits
//! land out of order on purpose — store appends from several instances racing raw transactions
//! that hold their xid, or an inserted event, open for random times — and check that every
//! reader of the store's feed still gets every committed event exactly once, in order, and
//! nothing that rolled back.
//!
//! This is a binary of its own because an open transaction holds the feed back for the whole
//! database: the tests here would slow every other test down. For the same reason they run one
//! at a time ([`SERIAL`]): the held-back test keeps a transaction open on purpose. The tests of
//! `foldline status` on a held-back feed (`status_check`, and `prepared`, which needs prepared
//! transactions enabled) run on a private server each
//! ([`PgServer`](foldline_tests::pg_server::PgServer)), so they need not wait for the others.

mod admin;
mod held_back;
mod out_of_order;
mod prepared;
mod reader;
mod status_check;
mod stream_order;

use tokio::sync::Mutex;

/// Held by each test for its whole run.
static SERIAL: Mutex<()> = Mutex::const_new(());
