//! `TransferHistory`: one transfer read back from its instance's stream, step by step.

use std::fmt;

use foldline::{
    Action, Decision, EventStore, Input, Instance, JsonCodec, ProcessStatus, Version,
    instance_stream,
};

use super::{Request, Transfer, TransferTimeout};
use crate::domain::{AccountCommand, AccountEvent, Cents};

/// How many decisions one read of the stream returns at most.
const PAGE: usize = 100;

/// One decision of a transfer: what happened, and what the process did about it.
#[derive(Debug, Clone)]
pub struct Step {
    /// What happened: an account event, a refused command or a timeout.
    pub input: Input<Transfer>,
    /// What the process decided.
    pub actions: Vec<Action<Transfer>>,
}

/// A transfer as its instance's stream (`transfer-<id>`) tells it: every decision, in order,
/// and where they left it.
#[derive(Debug, Clone)]
pub struct TransferHistory {
    /// The transfer's id.
    pub id: String,
    /// What was asked (`None` when the process never saw the request).
    pub request: Option<Request>,
    /// Running, completed or failed (with the reason).
    pub status: ProcessStatus,
    /// The decisions, oldest first.
    pub steps: Vec<Step>,
}

impl TransferHistory {
    /// Reads transfer `id` from `store`: its decisions, replayed as the runner replays them.
    ///
    /// # Errors
    ///
    /// The store's errors; a stream that holds something other than the transfer's decisions.
    pub async fn load<S: EventStore>(store: &S, id: &str) -> foldline::Result<Self> {
        let stream = instance_stream::<Transfer>(&id.to_owned())?;
        let mut instance = Instance::<Transfer>::new();
        let mut steps = Vec::new();
        let mut next = Version::new(1);
        loop {
            let page = store.read_stream(&stream, next, PAGE).await?;
            for recorded in &page {
                let decision = Decision::<Transfer>::decode(recorded, &JsonCodec)?;
                instance.replay(&decision.input, &decision.actions);
                steps.push(Step {
                    input: decision.input,
                    actions: decision.actions,
                });
                next = recorded.stream_version.next();
            }
            if page.len() < PAGE {
                break;
            }
        }
        Ok(TransferHistory {
            id: id.to_owned(),
            request: instance.state().request().cloned(),
            status: instance.status().clone(),
            steps,
        })
    }
}

impl fmt::Display for TransferHistory {
    /// The transfer on one line, then one line per step: what happened, and what the process
    /// did about it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(request) = &self.request else {
            return write!(f, "{}: never requested", self.id);
        };
        writeln!(
            f,
            "{}: {} from {} to {}, {:?}",
            self.id,
            Cents(request.cents),
            request.from,
            request.to,
            request.transfer.memo
        )?;
        for step in &self.steps {
            let did: Vec<String> = step.actions.iter().map(did).collect();
            let did = if did.is_empty() {
                "nothing".to_owned()
            } else {
                did.join("; ")
            };
            writeln!(f, "  {:<48} -> {did}", happened(&step.input, request))?;
        }
        write!(f, "  {}", self.status)
    }
}

/// What an input says happened.
fn happened(input: &Input<Transfer>, request: &Request) -> String {
    let (from, to) = (&request.from, &request.to);
    match input {
        Input::Event(event) => match event {
            AccountEvent::TransferRequested {
                needs_approval: true,
                ..
            } => "requested, above the approval limit".to_owned(),
            AccountEvent::TransferRequested { .. } => "requested".to_owned(),
            AccountEvent::TransferApproved { .. } => "approved".to_owned(),
            AccountEvent::Withdrawn { cents, .. } => {
                format!("{} withdrawn from {from}", Cents(*cents))
            }
            AccountEvent::Deposited { cents, .. } => {
                format!("{} deposited into {to}", Cents(*cents))
            }
            AccountEvent::TransferRefunded { cents, .. } => {
                format!("{} refunded to {from}", Cents(*cents))
            }
            AccountEvent::TransferCancelled { .. } => {
                format!("cancelled at {from}, nothing withdrawn")
            }
            other => format!("{other:?}"),
        },
        Input::Refused { command, error } => match command {
            AccountCommand::Withdraw { account, .. } => {
                format!("withdrawal refused by {account}: {error}")
            }
            AccountCommand::Deposit { account, .. } => {
                format!("deposit refused by {account}: {error}")
            }
            other => format!("{other:?} refused: {error}"),
        },
        Input::Timeout(TransferTimeout::Approval) => "timed out waiting for approval".to_owned(),
        Input::Timeout(TransferTimeout::Withdrawal) => {
            "timed out waiting for the withdrawal".to_owned()
        }
    }
}

/// What an action did.
fn did(action: &Action<Transfer>) -> String {
    match action {
        Action::Send(AccountCommand::Withdraw { account, cents, .. }) => {
            format!("withdraw {} from {account}", Cents(*cents))
        }
        Action::Send(AccountCommand::Deposit { account, cents, .. }) => {
            format!("deposit {} into {account}", Cents(*cents))
        }
        Action::Send(AccountCommand::CancelTransfer { account, .. }) => {
            format!("undo at {account}")
        }
        Action::Send(other) => format!("send {other:?}"),
        Action::Schedule { timeout, after } => match timeout {
            TransferTimeout::Approval => format!("wait {after:?} for approval"),
            TransferTimeout::Withdrawal => format!("give up after {after:?}"),
        },
        Action::Cancel(_) => "cancel the timeout".to_owned(),
        Action::Complete => "complete".to_owned(),
        Action::Fail { .. } => "fail".to_owned(),
        _ => action.kind().to_owned(),
    }
}
