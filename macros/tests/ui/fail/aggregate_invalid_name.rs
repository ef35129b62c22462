use foldline::Aggregate;

#[derive(Default, Aggregate)]
#[foldline(id = String, command = AccountCommand, event = AccountEvent, error = AccountError,
           name = "bank account")]
struct Account {
    balance: u64,
}

fn main() {}
