//! Commands: an enum with named and tuple id fields and a renamed variant, a tuple struct, a
//! struct with a custom name.
use foldline::Command;

#[derive(Debug, Command)]
enum AccountCommand {
    Open { #[foldline(id)] account: String, owner: String },
    Deposit { cents: u64, #[foldline(id)] account: String },
    Close(#[foldline(id)] String),
    #[foldline(name = "MakeTransfer")]
    Transfer { #[foldline(id)] from: String, to: String, cents: u64 },
}

#[derive(Debug, Command)]
struct Freeze(#[foldline(id)] u64, String);

#[derive(Debug, Command)]
#[foldline(name = "Unfreeze!")]
struct Thaw {
    reason: String,
    #[foldline(id)]
    account: u64,
}

fn main() {
    let transfer = AccountCommand::Transfer { from: "a".into(), to: "b".into(), cents: 1 };
    assert_eq!(transfer.aggregate_id(), "a");
    assert_eq!(transfer.command_name(), "MakeTransfer");
    assert_eq!(AccountCommand::Close("c".into()).aggregate_id(), "c");
    let freeze = Freeze(9, String::new());
    assert_eq!((freeze.aggregate_id(), freeze.command_name()), (&9, "Freeze"));
    let thaw = Thaw { reason: String::new(), account: 4 };
    assert_eq!((thaw.aggregate_id(), thaw.command_name()), (&4, "Unfreeze!"));
    let _ = (&freeze.1, &thaw.reason);
    if let AccountCommand::Open { owner, .. } | AccountCommand::Transfer { to: owner, .. } = &transfer {
        let _ = owner;
    }
    if let AccountCommand::Deposit { cents, .. } | AccountCommand::Transfer { cents, .. } = transfer {
        let _ = cents;
    }
}
