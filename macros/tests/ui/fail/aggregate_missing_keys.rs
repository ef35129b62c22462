use foldline::Aggregate;

#[derive(Default, Aggregate)]
#[foldline(id = String, event = AccountEvent)]
struct Account {
    balance: u64,
}

fn main() {}
