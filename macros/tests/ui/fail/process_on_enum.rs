use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", id = String, event = BankEvent, command = AccountCommand)]
enum Transfer {
    #[default]
    Requested,
    Withdrawn,
}

fn main() {}
