use foldline::{Action, DomainEvent, Input, ProcessManager};
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
    // `correlate` forgotten.
    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        vec![Action::Complete]
    }

    fn evolve(&mut self, _: &Input<Self>) {
        self.withdrawn = true;
    }
}

fn main() {}
