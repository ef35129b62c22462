//! Given/when/then tests of the `Account` aggregate: given past events, when a command is
//! handled, then these events (or this refusal). Pure: no store involved.

use example_bank::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Transfer, TransferRef, dollars,
};

fn given(events: &[AccountEvent]) -> Account {
    let mut account = Account::default();
    for event in events {
        account.apply(event);
    }
    account
}

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

#[test]
fn opening_a_new_account() {
    let then = given(&[]).handle(&AccountCommand::open(&alice(), "Alice"));
    assert_eq!(then, Ok(vec![opened()]));
}

#[test]
fn an_account_opens_once() {
    let then = given(&[opened()]).handle(&AccountCommand::open(&alice(), "Alice"));
    assert_eq!(then, Err(AccountError::AlreadyOpen));
}

#[test]
fn no_deposit_before_opening() {
    let then = given(&[]).handle(&AccountCommand::deposit(&alice(), dollars(5)));
    assert_eq!(then, Err(AccountError::NotOpen));
}

#[test]
fn no_zero_amounts() {
    let account = given(&[opened()]);
    assert_eq!(
        account.handle(&AccountCommand::deposit(&alice(), 0)),
        Err(AccountError::ZeroAmount)
    );
    assert_eq!(
        account.handle(&AccountCommand::withdraw(&alice(), 0)),
        Err(AccountError::ZeroAmount)
    );
}

#[test]
fn withdrawing_within_the_balance() {
    let then = given(&[opened(), deposited(dollars(10))])
        .handle(&AccountCommand::withdraw(&alice(), dollars(10)));
    assert_eq!(
        then,
        Ok(vec![AccountEvent::Withdrawn {
            cents: dollars(10),
            transfer: None
        }])
    );
}

#[test]
fn an_overdraft_is_refused() {
    let then = given(&[opened(), deposited(dollars(10))])
        .handle(&AccountCommand::withdraw(&alice(), dollars(10) + 1));
    assert_eq!(
        then,
        Err(AccountError::InsufficientFunds {
            balance: dollars(10),
            requested: dollars(10) + 1
        })
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
    let out = given(&[opened(), deposited(dollars(10))]).handle(&transfer.withdraw_leg());
    let bob = given(&[AccountEvent::Opened {
        owner: "Bob".into(),
    }]);
    let into = bob.handle(&transfer.deposit_leg());
    assert_eq!(
        out,
        Ok(vec![AccountEvent::Withdrawn {
            cents: dollars(7),
            transfer: Some(reference.clone())
        }])
    );
    assert_eq!(
        into,
        Ok(vec![AccountEvent::Deposited {
            cents: dollars(7),
            transfer: Some(reference)
        }])
    );
}

#[test]
fn the_balance_folds_every_event() {
    let account = given(&[
        opened(),
        deposited(dollars(10)),
        AccountEvent::Withdrawn {
            cents: dollars(3),
            transfer: None,
        },
    ]);
    assert_eq!(account.owner(), Some("Alice"));
    assert_eq!(account.balance(), dollars(7));
}

#[test]
fn stored_type_names_and_versions_stay_put() {
    // These are written with every event: changing one orphans stored data.
    assert_eq!(
        <AccountEvent as foldline::DomainEvent>::TYPES,
        &[("Opened", 1), ("Deposited", 2), ("Withdrawn", 1)]
    );
}

#[test]
fn a_schema_v1_deposit_is_upcast() -> Result<(), foldline::DecodeError> {
    let event = <AccountEvent as foldline::DomainEvent>::decode(
        &foldline::JsonCodec,
        "Deposited",
        1,
        br#"{"cents":800}"#,
    )?;
    assert_eq!(event, deposited(800));
    Ok(())
}
