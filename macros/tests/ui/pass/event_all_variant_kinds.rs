//! Struct, empty struct, newtype, unit and empty tuple variants; a raw identifier; a field named
//! like the generated code's own variables.
use foldline::{DomainEvent, JsonCodec};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Note {
    text: String,
}

#[derive(Debug, PartialEq, DomainEvent)]
enum Event {
    Opened { owner: String, codec: u8, payload: Vec<u8> },
    Touched {},
    Noted(Note),
    Frozen,
    Pinged(),
    r#Type { r#type: String },
}

fn main() {
    let events = [
        Event::Opened { owner: "Ada".into(), codec: 1, payload: vec![2] },
        Event::Touched {},
        Event::Noted(Note { text: "hi".into() }),
        Event::Frozen,
        Event::Pinged(),
        Event::Type { r#type: "t".into() },
    ];
    for event in events {
        let bytes = event.encode(&JsonCodec).unwrap();
        let back = Event::decode(&JsonCodec, event.event_type().as_str(), 1, &bytes).unwrap();
        assert_eq!(back, event);
    }
    assert_eq!(Event::Type { r#type: String::new() }.event_type(), "Type");
    assert_eq!(Event::TYPES.len(), 6);
}
