use foldline::DomainEvent;

#[derive(DomainEvent)]
#[foldline(krate = "foldline")]
enum AccountEvent {
    #[foldline(version = 0)]
    Opened { owner: String },
    #[foldline(rename = "1st", version = 3, version = 4, upcast(v1 = u8, v3 = u8))]
    Deposited { cents: u64 },
    #[foldline(rename = "Opened")]
    Reopened(String, String),
}

fn main() {}
