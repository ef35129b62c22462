use foldline::DomainEvent;

#[derive(serde::Deserialize)]
struct DepositedV1 {
    amount: u64,
}

// Missing: impl From<DepositedV1> for AccountEvent

#[derive(DomainEvent)]
enum AccountEvent {
    #[foldline(version = 2, upcast(v1 = DepositedV1))]
    Deposited { cents: u64 },
}

fn main() {}
