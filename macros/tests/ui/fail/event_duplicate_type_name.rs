use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    Opened { owner: String },
    #[foldline(rename = "Opened")]
    Reopened { owner: String },
}

fn main() {}
