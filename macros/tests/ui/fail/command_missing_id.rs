use foldline::Command;

#[derive(Command)]
enum AccountCommand {
    Open {
        #[foldline(id)]
        account: String,
    },
    Deposit {
        account: String,
        cents: u64,
    },
    CloseAll,
}

fn main() {}
