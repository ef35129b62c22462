use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = "Bank-Transfer", id = String, event = BankEvent, command = AccountCommand)]
struct Transfer {
    cents: u64,
}

fn main() {}
