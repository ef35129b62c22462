use foldline::Aggregate;

#[derive(Default, Aggregate)]
#[foldline(id = String, command = AccountCommand, event = AccountEvent, error = AccountError,
           snapshot(every = 0))]
struct Account {
    balance: u64,
}

fn main() {}
