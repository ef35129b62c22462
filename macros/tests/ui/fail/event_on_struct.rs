use foldline::DomainEvent;

#[derive(DomainEvent)]
struct Opened {
    owner: String,
}

fn main() {}
