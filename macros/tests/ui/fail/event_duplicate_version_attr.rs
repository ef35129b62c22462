use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(version = 2)]
    #[foldline(version = 3)]
    Opened { owner: String },
}

fn main() {}
