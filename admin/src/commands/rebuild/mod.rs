//! `rebuild`: blue/green by default, in place on request, with `--on-poison` to get past an
//! event the projection keeps failing on; the progress (`progress.rs`) as a bar on a
//! terminal, plain lines otherwise, nothing but the result with `--json`.

mod progress;

use std::time::Instant;

use foldline::{Checkpoint, ManagedStore, PoisonPolicy, ProjectorProgress, RebuildMode, SlotId};
use serde::Serialize;

use progress::Progress;

use crate::Admin;
use crate::cli::RebuildArgs;
use crate::confirm::{Consent, confirm};
use crate::error::{AdminError, Outcome};
use crate::output::Output;
use crate::registry::ManagedProjection;

#[derive(Serialize)]
struct RebuildLine<'a> {
    projection: &'a str,
    mode: &'static str,
    slot: Option<SlotId>,
    applied: u64,
    /// Events parked as dead letters by this rebuild (`--on-poison dead-letter`).
    dead_lettered: u64,
    seconds: f64,
    dry_run: bool,
}

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &RebuildArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    // Not the overview: it refuses a read model built from another store, which is what a
    // rebuild from this one mends.
    let head = admin.store().head().await?;
    let was_paused = projection.control().await?.paused;
    let total = Checkpoint::START.distance_to(&head);
    let (mode, mode_name) = if args.in_place {
        (RebuildMode::InPlace, "in_place")
    } else {
        (RebuildMode::BlueGreen, "blue_green")
    };
    let plan = if args.in_place {
        format!(
            "empty the active read model of `{}` and rebuild it in place from about {total} events; \
             readers see it partial until done; running projectors are paused meanwhile",
            args.name
        )
    } else {
        format!(
            "build `{}` into a new slot from about {total} events while the active one serves \
             reads, then switch to it and drop the old one (resumes an interrupted rebuild)",
            args.name
        )
    };
    if args.dry_run {
        out.record(
            "projection_rebuild",
            &RebuildLine {
                projection: &args.name,
                mode: mode_name,
                slot: None,
                applied: 0,
                dead_lettered: 0,
                seconds: 0.0,
                dry_run: true,
            },
        )?;
        out.line(format!("dry run: would {plan}"))?;
        return Ok(Outcome::Ok);
    }
    if args.in_place {
        confirm(
            Consent::from_flag(args.yes),
            &format!("rebuild `{}` in place", args.name),
            &plan,
        )?;
    }

    let started = Instant::now();
    let mut progress = Progress::new(out.is_json(), total);
    if args.in_place && !was_paused {
        projection.pause().await?;
    }
    let poison = args.on_poison.map(PoisonPolicy::from);
    let rebuilt = rebuild(projection, mode, poison, &mut progress).await;
    // Resume even when the rebuild failed: the operator did not ask for a pause.
    let resumed = if args.in_place && !was_paused {
        projection.resume().await
    } else {
        Ok(())
    };
    progress.finish(rebuilt.is_ok());
    if rebuilt.is_err()
        && let Err(error) = &resumed
    {
        // The rebuild's error is the one to report; this one must not be lost either.
        tracing::error!(
            projection = %args.name,
            error = %foldline::error_chain(error, ": "),
            "could not resume the projection after the failed rebuild: run `resume` when the \
             cause is mended"
        );
    }
    let slot = rebuilt.map_err(|error| match error {
        gone @ foldline::Error::SlotNotFound { .. } => AdminError::RebuildSlotGone {
            projection: args.name.clone(),
            source: gone,
        },
        poison @ foldline::Error::PoisonEvent(_) => AdminError::RebuildPoisoned {
            projection: args.name.clone(),
            source: poison,
        },
        other => other.into(),
    })?;
    resumed?;
    let seconds = started.elapsed().as_secs_f64();
    out.record(
        "projection_rebuild",
        &RebuildLine {
            projection: &args.name,
            mode: mode_name,
            slot: Some(slot.slot),
            applied: progress.applied(),
            dead_lettered: progress.dead_lettered(),
            seconds: (seconds * 1000.0).round() / 1000.0,
            dry_run: false,
        },
    )?;
    out.line(format!(
        "rebuilt {} into slot {} (version {}): {} events in {seconds:.1} s",
        args.name,
        slot.slot,
        slot.version,
        progress.applied()
    ))?;
    if progress.dead_lettered() > 0 {
        out.line(format!(
            "{} event(s) the projection failed on were parked: see `dead-letters list {}`",
            progress.dead_lettered(),
            args.name
        ))?;
    }
    Ok(Outcome::Ok)
}

async fn rebuild(
    projection: &dyn ManagedProjection,
    mode: RebuildMode,
    poison: Option<PoisonPolicy>,
    progress: &mut Progress,
) -> foldline::Result<foldline::SlotInfo> {
    projection
        .rebuild(
            mode,
            poison,
            Box::new(|p: &ProjectorProgress| progress.update(p)),
        )
        .await
}
