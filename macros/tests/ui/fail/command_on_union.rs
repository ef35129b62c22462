use foldline::Command;

#[derive(Command)]
union AccountCommand {
    id: u64,
}

fn main() {}
