// Run with `cargo run -p example-bank`. Needs no services: it runs on the in-memory event store.
// `RUST_LOG=foldline=debug` shows the framework's logs (on stderr).

//! The foldline bank example: accounts, a transfer done as two commands, a refused overdraft, an
//! idempotent redelivery, a version conflict retried for real, snapshots, and a balances read
//! model folded from the global feed. See `src/story.rs` for the steps.

use std::io::Write;

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
    if std::env::var_os("FOLDLINE_POSTGRES_URL").is_some() {
        tracing::warn!(
            "FOLDLINE_POSTGRES_URL is set, but this example only runs on the in-memory store so far"
        );
    }
    let mut out = std::io::stdout();
    writeln!(
        out,
        "foldline bank example, on the in-memory event store (no services needed)"
    )?;
    example_bank::run(InMemoryEventStore::new(), &mut out).await?;
    Ok(())
}
