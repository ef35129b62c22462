//! One instance of a process manager: its state, whether it is finished, its pending
//! timeouts, and the rules that move them.

use std::fmt;

use super::{Action, Input, ProcessManager};

/// Whether an instance of a process manager is still going.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessStatus {
    /// It takes inputs.
    #[default]
    Running,
    /// It decided [`Action::Complete`].
    Completed,
    /// It decided [`Action::Fail`].
    Failed {
        /// The reason it gave.
        reason: String,
    },
}

impl ProcessStatus {
    /// Whether the instance is completed or failed: it ignores its inputs.
    pub fn is_finished(&self) -> bool {
        !matches!(self, ProcessStatus::Running)
    }

    /// `"running"`, `"completed"` or `"failed"`.
    pub fn name(&self) -> &'static str {
        match self {
            ProcessStatus::Running => "running",
            ProcessStatus::Completed => "completed",
            ProcessStatus::Failed { .. } => "failed",
        }
    }
}

impl fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessStatus::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

/// An instance of a process manager `P`, with the rules every runner and test applies:
///
/// - an input is decided on the state before it ([`ProcessManager::decide`]), then folded in
///   ([`ProcessManager::evolve`]);
/// - a [`Schedule`](Action::Schedule)d timeout is pending until it fires (an
///   [`Input::Timeout`] equal to it), is [`Cancel`](Action::Cancel)led, or the instance
///   finishes;
/// - a timeout that is not pending (cancelled, or fired already) is ignored (and counted), not
///   decided: a cancelled timeout never fires, whatever a timer store still holds;
/// - [`Complete`](Action::Complete) and [`Fail`](Action::Fail) finish the instance: later
///   inputs are ignored (and counted), not decided.
///
/// A runner rebuilds an instance from the decisions recorded in its stream with
/// [`replay`](Instance::replay), which applies the same rules without deciding again.
pub struct Instance<P: ProcessManager> {
    state: P,
    status: ProcessStatus,
    pending: Vec<P::Timeout>,
    decided: u64,
    ignored: u64,
}

impl<P: ProcessManager> Instance<P> {
    /// A new instance: the default state, running, nothing pending.
    pub fn new() -> Self {
        Instance {
            state: P::default(),
            status: ProcessStatus::Running,
            pending: Vec::new(),
            decided: 0,
            ignored: 0,
        }
    }

    /// The process manager's own state.
    pub fn state(&self) -> &P {
        &self.state
    }

    /// Running, completed or failed.
    pub fn status(&self) -> &ProcessStatus {
        &self.status
    }

    /// The timeouts scheduled and neither fired nor cancelled, in the order they were
    /// scheduled.
    pub fn pending_timeouts(&self) -> &[P::Timeout] {
        &self.pending
    }

    /// How many inputs were decided (or replayed).
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// How many inputs were ignored: those that arrived after the instance finished, and
    /// timeouts that were no longer pending.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Decides on `input` and folds it in: the actions decided, or `None` when the instance
    /// is finished or `input` is a timeout no longer pending (the input is ignored and
    /// counted).
    pub fn handle(&mut self, input: &Input<P>) -> Option<Vec<Action<P>>> {
        let stale_timeout =
            matches!(input, Input::Timeout(timeout) if !self.pending.contains(timeout));
        if self.status.is_finished() || stale_timeout {
            self.ignored += 1;
            return None;
        }
        let actions = self.state.decide(input);
        self.fold(input, &actions);
        Some(actions)
    }

    /// Folds a decision recorded earlier (`input` and the `actions` decided then) without
    /// deciding again: how a runner loads an instance from its stream. A decision recorded
    /// after the instance finished cannot exist; one is ignored and counted.
    pub fn replay(&mut self, input: &Input<P>, actions: &[Action<P>]) {
        if self.status.is_finished() {
            self.ignored += 1;
            return;
        }
        self.fold(input, actions);
    }

    fn fold(&mut self, input: &Input<P>, actions: &[Action<P>]) {
        self.decided += 1;
        if let Input::Timeout(fired) = input
            && let Some(at) = self.pending.iter().position(|pending| pending == fired)
        {
            self.pending.remove(at);
        }
        self.state.evolve(input);
        for action in actions {
            match action {
                Action::Send(_) => {}
                // A finishing action earlier in the decision cancelled everything.
                Action::Schedule { timeout, .. } if !self.status.is_finished() => {
                    self.pending.push(timeout.clone());
                }
                Action::Schedule { .. } => {}
                Action::Cancel(timeout) => self.pending.retain(|pending| pending != timeout),
                Action::Complete => self.finish(ProcessStatus::Completed),
                Action::Fail { reason } => self.finish(ProcessStatus::Failed {
                    reason: reason.clone(),
                }),
            }
        }
    }

    /// Finishes the instance (the first of several finishing actions wins); its pending
    /// timeouts are cancelled.
    fn finish(&mut self, status: ProcessStatus) {
        if !self.status.is_finished() {
            self.status = status;
        }
        self.pending.clear();
    }
}

impl<P: ProcessManager> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: ProcessManager + fmt::Debug> fmt::Debug for Instance<P>
where
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("state", &self.state)
            .field("status", &self.status)
            .field("pending", &self.pending)
            .field("decided", &self.decided)
            .field("ignored", &self.ignored)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Instance, ProcessStatus};
    use crate::process::Input;
    use crate::process::testing::{Scripted, step};

    #[test]
    fn timeouts_stay_pending_until_fired_or_cancelled() {
        let mut instance = Instance::<Scripted>::new();
        instance.handle(&step(1));
        assert_eq!(instance.pending_timeouts(), [10, 11, 10]);
        // 11 fires and schedules itself again: one 11 pending still.
        assert_eq!(instance.handle(&Input::Timeout(11)).unwrap().len(), 1);
        assert_eq!(instance.pending_timeouts(), [10, 10, 11]);
        // A cancel removes every equal one.
        instance.handle(&step(2));
        assert_eq!(instance.pending_timeouts(), [11]);
        // A timeout that is not pending (cancelled meanwhile) is ignored: it never fires.
        assert_eq!(instance.handle(&Input::Timeout(10)), None);
        assert_eq!(instance.ignored(), 1);
        assert_eq!(instance.pending_timeouts(), [11]);
        assert_eq!(instance.state().seen, [1, 11, 2]);
        assert_eq!(instance.decided(), 3);
    }

    #[test]
    fn the_first_finishing_action_wins_and_cancels_everything() {
        let mut instance = Instance::<Scripted>::new();
        instance.handle(&step(1));
        instance.handle(&step(3));
        assert_eq!(
            *instance.status(),
            ProcessStatus::Failed {
                reason: "first".into()
            }
        );
        assert_eq!(instance.status().to_string(), "failed: first");
        assert!(
            instance.pending_timeouts().is_empty(),
            "a timeout scheduled after the failure in the same decision is dropped too"
        );
        assert_eq!(instance.handle(&step(4)), None);
        assert_eq!(instance.handle(&Input::Timeout(11)), None);
        assert_eq!(instance.ignored(), 2);
        assert_eq!(
            instance.state().seen,
            [1, 3],
            "ignored inputs are not folded"
        );
    }

    #[test]
    fn replaying_recorded_decisions_rebuilds_the_same_instance() {
        let inputs = [
            step(1),
            Input::Timeout(11),
            step(2),
            step(5),
            step(3),
            step(7),
        ];
        let mut live = Instance::<Scripted>::new();
        let mut recorded = Vec::new();
        for input in &inputs {
            if let Some(actions) = live.handle(input) {
                recorded.push((input.clone(), actions));
            }
        }
        let mut replayed = Instance::<Scripted>::new();
        for (input, actions) in &recorded {
            replayed.replay(input, actions);
        }
        assert_eq!(replayed.state().seen, live.state().seen);
        assert_eq!(replayed.status(), live.status());
        assert_eq!(replayed.pending_timeouts(), live.pending_timeouts());
        assert_eq!(replayed.decided(), live.decided());
        assert_eq!(live.ignored(), 1);
    }
}
