use foldline::DomainEvent;

#[derive(serde::Deserialize)]
struct DepositedV2 {
    cents: u64,
}

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(version = 2, upcast(v2 = DepositedV2))]
    Deposited { cents: u64 },
}

fn main() {}
