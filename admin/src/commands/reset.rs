//! `reset`: empty a projection's active read model.

use foldline::{ManagedStore, SlotId};
use serde::Serialize;

use crate::Admin;
use crate::cli::DestructiveArgs;
use crate::confirm::{Consent, confirm};
use crate::error::{AdminError, Outcome};
use crate::output::Output;

#[derive(Serialize)]
struct ResetLine<'a> {
    projection: &'a str,
    slot: Option<SlotId>,
    dry_run: bool,
}

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &DestructiveArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    let overview = projection.overview().await?;
    let Some(active) = overview.active else {
        out.record(
            "projection_reset",
            &ResetLine {
                projection: &args.name,
                slot: None,
                dry_run: args.dry_run,
            },
        )?;
        out.line(format!(
            "{} has no active read model: nothing to reset",
            args.name
        ))?;
        return Ok(Outcome::Ok);
    };
    let action = format!("reset projection `{}`", args.name);
    let consequence = format!(
        "slot {} (version {}) is emptied and its checkpoint set back to the start; readers see \
         an empty read model until projectors have rebuilt it (about {} events)",
        active.slot,
        active.version,
        foldline::Checkpoint::START.distance_to(&overview.head)
    );
    if args.dry_run {
        out.record(
            "projection_reset",
            &ResetLine {
                projection: &args.name,
                slot: Some(active.slot),
                dry_run: true,
            },
        )?;
        out.line(format!("dry run: would {action}: {consequence}"))?;
        return Ok(Outcome::Ok);
    }
    confirm(Consent::from_flag(args.yes), &action, &consequence)?;
    projection.reset().await?;
    out.record(
        "projection_reset",
        &ResetLine {
            projection: &args.name,
            slot: Some(active.slot),
            dry_run: false,
        },
    )?;
    out.line(format!(
        "reset {} (slot {}); running projectors rebuild it from the first event",
        args.name, active.slot
    ))?;
    Ok(Outcome::Ok)
}
