use foldline::DomainEvent;

struct Owner;

#[derive(DomainEvent)]
enum AccountEvent {
    Opened { owner: Owner },
}

fn main() {}
