use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = "transfer", timeout = Stuck)]
struct Transfer {
    cents: u64,
}

fn main() {}
