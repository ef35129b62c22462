use foldline::Command;

#[derive(Command)]
enum AccountCommand {
    Transfer {
        #[foldline(id)]
        from: String,
        #[foldline(id)]
        to: String,
    },
}

fn main() {}
