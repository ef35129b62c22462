//! Process managers: one with timeouts, one without (`Timeout` is then `()`).
use std::time::Duration;

use foldline::{
    Action, DomainEvent, Envelope, Input, Instance, ProcessManager, ProcessStatus, instance_stream,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
enum BankEvent {
    TransferRequested {
        transfer: String,
        to: String,
        cents: u64,
    },
    Withdrawn {
        transfer: String,
    },
    Deposited {
        transfer: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountCommand {
    Deposit { account: String, cents: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Stuck {
    Withdrawal,
}

#[derive(Debug, Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand, timeout = Stuck)]
struct Transfer {
    to: String,
    cents: u64,
}

impl Transfer {
    fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
        match &event.event {
            BankEvent::TransferRequested { transfer, .. }
            | BankEvent::Withdrawn { transfer }
            | BankEvent::Deposited { transfer } => Some(transfer.clone()),
        }
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(BankEvent::TransferRequested { .. }) => vec![Action::Schedule {
                timeout: Stuck::Withdrawal,
                after: Duration::from_secs(60),
            }],
            Input::Event(BankEvent::Withdrawn { .. }) => vec![
                Action::Cancel(Stuck::Withdrawal),
                Action::Send(AccountCommand::Deposit {
                    account: self.to.clone(),
                    cents: self.cents,
                }),
            ],
            Input::Event(BankEvent::Deposited { .. }) => vec![Action::Complete],
            Input::Refused { error, .. } => vec![Action::Fail {
                reason: error.clone(),
            }],
            Input::Timeout(Stuck::Withdrawal) => vec![Action::Fail {
                reason: "stuck".into(),
            }],
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        if let Input::Event(BankEvent::TransferRequested { to, cents, .. }) = input {
            (self.to, self.cents) = (to.clone(), *cents);
        }
    }
}

/// No `timeout`: it schedules none.
#[derive(Default, ProcessManager)]
#[foldline(id = u32, command = AccountCommand, event = BankEvent, name = "audit_2")]
struct Audit {
    seen: u32,
}

impl Audit {
    fn correlate(_: &Envelope<'_, BankEvent>) -> Option<u32> {
        Some(1)
    }

    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        Vec::new()
    }

    fn evolve(&mut self, _: &Input<Self>) {
        self.seen += 1;
    }
}

fn main() {
    let mut transfer = Instance::<Transfer>::new();
    let requested = BankEvent::TransferRequested {
        transfer: "t1".into(),
        to: "b".into(),
        cents: 5,
    };
    transfer.handle(&Input::Event(requested));
    assert_eq!(transfer.pending_timeouts(), [Stuck::Withdrawal]);
    let withdrawn = transfer.handle(&Input::Event(BankEvent::Withdrawn {
        transfer: "t1".into(),
    }));
    assert_eq!(
        withdrawn,
        Some(vec![
            Action::Cancel(Stuck::Withdrawal),
            Action::Send(AccountCommand::Deposit {
                account: "b".into(),
                cents: 5
            }),
        ])
    );
    transfer.handle(&Input::Event(BankEvent::Deposited {
        transfer: "t1".into(),
    }));
    assert_eq!(*transfer.status(), ProcessStatus::Completed);
    assert_eq!(Transfer::NAME, "transfer");
    assert_eq!(
        instance_stream::<Transfer>(&"t1".to_owned())
            .unwrap()
            .as_str(),
        "transfer-t1"
    );

    let no_timeout: <Audit as ProcessManager>::Timeout = ();
    assert!(ProcessManager::decide(&Audit::default(), &Input::Timeout(no_timeout)).is_empty());
    let mut audit = Instance::<Audit>::new();
    assert_eq!(
        audit.handle(&Input::Event(BankEvent::Deposited {
            transfer: "t1".into()
        })),
        Some(vec![])
    );
    assert_eq!(audit.state().seen, 1);
    assert_eq!(Audit::NAME, "audit_2");
}
