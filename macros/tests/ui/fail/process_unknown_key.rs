use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand,
           timeouts = Stuck, error = TransferError)]
struct Transfer {
    cents: u64,
}

fn main() {}
