//! The derives at run time: payloads round-trip through `JsonCodec`, old payloads are upcast,
//! unknown types and versions are refused, commands know their aggregate, snapshots work,
//! process managers reach their own `correlate`, `decide` and `evolve`.

use std::time::{Duration, SystemTime};

use foldline::{
    Action, Aggregate, Codec, Command, DecodeError, DomainEvent, Envelope, Input, JsonCodec,
    NewEvent, Position, ProcessManager, RecordedEvent, StreamId, Version, instance_stream,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A payload type for a newtype variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

/// Note that the event enum itself implements neither `Serialize` nor `Deserialize`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum AccountEvent {
    Opened {
        owner: String,
    },
    #[foldline(rename = "account.deposited", version = 3, upcast(v1 = DepositedV1, v2 = DepositedV2))]
    Deposited {
        cents: u64,
    },
    Frozen,
    Noted(Note),
    #[foldline(version = 2)]
    Renamed {
        #[serde(rename = "newName")]
        new_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// `Deposited` at v1: whole units, as a number.
#[derive(Deserialize)]
struct DepositedV1 {
    amount: u64,
}

/// `Deposited` at v2: cents, as a string.
#[derive(Deserialize)]
struct DepositedV2 {
    cents: String,
}

impl From<DepositedV1> for DepositedV2 {
    fn from(old: DepositedV1) -> Self {
        DepositedV2 {
            cents: (old.amount * 100).to_string(),
        }
    }
}

impl From<DepositedV2> for AccountEvent {
    fn from(old: DepositedV2) -> Self {
        AccountEvent::Deposited {
            cents: old.cents.parse().unwrap_or_default(),
        }
    }
}

fn round_trip(event: &AccountEvent) -> (serde_json::Value, AccountEvent) {
    let bytes = event.encode(&JsonCodec).unwrap();
    let json = serde_json::from_slice(&bytes).unwrap();
    let back = AccountEvent::decode(
        &JsonCodec,
        event.event_type().as_str(),
        event.schema_version(),
        &bytes,
    )
    .unwrap();
    (json, back)
}

#[test]
fn types_lists_every_name_with_its_version() {
    assert_eq!(
        AccountEvent::TYPES,
        [
            ("Opened", 1),
            ("account.deposited", 3),
            ("Frozen", 1),
            ("Noted", 1),
            ("Renamed", 2)
        ]
    );
}

#[test]
fn struct_variant_round_trips_as_an_object() {
    let event = AccountEvent::Opened {
        owner: "Ada".into(),
    };
    assert_eq!(event.event_type(), "Opened");
    assert_eq!(event.schema_version(), 1);
    let (json, back) = round_trip(&event);
    assert_eq!(json, json!({ "owner": "Ada" }));
    assert_eq!(back, event);
}

#[test]
fn renamed_variant_uses_its_type_name_and_version() {
    let event = AccountEvent::Deposited { cents: 250 };
    assert_eq!(event.event_type(), "account.deposited");
    assert_eq!(event.schema_version(), 3);
    let (json, back) = round_trip(&event);
    assert_eq!(json, json!({ "cents": 250 }));
    assert_eq!(back, event);
}

#[test]
fn unit_variant_is_null() {
    let (json, back) = round_trip(&AccountEvent::Frozen);
    assert_eq!(json, json!(null));
    assert_eq!(back, AccountEvent::Frozen);
}

#[test]
fn newtype_variant_is_its_inner_value() {
    let event = AccountEvent::Noted(Note { text: "hi".into() });
    let (json, back) = round_trip(&event);
    assert_eq!(json, json!({ "text": "hi" }));
    assert_eq!(back, event);
}

#[test]
fn serde_field_attributes_are_honoured() {
    let event = AccountEvent::Renamed {
        new_name: "Bo".into(),
        reason: None,
    };
    let (json, back) = round_trip(&event);
    assert_eq!(json, json!({ "newName": "Bo" }));
    assert_eq!(back, event);

    let event = AccountEvent::Renamed {
        new_name: "Bo".into(),
        reason: Some("typo".into()),
    };
    let (json, back) = round_trip(&event);
    assert_eq!(json, json!({ "newName": "Bo", "reason": "typo" }));
    assert_eq!(back, event);
}

#[test]
fn v1_payload_is_upcast_through_two_steps() {
    let payload = br#"{"amount": 3}"#;
    let event = AccountEvent::decode(&JsonCodec, "account.deposited", 1, payload).unwrap();
    assert_eq!(event, AccountEvent::Deposited { cents: 300 });
}

#[test]
fn v2_payload_is_upcast_through_one_step() {
    let payload = br#"{"cents": "42"}"#;
    let event = AccountEvent::decode(&JsonCodec, "account.deposited", 2, payload).unwrap();
    assert_eq!(event, AccountEvent::Deposited { cents: 42 });
}

#[test]
fn unknown_type_is_refused() {
    let err = AccountEvent::decode(&JsonCodec, "Closed", 1, b"null").unwrap_err();
    assert!(
        matches!(&err, DecodeError::UnknownType { event_type } if event_type == "Closed"),
        "{err:?}"
    );
    // The Rust name of a renamed variant is not its type name.
    let err = AccountEvent::decode(&JsonCodec, "Deposited", 3, b"{}").unwrap_err();
    assert!(matches!(err, DecodeError::UnknownType { .. }), "{err:?}");
}

#[test]
fn unsupported_versions_are_refused() {
    for (event_type, version, current) in [
        ("account.deposited", 4, 3),
        ("account.deposited", 0, 3),
        ("Opened", 2, 1),
        ("Renamed", 1, 2),
    ] {
        let err = AccountEvent::decode(&JsonCodec, event_type, version, b"{}").unwrap_err();
        match err {
            DecodeError::UnsupportedVersion {
                event_type: name,
                version: v,
                current: c,
            } => {
                assert_eq!((name.as_str(), v, c), (event_type, version, current));
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }
}

#[test]
fn malformed_payload_is_a_payload_error() {
    let err = AccountEvent::decode(&JsonCodec, "Opened", 1, b"{\"owner\": 5}").unwrap_err();
    assert!(matches!(err, DecodeError::Payload(_)), "{err:?}");
    let err = AccountEvent::decode(&JsonCodec, "Frozen", 1, b"{}").unwrap_err();
    assert!(matches!(err, DecodeError::Payload(_)), "{err:?}");
}

/// An aggregate id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AccountId(u32);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[allow(dead_code)] // only the ids are read here
#[derive(Debug, Command)]
enum AccountCommand {
    Open {
        #[foldline(id)]
        account: AccountId,
        owner: String,
    },
    Deposit {
        cents: u64,
        #[foldline(id)]
        account: AccountId,
    },
    Close(#[foldline(id)] AccountId),
    #[foldline(name = "MakeTransfer")]
    Transfer {
        #[foldline(id)]
        from: AccountId,
        to: AccountId,
        cents: u64,
    },
}

#[allow(dead_code)] // only the id is read here
#[derive(Debug, Command)]
#[foldline(name = "Rename")]
struct RenameAccount(String, #[foldline(id)] AccountId);

#[derive(Debug, Command)]
struct Freeze {
    #[foldline(id)]
    account: AccountId,
}

#[test]
fn commands_know_their_aggregate_and_name() {
    let commands = [
        (
            AccountCommand::Open {
                account: AccountId(1),
                owner: "Ada".into(),
            },
            1,
            "Open",
        ),
        (
            AccountCommand::Deposit {
                cents: 5,
                account: AccountId(2),
            },
            2,
            "Deposit",
        ),
        (AccountCommand::Close(AccountId(3)), 3, "Close"),
        (
            AccountCommand::Transfer {
                from: AccountId(4),
                to: AccountId(5),
                cents: 1,
            },
            4,
            "MakeTransfer",
        ),
    ];
    for (command, id, name) in commands {
        assert_eq!(command.aggregate_id(), &AccountId(id));
        assert_eq!(command.command_name(), name);
    }
    let rename = RenameAccount("x".into(), AccountId(7));
    assert_eq!(rename.aggregate_id(), &AccountId(7));
    assert_eq!(rename.command_name(), "Rename");
    let freeze = Freeze {
        account: AccountId(8),
    };
    assert_eq!(freeze.aggregate_id(), &AccountId(8));
    assert_eq!(freeze.command_name(), "Freeze");
}

/// Why an account refuses a command.
#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("the account is not open")]
    NotOpen,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Aggregate)]
#[foldline(id = AccountId, command = AccountCommand, event = AccountEvent, error = AccountError,
           name = "account", snapshot(every = 100, version = 2))]
struct Account {
    open: bool,
    balance: u64,
}

impl Account {
    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents, .. } => {
                Ok(vec![AccountEvent::Deposited { cents: *cents }])
            }
            _ => Ok(vec![AccountEvent::Frozen]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { cents } => self.balance += cents,
            _ => {}
        }
    }
}

/// No snapshots, and a default name.
#[derive(Debug, Default, Aggregate)]
#[foldline(id = AccountId, command = AccountCommand, event = AccountEvent, error = AccountError)]
struct BankAccount {
    events: usize,
}

impl BankAccount {
    fn handle(&self, _: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(Vec::new())
    }

    fn apply(&mut self, _: &AccountEvent) {
        self.events += 1;
    }
}

#[test]
fn aggregate_forwards_to_inherent_methods() {
    let mut account = Account::default();
    let open = AccountCommand::Open {
        account: AccountId(1),
        owner: "Ada".into(),
    };
    let deposit = AccountCommand::Deposit {
        cents: 7,
        account: AccountId(1),
    };
    assert!(matches!(
        Aggregate::handle(&account, &deposit),
        Err(AccountError::NotOpen)
    ));
    for event in Aggregate::handle(&account, &open).unwrap() {
        Aggregate::apply(&mut account, &event);
    }
    for event in Aggregate::handle(&account, &deposit).unwrap() {
        Aggregate::apply(&mut account, &event);
    }
    assert_eq!(
        account,
        Account {
            open: true,
            balance: 7
        }
    );

    let mut bank = BankAccount::default();
    Aggregate::apply(&mut bank, &AccountEvent::Frozen);
    assert_eq!(bank.events, 1);
}

#[test]
fn aggregate_constants() {
    assert_eq!(Account::NAME, "account");
    assert_eq!(Account::SNAPSHOT_EVERY, Some(100));
    assert_eq!(Account::SNAPSHOT_VERSION, 2);
    assert_eq!(BankAccount::NAME, "bank_account");
    assert_eq!(BankAccount::SNAPSHOT_EVERY, None);
    assert_eq!(BankAccount::SNAPSHOT_VERSION, 1);
}

#[test]
fn snapshots_round_trip() {
    let account = Account {
        open: true,
        balance: 99,
    };
    let bytes = account.encode_snapshot(&JsonCodec).unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        json!({ "open": true, "balance": 99 })
    );
    let back = Account::decode_snapshot(&JsonCodec, &bytes)
        .unwrap()
        .unwrap();
    assert_eq!(back, account);

    // Without `snapshot(...)` the trait's defaults stay: no snapshot.
    let bank = BankAccount::default();
    assert!(bank.encode_snapshot(&JsonCodec).unwrap().is_none());
    assert!(
        BankAccount::decode_snapshot(&JsonCodec, b"{}")
            .unwrap()
            .is_none()
    );
    assert_eq!(JsonCodec.name(), "json");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
enum TransferEvent {
    Requested { transfer: u32, cents: u64 },
    Settled { transfer: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TransferCommand {
    Withdraw { cents: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TransferTimeout {
    Stuck,
}

/// A process manager with every key.
#[derive(Debug, Default, PartialEq, ProcessManager)]
#[foldline(name = "transfer", id = u32, event = TransferEvent, command = TransferCommand,
           timeout = TransferTimeout)]
struct Transfer {
    cents: u64,
}

impl Transfer {
    fn correlate(event: &Envelope<'_, TransferEvent>) -> Option<u32> {
        match &event.event {
            TransferEvent::Requested { transfer, .. } => Some(*transfer),
            TransferEvent::Settled { .. } => None,
        }
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(TransferEvent::Requested { cents, .. }) => vec![
                Action::Send(TransferCommand::Withdraw { cents: *cents }),
                Action::Schedule {
                    timeout: TransferTimeout::Stuck,
                    after: Duration::from_secs(60),
                },
            ],
            Input::Event(TransferEvent::Settled { .. }) => vec![Action::Complete],
            Input::Refused { error, .. } => vec![Action::Fail {
                reason: error.clone(),
            }],
            Input::Timeout(TransferTimeout::Stuck) => vec![Action::Fail {
                reason: format!("stuck with {} cents", self.cents),
            }],
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        if let Input::Event(TransferEvent::Requested { cents, .. }) = input {
            self.cents = *cents;
        }
    }
}

/// Without `timeout`: `()`.
#[derive(Default, ProcessManager)]
#[foldline(name = "audit", id = String, event = TransferEvent, command = TransferCommand)]
struct Audit;

impl Audit {
    fn correlate(_: &Envelope<'_, TransferEvent>) -> Option<String> {
        Some("all".to_owned())
    }

    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        Vec::new()
    }

    fn evolve(&mut self, _: &Input<Self>) {}
}

fn recorded(event: &TransferEvent) -> RecordedEvent {
    RecordedEvent::from_new(
        NewEvent::encode(event, &JsonCodec).unwrap(),
        StreamId::new("account-1").unwrap(),
        Version::new(1),
        Position::new(0, 1, 0),
        SystemTime::now(),
    )
}

#[test]
fn process_manager_forwards_to_inherent_functions() {
    let requested = TransferEvent::Requested {
        transfer: 7,
        cents: 500,
    };
    let settled = TransferEvent::Settled { transfer: 7 };
    let (requested_at, settled_at) = (recorded(&requested), recorded(&settled));
    assert_eq!(
        <Transfer as ProcessManager>::correlate(&Envelope::new(requested.clone(), &requested_at)),
        Some(7)
    );
    assert_eq!(
        <Transfer as ProcessManager>::correlate(&Envelope::new(settled, &settled_at)),
        None
    );

    let mut transfer = Transfer::default();
    let input = Input::Event(requested);
    assert_eq!(
        ProcessManager::decide(&transfer, &input),
        [
            Action::Send(TransferCommand::Withdraw { cents: 500 }),
            Action::Schedule {
                timeout: TransferTimeout::Stuck,
                after: Duration::from_secs(60)
            },
        ]
    );
    ProcessManager::evolve(&mut transfer, &input);
    assert_eq!(transfer, Transfer { cents: 500 });
    assert_eq!(
        ProcessManager::decide(&transfer, &Input::Timeout(TransferTimeout::Stuck)),
        [Action::Fail {
            reason: "stuck with 500 cents".to_owned()
        }]
    );
}

#[test]
fn process_manager_name_and_default_timeout() {
    assert_eq!(Transfer::NAME, "transfer");
    assert_eq!(
        instance_stream::<Transfer>(&7).unwrap().as_str(),
        "transfer-7"
    );
    assert_eq!(Audit::NAME, "audit");
    let no_timeout: <Audit as ProcessManager>::Timeout = ();
    assert!(ProcessManager::decide(&Audit, &Input::Timeout(no_timeout)).is_empty());
    assert_eq!(
        <Audit as ProcessManager>::correlate(&Envelope::new(
            TransferEvent::Settled { transfer: 1 },
            &recorded(&TransferEvent::Settled { transfer: 1 })
        )),
        Some("all".to_owned())
    );
}
