//! What the unit tests of process managers share.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Action, Input, ProcessManager};
use crate::codec::Codec;
use crate::error::Result;
use crate::event::RecordedEvent;
use crate::projection::{Envelope, FeedEvent};

/// An event type the feed never holds: for process managers whose tests feed them other
/// inputs only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Never {}

impl FeedEvent for Never {
    fn from_recorded<C: Codec>(_recorded: &RecordedEvent, _codec: &C) -> Result<Option<Self>> {
        Ok(None)
    }
}

/// Decides whatever its inputs say: [`step(n)`](step) (and `Timeout(n)`, once `n` is pending)
/// decides the actions listed for `n`, so each test writes its decisions as data.
#[derive(Default, Debug)]
pub(crate) struct Scripted {
    pub(crate) seen: Vec<u32>,
}

fn script(n: u32) -> Vec<Action<Scripted>> {
    let schedule = |t| Action::Schedule {
        timeout: t,
        after: Duration::from_secs(1),
    };
    match n {
        // Schedules 10, 11 and 10 again.
        1 => vec![schedule(10), schedule(11), schedule(10)],
        // Cancels every 10.
        2 => vec![Action::Cancel(10)],
        // Reschedules itself when it fires.
        11 => vec![schedule(11)],
        3 => vec![
            Action::Fail {
                reason: "first".into(),
            },
            Action::Complete,
            schedule(12),
        ],
        _ => vec![Action::Send(n)],
    }
}

impl ProcessManager for Scripted {
    const NAME: &'static str = "scripted";
    type Id = u32;
    type Event = Never;
    type Command = u32;
    type Timeout = u32;

    fn correlate(_: &Envelope<'_, Never>) -> Option<u32> {
        None
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Timeout(n) | Input::Refused { command: n, .. } => script(*n),
            Input::Event(never) => match *never {},
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        if let Input::Timeout(n) | Input::Refused { command: n, .. } = input {
            self.seen.push(*n);
        }
    }
}

/// Input `n` of [`Scripted`]: decides the actions listed for `n` (it is a refusal of command
/// `n`, the one kind of input that needs nothing before it).
pub(crate) fn step(n: u32) -> Input<Scripted> {
    Input::Refused {
        command: n,
        error: String::new(),
    }
}
