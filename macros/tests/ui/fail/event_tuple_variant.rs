use foldline::DomainEvent;

#[derive(DomainEvent)]
enum AccountEvent {
    Transferred(String, String, u64),
}

fn main() {}
