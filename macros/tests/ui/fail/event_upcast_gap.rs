use foldline::DomainEvent;

#[derive(serde::Deserialize)]
struct DepositedV1 {
    amount: u64,
}

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(version = 3, upcast(v1 = DepositedV1))]
    Deposited { cents: u64 },
}

fn main() {}
