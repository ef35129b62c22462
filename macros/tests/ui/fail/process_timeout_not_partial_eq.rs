use foldline::{Action, DomainEvent, Envelope, Input, ProcessManager};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
enum BankEvent {
    Withdrawn { transfer: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountCommand {
    Deposit { account: String },
}

/// Cancelling a timeout compares it with the pending ones: it must be `PartialEq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stuck;

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand,
           timeout = Stuck)]
struct Transfer;

impl Transfer {
    fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
        let BankEvent::Withdrawn { transfer } = &event.event;
        Some(transfer.clone())
    }

    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        vec![Action::Cancel(Stuck)]
    }

    fn evolve(&mut self, _: &Input<Self>) {}
}

fn main() {}
