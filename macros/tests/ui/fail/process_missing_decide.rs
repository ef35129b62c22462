use foldline::{DomainEvent, Envelope, Input, ProcessManager};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
enum BankEvent {
    Withdrawn { transfer: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AccountCommand {
    Deposit { account: String },
}

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand)]
struct Transfer {
    withdrawn: bool,
}

impl Transfer {
    fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
        let BankEvent::Withdrawn { transfer } = &event.event;
        Some(transfer.clone())
    }

    // `decide` forgotten.
    fn evolve(&mut self, _: &Input<Self>) {
        self.withdrawn = true;
    }
}

fn main() {}
