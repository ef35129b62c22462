//! `rename`, `version` and typed upcaster chains, including one that starts after v1 and one on
//! a newtype variant.
use foldline::{DomainEvent, JsonCodec};

#[derive(Debug, PartialEq, DomainEvent)]
enum Event {
    #[foldline(rename = "account.deposited", version = 3, upcast(v2 = DepositedV2, v1 = DepositedV1))]
    Deposited { cents: u64 },
    #[foldline(version = 4, upcast(v2 = LabelV2, v3 = LabelV3))]
    Labelled(String),
}

#[derive(serde::Deserialize)]
struct DepositedV1 {
    amount: u64,
}

#[derive(serde::Deserialize)]
struct DepositedV2 {
    cents: u32,
}

impl From<DepositedV1> for DepositedV2 {
    fn from(v1: DepositedV1) -> Self {
        DepositedV2 { cents: (v1.amount * 100) as u32 }
    }
}

impl From<DepositedV2> for Event {
    fn from(v2: DepositedV2) -> Self {
        Event::Deposited { cents: v2.cents.into() }
    }
}

#[derive(serde::Deserialize)]
struct LabelV2(u32);

#[derive(serde::Deserialize)]
struct LabelV3(String);

impl From<LabelV2> for LabelV3 {
    fn from(v2: LabelV2) -> Self {
        LabelV3(v2.0.to_string())
    }
}

impl From<LabelV3> for Event {
    fn from(v3: LabelV3) -> Self {
        Event::Labelled(v3.0)
    }
}

fn main() {
    let codec = JsonCodec;
    assert_eq!(
        Event::decode(&codec, "account.deposited", 1, br#"{"amount":2}"#).unwrap(),
        Event::Deposited { cents: 200 }
    );
    assert_eq!(
        Event::decode(&codec, "Labelled", 2, b"7").unwrap(),
        Event::Labelled("7".into())
    );
    assert!(Event::decode(&codec, "Labelled", 1, b"7").is_err());
    assert_eq!(Event::TYPES, [("account.deposited", 3), ("Labelled", 4)]);
}
