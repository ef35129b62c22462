use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(renamed = "account.opened")]
    Opened { owner: String },
}

fn main() {}
