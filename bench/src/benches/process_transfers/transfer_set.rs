//! The transfers of one pass, each between two wallets of its own, opened before the pass
//! starts: no two transfers touch the same wallet, so nothing conflicts, and every amount is
//! exactly what its source holds, so nothing is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use foldline::CommandExecutor;
use foldline_postgres::PgEventStore;
use foldline_tests::transfers::{Wallet, WalletCommand};
use tokio::task::JoinSet;

/// What each transfer moves, and what its source wallet is opened with.
const CENTS: u64 = 100;
/// Tasks opening the wallets.
const OPENERS: usize = 64;

/// `count` transfers: transfer `n` (id `<prefix>n<n>`) moves [`CENTS`] from wallet
/// `<prefix>n<n>s` to wallet `<prefix>n<n>d`.
#[derive(Debug, Clone)]
pub(super) struct TransferSet {
    prefix: Arc<str>,
    count: usize,
}

impl TransferSet {
    /// The transfers of a pass with its own `prefix`, their wallets opened (with their own
    /// executor, so no cache of the pass holds them).
    pub(super) async fn open(
        store: &PgEventStore,
        prefix: String,
        count: usize,
    ) -> anyhow::Result<Self> {
        let set = TransferSet {
            prefix: prefix.into(),
            count,
        };
        let executor = CommandExecutor::new(store.clone()).with_cache(0);
        let next = Arc::new(AtomicUsize::new(0));
        let mut openers = JoinSet::new();
        for _ in 0..OPENERS {
            let (executor, next, set) = (executor.clone(), Arc::clone(&next), set.clone());
            openers.spawn(async move {
                loop {
                    let wallet = next.fetch_add(1, Ordering::Relaxed);
                    if wallet >= 2 * set.count {
                        return anyhow::Ok(());
                    }
                    let n = wallet / 2;
                    let wallet = if wallet % 2 == 0 {
                        set.from(n)
                    } else {
                        set.to(n)
                    };
                    executor
                        .execute::<Wallet>(WalletCommand::Open {
                            wallet,
                            cents: CENTS,
                        })
                        .await?;
                }
            });
        }
        while let Some(opened) = openers.join_next().await {
            opened.context("a task opening wallets panicked")??;
        }
        Ok(set)
    }

    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// Transfer `n`'s id.
    pub(super) fn id(&self, n: usize) -> String {
        format!("{}n{n}", self.prefix)
    }

    fn from(&self, n: usize) -> String {
        format!("{}n{n}s", self.prefix)
    }

    fn to(&self, n: usize) -> String {
        format!("{}n{n}d", self.prefix)
    }

    /// The request of transfer `n`, on its source wallet (no approval needed).
    pub(super) fn request(&self, n: usize) -> WalletCommand {
        WalletCommand::RequestTransfer {
            wallet: self.from(n),
            transfer: self.id(n),
            to: self.to(n),
            cents: CENTS,
            needs_approval: false,
        }
    }

    /// The three commands of transfer `n`, as the process manager sends them after the
    /// request: the request, the withdrawal, the deposit.
    pub(super) fn commands(&self, n: usize) -> [WalletCommand; 3] {
        [
            self.request(n),
            WalletCommand::Withdraw {
                wallet: self.from(n),
                transfer: self.id(n),
                cents: CENTS,
            },
            WalletCommand::Deposit {
                wallet: self.to(n),
                transfer: self.id(n),
                cents: CENTS,
            },
        ]
    }
}
