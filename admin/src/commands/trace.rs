//! `trace`: what one request caused across streams, as a tree built from the events' metadata.
//!
//! The events of a correlation id come from the store
//! ([`ManagedStore::correlated_events`]); an event's children are the events whose causation id
//! is its id. Process managers make the chain whole: a decision (a `foldline.process.Decided`
//! event in the instance's stream) has the event it decided on as its cause, and the events of
//! the commands it sent have the decision as theirs. A decision about a refused command or a
//! fired timer has an input id no event carries; it hangs under the decision of the same
//! instance that sent that command or scheduled that timeout.

use std::collections::{HashMap, HashSet};

use foldline::{DECIDED, ManagedStore, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::inspect::{EventLine, check_limit};
use crate::Admin;
use crate::cli::TraceArgs;
use crate::error::{AdminError, Outcome};
use crate::output::Output;

/// Characters of a value shown in a human line before it is cut with `…`.
const VALUE_WIDTH: usize = 40;

/// How an event hangs in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Link {
    /// Nothing in the trace caused it.
    Root,
    /// Its causation id is its parent's event id.
    Causation,
    /// A decision about a refused command: under the decision that sent the command.
    Refusal,
    /// A decision about a fired timer: under the decision that scheduled the timeout.
    Timeout,
}

/// The `trace` JSON line that comes first.
#[derive(Serialize)]
struct TraceLine {
    /// The id asked about.
    id: Uuid,
    /// The correlation traced: `id`, or the correlation of the event `id` names.
    correlation_id: Uuid,
    events: usize,
    streams: usize,
    /// Whether `--limit` cut the events short.
    truncated: bool,
}

/// One `trace_event` JSON line per event, depth first, each after its parent.
#[derive(Serialize)]
struct TraceEventLine<'a> {
    /// 0 for a root.
    depth: usize,
    /// The parent's event id; `null` for a root.
    parent_id: Option<Uuid>,
    link: Link,
    #[serde(flatten)]
    event: EventLine<'a>,
}

/// A decision as its event's payload holds it, read as JSON (the admin does not know the
/// process managers' types).
#[derive(Deserialize)]
struct DecisionPayload {
    input: InputPayload,
    #[serde(default)]
    actions: Vec<ActionPayload>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum InputPayload {
    Event { event: Value },
    Refused { command: Value, error: String },
    Timeout { timeout: Value },
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ActionPayload {
    Send {
        command: Value,
    },
    Schedule {
        timeout: Value,
        after_ms: u64,
    },
    Cancel {
        timeout: Value,
    },
    Complete,
    Fail {
        reason: String,
    },
    #[serde(other)]
    Other,
}

pub(crate) async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &TraceArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    check_limit(args.limit)?;
    let store = admin.store();
    let first = store.correlated_events(args.id, args.limit).await?;
    // An event id: its correlation is traced, unless it has none (it began one).
    let belongs_to = first
        .iter()
        .find(|event| event.event_id == args.id)
        .and_then(|event| event.metadata.correlation_id)
        .filter(|correlation| *correlation != args.id);
    let (correlation_id, events) = match belongs_to {
        Some(correlation) => (
            correlation,
            store.correlated_events(correlation, args.limit).await?,
        ),
        None => (args.id, first),
    };
    if events.is_empty() {
        return Err(AdminError::NotFound(format!(
            "no event has id or correlation id {}",
            args.id
        )));
    }
    let tree = Tree::new(&events);
    let streams: HashSet<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    let truncated = events.len() >= args.limit;
    out.record(
        "trace",
        &TraceLine {
            id: args.id,
            correlation_id,
            events: events.len(),
            streams: streams.len(),
            truncated,
        },
    )?;
    if correlation_id != args.id {
        out.line(format!(
            "event {} belongs to correlation {correlation_id}",
            args.id
        ))?;
    }
    out.line(format!(
        "trace of correlation {correlation_id}: {} event(s) in {} stream(s)",
        events.len(),
        streams.len()
    ))?;
    for step in tree.depth_first() {
        let event = &events[step.node];
        out.record(
            "trace_event",
            &TraceEventLine {
                depth: step.depth,
                parent_id: tree.parent[step.node].map(|p| events[p].event_id),
                link: tree.link[step.node],
                event: EventLine::new(event, None),
            },
        )?;
        out.line(format!(
            "{}{}",
            step.prefix,
            tree.describe(step.node, &events)
        ))?;
    }
    if truncated {
        out.line(format!(
            "the trace stops at --limit {} events: raise it to see the rest",
            args.limit
        ))?;
    }
    Ok(Outcome::Ok)
}

/// The events of a trace as a forest: each event's parent, how it hangs there, its children
/// in feed order.
struct Tree {
    decisions: Vec<Option<DecisionPayload>>,
    parent: Vec<Option<usize>>,
    link: Vec<Link>,
    children: Vec<Vec<usize>>,
}

/// One event in the order the tree prints: how deep, and the tree drawing before it.
struct Step {
    node: usize,
    depth: usize,
    prefix: String,
}

impl Tree {
    /// The tree of `events` (in feed order).
    fn new(events: &[RecordedEvent]) -> Self {
        let decisions: Vec<Option<DecisionPayload>> = events
            .iter()
            .map(|event| {
                (event.event_type == DECIDED && event.unreadable.is_none())
                    .then(|| serde_json::from_slice(&event.payload).ok())
                    .flatten()
            })
            .collect();
        let index: HashMap<Uuid, usize> = events
            .iter()
            .enumerate()
            .map(|(at, event)| (event.event_id, at))
            .collect();
        let mut tree = Tree {
            parent: vec![None; events.len()],
            link: vec![Link::Root; events.len()],
            children: vec![Vec::new(); events.len()],
            decisions,
        };
        for (at, event) in events.iter().enumerate() {
            let by_causation = event
                .metadata
                .causation_id
                .and_then(|cause| index.get(&cause).copied())
                .filter(|parent| *parent != at);
            let found = match by_causation {
                Some(parent) => Some((parent, Link::Causation)),
                None => tree.decided_before(events, at),
            };
            if let Some((parent, link)) = found {
                tree.parent[at] = Some(parent);
                tree.link[at] = link;
                tree.children[parent].push(at);
            }
        }
        tree.break_cycles();
        tree
    }

    /// For a decision about a refused command or a fired timer: the latest decision before it
    /// in the same instance that sent that command or scheduled that timeout.
    fn decided_before(&self, events: &[RecordedEvent], at: usize) -> Option<(usize, Link)> {
        let input = &self.decisions[at].as_ref()?.input;
        let stream = &events[at].stream_id;
        (0..at).rev().find_map(|before| {
            if events[before].stream_id != *stream {
                return None;
            }
            let actions = &self.decisions[before].as_ref()?.actions;
            let found = match input {
                InputPayload::Refused { command, .. } => actions
                    .iter()
                    .any(|a| matches!(a, ActionPayload::Send { command: c } if c == command))
                    .then_some(Link::Refusal),
                InputPayload::Timeout { timeout } => actions
                    .iter()
                    .any(
                        |a| matches!(a, ActionPayload::Schedule { timeout: t, .. } if t == timeout),
                    )
                    .then_some(Link::Timeout),
                InputPayload::Event { .. } => None,
            };
            found.map(|link| (before, link))
        })
    }

    /// Events that causation ids tie in a loop (only data written around foldline can) are
    /// unreachable from a root: the earliest of each loop becomes a root.
    fn break_cycles(&mut self) {
        let mut reached = vec![false; self.parent.len()];
        loop {
            let mut stack: Vec<usize> = (0..self.parent.len())
                .filter(|at| self.parent[*at].is_none() && !reached[*at])
                .collect();
            while let Some(at) = stack.pop() {
                if !std::mem::replace(&mut reached[at], true) {
                    stack.extend(self.children[at].iter().copied());
                }
            }
            let Some(stuck) = reached.iter().position(|r| !r) else {
                return;
            };
            if let Some(parent) = self.parent[stuck].take() {
                self.children[parent].retain(|child| *child != stuck);
            }
            self.link[stuck] = Link::Root;
        }
    }

    /// Every event, depth first: roots in feed order, each followed by its children in feed
    /// order.
    fn depth_first(&self) -> Vec<Step> {
        let roots: Vec<usize> = (0..self.parent.len())
            .filter(|at| self.parent[*at].is_none())
            .collect();
        let mut steps = Vec::with_capacity(self.parent.len());
        // (node, depth, the drawing of its ancestors' columns, whether it is the last child)
        let mut stack: Vec<(usize, usize, String, bool)> = roots
            .iter()
            .rev()
            .map(|root| (*root, 0, String::new(), true))
            .collect();
        while let Some((node, depth, columns, last)) = stack.pop() {
            let prefix = match depth {
                0 => String::new(),
                _ => format!("{columns}{}", if last { "└─ " } else { "├─ " }),
            };
            let below = match depth {
                0 => String::new(),
                _ => format!("{columns}{}", if last { "   " } else { "│  " }),
            };
            let children = &self.children[node];
            for (i, child) in children.iter().enumerate().rev() {
                stack.push((*child, depth + 1, below.clone(), i + 1 == children.len()));
            }
            steps.push(Step {
                node,
                depth,
                prefix,
            });
        }
        steps
    }

    /// `account-a@3 Withdrawn  <id>`, or for a decision `transfer-t1@2 decided on Withdrawn:
    /// send Deposit  <id>`.
    fn describe(&self, at: usize, events: &[RecordedEvent]) -> String {
        let event = &events[at];
        let what = match &self.decisions[at] {
            Some(decision) => format!(
                "decided on {}: {}",
                describe_input(&decision.input),
                describe_actions(&decision.actions)
            ),
            None => event.event_type.to_string(),
        };
        let outside = match (self.parent[at], event.metadata.causation_id) {
            (None, Some(cause)) => format!(" (caused by {cause}, not in this trace)"),
            _ => String::new(),
        };
        format!(
            "{}@{} {what}  {}{outside}",
            event.stream_id, event.stream_version, event.event_id
        )
    }
}

fn describe_input(input: &InputPayload) -> String {
    match input {
        InputPayload::Event { event } => or(name_of(event), "an event"),
        InputPayload::Refused { command, error } => {
            format!(
                "refused {} ({})",
                or(name_of(command), "command"),
                cut(error)
            )
        }
        InputPayload::Timeout { timeout } => with_name("timeout", timeout),
    }
}

fn describe_actions(actions: &[ActionPayload]) -> String {
    if actions.is_empty() {
        return "nothing".to_owned();
    }
    actions
        .iter()
        .map(|action| match action {
            ActionPayload::Send { command } => with_name("send", command),
            ActionPayload::Schedule { timeout, after_ms } => {
                format!(
                    "{} in {}",
                    with_name("schedule", timeout),
                    human_ms(*after_ms)
                )
            }
            ActionPayload::Cancel { timeout } => with_name("cancel", timeout),
            ActionPayload::Complete => "complete".to_owned(),
            ActionPayload::Fail { reason } => format!("fail ({})", cut(reason)),
            ActionPayload::Other => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `send Withdraw`; `schedule` alone for a value with no name (a unit struct).
fn with_name(verb: &str, value: &Value) -> String {
    match name_of(value) {
        name if name.is_empty() => verb.to_owned(),
        name => format!("{verb} {name}"),
    }
}

fn or(name: String, otherwise: &str) -> String {
    if name.is_empty() {
        otherwise.to_owned()
    } else {
        name
    }
}

/// What a serialized command, event or timeout is called: the variant of an enum serde tags
/// externally (`{"Withdraw": {…}}`, `"Stuck"`), nothing for a unit struct (`null`), else the
/// value in compact JSON, cut short.
pub(super) fn name_of(value: &Value) -> String {
    match value {
        Value::Object(fields) if fields.len() == 1 => {
            fields.keys().next().cloned().unwrap_or_default()
        }
        Value::String(name) => cut(name),
        Value::Null => String::new(),
        other => cut(&other.to_string()),
    }
}

/// `text` cut to [`VALUE_WIDTH`] characters with `…`.
pub(super) fn cut(text: &str) -> String {
    if text.chars().count() <= VALUE_WIDTH {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(VALUE_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// `250ms`, `60s`, `5m`, `2h`, `90s`: a delay as written in code.
pub(super) fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms % 1000 != 0 => format!("{ms}ms"),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use foldline::{EventMetadata, EventType, NewEvent, Position, StreamId, Version};
    use serde_json::json;

    use super::*;

    fn event(
        stream: &str,
        version: u64,
        event_type: &str,
        payload: &Value,
        cause: Option<Uuid>,
    ) -> RecordedEvent {
        let mut metadata = EventMetadata::new();
        metadata.causation_id = cause;
        let new = NewEvent::new(
            EventType::new(event_type).unwrap(),
            1,
            serde_json::to_vec(payload).unwrap(),
        )
        .with_metadata(metadata);
        RecordedEvent::from_new(
            new,
            StreamId::new(stream).unwrap(),
            Version::new(version),
            Position::new(0, 1, version),
            std::time::SystemTime::UNIX_EPOCH,
        )
    }

    fn decided(
        stream: &str,
        version: u64,
        input: Value,
        actions: Value,
        cause: Uuid,
    ) -> RecordedEvent {
        let payload = json!({ "input_id": cause, "input": input, "actions": actions });
        event(stream, version, DECIDED.as_str(), &payload, Some(cause))
    }

    #[test]
    fn refusals_and_timeouts_hang_under_the_decision_that_caused_them() {
        let request = event("account-a", 1, "Requested", &json!({}), None);
        let sent = decided(
            "transfer-t1",
            1,
            json!({ "kind": "event", "event": { "Requested": {} } }),
            json!([
                { "kind": "send", "command": { "Withdraw": { "cents": 5 } } },
                { "kind": "schedule", "timeout": "Stuck", "after_ms": 60_000 },
            ]),
            request.event_id,
        );
        let refused = decided(
            "transfer-t1",
            2,
            json!({ "kind": "refused", "command": { "Withdraw": { "cents": 5 } }, "error": "poor" }),
            json!([{ "kind": "fail", "reason": "refused: poor" }]),
            Uuid::now_v7(),
        );
        let late = decided(
            "transfer-t1",
            3,
            json!({ "kind": "timeout", "timeout": "Stuck" }),
            json!([]),
            Uuid::now_v7(),
        );
        let stranger = event("other-1", 1, "Noted", &json!({}), Some(Uuid::now_v7()));
        let events = [request, sent, refused, late, stranger];
        let tree = Tree::new(&events);
        assert_eq!(tree.parent, [None, Some(0), Some(1), Some(1), None]);
        assert_eq!(
            tree.link,
            [
                Link::Root,
                Link::Causation,
                Link::Refusal,
                Link::Timeout,
                Link::Root
            ]
        );
        let drawn: Vec<String> = tree
            .depth_first()
            .iter()
            .map(|step| format!("{}{}", step.prefix, tree.describe(step.node, &events)))
            .map(|line| {
                line.rsplit_once("  ")
                    .map(|(shown, _id)| shown.to_owned())
                    .unwrap_or(line)
            })
            .collect();
        assert_eq!(
            drawn,
            [
                "account-a@1 Requested",
                "└─ transfer-t1@1 decided on Requested: send Withdraw, schedule Stuck in 1m",
                "   ├─ transfer-t1@2 decided on refused Withdraw (poor): fail (refused: poor)",
                "   └─ transfer-t1@3 decided on timeout Stuck: nothing",
                "other-1@1 Noted",
            ]
        );
        assert!(tree.describe(4, &events).contains("not in this trace"));
    }

    #[test]
    fn a_causation_loop_is_broken_at_its_earliest_event() {
        let mut a = event("s-1", 1, "A", &json!({}), None);
        let b = event("s-1", 2, "B", &json!({}), Some(a.event_id));
        a.metadata.causation_id = Some(b.event_id);
        let events = [a, b];
        let tree = Tree::new(&events);
        assert_eq!(tree.parent, [None, Some(0)]);
        assert_eq!(tree.depth_first().len(), 2);
    }

    #[test]
    fn values_are_named_by_their_variant() {
        assert_eq!(name_of(&json!({ "Withdraw": { "cents": 1 } })), "Withdraw");
        assert_eq!(name_of(&json!("Stuck")), "Stuck");
        assert_eq!(name_of(&Value::Null), "");
        assert_eq!(name_of(&json!([1, 2])), "[1,2]");
        assert_eq!(human_ms(60_000), "1m");
        assert_eq!(human_ms(90_000), "90s");
        assert_eq!(human_ms(250), "250ms");
        assert_eq!(human_ms(7_200_000), "2h");
    }
}
