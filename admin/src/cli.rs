//! The command line: global connection flags, output flags, subcommands.

use clap::{Args, Parser, Subcommand};
use foldline::PoisonPolicy;
use uuid::Uuid;

use crate::error::EXIT_CODES;
use crate::process::InstanceState;

/// Operate foldline projections and inspect the event store.
///
/// `C` is the application's connection flags (its store's URL, its targets' addresses): any
/// `#[derive(clap::Args)]` struct, flattened beside the admin's own flags.
#[derive(Debug, Parser)]
#[command(version, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
pub struct Cli<C: Args> {
    /// Where the application's store and projection targets are.
    #[command(flatten)]
    pub connections: C,

    /// Print versioned JSON lines (each with `type` and `version`) instead of tables; no
    /// colour, no progress bar.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Per projection: version, active slot, checkpoint, store head, lag, state, dead letters;
    /// per process manager: its instances by state and its next timer; and what holds the
    /// store's feed back (a PostgreSQL or Kafka transaction), when something does.
    Status(StatusArgs),
    /// Rebuild a projection: blue/green by default (the active version keeps serving reads);
    /// resumes an interrupted rebuild.
    Rebuild(RebuildArgs),
    /// Empty a projection's active read model; running projectors rebuild it from the start.
    Reset(DestructiveArgs),
    /// Pause a projection: running projectors finish their batch and wait.
    Pause(NameArgs),
    /// Resume a paused projection.
    Resume(NameArgs),
    /// List streams with their versions.
    Streams(StreamsArgs),
    /// Show the events of a stream, or of the global feed with `--all`.
    Events(EventsArgs),
    /// Follow the global feed, printing events as they are committed.
    Tail(TailArgs),
    /// List, retry or discard the events a projection parked.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Create or update the store's schema.
    Migrate(MigrateArgs),
    /// List, show or retry the instances of the registered process managers.
    #[command(subcommand)]
    Processes(ProcessCommand),
    /// Show what one request caused across streams: the causal tree of a correlation id (or
    /// of an event id's correlation), from the events' correlation and causation ids.
    Trace(TraceArgs),
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this projection (or process manager: its projector's row and its instances).
    pub name: Option<String>,
    /// Exit with 1 when a projection failed or lags more than `--max-lag` events or
    /// `--max-lag-seconds`, or when the store's feed has been held back longer than
    /// `--max-held-seconds`.
    #[arg(long)]
    pub check: bool,
    /// With `--check`: the most lag in events that passes.
    #[arg(long, default_value_t = 1000)]
    pub max_lag: u64,
    /// With `--check`: the most lag in seconds that passes.
    #[arg(long)]
    pub max_lag_seconds: Option<f64>,
    /// With `--check`: the longest the feed may be held back (by an open or prepared
    /// transaction) that passes, in seconds. Events committed meanwhile wait, out of every
    /// projection's lag.
    #[arg(long, default_value_t = 300.0)]
    pub max_held_seconds: f64,
}

/// A projection's name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The projection.
    pub name: String,
}

/// A destructive command on a projection.
#[derive(Debug, Args)]
pub struct DestructiveArgs {
    /// The projection.
    pub name: String,
    /// Do it without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// Say what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection.
    pub name: String,
    /// Empty the active read model and rebuild it where it is (readers see it partial
    /// meanwhile; pauses running projectors for the duration). Destructive: asks first.
    #[arg(long)]
    pub in_place: bool,
    /// With `--in-place`: do it without asking.
    #[arg(long, short)]
    pub yes: bool,
    /// Say what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// What the rebuild does with an event the projection keeps failing on: `stop` fails the
    /// rebuild naming the event (the new slot keeps what it built, a later rebuild resumes);
    /// `dead-letter` parks it and goes on (see `dead-letters`). Default: the projection's own
    /// policy.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_poison: Option<OnPoison>,
}

/// `rebuild --on-poison`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnPoison {
    /// Fail the rebuild at the event, naming it.
    Stop,
    /// Park the event in the dead-letter list and go on.
    DeadLetter,
}

impl From<OnPoison> for PoisonPolicy {
    fn from(on_poison: OnPoison) -> Self {
        match on_poison {
            OnPoison::Stop => PoisonPolicy::Stop,
            OnPoison::DeadLetter => PoisonPolicy::DeadLetter,
        }
    }
}

/// `streams`.
#[derive(Debug, Args)]
pub struct StreamsArgs {
    /// Start after this stream id.
    #[arg(long)]
    pub after: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The stream (or `--all`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub stream: Option<String>,
    /// The global feed instead of one stream.
    #[arg(long)]
    pub all: bool,
    /// With `--all`: start after this checkpoint (as `status` prints it; default: the start).
    #[arg(long, requires = "all")]
    pub after: Option<String>,
    /// For a stream: start at this version.
    #[arg(long, default_value_t = 1, conflicts_with = "all")]
    pub from: u64,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Start after this checkpoint (default: the head, so only new events).
    #[arg(long)]
    pub after: Option<String>,
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long)]
    pub limit: Option<u64>,
}

/// `dead-letters`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum DeadLetterCommand {
    /// List a projection's dead letters.
    List(NameArgs),
    /// Apply dead letters again (the handler must pass now).
    Retry(DeadLetterArgs),
    /// Drop dead letters without applying them. Destructive: asks first.
    Discard(DeadLetterArgs),
}

/// Which dead letters.
#[derive(Debug, Args)]
pub struct DeadLetterArgs {
    /// The projection.
    pub name: String,
    /// The event ids of the letters (as `list` prints them).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub event_ids: Vec<Uuid>,
    /// Every letter of the projection.
    #[arg(long)]
    pub all: bool,
    /// Do it without asking (discard).
    #[arg(long, short)]
    pub yes: bool,
    /// Say what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `processes`.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum ProcessCommand {
    /// List instances with their state: running, waiting (for a timer), completed, failed.
    List(ProcessListArgs),
    /// Show an instance: its state, every decision with its input and actions, what became
    /// of the commands it sent, its pending timers.
    Show(InstanceArgs),
    /// Carry out an instance's recorded decisions again: send its commands again under the
    /// same idempotency keys (those applied already append nothing) and schedule its pending
    /// timers again. Not destructive: asks nothing.
    Retry(InstanceArgs),
}

/// `processes list`.
#[derive(Debug, Args)]
pub struct ProcessListArgs {
    /// Only this process manager's instances (default: every registered one's).
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Only the instances in this state.
    #[arg(long, value_enum)]
    pub state: Option<InstanceState>,
    /// Start after this instance (as `list` prints it).
    #[arg(long, value_name = "INSTANCE")]
    pub after: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// One instance of a process manager.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// The instance: its stream, `{process}-{id}`, as `processes list` prints it (such as
    /// `transfer-t1`).
    pub instance: String,
}

/// `trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A correlation id, or the id of an event (its correlation is traced).
    pub id: Uuid,
    /// At most this many events.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
}

/// `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Apply nothing; exit with 1 when migrations are pending.
    #[arg(long)]
    pub check: bool,
}
