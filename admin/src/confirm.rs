//! Confirmation of destructive commands: `--yes`, or a question on a terminal; never a guess.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::AdminError;

/// How a destructive command may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consent {
    /// `--yes` was given.
    Given,
    /// Ask on the terminal.
    Ask,
}

impl Consent {
    pub(crate) fn from_flag(yes: bool) -> Self {
        if yes { Consent::Given } else { Consent::Ask }
    }
}

/// Asks before `action` (e.g. "reset projection `balances`"), unless `--yes` was given.
///
/// # Errors
///
/// [`AdminError::NotConfirmed`] when stdin is not a terminal and `--yes` is missing;
/// [`AdminError::Cancelled`] when the operator does not answer `y`.
pub(crate) fn confirm(consent: Consent, action: &str, consequence: &str) -> Result<(), AdminError> {
    if consent == Consent::Given {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(AdminError::NotConfirmed {
            action: action.to_owned(),
        });
    }
    let mut stderr = std::io::stderr();
    let asked =
        write!(stderr, "{action}: {consequence}\nGo ahead? [y/N] ").and_then(|()| stderr.flush());
    asked.map_err(|source| AdminError::Io {
        what: "asking for confirmation",
        source,
    })?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|source| AdminError::Io {
            what: "reading the confirmation",
            source,
        })?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(AdminError::Cancelled {
            action: action.to_owned(),
        })
    }
}
