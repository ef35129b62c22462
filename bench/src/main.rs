//! `foldline-bench`: runs one benchmark (or `all`) and prints one JSON line per figure on
//! stdout, each beside the raw limit measured in the same run. Progress goes to stderr.
//!
//! ```text
//! cargo run -p foldline-bench --release -- memory-command
//! cargo run -p foldline-bench --release -- pg-append-1   # PostgreSQL at FOLDLINE_POSTGRES_URL
//! cargo run -p foldline-bench --release -- --list
//! ```
// A command-line tool: its output is the point, so printing is allowed.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod benches;
mod counters;
mod machine;
mod metered;
mod pg;
mod redis_prefix;
mod report;
mod rss;
mod stats;
mod timed;

use clap::Parser;
use clap::builder::PossibleValuesParser;

use crate::benches::{BENCHES, Options};

/// Benchmarks of foldline, each reported as a ratio to the raw limit of the same store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The benchmark to run, or `all`.
    #[arg(required_unless_present = "list", value_parser = names())]
    name: Option<String>,

    /// List the benchmarks and exit.
    #[arg(long)]
    list: bool,

    #[command(flatten)]
    options: Options,
}

/// Every benchmark's name, and `all`.
fn names() -> PossibleValuesParser {
    PossibleValuesParser::new(BENCHES.iter().map(|bench| bench.name).chain(["all"]))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.list {
        for bench in BENCHES {
            println!("{:<20} {}", bench.name, bench.about);
        }
        return Ok(());
    }
    let name = cli.name.unwrap_or_default();
    let selected: Vec<_> = if name == "all" {
        BENCHES.iter().collect()
    } else {
        // The parser lets only known names through.
        benches::find(&name).into_iter().collect()
    };
    for bench in selected {
        eprintln!("== {}: {}", bench.name, bench.about);
        let usage = machine::Usage::start();
        let figures = (bench.run)(cli.options.clone()).await?;
        eprintln!("   machine: {}", usage.finish());
        report::print(&figures)?;
    }
    Ok(())
}
