//! `status`: how far each projection has got, how the process managers' instances stand, and
//! what holds the feed back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldline::{
    Checkpoint, FeedHolder, FeedHolderKind, HeldFeed, ManagedStore, ProjectionOverview,
    ProjectorState, SlotId, error_chain,
};
use serde::Serialize;

use super::inspect::{Precision, rfc3339};
use super::processes::{count, until};
use crate::Admin;
use crate::cli::StatusArgs;
use crate::error::{AdminError, Outcome};
use crate::output::{Output, terminal_safe};
use crate::process::{InstanceState, ManagedProcess};

/// The most instances of one process manager `status` looks at to count them by state.
const COUNTED_INSTANCES: usize = 1_000;

/// One `projection_status` JSON line.
#[derive(Serialize)]
struct StatusLine {
    projection: String,
    /// `process_manager` for the projector of a registered process manager (its name is the
    /// process manager's), else `projection`.
    kind: &'static str,
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
    /// `lag_events` per partition of the head, where it has several (Kafka): one partition
    /// far behind shows even when the total is small.
    #[serde(skip_serializing_if = "Option::is_none")]
    lag_by_partition: Option<Vec<PartitionLag>>,
    waiting_events: u64,
    lag_seconds: f64,
    dead_letters: usize,
    owner: Option<String>,
    reported_at: Option<f64>,
    error: Option<String>,
}

/// One partition's lag in a `projection_status` line.
#[derive(Serialize)]
struct PartitionLag {
    partition: u32,
    lag_events: u64,
}

/// The lag of a slot at `checkpoint` (none: nothing applied) in each partition of `head`,
/// when the head has several.
fn lag_by_partition(
    checkpoint: Option<&Checkpoint>,
    head: &Checkpoint,
) -> Option<Vec<PartitionLag>> {
    if head.positions().len() < 2 {
        return None;
    }
    Some(
        checkpoint
            .unwrap_or(&Checkpoint::START)
            .distance_by_partition(head)
            .into_iter()
            .map(|(partition, lag_events)| PartitionLag {
                partition,
                lag_events,
            })
            .collect(),
    )
}

impl StatusLine {
    /// `overview`'s line, with `waiting_events` committed events behind the feed's holders.
    fn new(overview: &ProjectionOverview, waiting_events: u64, kind: &'static str) -> Self {
        StatusLine {
            projection: overview.projection.to_string(),
            kind,
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
            lag_by_partition: lag_by_partition(overview.checkpoint.as_ref(), &overview.head),
            waiting_events,
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

/// The one `feed` JSON line: whether the feed is held back, and how much waits behind it.
#[derive(Serialize)]
struct FeedLine {
    held_back: bool,
    held_for_seconds: Option<f64>,
    holders: usize,
    waiting_events: u64,
}

/// The store's feed as `status` shows it: the holders worth naming, and what waits.
struct Feed {
    held: HeldFeed,
    /// The holders open for [`HOLDER_MIN_AGE`] or more, oldest first.
    shown: Vec<FeedHolder>,
}

impl Feed {
    fn new(held: HeldFeed) -> Self {
        let shown = held
            .holders
            .iter()
            .filter(|h| h.age >= HOLDER_MIN_AGE)
            .cloned()
            .collect();
        Feed { held, shown }
    }

    /// Whether the feed is held back by a holder worth naming (not only ordinary appends).
    fn held_back(&self) -> bool {
        !self.shown.is_empty()
    }

    fn line(&self) -> FeedLine {
        FeedLine {
            held_back: self.held_back(),
            held_for_seconds: self
                .held
                .held_for
                .filter(|_| self.held_back())
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            holders: self.shown.len(),
            waiting_events: self.held.waiting_events,
        }
    }

    /// `feed held back for 3h12m by 1 transaction; 51 committed events waiting`.
    fn summary(&self) -> Option<String> {
        if !self.held_back() {
            return None;
        }
        let prepared = self
            .shown
            .iter()
            .filter(|h| h.kind == FeedHolderKind::PreparedTransaction)
            .count();
        let count = self.shown.len();
        let by = match (count, prepared) {
            (1, 1) => "1 prepared transaction".to_owned(),
            (1, _) => "1 transaction".to_owned(),
            (n, 0) => format!("{n} transactions"),
            (n, p) => format!("{n} transactions ({p} prepared)"),
        };
        let waiting = match self.held.waiting_events {
            1 => "1 committed event waiting".to_owned(),
            n => format!("{n} committed events waiting"),
        };
        Some(format!(
            "feed held back for {} by {by}; {waiting}",
            human_duration(self.held.held_for.unwrap_or_default())
        ))
    }

    /// Why the feed fails `status --check`, if it does: held back longer than
    /// `--max-held-seconds`.
    fn check(&self, args: &StatusArgs) -> Option<String> {
        let held_for = self.held.held_for?;
        if held_for.as_secs_f64() <= args.max_held_seconds {
            return None;
        }
        let oldest = self
            .held
            .holders
            .first()
            .map_or_else(String::new, |oldest| {
                let others = self.held.holders.len() - 1;
                let more = match others {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                format!(" by {}{more}", describe(oldest))
            });
        Some(format!(
            "the feed has been held back for {:.1} s (--max-held-seconds {}){oldest}; {} \
             committed events waiting",
            held_for.as_secs_f64(),
            args.max_held_seconds,
            self.held.waiting_events
        ))
    }
}

/// A holder in a few words, for a failed check: `pid 8832 (idle in transaction)`,
/// `prepared transaction 'gid'`, `a transaction on partition 2 of `bank.events` (stable
/// offset 17)`.
fn describe(holder: &FeedHolder) -> String {
    if let (FeedHolderKind::PartitionTransaction, Some(topic), Some(partition)) =
        (holder.kind, &holder.topic, holder.partition)
    {
        let at = holder
            .stable_offset
            .map_or_else(String::new, |offset| format!(" (stable offset {offset})"));
        return format!("a transaction on partition {partition} of `{topic}`{at}");
    }
    match (holder.kind, &holder.gid, holder.pid) {
        (FeedHolderKind::PreparedTransaction, Some(gid), _) => {
            format!("prepared transaction '{gid}'")
        }
        (_, _, Some(pid)) => match &holder.state {
            Some(state) => format!("pid {pid} ({state})"),
            None => format!("pid {pid}"),
        },
        _ => "a transaction".to_owned(),
    }
}

/// `45s`, `2m05s`, `3h12m`, `2d04h`: how long, to the unit people read it in.
pub(super) fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &StatusArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let processes: Vec<&dyn ManagedProcess> = admin
        .processes()
        .filter(|p| args.name.as_deref().is_none_or(|name| p.name() == name))
        .collect();
    let projections: Vec<_> = match &args.name {
        // A process manager whose projector is not registered has no projection row.
        Some(name) => match admin.projection(name) {
            Ok(projection) => vec![projection],
            Err(_) if !processes.is_empty() => Vec::new(),
            Err(unknown) => return Err(unknown),
        },
        None => admin.projections().collect(),
    };
    let kind = |name: &str| {
        if admin.processes().any(|p| p.name() == name) {
            "process_manager"
        } else {
            "projection"
        }
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
    let feed = Feed::new(admin.store().feed_held_back().await?);
    let waiting = feed.held.waiting_events;

    for entry in &entries {
        match entry {
            Ok(overview) => {
                let line = StatusLine::new(overview, waiting, kind(overview.projection.as_str()));
                out.record("projection_status", &line)?;
            }
            Err(failed) => out.record("projection_unreadable", &failed.line())?,
        }
    }
    out.record("feed", &feed.line())?;
    for holder in &feed.shown {
        out.record("feed_holder", holder)?;
    }
    out.line(format!("store: {}", admin.store().describe()))?;
    // Above the table: every projection's lag leaves these events out, however small it is.
    if let Some(summary) = feed.summary() {
        out.line(summary)?;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| match entry {
            Ok(overview) => human_row(&StatusLine::new(overview, waiting, "")),
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
            "WAITING",
            "LAG (s)",
            "DEAD LETTERS",
        ],
        &rows,
    )?;
    for overview in entries.iter().flatten() {
        if let Some(line) = partition_lag_line(overview) {
            out.line(line)?;
        }
    }
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
    let mut process_failures = Vec::new();
    let mut process_rows = Vec::new();
    for process in &processes {
        let registered = admin.projection(process.name()).is_ok();
        match ProcessLine::read(admin.store(), *process, registered).await {
            Ok((line, row)) => {
                out.record("process_status", &line)?;
                process_rows.push((row, line.counted_all, line.instances));
            }
            Err(error) => {
                out.record(
                    "process_unreadable",
                    &ProcessUnreadableLine {
                        process: process.name(),
                        error: error_chain(&error, ": "),
                    },
                )?;
                process_failures.push((process.name(), error));
            }
        }
    }
    if !processes.is_empty() {
        out.line("")?;
        out.line("process managers (each one's projector is the row of the same name above):")?;
        let mut rows: Vec<Vec<String>> = process_rows.iter().map(|(row, ..)| row.clone()).collect();
        rows.extend(process_failures.iter().map(|(name, _)| {
            let mut row = vec![(*name).to_owned()];
            row.resize(6, "?".to_owned());
            row
        }));
        out.table(
            &[
                "PROCESS",
                "RUNNING",
                "WAITING",
                "COMPLETED",
                "FAILED",
                "NEXT TIMER",
            ],
            &rows,
        )?;
        for (row, all, counted) in &process_rows {
            if !all {
                out.line(format!(
                    "{}: counted its first {counted} instances only; `processes list --process {} \
                     --state failed` lists every failed one",
                    row[0], row[0]
                ))?;
            }
        }
        for (name, error) in &process_failures {
            out.line(format!(
                "{name}: cannot count its instances: {}",
                error_chain(error, ": ")
            ))?;
        }
    }
    let (partitions, transactions): (Vec<&FeedHolder>, Vec<&FeedHolder>) = feed
        .shown
        .iter()
        .partition(|h| h.kind == FeedHolderKind::PartitionTransaction);
    let (prepared, sessions): (Vec<&FeedHolder>, Vec<&FeedHolder>) = transactions
        .into_iter()
        .partition(|h| h.kind == FeedHolderKind::PreparedTransaction);
    if !sessions.is_empty() {
        out.line("")?;
        out.line("the feed is held back by open transactions (end or terminate them):")?;
        let rows: Vec<Vec<String>> = sessions.into_iter().map(holder_row).collect();
        out.table(
            &["PID", "XID", "OPEN (s)", "STATE", "APPLICATION", "QUERY"],
            &rows,
        )?;
    }
    if !prepared.is_empty() {
        out.line("")?;
        out.line(
            "the feed is held back by prepared transactions (COMMIT PREPARED or ROLLBACK \
             PREPARED them):",
        )?;
        let rows: Vec<Vec<String>> = prepared.into_iter().map(prepared_row).collect();
        out.table(&["GID", "XID", "PREPARED (s)", "OWNER", "DATABASE"], &rows)?;
    }
    if !partitions.is_empty() {
        out.line("")?;
        out.line(
            "the feed is held back by open Kafka transactions (their producers commit or abort \
             them; the broker aborts them after their transaction.timeout.ms):",
        )?;
        let rows: Vec<Vec<String>> = partitions.into_iter().map(partition_row).collect();
        out.table(
            &[
                "TOPIC",
                "PARTITION",
                "STABLE OFFSET",
                "HIGH WATERMARK",
                "OPEN (s)",
            ],
            &rows,
        )?;
    }

    let failures: Vec<String> = if args.check {
        entries
            .iter()
            .flatten()
            .filter_map(|overview| check(overview, args))
            .chain(feed.check(args))
            .collect()
    } else {
        Vec::new()
    };
    let mut unreadable = entries
        .into_iter()
        .filter_map(Result::err)
        .map(|u| (u.projection, u.error))
        .chain(
            process_failures
                .into_iter()
                .map(|(name, error)| (format!("process manager {name}"), error)),
        );
    if let Some((first, error)) = unreadable.next() {
        let names: Vec<String> = std::iter::once(first)
            .chain(unreadable.map(|(name, _)| name))
            .collect();
        return Err(AdminError::UnreadableProjections {
            names: names.join(", "),
            source: error,
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

/// One `process_status` JSON line: a process manager's instances by state.
#[derive(Serialize)]
struct ProcessLine {
    process: &'static str,
    /// Whether its projector is registered as a projection (then a `projection_status` line
    /// of the same name reports it).
    projection_registered: bool,
    /// How many instances were counted.
    instances: u64,
    /// Whether that is all of them (`status` counts the first 1000 at the most).
    counted_all: bool,
    running: u64,
    waiting: u64,
    completed: u64,
    failed: u64,
    /// When its earliest timer is due.
    next_timer_due: Option<String>,
}

/// One `process_unreadable` JSON line.
#[derive(Serialize)]
struct ProcessUnreadableLine<'a> {
    process: &'a str,
    error: String,
}

impl ProcessLine {
    /// `process`'s line and its human row.
    async fn read<S: ManagedStore>(
        store: &S,
        process: &dyn ManagedProcess,
        projection_registered: bool,
    ) -> foldline::Result<(Self, Vec<String>)> {
        let (counts, instances, counted_all) = count(store, process, COUNTED_INSTANCES).await?;
        let next_due = process.next_due().await?;
        let of = |state| {
            counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let line = ProcessLine {
            process: process.name(),
            projection_registered,
            instances,
            counted_all,
            running: of(InstanceState::Running),
            waiting: of(InstanceState::Waiting),
            completed: of(InstanceState::Completed),
            failed: of(InstanceState::Failed),
            next_timer_due: next_due.map(|due| rfc3339(due, Precision::Millis)),
        };
        let plus = if counted_all { "" } else { "+" };
        let mut row = vec![process.name().to_owned()];
        row.extend(
            [line.running, line.waiting, line.completed, line.failed]
                .iter()
                .map(|n| format!("{n}{plus}")),
        );
        row.push(next_due.map_or_else(
            || "-".to_owned(),
            |due| {
                format!(
                    "{} ({})",
                    rfc3339(due, Precision::Millis),
                    until(due, SystemTime::now())
                )
            },
        ));
        Ok((line, row))
    }
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
        row.resize(10, "?".to_owned());
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
        line.waiting_events.to_string(),
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

fn prepared_row(holder: &FeedHolder) -> Vec<String> {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    vec![
        or_dash(&holder.gid),
        holder.xid.map_or_else(|| "-".to_owned(), |x| x.to_string()),
        format!("{:.1}", holder.age.as_secs_f64()),
        or_dash(&holder.owner),
        or_dash(&holder.database),
    ]
}

/// `balances lags by partition: 0: 3, 2: 5` (the partitions behind, under the table), for a
/// projection that lags on a head of several partitions.
fn partition_lag_line(overview: &ProjectionOverview) -> Option<String> {
    let lags = lag_by_partition(overview.checkpoint.as_ref(), &overview.head)?;
    let behind: Vec<String> = lags
        .iter()
        .filter(|lag| lag.lag_events > 0)
        .map(|lag| format!("{}: {}", lag.partition, lag.lag_events))
        .collect();
    (!behind.is_empty()).then(|| {
        format!(
            "{} lags by partition: {}",
            overview.projection,
            behind.join(", ")
        )
    })
}

fn partition_row(holder: &FeedHolder) -> Vec<String> {
    let or_dash = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    vec![
        holder.topic.clone().unwrap_or_else(|| "-".to_owned()),
        or_dash(holder.partition.map(u64::from)),
        or_dash(holder.stable_offset),
        or_dash(holder.high_watermark),
        format!("{:.1}", holder.age.as_secs_f64()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max_held_seconds: f64) -> StatusArgs {
        StatusArgs {
            name: None,
            check: true,
            max_lag: 1000,
            max_lag_seconds: None,
            max_held_seconds,
        }
    }

    #[test]
    fn durations_read_in_the_largest_units() {
        let read = |secs| human_duration(Duration::from_secs(secs));
        assert_eq!(read(0), "0s");
        assert_eq!(read(45), "45s");
        assert_eq!(read(125), "2m05s");
        assert_eq!(read(3 * 3600 + 12 * 60 + 59), "3h12m");
        assert_eq!(read(2 * 86_400 + 4 * 3600 + 1), "2d04h");
    }

    #[test]
    fn a_feed_held_past_the_limit_fails_the_check_and_names_the_oldest_holder() {
        let feed = Feed::new(HeldFeed::new(
            vec![
                FeedHolder::new(Duration::from_secs(2)).with_pid(7),
                FeedHolder::prepared("tx-9", Duration::from_secs(11_520)),
                FeedHolder::new(Duration::from_millis(10)).with_pid(8),
            ],
            51,
        ));
        assert_eq!(
            feed.summary().as_deref(),
            Some(
                "feed held back for 3h12m by 2 transactions (1 prepared); 51 committed events waiting"
            )
        );
        let line = feed.line();
        assert!(line.held_back);
        assert_eq!(line.holders, 2, "the ordinary append (10 ms) is not named");
        assert_eq!(line.held_for_seconds, Some(11_520.0));
        assert_eq!(line.waiting_events, 51);
        assert_eq!(
            feed.check(&args(300.0)).as_deref(),
            Some(
                "the feed has been held back for 11520.0 s (--max-held-seconds 300) by prepared \
                 transaction 'tx-9' and 2 more; 51 committed events waiting"
            )
        );
        assert_eq!(feed.check(&args(20_000.0)), None);
    }

    #[test]
    fn lag_is_shown_per_partition_only_where_the_head_has_several() {
        let single: Checkpoint = "0:742:17".parse().unwrap();
        assert!(lag_by_partition(None, &single).is_none());
        let head: Checkpoint = "0:9:0,1:4:0,2:0:0".parse().unwrap();
        let read: Checkpoint = "0:9:0,1:1:0".parse().unwrap();
        let lags = lag_by_partition(Some(&read), &head).unwrap();
        let lags: Vec<(u32, u64)> = lags.iter().map(|l| (l.partition, l.lag_events)).collect();
        assert_eq!(lags, [(0, 0), (1, 3), (2, 1)]);
        let json = serde_json::to_value(lag_by_partition(None, &head)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"partition": 0, "lag_events": 10},
                {"partition": 1, "lag_events": 5},
                {"partition": 2, "lag_events": 1},
            ])
        );
    }

    #[test]
    fn a_kafka_transaction_past_the_limit_is_named_by_its_partition() {
        let feed = Feed::new(HeldFeed::new(
            vec![FeedHolder::partition_transaction(
                "bank.events",
                2,
                17,
                20,
                Duration::from_secs(400),
            )],
            3,
        ));
        assert_eq!(
            feed.check(&args(300.0)).as_deref(),
            Some(
                "the feed has been held back for 400.0 s (--max-held-seconds 300) by a \
                 transaction on partition 2 of `bank.events` (stable offset 17); 3 committed \
                 events waiting"
            )
        );
        assert_eq!(
            partition_row(&feed.shown[0]),
            ["bank.events", "2", "17", "20", "400.0"]
        );
    }

    #[test]
    fn ordinary_appends_hold_nothing_worth_a_line_but_their_waiting_events_show() {
        let feed = Feed::new(HeldFeed::new(
            vec![FeedHolder::new(Duration::from_millis(30)).with_pid(7)],
            3,
        ));
        assert_eq!(feed.summary(), None);
        let line = feed.line();
        assert!(!line.held_back);
        assert_eq!(line.held_for_seconds, None);
        assert_eq!(line.waiting_events, 3);
        assert_eq!(feed.check(&args(300.0)), None);
        assert_eq!(Feed::new(HeldFeed::default()).check(&args(0.0)), None);
    }
}
