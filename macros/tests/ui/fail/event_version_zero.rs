use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(version = 0)]
    Opened { owner: String },
}

fn main() {}
