//! `#[serde(...)]` on fields reaches the hidden payload structs, although the enum derives
//! neither `Serialize` nor `Deserialize`.
use foldline::{DomainEvent, JsonCodec};

mod cents_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cents: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&cents.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, PartialEq, DomainEvent)]
enum Event {
    Deposited {
        #[serde(with = "cents_as_string")]
        cents: u64,
        #[serde(rename = "memo", default)]
        note: String,
        #[serde(skip_serializing_if = "is_zero", default)]
        retries: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        #[serde(skip)]
        local: bool,
    },
}

fn main() {
    let event = Event::Deposited {
        cents: 5,
        note: "n".into(),
        retries: 0,
        by: None,
        local: true,
    };
    let bytes = event.encode(&JsonCodec).unwrap();
    assert_eq!(bytes, br#"{"cents":"5","memo":"n"}"#);
    let back = Event::decode(&JsonCodec, "Deposited", 1, br#"{"cents":"5"}"#).unwrap();
    assert_eq!(
        back,
        Event::Deposited { cents: 5, note: String::new(), retries: 0, by: None, local: false }
    );
    check_naming_rules();
}

/// Naming rules of the enum (`rename_all_fields`) and of a variant (`rename_all`) apply to the
/// payloads; a field may name the enum as `Self` (serializing it then needs the enum's own
/// serde impls).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize, DomainEvent)]
#[serde(rename_all_fields = "camelCase")]
enum Tree {
    Grown { leaf_count: u32, children: Vec<Self> },
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    Cut { cut_at: u32 },
}

fn check_naming_rules() {
    let tree = Tree::Grown {
        leaf_count: 1,
        children: vec![],
    };
    let bytes = tree.encode(&JsonCodec).unwrap();
    assert_eq!(bytes, br#"{"leafCount":1,"children":[]}"#);
    let cut = Tree::Cut { cut_at: 2 };
    assert_eq!(cut.encode(&JsonCodec).unwrap(), br#"{"CUT_AT":2}"#);
    assert_eq!(Tree::decode(&JsonCodec, "Cut", 1, br#"{"CUT_AT":2}"#).unwrap(), cut);
}
