//! `status`: how far each projection has got, and what holds the feed back.

use std::time::UNIX_EPOCH;

use std::time::Duration;

use foldline::{FeedHolder, ManagedStore, ProjectionOverview, ProjectorState, SlotId, error_chain};
use serde::Serialize;

use crate::Admin;
use crate::cli::StatusArgs;
use crate::error::{AdminError, Outcome};
use crate::output::{Output, terminal_safe};

/// One `projection_status` JSON line.
#[derive(Serialize)]
struct StatusLine {
    projection: String,
    code_version: u32,
    active_slot: Option<SlotId>,
    active_version: Option<u32>,
    building_slot: Option<SlotId>,
    building_checkpoint: Option<String>,
    building_lag_events: Option<u64>,
    state: String,
    paused: bool,
    checkpoint: Option<String>,
    head: String,
    lag_events: u64,
    lag_seconds: f64,
    dead_letters: usize,
    owner: Option<String>,
    reported_at: Option<f64>,
    error: Option<String>,
}

impl StatusLine {
    fn new(overview: &ProjectionOverview) -> Self {
        StatusLine {
            projection: overview.projection.to_string(),
            code_version: overview.code_version,
            active_slot: overview.active.as_ref().map(|s| s.slot),
            active_version: overview.active.as_ref().map(|s| s.version),
            building_slot: overview.building.as_ref().map(|(slot, _)| slot.slot),
            building_checkpoint: overview.building.as_ref().map(|(_, c)| c.to_string()),
            building_lag_events: overview
                .building
                .as_ref()
                .map(|(_, c)| c.distance_to(&overview.head)),
            state: overview.state.to_string(),
            paused: overview.paused,
            checkpoint: overview.checkpoint.as_ref().map(ToString::to_string),
            head: overview.head.to_string(),
            lag_events: overview.lag_events,
            lag_seconds: (overview.lag_seconds * 1000.0).round() / 1000.0,
            dead_letters: overview.dead_letters,
            owner: overview.heartbeat.as_ref().map(|s| s.owner.clone()),
            reported_at: overview.heartbeat.as_ref().and_then(|s| {
                s.at.duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64())
            }),
            error: overview.heartbeat.as_ref().and_then(|s| s.error.clone()),
        }
    }
}

/// Holders open at least this long are worth naming (shorter ones are ordinary appends).
const HOLDER_MIN_AGE: Duration = Duration::from_secs(1);

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &StatusArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projections: Vec<_> = match &args.name {
        Some(name) => vec![admin.projection(name)?],
        None => admin.projections().collect(),
    };
    // One unreachable target does not hide the others: its row says why, and the command
    // fails (exit 2) once everything readable is shown. Rows keep the registration order.
    let mut entries: Vec<Result<ProjectionOverview, Unreadable>> =
        Vec::with_capacity(projections.len());
    for projection in projections {
        entries.push(projection.overview().await.map_err(|error| Unreadable {
            projection: projection.name().to_string(),
            code_version: projection.version(),
            error,
        }));
    }
    let holders: Vec<FeedHolder> = admin
        .store()
        .feed_holders()
        .await?
        .into_iter()
        .filter(|h| h.age >= HOLDER_MIN_AGE)
        .collect();

    for entry in &entries {
        match entry {
            Ok(overview) => out.record("projection_status", &StatusLine::new(overview))?,
            Err(failed) => out.record("projection_unreadable", &failed.line())?,
        }
    }
    for holder in &holders {
        out.record("feed_holder", holder)?;
    }
    out.line(format!("store: {}", admin.store().describe()))?;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| match entry {
            Ok(overview) => human_row(&StatusLine::new(overview)),
            Err(failed) => failed.human_row(),
        })
        .collect();
    out.table(
        &[
            "PROJECTION",
            "VERSION",
            "SLOT",
            "STATE",
            "CHECKPOINT",
            "HEAD",
            "LAG",
            "LAG (s)",
            "DEAD LETTERS",
        ],
        &rows,
    )?;
    for overview in entries.iter().flatten() {
        if let Some(error) = overview.heartbeat.as_ref().and_then(|s| s.error.as_deref()) {
            out.line(format!("{} failed: {error}", overview.projection))?;
        }
    }
    for failed in entries.iter().filter_map(|entry| entry.as_ref().err()) {
        out.line(format!(
            "{}: cannot read its state: {}",
            failed.projection,
            error_chain(&failed.error, ": ")
        ))?;
    }
    if !holders.is_empty() {
        out.line("")?;
        out.line("the feed is held back by open transactions (end or terminate them):")?;
        let rows: Vec<Vec<String>> = holders.iter().map(holder_row).collect();
        out.table(
            &["PID", "XID", "OPEN (s)", "STATE", "APPLICATION", "QUERY"],
            &rows,
        )?;
    }

    let failures: Vec<String> = if args.check {
        entries
            .iter()
            .flatten()
            .filter_map(|overview| check(overview, args))
            .collect()
    } else {
        Vec::new()
    };
    let mut unreadable = entries.into_iter().filter_map(Result::err);
    if let Some(first) = unreadable.next() {
        let names: Vec<String> = std::iter::once(first.projection)
            .chain(unreadable.map(|u| u.projection))
            .collect();
        return Err(AdminError::UnreadableProjections {
            names: names.join(", "),
            source: first.error,
        });
    }
    for failure in &failures {
        // Why the exit code is 1, for whoever reads the logs of the job that ran the check.
        #[expect(
            clippy::print_stderr,
            reason = "a failed check is reported on stderr, the status on stdout"
        )]
        {
            eprintln!("check failed: {}", terminal_safe(failure));
        }
    }
    Ok(if failures.is_empty() {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

/// A projection whose state could not be read.
struct Unreadable {
    projection: String,
    code_version: u32,
    error: foldline::Error,
}

/// One `projection_unreadable` JSON line.
#[derive(Serialize)]
struct UnreadableLine<'a> {
    projection: &'a str,
    code_version: u32,
    error: String,
}

impl Unreadable {
    fn line(&self) -> UnreadableLine<'_> {
        UnreadableLine {
            projection: &self.projection,
            code_version: self.code_version,
            error: error_chain(&self.error, ": "),
        }
    }

    fn human_row(&self) -> Vec<String> {
        let mut row = vec![
            self.projection.clone(),
            self.code_version.to_string(),
            "?".to_owned(),
            "unreadable".to_owned(),
        ];
        row.resize(9, "?".to_owned());
        row
    }
}

/// Why `overview` fails `status --check`, if it does.
fn check(overview: &ProjectionOverview, args: &StatusArgs) -> Option<String> {
    let name = &overview.projection;
    if overview.state == ProjectorState::Failed {
        return Some(format!("`{name}` failed"));
    }
    if overview.lag_events > args.max_lag {
        return Some(format!(
            "`{name}` lags {} events (--max-lag {})",
            overview.lag_events, args.max_lag
        ));
    }
    args.max_lag_seconds
        .filter(|max| overview.lag_seconds > *max)
        .map(|max| {
            format!(
                "`{name}` lags {:.1} s (--max-lag-seconds {max})",
                overview.lag_seconds
            )
        })
}

fn human_row(line: &StatusLine) -> Vec<String> {
    let slot = match (line.active_slot, line.active_version, line.building_slot) {
        (Some(slot), Some(version), None) => format!("{slot} (v{version})"),
        (Some(slot), Some(version), Some(building)) => format!(
            "{slot} (v{version}), building {building} ({} to go)",
            line.building_lag_events.unwrap_or_default()
        ),
        (_, _, Some(building)) => format!(
            "building {building} ({} to go)",
            line.building_lag_events.unwrap_or_default()
        ),
        _ => "-".to_owned(),
    };
    let state = if line.paused && line.state != "paused" {
        format!("{} (paused)", line.state)
    } else {
        line.state.clone()
    };
    vec![
        line.projection.clone(),
        line.code_version.to_string(),
        slot,
        state,
        line.checkpoint.clone().unwrap_or_else(|| "-".to_owned()),
        line.head.clone(),
        line.lag_events.to_string(),
        format!("{:.1}", line.lag_seconds),
        line.dead_letters.to_string(),
    ]
}

fn holder_row(holder: &FeedHolder) -> Vec<String> {
    let query: String = holder
        .query
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(60)
        .collect();
    vec![
        holder
            .pid
            .map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
        holder.xid.map_or_else(|| "-".to_owned(), |x| x.to_string()),
        format!("{:.1}", holder.age.as_secs_f64()),
        holder.state.clone().unwrap_or_default(),
        holder.application_name.clone().unwrap_or_default(),
        query,
    ]
}
