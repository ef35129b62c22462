use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(id = String, event = BankEvent, command = AccountCommand, timeout = Stuck)]
struct Transfer {
    cents: u64,
}

fn main() {}
