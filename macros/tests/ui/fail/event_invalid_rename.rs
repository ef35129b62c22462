use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(rename = "account opened")]
    Opened { owner: String },
}

fn main() {}
