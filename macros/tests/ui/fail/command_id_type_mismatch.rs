use foldline::Command;

#[derive(Command)]
enum AccountCommand {
    Open {
        #[foldline(id)]
        account: String,
    },
    Close(#[foldline(id)] u64),
}

fn main() {}
