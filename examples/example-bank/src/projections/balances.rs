//! `Balances`: every account's owner, balance and version, kept in Redis hashes.
//!
//! The handler turns each account event into [`RedisWrites`]; it does no I/O, so the unit
//! tests below check it without a server. The same writes run in Redis ([`RedisTarget`]) or
//! in memory ([`InMemoryTarget<RedisKeyspace>`], which applies them as Redis would), and
//! [`BalanceView`] reads them back from either.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `account:<id>` | hash | `owner`, `cents` (the balance), `version` (of the account's stream), `transfer_legs`, `closed` (`1` once closed) |
//! | `accounts` | set | every account id |

use std::collections::BTreeMap;

use anyhow::Context;
use foldline::{BoxError, Envelope, InMemoryTarget, Projection, ProjectionName, ProjectionTarget};
use foldline_redis::redis::{self, AsyncCommands};
use foldline_redis::{RedisKeyspace, RedisReader, RedisTarget, RedisWrites};

use crate::domain::{AccountEvent, AccountId};

/// The set of every account id.
const ACCOUNTS: &str = "accounts";

/// The hash of one account.
fn account_key(id: &str) -> String {
    format!("account:{id}")
}

/// Folds account events into one Redis hash per account.
#[derive(Debug, Clone, Copy, Default)]
pub struct Balances;

impl Projection for Balances {
    const NAME: ProjectionName = ProjectionName::from_static("balances");
    type Event = AccountEvent;
    type Writes = RedisWrites;

    fn handle(
        &self,
        event: Envelope<'_, AccountEvent>,
        writes: &mut RedisWrites,
    ) -> Result<(), BoxError> {
        let id = super::account_of(&event.recorded.stream_id)?;
        let key = account_key(id.as_str());
        // HINCRBY is not idempotent on its own: replaying an event would count it twice. The
        // projector commits each batch together with its checkpoint, and skips events the
        // checkpoint covers, so every event is counted exactly once.
        let transfer_leg = match &event.event {
            AccountEvent::Opened { owner } => {
                writes
                    .hset(&key, "owner", owner.as_str())
                    .sadd(ACCOUNTS, id.as_str());
                false
            }
            AccountEvent::Deposited { cents, transfer } => {
                writes.hincr_by(&key, "cents", i64::try_from(*cents)?);
                transfer.is_some()
            }
            AccountEvent::Withdrawn { cents, transfer } => {
                writes.hincr_by(&key, "cents", -i64::try_from(*cents)?);
                transfer.is_some()
            }
            AccountEvent::TransferRefunded { cents, .. } => {
                writes.hincr_by(&key, "cents", i64::try_from(*cents)?);
                true
            }
            AccountEvent::Closed => {
                writes.hset(&key, "closed", "1");
                false
            }
            // Money moves only with the withdrawal, the deposit or the refund.
            AccountEvent::TransferRequested { .. }
            | AccountEvent::TransferApproved { .. }
            | AccountEvent::TransferCancelled { .. } => false,
        };
        if transfer_leg {
            writes.hincr_by(&key, "transfer_legs", 1);
        }
        let version = event.recorded.stream_version.get();
        writes.hset(&key, "version", version.to_string());
        Ok(())
    }
}

/// One account as the [`Balances`] projection holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    /// The account.
    pub id: AccountId,
    /// Who owns it.
    pub owner: String,
    /// Its balance in cents (signed, as Redis' `HINCRBY` keeps it).
    pub cents: i64,
    /// The version of its stream the balance is as of.
    pub version: u64,
    /// How many of its deposits, withdrawals and refunds were part of a transfer.
    pub transfer_legs: u64,
    /// Whether it was closed.
    pub closed: bool,
}

impl AccountBalance {
    /// The account from the fields of its hash; `None` when the hash is empty (no such account).
    fn from_fields(
        id: &AccountId,
        fields: &BTreeMap<String, String>,
    ) -> anyhow::Result<Option<Self>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let number = |name: &str| -> anyhow::Result<i64> {
            fields.get(name).map_or(Ok(0), |text| {
                text.parse()
                    .with_context(|| format!("field `{name}` of account {id} holds `{text}`"))
            })
        };
        Ok(Some(AccountBalance {
            id: id.clone(),
            owner: fields.get("owner").cloned().unwrap_or_default(),
            cents: number("cents")?,
            version: u64::try_from(number("version")?)?,
            transfer_legs: u64::try_from(number("transfer_legs")?)?,
            closed: fields.get("closed").is_some_and(|closed| closed == "1"),
        }))
    }
}

/// A target the [`Balances`] projection can run in and be read back from.
pub trait BalanceTarget: ProjectionTarget<Writes = RedisWrites> {
    /// A view of the balances in this target's active slot.
    fn view(&self) -> BalanceView;
}

impl BalanceTarget for RedisTarget {
    fn view(&self) -> BalanceView {
        BalanceView::Redis(self.reader())
    }
}

impl BalanceTarget for InMemoryTarget<RedisKeyspace> {
    fn view(&self) -> BalanceView {
        BalanceView::Memory(self.clone())
    }
}

/// Reads the [`Balances`] read model, from Redis or from memory: always the active slot, so a
/// rebuild never shows a half-built read model.
#[derive(Debug, Clone)]
pub enum BalanceView {
    /// Reads Redis.
    Redis(RedisReader),
    /// Reads the in-memory keyspace that stands in for Redis.
    Memory(InMemoryTarget<RedisKeyspace>),
}

impl BalanceView {
    /// The balance of `account` in cents; `None` when the read model has not seen it.
    ///
    /// # Errors
    ///
    /// Redis failing, or holding something the projection never writes.
    pub async fn balance(&self, account: &AccountId) -> anyhow::Result<Option<i64>> {
        Ok(self.account(account).await?.map(|a| a.cents))
    }

    /// `account` as the read model holds it; `None` when it has not seen it.
    ///
    /// # Errors
    ///
    /// As [`balance`](BalanceView::balance).
    pub async fn account(&self, account: &AccountId) -> anyhow::Result<Option<AccountBalance>> {
        let fields = match self {
            BalanceView::Redis(reader) => {
                let key = account_key(account.as_str());
                reader
                    .read(&Balances::NAME, |mut conn, keys| {
                        let key = keys.key(&key);
                        async move { conn.hgetall(key).await }
                    })
                    .await?
            }
            BalanceView::Memory(target) => target.read(&Balances::NAME, |keyspace| {
                hash_of(keyspace, account.as_str())
            }),
        };
        AccountBalance::from_fields(account, &fields.unwrap_or_default())
    }

    /// Every account the read model holds, ordered by id, read from one version of it.
    ///
    /// # Errors
    ///
    /// As [`balance`](BalanceView::balance).
    pub async fn accounts(&self) -> anyhow::Result<Vec<AccountBalance>> {
        let hashes: Vec<(AccountId, BTreeMap<String, String>)> = match self {
            BalanceView::Redis(reader) => reader
                .read(&Balances::NAME, |mut conn, keys| async move {
                    let ids: Vec<String> = conn.smembers(keys.key(ACCOUNTS)).await?;
                    let mut hashes = Vec::with_capacity(ids.len());
                    for id in ids {
                        let fields = conn.hgetall(keys.key(&account_key(&id))).await?;
                        hashes.push((AccountId::new(id), fields));
                    }
                    Ok::<_, redis::RedisError>(hashes)
                })
                .await?
                .unwrap_or_default(),
            BalanceView::Memory(target) => target
                .read(&Balances::NAME, |keyspace| {
                    keyspace
                        .smembers(ACCOUNTS)
                        .into_iter()
                        .map(|id| {
                            let id = String::from_utf8_lossy(id).into_owned();
                            let fields = hash_of(keyspace, &id);
                            (AccountId::new(id), fields)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut accounts = Vec::with_capacity(hashes.len());
        for (id, fields) in &hashes {
            accounts.extend(AccountBalance::from_fields(id, fields)?);
        }
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(accounts)
    }
}

/// The hash of account `id` in an in-memory keyspace, as text.
fn hash_of(keyspace: &RedisKeyspace, id: &str) -> BTreeMap<String, String> {
    keyspace
        .hgetall(&account_key(id))
        .into_iter()
        .map(|(field, value)| {
            let text = |bytes| String::from_utf8_lossy(bytes).into_owned();
            (text(field), text(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use foldline::MemoryModel;

    use super::*;
    use crate::domain::TransferRef;
    use crate::projections::recorded;

    /// The writes `events` cause on `stream`, from version 1 on.
    fn writes_of(stream: &str, events: &[AccountEvent]) -> Result<RedisWrites, BoxError> {
        let mut writes = RedisWrites::new();
        for (event, version) in events.iter().zip(1..) {
            let recorded = recorded(stream, version, event);
            Balances.handle(Envelope::new(event.clone(), &recorded), &mut writes)?;
        }
        Ok(writes)
    }

    fn rent() -> Option<TransferRef> {
        Some(TransferRef {
            id: "T-1".into(),
            memo: "rent".into(),
        })
    }

    #[test]
    fn opening_sets_the_owner_and_lists_the_account() -> Result<(), BoxError> {
        let owner = "Ada".to_owned();
        let writes = writes_of("account-ada", &[AccountEvent::Opened { owner }])?;
        let mut expected = RedisWrites::new();
        expected
            .hset("account:ada", "owner", "Ada")
            .sadd("accounts", "ada")
            .hset("account:ada", "version", "1");
        assert_eq!(writes, expected);
        Ok(())
    }

    #[test]
    fn a_withdrawal_is_a_negative_increment() -> Result<(), BoxError> {
        let withdrawn = AccountEvent::Withdrawn {
            cents: 250,
            transfer: rent(),
        };
        let recorded = recorded("account-ada", 3, &withdrawn);
        let mut writes = RedisWrites::new();
        Balances.handle(Envelope::new(withdrawn, &recorded), &mut writes)?;
        let mut expected = RedisWrites::new();
        expected
            .hincr_by("account:ada", "cents", -250)
            .hincr_by("account:ada", "transfer_legs", 1)
            .hset("account:ada", "version", "3");
        assert_eq!(writes, expected);
        Ok(())
    }

    #[test]
    fn a_refund_puts_the_money_back_and_a_cancellation_moves_none() -> Result<(), BoxError> {
        let rent = TransferRef::new("T-1", "rent");
        let refunded = AccountEvent::TransferRefunded {
            cents: 250,
            transfer: rent.clone(),
        };
        let cancelled = AccountEvent::TransferCancelled { transfer: rent };
        let writes = writes_of("account-ada", &[refunded, cancelled, AccountEvent::Closed])?;
        let mut expected = RedisWrites::new();
        expected
            .hincr_by("account:ada", "cents", 250)
            .hincr_by("account:ada", "transfer_legs", 1)
            .hset("account:ada", "version", "1")
            .hset("account:ada", "version", "2")
            .hset("account:ada", "closed", "1")
            .hset("account:ada", "version", "3");
        assert_eq!(writes, expected);
        Ok(())
    }

    #[test]
    fn the_writes_fold_into_the_balance() -> Result<(), BoxError> {
        let writes = writes_of(
            "account-ada",
            &[
                AccountEvent::Opened {
                    owner: "Ada".into(),
                },
                AccountEvent::Deposited {
                    cents: 1_000,
                    transfer: None,
                },
                AccountEvent::Withdrawn {
                    cents: 250,
                    transfer: rent(),
                },
                AccountEvent::Deposited {
                    cents: 5,
                    transfer: None,
                },
            ],
        )?;
        // The in-memory keyspace applies the writes as Redis would: no server needed.
        let mut keyspace = RedisKeyspace::new();
        keyspace.apply(writes);
        assert_eq!(keyspace.rejected(), 0, "{keyspace:?}");
        let account =
            AccountBalance::from_fields(&AccountId::new("ada"), &hash_of(&keyspace, "ada"))?;
        assert_eq!(
            account,
            Some(AccountBalance {
                id: AccountId::new("ada"),
                owner: "Ada".into(),
                cents: 755,
                version: 4,
                transfer_legs: 1,
                closed: false,
            })
        );
        assert_eq!(keyspace.smembers("accounts"), [&b"ada"[..]]);
        Ok(())
    }

    #[test]
    fn an_event_on_another_stream_is_refused() {
        let event = AccountEvent::Opened {
            owner: "Ada".into(),
        };
        let error = writes_of("customer-ada", &[event]).expect_err("not an account stream");
        assert!(error.to_string().contains("customer-ada"), "{error}");
    }

    #[test]
    fn an_amount_redis_cannot_hold_is_refused() {
        let event = AccountEvent::Deposited {
            cents: u64::MAX,
            transfer: None,
        };
        assert!(writes_of("account-ada", &[event]).is_err());
    }
}
