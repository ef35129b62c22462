//! Given/when/then tests of the `Account` aggregate with `foldline::testing::AggregateTest`:
//! given past events, when a command is decided, then these events (or this refusal). Pure: no
//! store involved.

use example_bank::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Transfer, TransferRef, dollars,
};
use foldline::testing::AggregateTest;
use foldline::{DomainEvent, JsonCodec};

type Test = AggregateTest<Account>;

fn alice() -> AccountId {
    AccountId::new("alice")
}

fn opened() -> AccountEvent {
    AccountEvent::Opened {
        owner: "Alice".into(),
    }
}

fn deposited(cents: u64) -> AccountEvent {
    AccountEvent::Deposited {
        cents,
        transfer: None,
    }
}

fn withdrawn(cents: u64) -> AccountEvent {
    AccountEvent::Withdrawn {
        cents,
        transfer: None,
    }
}

#[test]
fn opening_a_new_account() {
    let account = Test::given_no_events()
        .when(AccountCommand::open(&alice(), "Alice"))
        .then_expect([opened()]);
    assert_eq!(account.owner(), Some("Alice"));
    assert_eq!(account.balance(), 0);
}

#[test]
fn an_account_opens_once() {
    Test::given([opened()])
        .when(AccountCommand::open(&alice(), "Alice"))
        .then_expect_error(|e| *e == AccountError::AlreadyOpen);
}

#[test]
fn no_deposit_before_opening() {
    Test::given_no_events()
        .when(AccountCommand::deposit(&alice(), dollars(5)))
        .then_expect_error(|e| *e == AccountError::NotOpen);
}

#[test]
fn no_zero_amounts() {
    Test::given([opened()])
        .when(AccountCommand::deposit(&alice(), 0))
        .then_expect_error(|e| *e == AccountError::ZeroAmount);
    Test::given([opened()])
        .when(AccountCommand::withdraw(&alice(), 0))
        .then_expect_error(|e| *e == AccountError::ZeroAmount);
}

#[test]
fn withdrawing_the_whole_balance() {
    let account = Test::given([opened(), deposited(dollars(10))])
        .when(AccountCommand::withdraw(&alice(), dollars(10)))
        .then_expect([withdrawn(dollars(10))]);
    assert_eq!(account.balance(), 0);
}

#[test]
fn an_overdraft_is_refused() {
    Test::given([opened(), deposited(dollars(10)), withdrawn(dollars(3))])
        .when(AccountCommand::withdraw(&alice(), dollars(7) + 1))
        .then_expect_error_message(
            "insufficient funds: the balance is $7.00, the withdrawal $7.01",
        );
}

#[test]
fn both_legs_of_a_transfer_carry_its_reference() {
    let reference = TransferRef {
        id: "T-1".into(),
        memo: "lunch".into(),
    };
    let transfer = Transfer {
        reference: reference.clone(),
        from: alice(),
        to: AccountId::new("bob"),
        cents: dollars(7),
    };
    let alice = Test::given([opened(), deposited(dollars(10))])
        .when(transfer.withdraw_leg())
        .then_expect([AccountEvent::Withdrawn {
            cents: dollars(7),
            transfer: Some(reference.clone()),
        }]);
    let bob = Test::given([AccountEvent::Opened {
        owner: "Bob".into(),
    }])
    .when(transfer.deposit_leg())
    .then_expect([AccountEvent::Deposited {
        cents: dollars(7),
        transfer: Some(reference),
    }]);
    assert_eq!((alice.balance(), bob.balance()), (dollars(3), dollars(7)));
}

#[test]
fn stored_type_names_and_versions_stay_put() {
    // These are written with every event: changing one orphans stored data.
    assert_eq!(
        AccountEvent::TYPES,
        &[("Opened", 1), ("Deposited", 2), ("Withdrawn", 1)]
    );
}

#[test]
fn a_schema_v1_deposit_is_upcast() -> Result<(), foldline::DecodeError> {
    let event = AccountEvent::decode(&JsonCodec, "Deposited", 1, br#"{"cents":800}"#)?;
    assert_eq!(event, deposited(800));
    Ok(())
}
