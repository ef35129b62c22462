//! `rebuild`: blue/green by default, in place on request; a progress bar on a terminal,
//! plain progress lines otherwise, nothing but the result with `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use foldline::{Checkpoint, ManagedStore, ProjectorProgress, ProjectorState, RebuildMode, SlotId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;

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
    seconds: f64,
    dry_run: bool,
}

/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &RebuildArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    let overview = projection.overview().await?;
    let total = Checkpoint::START.distance_to(&overview.head);
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
    let was_paused = overview.paused;
    if args.in_place && !was_paused {
        projection.pause().await?;
    }
    let rebuilt = rebuild(projection, mode, &mut progress).await;
    // Resume even when the rebuild failed: the operator did not ask for a pause.
    let resumed = if args.in_place && !was_paused {
        projection.resume().await
    } else {
        Ok(())
    };
    progress.finish();
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
            applied: progress.applied,
            seconds: (seconds * 1000.0).round() / 1000.0,
            dry_run: false,
        },
    )?;
    out.line(format!(
        "rebuilt {} into slot {} (version {}): {} events in {seconds:.1} s",
        args.name, slot.slot, slot.version, progress.applied
    ))?;
    Ok(Outcome::Ok)
}

async fn rebuild(
    projection: &dyn ManagedProjection,
    mode: RebuildMode,
    progress: &mut Progress,
) -> foldline::Result<foldline::SlotInfo> {
    projection
        .rebuild(mode, Box::new(|p: &ProjectorProgress| progress.update(p)))
        .await
}

/// Shows a rebuild's progress on stderr: a bar with rate and ETA on a terminal, a line every
/// few seconds otherwise, nothing with `--json`.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    applied: u64,
    last_line: Instant,
    /// Since when events count (after any wait for the slot's lease), and how many had been
    /// handled then: the rate is this run's, not the resumed slot's.
    counting: Option<(Instant, u64)>,
}

impl Progress {
    fn new(json: bool, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!json && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // `{per_sec}` prints four decimals; whole events per second read better.
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events, {rate}, ETA {eta} {msg}",
            )
            .map(|style| {
                style.with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} events/s", state.per_sec());
                })
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            plain: !json && !terminal,
            total,
            applied: 0,
            last_line: Instant::now(),
            counting: None,
        }
    }

    fn update(&mut self, progress: &ProjectorProgress) {
        self.applied = progress.applied + progress.skipped;
        // Standing by, the progress has not read the slot's checkpoint yet: say what it waits
        // for instead of a count of 0 (a resumed rebuild may be far along).
        let waiting = progress.state == ProjectorState::Standby;
        let done = Checkpoint::START.distance_to(&progress.checkpoint);
        if !waiting && self.counting.is_none() {
            self.counting = Some((Instant::now(), self.applied));
            self.last_line = Instant::now();
            if let Some(bar) = &self.bar {
                bar.set_position(done);
                bar.reset_eta();
            }
        }
        if let Some(bar) = &self.bar {
            if waiting {
                bar.set_message(format!("waiting for the lease on slot {}", progress.slot));
            } else {
                bar.set_message("");
                bar.set_length(self.total.max(done));
                bar.set_position(done);
            }
        } else if self.plain && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            let line = match self.counting {
                Some((since, at_start)) if !waiting => {
                    let rate = self.applied.saturating_sub(at_start) as f64
                        / since.elapsed().as_secs_f64().max(0.001);
                    format!(
                        "rebuilding: slot {}: {done}/{} events, {rate:.0} events/s",
                        progress.slot, self.total
                    )
                }
                _ => format!(
                    "rebuilding: waiting for the lease on slot {}: another process holds it \
                     (a stopped one's lease runs out on its own)",
                    progress.slot
                ),
            };
            #[expect(
                clippy::print_stderr,
                reason = "progress lines go to stderr, results to stdout"
            )]
            {
                eprintln!("{line}");
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
