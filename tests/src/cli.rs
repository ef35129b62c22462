//! `foldline <args>` run in-process on an [`Admin`], and what it printed read back: how the
//! admin tests of this crate drive the CLI without a process or a connection of its own.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;
use foldline::ManagedStore;
use foldline_admin::{Admin, Cli, Outcome, Output};
use serde_json::Value;

/// What a command that ran printed, and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// How it ended.
    pub outcome: Outcome,
    /// Everything it printed.
    pub stdout: String,
}

impl Ran {
    /// The JSON lines of type `kind` (each line must be JSON of format version 1).
    ///
    /// # Panics
    ///
    /// When a line is not JSON, or not of version 1.
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("each line is JSON");
                assert_eq!(value["version"], 1, "{line}");
                value
            })
            .filter(|record| record["type"] == kind)
            .collect()
    }

    /// The one JSON line of type `kind`.
    ///
    /// # Panics
    ///
    /// As [`of_type`](Self::of_type), and when there is not exactly one.
    pub fn one(&self, kind: &str) -> Value {
        let mut found = self.of_type(kind);
        assert_eq!(found.len(), 1, "one `{kind}` line: {}", self.stdout);
        found.remove(0)
    }
}

/// Runs `foldline <args>` on `admin`, in JSON mode when `args` holds `--json`. A command that
/// fails is an error wrapping its [`AdminError`](foldline_admin::AdminError) (for
/// `downcast_ref`). With `FOLDLINE_SHOW_OUTPUT` set, what it printed goes to stderr too (how
/// the guides' samples are captured).
///
/// # Errors
///
/// When `args` do not parse, or the command fails.
pub async fn run<S: ManagedStore>(admin: &Admin<S>, args: &[&str]) -> anyhow::Result<Ran> {
    let cli = Cli::<NoConnections>::try_parse_from(
        std::iter::once("foldline").chain(args.iter().copied()),
    )?;
    let captured = Captured::default();
    let mut out = Output::to_writer(cli.json, captured.clone());
    let result = admin.execute(&cli.command, &mut out).await;
    let stdout = String::from_utf8(
        captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )?;
    if std::env::var_os("FOLDLINE_SHOW_OUTPUT").is_some() {
        #[expect(clippy::print_stderr, reason = "shows a test's output when asked to")]
        {
            eprintln!("$ foldline {}\n{stdout}", args.join(" "));
        }
    }
    Ok(Ran {
        outcome: result?,
        stdout,
    })
}

/// The tests build their store themselves: no connection flags.
#[derive(Debug, clap::Args)]
struct NoConnections {}

/// Everything a command wrote.
#[derive(Clone, Debug, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
