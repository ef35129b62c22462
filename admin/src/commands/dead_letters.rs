//! `dead-letters list|retry|discard`.

use serde::Serialize;
use uuid::Uuid;

use foldline::{DeadLetter, ManagedStore, UnreadableEvent};

use crate::Admin;
use crate::cli::{DeadLetterArgs, NameArgs};
use crate::confirm::{Consent, confirm};
use crate::error::{AdminError, Outcome};
use crate::output::Output;
use crate::registry::ManagedProjection;

#[derive(Serialize)]
struct LetterLine<'a> {
    projection: &'a str,
    event_id: Uuid,
    stream: &'a str,
    stream_version: u64,
    position: String,
    event_type: &'a str,
    attempts: u32,
    error: &'a str,
    parked_at: f64,
    /// For an event the store could not read whole: why, and its stored values.
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a UnreadableEvent>,
}

#[derive(Serialize)]
struct SettledLine<'a> {
    projection: &'a str,
    event_id: Uuid,
    action: &'static str,
    found: bool,
    dry_run: bool,
}

pub(crate) async fn list<S: ManagedStore>(
    admin: &Admin<S>,
    args: &NameArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    let letters = projection.dead_letters().await?;
    for letter in &letters {
        out.record("dead_letter", &line(&args.name, letter))?;
    }
    if letters.is_empty() {
        out.line(format!("{} has no dead letters", args.name))?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            // An unreadable event's stored stream id and type, not the placeholders.
            let raw = |column: &str, shown: String| {
                l.unreadable
                    .as_ref()
                    .and_then(|u| u.raw.get(column).cloned())
                    .unwrap_or(shown)
            };
            vec![
                l.event_id.to_string(),
                raw("stream_id", l.stream_id.to_string()),
                l.stream_version.to_string(),
                raw("event_type", l.event_type.to_string()),
                l.attempts.to_string(),
                l.error.chars().take(80).collect(),
            ]
        })
        .collect();
    out.table(
        &["EVENT", "STREAM", "VERSION", "TYPE", "ATTEMPTS", "ERROR"],
        &rows,
    )?;
    Ok(Outcome::Ok)
}

pub(crate) async fn retry<S: ManagedStore>(
    admin: &Admin<S>,
    args: &DeadLetterArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    settle(admin, args, out, Action::Retry).await
}

pub(crate) async fn discard<S: ManagedStore>(
    admin: &Admin<S>,
    args: &DeadLetterArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    settle(admin, args, out, Action::Discard).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Discard,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Discard => "discard",
        }
    }
}

async fn settle<S: ManagedStore>(
    admin: &Admin<S>,
    args: &DeadLetterArgs,
    out: &mut Output,
    action: Action,
) -> Result<Outcome, AdminError> {
    let projection = admin.projection(&args.name)?;
    // The list is needed to name every letter (`--all`) or to say what a dry run would do;
    // settling given ids reads nothing first.
    let letters = if args.all || args.dry_run {
        projection.dead_letters().await?
    } else {
        Vec::new()
    };
    let ids: Vec<Uuid> = if args.all {
        letters.iter().map(|l| l.event_id).collect()
    } else {
        args.event_ids.clone()
    };
    if ids.is_empty() {
        out.line(format!("{} has no dead letters", args.name))?;
        return Ok(Outcome::Ok);
    }
    if args.dry_run {
        // Say what the real run would do with each id, found or not.
        let mut missing = 0;
        for id in &ids {
            let letter = letters.iter().find(|l| l.event_id == *id);
            missing += usize::from(letter.is_none());
            out.record(
                "dead_letter_settled",
                &SettledLine {
                    projection: &args.name,
                    event_id: *id,
                    action: action.name(),
                    found: letter.is_some(),
                    dry_run: true,
                },
            )?;
            out.line(match letter {
                Some(l) => format!(
                    "dry run: would {} dead letter {id} of {} ({} version {}, {})",
                    action.name(),
                    args.name,
                    l.stream_id,
                    l.stream_version,
                    l.event_type
                ),
                None => format!("dry run: {id}: no such dead letter in {}", args.name),
            })?;
        }
        return not_found(missing);
    }
    if action == Action::Discard {
        confirm(
            Consent::from_flag(args.yes),
            &format!("discard {} dead letter(s) of `{}`", ids.len(), args.name),
            "the events are dropped from the list and never applied to the read model",
        )?;
    }
    let mut missing = 0;
    for id in ids {
        let found = apply(projection, action, id).await?;
        if !found {
            missing += 1;
        }
        out.record(
            "dead_letter_settled",
            &SettledLine {
                projection: &args.name,
                event_id: id,
                action: action.name(),
                found,
                dry_run: false,
            },
        )?;
        out.line(match (found, action) {
            (true, Action::Retry) => format!("retried {id}: applied and removed from the list"),
            (true, Action::Discard) => format!("discarded {id}"),
            (false, _) => format!("{id}: no such dead letter in {}", args.name),
        })?;
    }
    not_found(missing)
}

/// Exit code 2 when some of the given dead letters do not exist.
fn not_found(missing: usize) -> Result<Outcome, AdminError> {
    if missing > 0 {
        return Err(AdminError::Usage(format!(
            "{missing} of the given dead letters were not found"
        )));
    }
    Ok(Outcome::Ok)
}

async fn apply(
    projection: &dyn ManagedProjection,
    action: Action,
    id: Uuid,
) -> foldline::Result<bool> {
    match action {
        Action::Retry => projection.retry_dead_letter(id).await,
        Action::Discard => projection.discard_dead_letter(id).await,
    }
}

fn line<'a>(projection: &'a str, letter: &'a DeadLetter) -> LetterLine<'a> {
    LetterLine {
        projection,
        event_id: letter.event_id,
        stream: letter.stream_id.as_str(),
        stream_version: letter.stream_version.get(),
        position: letter.position.to_string(),
        event_type: letter.event_type.as_str(),
        attempts: letter.attempts,
        error: &letter.error,
        parked_at: letter
            .parked_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        unreadable: letter.unreadable.as_deref(),
    }
}
