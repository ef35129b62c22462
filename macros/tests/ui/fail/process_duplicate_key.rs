use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand)]
#[foldline(id = u64)]
struct Transfer {
    cents: u64,
}

fn main() {}
