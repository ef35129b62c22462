//! One module per subcommand group; [`execute`] dispatches.

mod control;
mod dead_letters;
mod inspect;
mod migrate;
mod processes;
mod rebuild;
mod reset;
mod status;
mod trace;

use foldline::ManagedStore;

use crate::Admin;
use crate::cli::{Command, DeadLetterCommand, ProcessCommand};
use crate::error::{AdminError, Outcome};
use crate::output::Output;

pub(crate) async fn execute<S: ManagedStore>(
    admin: &Admin<S>,
    command: &Command,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    if !matches!(command, Command::Migrate(_)) {
        check_migrated(admin).await?;
    }
    match command {
        Command::Status(args) => status::run(admin, args, out).await,
        Command::Rebuild(args) => rebuild::run(admin, args, out).await,
        Command::Reset(args) => reset::run(admin, args, out).await,
        Command::Pause(args) => control::pause(admin, args, out).await,
        Command::Resume(args) => control::resume(admin, args, out).await,
        Command::Streams(args) => inspect::streams(admin, args, out).await,
        Command::Events(args) => inspect::events(admin, args, out).await,
        Command::Tail(args) => inspect::tail(admin, args, out).await,
        Command::DeadLetters(DeadLetterCommand::List(args)) => {
            dead_letters::list(admin, args, out).await
        }
        Command::DeadLetters(DeadLetterCommand::Retry(args)) => {
            dead_letters::retry(admin, args, out).await
        }
        Command::DeadLetters(DeadLetterCommand::Discard(args)) => {
            dead_letters::discard(admin, args, out).await
        }
        Command::Migrate(args) => migrate::run(admin, args, out).await,
        Command::Processes(ProcessCommand::List(args)) => processes::list(admin, args, out).await,
        Command::Processes(ProcessCommand::Show(args)) => processes::show(admin, args, out).await,
        Command::Processes(ProcessCommand::Retry(args)) => processes::retry(admin, args, out).await,
        Command::Trace(args) => trace::run(admin, args, out).await,
    }
}

/// Refuses to work on a store whose schema lacks migrations (a fresh or mistyped schema, an
/// older release's): without this, every command fails with the server's "relation does not
/// exist" instead of saying what to do.
async fn check_migrated<S: ManagedStore>(admin: &Admin<S>) -> Result<(), AdminError> {
    let pending = admin.store().pending_migrations().await?;
    if pending.is_empty() {
        return Ok(());
    }
    Err(AdminError::NotMigrated {
        store: admin.store().describe(),
        pending: pending.len(),
    })
}
