use foldline::Aggregate;

#[derive(Default, Aggregate)]
#[foldline(id = String, command = AccountCommand, event = AccountEvent, error = AccountError)]
enum Account {
    #[default]
    Closed,
    Open,
}

fn main() {}
