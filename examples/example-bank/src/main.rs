// Run with `cargo run -p example-bank`. Needs no services: it runs on the in-memory event store.
// With FOLDLINE_POSTGRES_URL set (e.g. postgres://postgres@127.0.0.1:5432/postgres) it runs the
// same story on PostgreSQL instead, in schema `example_bank`, which it DROPS and recreates first:
// the story needs an empty store. `RUST_LOG=foldline=debug` shows the framework's logs (stderr).

//! The foldline bank example: accounts, a transfer done as two commands, a refused overdraft, an
//! idempotent redelivery, a version conflict retried for real, snapshots, and a balances read
//! model folded from the global feed. See `src/story.rs` for the steps.

use std::io::Write;

use example_bank::postgres::{SCHEMA, fresh_store};
use foldline::InMemoryEventStore;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut out = std::io::stdout();
    match std::env::var("FOLDLINE_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            writeln!(
                out,
                "foldline bank example, on PostgreSQL at {}, schema {SCHEMA} (dropped and \
                 recreated: the story needs an empty store)",
                foldline_postgres::redact(&url)
            )?;
            let store = fresh_store(&url, SCHEMA).await?;
            example_bank::run(store, &mut out).await?;
        }
        _ => {
            writeln!(
                out,
                "foldline bank example, on the in-memory event store (no services needed; \
                 set FOLDLINE_POSTGRES_URL to run it on PostgreSQL)"
            )?;
            example_bank::run(InMemoryEventStore::new(), &mut out).await?;
        }
    }
    Ok(())
}
