//! The foldline admin CLI as a library: an application builds its store, its projections and
//! its process managers (their code is the application's), registers them, and gets the
//! `foldline` command line — `status`, `rebuild`, `reset`, `pause`/`resume`, `streams`,
//! `events`, `tail`, `dead-letters`, `processes`, `trace`, `migrate` — with human tables or
//! `--json` lines, confirmations for destructive commands and meaningful exit codes.
//!
//! # Quick start
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use std::collections::BTreeMap;
//!
//! use foldline::{AnyEvent, Envelope, InMemoryTarget, MemoryModel, Projection, ProjectionName, Projector};
//! use foldline_admin::Admin;
//! use foldline_postgres::{PgEventStore, PgStoreOptions};
//!
//! /// The application's connection flags, beside the admin's own (any `clap::Args`).
//! #[derive(Debug, clap::Args)]
//! struct Connections {
//!     /// The event store.
//!     #[arg(long, global = true, env = "FOLDLINE_POSTGRES_URL", hide_env_values = true)]
//!     postgres_url: String,
//!     /// Its schema.
//!     #[arg(long, global = true, env = "FOLDLINE_POSTGRES_SCHEMA", default_value = "foldline")]
//!     schema: String,
//! }
//!
//! /// Events per stream (the application's own read model; Redis or Tantivy in a real one).
//! #[derive(Default)]
//! struct Counts(BTreeMap<String, u64>);
//! impl MemoryModel for Counts {
//!     type Writes = Vec<String>;
//!     fn apply(&mut self, streams: Vec<String>) {
//!         streams.into_iter().for_each(|s| *self.0.entry(s).or_default() += 1);
//!     }
//! }
//!
//! struct EventsPerStream;
//! impl Projection for EventsPerStream {
//!     const NAME: ProjectionName = ProjectionName::from_static("events_per_stream");
//!     type Event = AnyEvent;
//!     type Writes = Vec<String>;
//!     fn handle(&self, e: Envelope<'_, AnyEvent>, w: &mut Vec<String>) -> Result<(), foldline::BoxError> {
//!         w.push(e.recorded.stream_id.to_string());
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     foldline_admin::main(async |connections: Connections| {
//!         let options = PgStoreOptions::from_url(&connections.postgres_url)?
//!             .with_schema(connections.schema.parse()?);
//!         let store = PgEventStore::connect(options).await?;
//!         let target = InMemoryTarget::<Counts>::new(); // your Redis or Tantivy target
//!         Ok(Admin::new(store.clone()).with_projection(Projector::new(store, EventsPerStream, target)))
//!     })
//!     .await
//! }
//! ```
//!
//! `examples/example-bank` builds the `foldline` binary this way, with the example's Redis
//! and Tantivy projections. Each subcommand group has a page with real output under
//! [`docs`].
//!
//! # Conventions
//!
//! - The admin depends on no backend: the application brings its store (any
//!   [`ManagedStore`](foldline::ManagedStore)), its projections, its process managers (any
//!   [`ProcessRunner`](foldline::ProcessRunner), with [`Admin::with_process`]), and the flags
//!   that say where they are (any `clap::Args` struct, flattened into [`Cli`]; by convention
//!   the `FOLDLINE_*` variables set them).
//! - `--json` prints one JSON object per line, each with a `type` and a `version` field; no
//!   colour, no progress bar. Without it: tables for people, and on a terminal a progress bar.
//! - Destructive commands (`reset`, `rebuild --in-place`, `dead-letters discard`) ask first,
//!   take `--yes`, refuse without it when stdin is not a terminal, and take `--dry-run`.
//!   `processes retry` is not one: it carries out decisions already recorded, under the same
//!   idempotency keys, so running it again changes nothing.
//! - Exit codes: 0 ok, 1 a check failed, 2 an error (printed with its causes).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod cli;
mod commands;
mod confirm;
pub mod docs;
mod error;
mod output;
mod process;
mod registry;

pub use cli::{
    Cli, Command, DeadLetterArgs, DeadLetterCommand, DestructiveArgs, EventsArgs, InstanceArgs,
    MigrateArgs, NameArgs, OnPoison, ProcessCommand, ProcessListArgs, RebuildArgs, StatusArgs,
    StreamsArgs, TailArgs, TraceArgs,
};
pub use error::{AdminError, EXIT_CODES, Outcome, format_error};
pub use output::{JSON_VERSION, Output};
pub use process::{
    ActionView, DecisionView, InstanceState, InstanceSummary, InstanceView, ManagedProcess,
    TimerView,
};
pub use registry::{BoxFuture, ManagedProjection, OnProgress};

use std::process::ExitCode;

use clap::Parser;

/// The store, the projections and the process managers the CLI works on.
pub struct Admin<S> {
    store: S,
    projections: Vec<Box<dyn ManagedProjection>>,
    processes: Vec<Box<dyn ManagedProcess>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Admin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.projections.iter().map(|p| p.name()).collect();
        let processes: Vec<_> = self.processes.iter().map(|p| p.name()).collect();
        f.debug_struct("Admin")
            .field("store", &self.store)
            .field("projections", &names)
            .field("processes", &processes)
            .finish()
    }
}

impl<S: foldline::ManagedStore> Admin<S> {
    /// An admin of `store`, with no projections or process managers yet.
    pub fn new(store: S) -> Self {
        Admin {
            store,
            projections: Vec::new(),
            processes: Vec::new(),
        }
    }

    /// Registers a projection (any [`Projector`](foldline::Projector)).
    #[must_use]
    pub fn with_projection(mut self, projection: impl ManagedProjection + 'static) -> Self {
        self.projections.push(Box::new(projection));
        self
    }

    /// Registers a process manager: its [`ProcessRunner`](foldline::ProcessRunner), or the
    /// `Arc` its [`ProcessTarget`](foldline::ProcessTarget) shares. Its instances must live in
    /// this admin's store. Register its projector with
    /// [`with_projection`](Admin::with_projection) too, so that `status`, `pause`, `resume`
    /// and `dead-letters` reach it.
    #[must_use]
    pub fn with_process(mut self, process: impl ManagedProcess + 'static) -> Self {
        self.processes.push(Box::new(process));
        self
    }

    /// The registered process managers.
    pub fn processes(&self) -> impl Iterator<Item = &dyn ManagedProcess> {
        self.processes.iter().map(AsRef::as_ref)
    }

    /// The process manager named `name`.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownProcess`] naming the registered ones.
    pub fn process(&self, name: &str) -> Result<&dyn ManagedProcess, AdminError> {
        self.processes()
            .find(|p| p.name() == name)
            .ok_or_else(|| AdminError::UnknownProcess {
                name: name.to_owned(),
                known: self
                    .processes()
                    .map(ManagedProcess::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The registered projections.
    pub fn projections(&self) -> impl Iterator<Item = &dyn ManagedProjection> {
        self.projections.iter().map(AsRef::as_ref)
    }

    /// The projection named `name`.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownProjection`] naming the registered ones.
    pub fn projection(&self, name: &str) -> Result<&dyn ManagedProjection, AdminError> {
        self.projections()
            .find(|p| p.name().as_str() == name)
            .ok_or_else(|| AdminError::unknown(name, self.projections().map(|p| p.name())))
    }

    /// Runs one parsed command, writing results to `out`.
    ///
    /// # Errors
    ///
    /// What the command failed with.
    pub async fn execute(
        &self,
        command: &Command,
        out: &mut Output,
    ) -> Result<Outcome, AdminError> {
        commands::execute(self, command, out).await
    }
}

/// The whole CLI for a binary's `main`: parses the arguments, calls `build` with the
/// application's connection flags `C` to get the [`Admin`], runs the command, prints errors with their
/// causes on stderr, and returns the exit code (0 ok, 1 a check failed, 2 an error).
///
/// Logs go to stderr, warnings and errors by default (`RUST_LOG` chooses otherwise), so a
/// rebuild retrying against a service that went away says so instead of standing still;
/// an application that installed its own `tracing` subscriber keeps it.
pub async fn main<C, S, F>(build: F) -> ExitCode
where
    C: clap::Args,
    S: foldline::ManagedStore,
    F: AsyncFnOnce(C) -> Result<Admin<S>, foldline::BoxError>,
{
    let cli = Cli::<C>::parse();
    log_to_stderr(cli.json);
    let mut out = Output::stdout(cli.json);
    let result = match build(cli.connections).await {
        Ok(admin) => admin.execute(&cli.command, &mut out).await,
        Err(error) => Err(AdminError::Setup(error)),
    };
    match &result {
        // `foldline tail | head`: the reader is gone, which is not an error of ours.
        Err(AdminError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            #[expect(
                clippy::print_stderr,
                reason = "the CLI's one place that reports errors"
            )]
            {
                eprintln!("{}", format_error(error));
            }
        }
        Ok(_) => {}
    }
    error::exit_code(&result)
}

/// Installs a `tracing` subscriber writing to stderr, unless one is installed already.
fn log_to_stderr(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _already_installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::stderr().is_terminal())
        .try_init();
}
