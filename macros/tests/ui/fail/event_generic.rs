use foldline::DomainEvent;

#[derive(DomainEvent)]
enum Event<T> {
    Happened { what: T },
}

fn main() {}
