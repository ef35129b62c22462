//! Given/when/then tests of the `Account` aggregate with `foldline::testing::AggregateTest`:
//! given past events, when a command is decided, then these events (or this refusal). Pure: no
//! store involved.

use example_bank::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, OutgoingTransfer, TransferRef,
    dollars,
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

fn rent() -> TransferRef {
    TransferRef::new("T-1", "rent")
}

fn bob() -> AccountId {
    AccountId::new("bob")
}

fn requested(cents: u64) -> AccountEvent {
    AccountEvent::TransferRequested {
        transfer: rent(),
        from: alice(),
        to: bob(),
        cents,
        needs_approval: cents > Account::APPROVAL_LIMIT,
    }
}

fn withdraw_for_rent(cents: u64) -> AccountCommand {
    AccountCommand::Withdraw {
        account: alice(),
        cents,
        transfer: Some(rent()),
    }
}

fn withdrawn_for_rent(cents: u64) -> AccountEvent {
    AccountEvent::Withdrawn {
        cents,
        transfer: Some(rent()),
    }
}

fn cancel_rent() -> AccountCommand {
    AccountCommand::CancelTransfer {
        account: alice(),
        transfer: rent(),
    }
}

#[test]
fn a_transfer_request_says_whether_it_needs_approval() {
    let account = Test::given([opened(), deposited(dollars(1_000))])
        .when(AccountCommand::request_transfer(
            &alice(),
            rent(),
            &bob(),
            dollars(501),
        ))
        .then_expect([requested(dollars(501))]);
    assert_eq!(
        account.transfer_out("T-1"),
        Some(OutgoingTransfer::Requested)
    );
    assert!(matches!(
        requested(Account::APPROVAL_LIMIT),
        AccountEvent::TransferRequested {
            needs_approval: false,
            ..
        }
    ));
}

#[test]
fn a_transfer_id_is_requested_once_and_never_to_the_same_account() {
    Test::given([opened(), requested(dollars(5))])
        .when(AccountCommand::request_transfer(
            &alice(),
            rent(),
            &bob(),
            dollars(5),
        ))
        .then_expect_error(|e| matches!(e, AccountError::DuplicateTransfer { .. }));
    Test::given([opened()])
        .when(AccountCommand::request_transfer(
            &alice(),
            rent(),
            &alice(),
            dollars(5),
        ))
        .then_expect_error(|e| *e == AccountError::SameAccount);
}

#[test]
fn a_transfer_takes_its_money_once() {
    let account = Test::given([opened(), deposited(dollars(10)), requested(dollars(3))])
        .when(withdraw_for_rent(dollars(3)))
        .then_expect([withdrawn_for_rent(dollars(3))]);
    assert_eq!(
        account.transfer_out("T-1"),
        Some(OutgoingTransfer::Withdrawn { cents: dollars(3) })
    );
    // A second withdrawal for the same transfer (another key, or a bug) records nothing.
    Test::given([
        opened(),
        deposited(dollars(10)),
        requested(dollars(3)),
        withdrawn_for_rent(dollars(3)),
    ])
    .when(withdraw_for_rent(dollars(3)))
    .then_expect_no_events();
}

#[test]
fn undoing_a_withdrawn_transfer_refunds_it_once() {
    let given = [
        opened(),
        deposited(dollars(10)),
        requested(dollars(3)),
        withdrawn_for_rent(dollars(3)),
    ];
    let refunded = AccountEvent::TransferRefunded {
        cents: dollars(3),
        transfer: rent(),
    };
    let account = Test::given(given.clone())
        .when(cancel_rent())
        .then_expect([refunded.clone()]);
    assert_eq!(account.balance(), dollars(10));
    assert_eq!(
        account.transfer_out("T-1"),
        Some(OutgoingTransfer::Refunded)
    );
    // Asked again (a timeout and a refused deposit both undo it): nothing more.
    let mut twice = given.to_vec();
    twice.push(refunded);
    Test::given(twice.clone())
        .when(cancel_rent())
        .then_expect_no_events();
    // And the transfer takes no money again.
    Test::given(twice)
        .when(withdraw_for_rent(dollars(3)))
        .then_expect_no_events();
}

#[test]
fn undoing_a_transfer_before_its_withdrawal_refuses_the_withdrawal() {
    let cancelled = AccountEvent::TransferCancelled { transfer: rent() };
    let account = Test::given([opened(), deposited(dollars(10)), requested(dollars(3))])
        .when(cancel_rent())
        .then_expect([cancelled.clone()]);
    assert_eq!(account.balance(), dollars(10));
    // The withdrawal was still in flight, or is sent again after a crash: refused.
    Test::given([
        opened(),
        deposited(dollars(10)),
        requested(dollars(3)),
        cancelled.clone(),
    ])
    .when(withdraw_for_rent(dollars(3)))
    .then_expect_error_message("transfer T-1 was cancelled");
    // So is a late approval.
    Test::given([opened(), requested(dollars(600)), cancelled])
        .when(AccountCommand::approve_transfer(&alice(), "T-1"))
        .then_expect_error(|e| matches!(e, AccountError::TransferCancelled { .. }));
}

#[test]
fn undoing_a_transfer_is_never_refused() {
    // Not on a closed account, not on an account that never heard of the transfer.
    Test::given([
        opened(),
        deposited(dollars(10)),
        requested(dollars(3)),
        withdrawn_for_rent(dollars(3)),
        AccountEvent::Closed,
    ])
    .when(cancel_rent())
    .then_expect([AccountEvent::TransferRefunded {
        cents: dollars(3),
        transfer: rent(),
    }]);
    Test::given([opened()])
        .when(cancel_rent())
        .then_expect([AccountEvent::TransferCancelled { transfer: rent() }]);
}

#[test]
fn a_closed_account_takes_no_deposit() {
    let closed = [
        AccountEvent::Opened {
            owner: "Bob".into(),
        },
        AccountEvent::Closed,
    ];
    Test::given(closed.clone())
        .when(AccountCommand::deposit(&bob(), dollars(5)))
        .then_expect_error(|e| *e == AccountError::Closed);
    let account = Test::given([AccountEvent::Opened {
        owner: "Bob".into(),
    }])
    .when(AccountCommand::close(&bob()))
    .then_expect([AccountEvent::Closed]);
    assert!(account.is_closed() && !account.is_open());
    Test::given(closed)
        .when(AccountCommand::open(&bob(), "Bob"))
        .then_expect_error(|e| *e == AccountError::AlreadyOpen);
}

#[test]
fn an_approval_needs_a_request() {
    Test::given([opened()])
        .when(AccountCommand::approve_transfer(&alice(), "T-9"))
        .then_expect_error(|e| matches!(e, AccountError::UnknownTransfer { .. }));
    Test::given([opened(), requested(dollars(600))])
        .when(AccountCommand::approve_transfer(&alice(), "T-1"))
        .then_expect([AccountEvent::TransferApproved {
            transfer: "T-1".into(),
        }]);
}

#[test]
fn stored_type_names_and_versions_stay_put() {
    // These are written with every event: changing one orphans stored data.
    assert_eq!(
        AccountEvent::TYPES,
        &[
            ("Opened", 1),
            ("Deposited", 2),
            ("Withdrawn", 1),
            ("Closed", 1),
            ("TransferRequested", 1),
            ("TransferApproved", 1),
            ("TransferRefunded", 1),
            ("TransferCancelled", 1),
        ]
    );
}

#[test]
fn a_schema_v1_deposit_is_upcast() -> Result<(), foldline::DecodeError> {
    let event = AccountEvent::decode(&JsonCodec, "Deposited", 1, br#"{"cents":800}"#)?;
    assert_eq!(event, deposited(800));
    Ok(())
}
