//! `processes list|show|retry`: the instances of the registered process managers.
//!
//! An instance is named by its stream, `{process}-{id}` (process managers' names hold no `-`),
//! so one name works across every registered process manager. Its instances are the streams
//! with that prefix, which [`ManagedStore::streams`] lists in order.

use std::time::{Duration, SystemTime};

use foldline::{ActionReport, CommandFate, ManagedStore, Retried, StreamId, TimeoutFate};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::inspect::{Precision, check_limit, rfc3339};
use super::status::human_duration;
use super::trace::cut;
use crate::Admin;
use crate::cli::{InstanceArgs, ProcessListArgs};
use crate::error::{AdminError, Outcome};
use crate::output::Output;
use crate::process::{ActionView, DecisionView, InstanceState, InstanceSummary, ManagedProcess};

/// Streams read per round trip while looking for a process manager's instances.
const STREAM_PAGE: usize = 500;

/// Characters of an input or a command shown in a human line before it is cut with `…`.
const JSON_WIDTH: usize = 100;

/// One `process_instance` JSON line.
#[derive(Serialize)]
pub(super) struct InstanceLine<'a> {
    process: &'a str,
    instance: &'a str,
    /// The instance's id: its stream without the `{process}-` prefix.
    id: &'a str,
    state: InstanceState,
    reason: Option<&'a str>,
    decisions: u64,
    pending_timeouts: usize,
    next_due: Option<String>,
}

impl<'a> InstanceLine<'a> {
    pub(super) fn new(summary: &'a InstanceSummary) -> Self {
        let instance = summary.stream.as_str();
        InstanceLine {
            process: summary.process,
            instance,
            id: instance
                .strip_prefix(summary.process)
                .and_then(|rest| rest.strip_prefix('-'))
                .unwrap_or(instance),
            state: summary.state,
            reason: summary.reason.as_deref(),
            decisions: summary.decisions,
            pending_timeouts: summary.pending_timeouts,
            next_due: summary.next_due.map(|due| rfc3339(due, Precision::Millis)),
        }
    }
}

/// One `process_decision` JSON line.
#[derive(Serialize)]
struct DecisionLine<'a> {
    instance: &'a str,
    version: u64,
    event_id: Uuid,
    recorded_at: String,
    correlation_id: Option<Uuid>,
    input_id: Uuid,
    input_kind: &'a str,
    input: &'a Value,
    actions: Vec<Value>,
}

/// One `process_timer` JSON line.
#[derive(Serialize)]
struct TimerLine<'a> {
    instance: &'a str,
    timer_id: Uuid,
    timeout: &'a Value,
    due_at: String,
}

/// The one `process_retried` JSON line.
#[derive(Serialize)]
struct RetriedLine<'a> {
    instance: &'a str,
    decisions: usize,
    applied_before: usize,
    refused_before: usize,
    accepted: usize,
    refused: usize,
    timers_scheduled: usize,
    timers_removed: usize,
    /// The instance's state afterwards.
    state: InstanceState,
}

pub(crate) async fn list<S: ManagedStore>(
    admin: &Admin<S>,
    args: &ProcessListArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    check_limit(args.limit)?;
    let mut processes: Vec<&dyn ManagedProcess> = match &args.process {
        Some(name) => vec![admin.process(name)?],
        None => admin.processes().collect(),
    };
    if processes.is_empty() {
        out.line("no process managers are registered")?;
        return Ok(Outcome::Ok);
    }
    // `--after`: resume in its process manager, after it; the ones registered before it are
    // done.
    let after = match &args.after {
        Some(text) => {
            let (process, stream) = instance(admin, text, "--after")?;
            let at = processes
                .iter()
                .position(|p| p.name() == process.name())
                .ok_or_else(|| {
                    AdminError::Usage(format!(
                        "--after {text} is an instance of `{}`, not of --process",
                        process.name()
                    ))
                })?;
            processes.drain(..at);
            Some(stream)
        }
        None => None,
    };
    let mut shown: Vec<InstanceSummary> = Vec::new();
    let mut full = false;
    'processes: for (i, process) in processes.iter().enumerate() {
        let from = after.clone().filter(|_| i == 0);
        let mut instances = Instances::new(*process, from)?;
        while let Some(stream) = instances.next(admin.store()).await? {
            let summary = process.summary(&stream).await?;
            if args.state.is_none_or(|state| state == summary.state) {
                shown.push(summary);
                if shown.len() == args.limit {
                    full = true;
                    break 'processes;
                }
            }
        }
    }
    for summary in &shown {
        out.record("process_instance", &InstanceLine::new(summary))?;
    }
    if shown.is_empty() {
        out.line(match args.state {
            Some(state) => format!("no {} instances", state.name()),
            None => "no instances".to_owned(),
        })?;
        return Ok(Outcome::Ok);
    }
    let now = SystemTime::now();
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|s| {
            vec![
                s.stream.to_string(),
                s.state.name().to_owned(),
                s.decisions.to_string(),
                next_timer(s, now),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(
        &["INSTANCE", "STATE", "DECISIONS", "NEXT TIMER", "REASON"],
        &rows,
    )?;
    if let Some(last) = shown.last().filter(|_| full) {
        out.line(format!(
            "more may follow: next page with `processes list --after {}`",
            last.stream
        ))?;
    }
    Ok(Outcome::Ok)
}

pub(crate) async fn show<S: ManagedStore>(
    admin: &Admin<S>,
    args: &InstanceArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let (process, stream) = instance(admin, &args.instance, "INSTANCE")?;
    let view = process.inspect(&stream).await?;
    if view.decisions.is_empty() {
        return Err(no_such_instance(&stream));
    }
    let summary = &view.summary;
    out.record("process_instance", &InstanceLine::new(summary))?;
    for decision in &view.decisions {
        out.record(
            "process_decision",
            &DecisionLine {
                instance: stream.as_str(),
                version: decision.version,
                event_id: decision.event_id,
                recorded_at: rfc3339(decision.recorded_at, Precision::Micros),
                correlation_id: decision.correlation_id,
                input_id: decision.input_id,
                input_kind: decision.input_kind,
                input: &decision.input,
                actions: decision
                    .actions
                    .iter()
                    .enumerate()
                    .map(|(index, action)| action_json(index, action, &view.timers))
                    .collect(),
            },
        )?;
    }
    for timer in &view.timers {
        out.record(
            "process_timer",
            &TimerLine {
                instance: stream.as_str(),
                timer_id: timer.id,
                timeout: &timer.timeout,
                due_at: rfc3339(timer.due_at, Precision::Millis),
            },
        )?;
    }

    let now = SystemTime::now();
    let state = match &summary.reason {
        Some(reason) => format!("{}: {reason}", summary.state.name()),
        None => summary.state.name().to_owned(),
    };
    out.line(format!(
        "instance {stream} of process {}: {state}",
        summary.process
    ))?;
    let pending = match summary.pending_timeouts {
        0 => "no timeout pending".to_owned(),
        n => format!(
            "{n} timeout(s) pending, next timer {}",
            next_timer(summary, now)
        ),
    };
    out.line(format!("{} decision(s); {pending}", summary.decisions))?;
    for decision in &view.decisions {
        out.line("")?;
        out.line(decision_header(decision))?;
        for action in &decision.actions {
            out.line(format!(
                "    {}",
                describe_action(action, &view.timers, now)
            ))?;
        }
    }
    out.line("")?;
    if view.timers.is_empty() {
        out.line("timers: none")?;
    } else {
        out.line("timers:")?;
        let rows: Vec<Vec<String>> = view
            .timers
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    cut(&t.timeout.to_string()),
                    format!(
                        "{} ({})",
                        rfc3339(t.due_at, Precision::Millis),
                        until(t.due_at, now)
                    ),
                ]
            })
            .collect();
        out.table(&["TIMER", "TIMEOUT", "DUE"], &rows)?;
    }
    Ok(Outcome::Ok)
}

pub(crate) async fn retry<S: ManagedStore>(
    admin: &Admin<S>,
    args: &InstanceArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let (process, stream) = instance(admin, &args.instance, "INSTANCE")?;
    if process.summary(&stream).await?.decisions == 0 {
        return Err(no_such_instance(&stream));
    }
    let retried = process.retry(&stream).await?;
    let after = process.summary(&stream).await?;
    out.record(
        "process_retried",
        &RetriedLine {
            instance: stream.as_str(),
            decisions: retried.decisions,
            applied_before: retried.applied_before,
            refused_before: retried.refused_before,
            accepted: retried.accepted,
            refused: retried.refused,
            timers_scheduled: retried.timers_scheduled,
            timers_removed: retried.timers_removed,
            state: after.state,
        },
    )?;
    out.line(format!(
        "retried {stream}: carried out its {} decision(s) again",
        retried.decisions
    ))?;
    for line in retried_lines(&retried) {
        out.line(format!("  {line}"))?;
    }
    let state = match &after.reason {
        Some(reason) => format!("{}: {reason}", after.state.name()),
        None => after.state.name().to_owned(),
    };
    out.line(format!("{stream} is now {state}"))?;
    Ok(Outcome::Ok)
}

/// The process manager of instance `text` (`{process}-{id}`), and its stream.
fn instance<'a, S: ManagedStore>(
    admin: &'a Admin<S>,
    text: &str,
    flag: &'static str,
) -> Result<(&'a dyn ManagedProcess, StreamId), AdminError> {
    let stream = StreamId::new(text).map_err(|source| AdminError::InvalidArgument {
        flag,
        expected: "an instance as `processes list` prints it: `{process}-{id}`",
        source,
    })?;
    let Some((name, _)) = text.split_once('-') else {
        return Err(AdminError::Usage(format!(
            "`{}` names no instance: expected `{{process}}-{{id}}`, as `processes list` prints it",
            foldline::Shown::new(text)
        )));
    };
    Ok((admin.process(name)?, stream))
}

fn no_such_instance(stream: &StreamId) -> AdminError {
    AdminError::NotFound(format!(
        "no instance `{stream}`: its stream holds no decision"
    ))
}

/// The streams of one process manager's instances, in order, a page at a time.
struct Instances {
    prefix: String,
    after: StreamId,
    page: std::vec::IntoIter<StreamId>,
    done: bool,
}

impl Instances {
    /// The instances of `process` after `after` (from the first when `None`).
    fn new(process: &dyn ManagedProcess, after: Option<StreamId>) -> foldline::Result<Self> {
        let prefix = format!("{}-", process.name());
        let after = match after {
            Some(after) => after,
            None => StreamId::new(prefix.clone())?,
        };
        Ok(Instances {
            prefix,
            after,
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    /// The next instance's stream; `None` after the last.
    async fn next<S: ManagedStore>(&mut self, store: &S) -> foldline::Result<Option<StreamId>> {
        loop {
            if let Some(stream) = self.page.next() {
                // Streams are ordered by id: the first without the prefix ends the instances.
                if !stream.as_str().starts_with(&self.prefix) {
                    self.done = true;
                    return Ok(None);
                }
                self.after = stream.clone();
                return Ok(Some(stream));
            }
            if self.done {
                return Ok(None);
            }
            let page = store.streams(Some(&self.after), STREAM_PAGE).await?;
            self.done = page.len() < STREAM_PAGE;
            if page.is_empty() {
                return Ok(None);
            }
            self.page = page
                .into_iter()
                .map(|(stream, _)| stream)
                .collect::<Vec<_>>()
                .into_iter();
        }
    }
}

/// Counts the instances of `process` by state, looking at `limit` of them at the most; whether
/// that was all of them.
pub(super) async fn count<S: ManagedStore>(
    store: &S,
    process: &dyn ManagedProcess,
    limit: usize,
) -> foldline::Result<(Vec<(InstanceState, u64)>, u64, bool)> {
    let mut counts: Vec<(InstanceState, u64)> =
        InstanceState::ALL.iter().map(|state| (*state, 0)).collect();
    let mut instances = Instances::new(process, None)?;
    let mut seen = 0_u64;
    while let Some(stream) = instances.next(store).await? {
        if usize::try_from(seen).unwrap_or(usize::MAX) >= limit {
            return Ok((counts, seen, false));
        }
        let summary = process.summary(&stream).await?;
        seen += 1;
        if let Some((_, n)) = counts.iter_mut().find(|(state, _)| *state == summary.state) {
            *n += 1;
        }
    }
    Ok((counts, seen, true))
}

/// `2026-05-01T09:00:00.000Z (in 59s)` for a waiting instance; `missing (retry schedules it)`
/// when no timer of its pending timeouts is stored; `-` otherwise.
fn next_timer(summary: &InstanceSummary, now: SystemTime) -> String {
    match (summary.pending_timeouts, summary.next_due) {
        (0, _) => "-".to_owned(),
        (_, Some(due)) => format!("{} ({})", rfc3339(due, Precision::Millis), until(due, now)),
        (_, None) => "missing (retry schedules it)".to_owned(),
    }
}

/// `in 59s`, or `overdue by 3s`.
pub(super) fn until(due: SystemTime, now: SystemTime) -> String {
    match due.duration_since(now) {
        Ok(ahead) => format!("in {}", human_duration(ahead)),
        Err(late) => format!("overdue by {}", human_duration(late.duration())),
    }
}

/// `#2  2026-05-01T09:00:00.123456Z  event {"Withdrawn":{…}}`.
fn decision_header(decision: &DecisionView) -> String {
    let input = match decision.input_kind {
        "refused" => format!(
            "refused {} ({})",
            cut_json(&decision.input["command"]),
            decision.input["error"].as_str().unwrap_or_default()
        ),
        kind => format!("{kind} {}", cut_json(&decision.input)),
    };
    format!(
        "#{}  {}  {input}",
        decision.version,
        rfc3339(decision.recorded_at, Precision::Millis)
    )
}

/// `send {"Deposit":{…}}: applied (account-b@3)`.
fn describe_action(action: &ActionView, timers: &[crate::TimerView], now: SystemTime) -> String {
    let what = match (action.kind, &action.value, action.after) {
        ("complete", _, _) => "complete".to_owned(),
        ("fail", Value::String(reason), _) => format!("fail: {reason}"),
        (kind, value, Some(after)) => format!("{kind} {} in {}", cut_json(value), delay(after)),
        (kind, value, None) => format!("{kind} {}", cut_json(value)),
    };
    let fate = match &action.report {
        ActionReport::Send { fate, .. } => match fate {
            CommandFate::Applied(append) => format!(
                "applied ({})",
                versions(
                    append.stream_id.as_str(),
                    append.first_version().get(),
                    append.current_version.get()
                )
            ),
            CommandFate::Refused { error, version } => {
                format!("refused: {error} (decided on in #{version})")
            }
            CommandFate::Unconfirmed => {
                "unconfirmed: neither applied nor refused (`processes retry` sends it)".to_owned()
            }
            _ => "?".to_owned(),
        },
        ActionReport::Schedule { timer_id, fate, .. } => match fate {
            TimeoutFate::Pending { stored: true } => {
                match timers.iter().find(|timer| timer.id == *timer_id) {
                    Some(timer) => format!(
                        "pending, due {} ({})",
                        rfc3339(timer.due_at, Precision::Millis),
                        until(timer.due_at, now)
                    ),
                    None => "pending".to_owned(),
                }
            }
            TimeoutFate::Pending { stored: false } => {
                "pending, but its timer is missing (`processes retry` schedules it)".to_owned()
            }
            TimeoutFate::Fired { version } => format!("fired (#{version})"),
            TimeoutFate::Cancelled { version } => format!("cancelled (#{version})"),
            TimeoutFate::Dropped { version } => {
                format!("dropped: the instance finished (#{version})")
            }
            _ => "?".to_owned(),
        },
        _ => return what,
    };
    format!("{what}: {fate}")
}

/// An action in a `process_decision` line: `index`, `kind`, `value`, `after_ms` for a
/// schedule, and `outcome`.
fn action_json(index: usize, action: &ActionView, timers: &[crate::TimerView]) -> Value {
    let outcome = match &action.report {
        ActionReport::Send { ids, fate } => {
            let mut outcome = match fate {
                CommandFate::Applied(append) => json!({
                    "status": "applied",
                    "stream": append.stream_id.as_str(),
                    "first_version": append.first_version().get(),
                    "last_version": append.current_version.get(),
                }),
                CommandFate::Refused { error, version } => json!({
                    "status": "refused", "error": error, "decided_in": version.get(),
                }),
                _ => json!({ "status": "unconfirmed" }),
            };
            outcome["idempotency_key"] = json!(ids.key.as_str());
            outcome["command_id"] = json!(ids.command_id);
            outcome
        }
        ActionReport::Schedule {
            timer_id,
            due_at,
            fate,
        } => {
            let mut outcome = match fate {
                TimeoutFate::Pending { stored } => json!({
                    "status": "pending",
                    "timer_stored": stored,
                    "due_at": timers
                        .iter()
                        .find(|timer| timer.id == *timer_id)
                        .map(|timer| rfc3339(timer.due_at, Precision::Millis)),
                }),
                TimeoutFate::Fired { version } => {
                    json!({ "status": "fired", "decided_in": version.get() })
                }
                TimeoutFate::Cancelled { version } => {
                    json!({ "status": "cancelled", "decided_in": version.get() })
                }
                TimeoutFate::Dropped { version } => {
                    json!({ "status": "dropped", "decided_in": version.get() })
                }
                _ => json!({ "status": "unknown" }),
            };
            outcome["timer_id"] = json!(timer_id);
            outcome["decided_due_at"] = json!(rfc3339(*due_at, Precision::Millis));
            outcome
        }
        _ => json!({ "status": "done" }),
    };
    let mut line = json!({
        "index": index,
        "kind": action.kind,
        "value": action.value,
        "outcome": outcome,
    });
    if let Some(after) = action.after {
        line["after_ms"] = json!(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
    }
    line
}

fn retried_lines(retried: &Retried) -> Vec<String> {
    let counted = [
        (retried.accepted, "command(s) sent again and accepted"),
        (
            retried.refused,
            "command(s) sent again and refused: the instance decided on the refusal",
        ),
        (
            retried.applied_before,
            "command(s) applied before: not sent again",
        ),
        (
            retried.refused_before,
            "command(s) refused before: not sent again",
        ),
        (retried.timers_scheduled, "missing timer(s) scheduled again"),
        (
            retried.timers_removed,
            "timer(s) of fired timeouts or a finished instance removed",
        ),
    ];
    let lines: Vec<String> = counted
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if lines.is_empty() {
        return vec!["nothing to send or schedule".to_owned()];
    }
    lines
}

/// `account-b@3`, or `account-a@3..4` for several events.
fn versions(stream: &str, first: u64, last: u64) -> String {
    if first >= last {
        format!("{stream}@{last}")
    } else {
        format!("{stream}@{first}..{last}")
    }
}

fn cut_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= JSON_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(JSON_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// A delay as written in code: `250ms`, `60s`, `5m`.
fn delay(after: Duration) -> String {
    super::trace::human_ms(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
}
