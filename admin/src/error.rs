//! What can go wrong in a command, and how it maps to an exit code.

use std::process::ExitCode;

use foldline::{ProjectionName, Shown};

use crate::output::terminal_safe;

/// Why a command failed. Printed with its chain of causes; the process exits with 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store or a projection target failed, or refused the request.
    #[error(transparent)]
    Foldline(#[from] foldline::Error),

    /// No projection of that name is registered. The message shows the name asked for
    /// [escaped and cut short](Shown).
    #[error("no projection named `{}` (known: {known})", Shown::new(.name))]
    UnknownProjection {
        /// The name asked for, whole.
        name: String,
        /// The registered names.
        known: String,
    },

    /// A destructive command without `--yes` while stdin is not a terminal.
    #[error("refusing to {action} without --yes: stdin is not a terminal to ask on")]
    NotConfirmed {
        /// What would have been done.
        action: String,
    },

    /// The operator answered no.
    #[error("cancelled: {action} was not confirmed")]
    Cancelled {
        /// What would have been done.
        action: String,
    },

    /// `status` could not read some projections' state (their target is unreachable, say);
    /// the others were shown. The source is the first failure.
    #[error("cannot read the state of {names}")]
    UnreadableProjections {
        /// The projections whose state could not be read, comma-separated.
        names: String,
        /// Why the first of them could not be read.
        #[source]
        source: foldline::Error,
    },

    /// The store's schema lacks migrations: a fresh or mistyped schema, or an older release's.
    #[error(
        "{store} lacks {pending} of this release's migrations: run `migrate` if it is the \
         application's store, or pick the application's schema with --schema / \
         FOLDLINE_POSTGRES_SCHEMA"
    )]
    NotMigrated {
        /// The store, as `status` describes it.
        store: String,
        /// How many migrations are pending.
        pending: usize,
    },

    /// A flag's value does not parse (a checkpoint, a stream id).
    #[error("invalid value for {flag}: {expected}")]
    InvalidArgument {
        /// The flag, such as `--after`.
        flag: &'static str,
        /// What it takes.
        expected: &'static str,
        /// What was wrong with the value.
        #[source]
        source: foldline::Error,
    },

    /// The slot a rebuild was filling disappeared under it: another process dropped it, or
    /// the target lost its data (a Redis restarted without persistence).
    #[error(
        "the slot the rebuild of `{projection}` was filling is gone (dropped by another \
         process, or lost with the target's data): run the rebuild again to start over"
    )]
    RebuildSlotGone {
        /// The projection.
        projection: String,
        /// The store's or target's error.
        #[source]
        source: foldline::Error,
    },

    /// A rebuild stopped at an event the projection keeps failing on.
    #[error(
        "the rebuild of `{projection}` stopped at an event the projection keeps failing on: fix \
         the handler and run the rebuild again (it resumes there), or park the event and go on \
         with `rebuild {projection} --on-poison dead-letter`"
    )]
    RebuildPoisoned {
        /// The projection.
        projection: String,
        /// The poison event, with the handler's error.
        #[source]
        source: foldline::Error,
    },

    /// An argument the command cannot use.
    #[error("{0}")]
    Usage(String),

    /// What the command was asked about does not exist: no instance of that name, no event
    /// with that id or correlation id.
    #[error("{0}")]
    NotFound(String),

    /// No process manager of that name is registered. The message shows the name asked for
    /// [escaped and cut short](Shown).
    #[error("no process manager named `{}` (known: {known})", Shown::new(.name))]
    UnknownProcess {
        /// The name asked for, whole.
        name: String,
        /// The registered names.
        known: String,
    },

    /// Building the store or the projections (the application's own setup) failed.
    #[error("setting up the store and projections failed")]
    Setup(#[source] foldline::BoxError),

    /// Writing to stdout or reading stdin failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl AdminError {
    pub(crate) fn unknown(name: &str, known: impl Iterator<Item = ProjectionName>) -> Self {
        AdminError::UnknownProjection {
            name: name.to_owned(),
            known: known
                .map(|n| n.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    pub(crate) fn output(source: std::io::Error) -> Self {
        AdminError::Io {
            what: "writing the output",
            source,
        }
    }
}

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (exit code 0).
    Ok,
    /// A check found a problem, such as `status --check` finding lag (exit code 1).
    CheckFailed,
}

/// Exit codes, as documented in `--help`.
pub const EXIT_CODES: &str = "Exit codes:\n  \
    0  success\n  \
    1  a check failed (`status --check` found a failed projection or lag above the limit; \
    `migrate --check` found pending migrations)\n  \
    2  an error (bad arguments, a service unreachable, a refused or cancelled command, \
    an unknown process manager, instance or trace id)";

pub(crate) fn exit_code(result: &Result<Outcome, AdminError>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(_) => ExitCode::from(2),
    }
}

/// `error: outer` then one `  caused by: inner` line per source.
///
/// Each message is printed with its control characters escaped (`\n`, `\u{1b}`): a message
/// that holds a newline (a driver's, or one quoting a value from outside) stays on its own
/// line, so it can neither forge an `error:` line nor send escape codes to the terminal.
pub fn format_error(error: &(dyn std::error::Error + 'static)) -> String {
    let messages: Vec<String> = std::iter::successors(Some(error), |e| e.source())
        .map(|e| terminal_safe(&e.to_string()).into_owned())
        .collect();
    format!("error: {}", messages.join("\n  caused by: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose message holds a newline, as a driver's may.
    #[derive(Debug, thiserror::Error)]
    #[error("db error: ERROR: relation missing\nDETAIL: \u{1b}[2Jwiped\r")]
    struct Driver;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the stream\nerror: forged")]
    struct Outer(#[source] Driver);

    #[test]
    fn every_message_of_the_chain_stays_on_its_own_line_with_its_controls_escaped() {
        let printed = format_error(&Outer(Driver));
        assert_eq!(
            printed,
            "error: reading the stream\\nerror: forged\n  caused by: db error: ERROR: relation \
             missing\\nDETAIL: \\u{1b}[2Jwiped\\r"
        );
        let usage = AdminError::Usage("--limit\u{7f}\u{9b}31m\u{202e}".into());
        assert_eq!(
            format_error(&usage),
            r"error: --limit\u{7f}\u{9b}31m\u{202e}"
        );
    }

    #[test]
    fn an_unknown_projection_is_shown_escaped_and_cut_short() {
        let name = format!("x\n\u{1b}[31m{}", "y".repeat(10_240));
        let error = AdminError::unknown(&name, std::iter::empty());
        let printed = format_error(&error);
        assert!(!printed.chars().any(char::is_control), "{printed:?}");
        assert!(printed.len() < 200, "{} bytes: {printed}", printed.len());
        assert!(
            printed.starts_with(r"error: no projection named `x\n\u{1b}[31myyy"),
            "{printed}"
        );
        assert!(printed.ends_with("…(10247 bytes)` (known: )"), "{printed}");
        assert!(matches!(error, AdminError::UnknownProjection { name: n, .. } if n == name));
    }
}
