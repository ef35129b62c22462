//! `migrate`: bring the store's schema up to date, or with `--check` only say whether it is.

use foldline::ManagedStore;
use serde::Serialize;

use crate::Admin;
use crate::cli::MigrateArgs;
use crate::error::{AdminError, Outcome};
use crate::output::Output;

/// The one `migrate` JSON line.
#[derive(Serialize)]
struct MigrateLine<'a> {
    /// Whether this was `--check` (nothing applied).
    check: bool,
    /// What the command applied (always empty with `--check`).
    applied: &'a [String],
    /// What is still to apply afterwards (empty after a successful `migrate`).
    pending: &'a [String],
}

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &MigrateArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let store = admin.store();
    out.line(format!("store: {}", store.describe()))?;
    if args.check {
        let pending = store.pending_migrations().await?;
        out.record(
            "migrate",
            &MigrateLine {
                check: true,
                applied: &[],
                pending: &pending,
            },
        )?;
        if pending.is_empty() {
            out.line("up to date: no pending migrations")?;
            return Ok(Outcome::Ok);
        }
        out.line(format!(
            "{} pending migration(s): {}; apply with `migrate`",
            pending.len(),
            pending.join(", ")
        ))?;
        return Ok(Outcome::CheckFailed);
    }
    let applied = store.migrate().await?;
    out.record(
        "migrate",
        &MigrateLine {
            check: false,
            applied: &applied,
            pending: &[],
        },
    )?;
    if applied.is_empty() {
        out.line("up to date: nothing to apply")?;
    }
    for version in &applied {
        out.line(format!("applied migration {version}"))?;
    }
    Ok(Outcome::Ok)
}
