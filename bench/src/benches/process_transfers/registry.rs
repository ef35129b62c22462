//! When each transfer of a pass through the process manager reached each stage, and the
//! follower that sees them complete: it follows the store's feed for the instances' decisions
//! (`foldline.process.Decided`) and resolves a transfer's waiter at the decision whose actions
//! hold `Complete` (or fails it at `Fail`). That decision is what makes the instance's status
//! `Completed`: it is recorded in the instance's stream before anything else of it is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use foldline::{Action, DECIDED, Decision, EventStore, JsonCodec, ProcessManager};
use foldline_postgres::PgEventStore;
use foldline_tests::transfers::Transfer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a transfer may take from request to completed before the pass fails.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(60);

/// The stages of a transfer through the process manager, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// Just before the request (`RequestTransfer` on the source wallet) was executed.
    Sent,
    /// The request returned (appended).
    Requested,
    /// The runner sent the withdrawal (it had decided on the request).
    WithdrawSent,
    /// The withdrawal returned.
    Withdrawn,
    /// The runner sent the deposit (it had decided on the withdrawal).
    DepositSent,
    /// The deposit returned.
    Deposited,
    /// The follower read the decision that completed the instance.
    Completed,
}

const STAGES: usize = 7;

/// When a transfer reached each stage.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stamps([Option<Instant>; STAGES]);

impl Stamps {
    fn set(&mut self, stage: Stage, at: Instant) {
        self.0[stage as usize] = Some(at);
    }

    /// From `from` to `to`, when both were reached.
    pub(super) fn between(&self, from: Stage, to: Stage) -> Option<Duration> {
        let (from, to) = (self.0[from as usize]?, self.0[to as usize]?);
        Some(to.saturating_duration_since(from))
    }
}

/// How a transfer ended: completed (with its stamps), or failed (the instance's reason).
type Finished = Result<Stamps, String>;

struct Pending {
    stamps: Stamps,
    done: oneshot::Sender<Finished>,
}

/// The transfers of one pass that were requested and are not finished yet.
#[derive(Default)]
pub(super) struct Registry {
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Expects `transfer`, about to be requested at `sent`: the returned waiter resolves when
    /// it completes.
    pub(super) fn expect(&self, transfer: &str, sent: Instant) -> Waiter {
        let (done, finished) = oneshot::channel();
        let mut stamps = Stamps::default();
        stamps.set(Stage::Sent, sent);
        self.lock()
            .insert(transfer.to_owned(), Pending { stamps, done });
        Waiter {
            transfer: transfer.to_owned(),
            finished,
        }
    }

    /// Records that `transfer` reached `stage` at `at` (nothing for a transfer not expected).
    pub(super) fn stamp(&self, transfer: &str, stage: Stage, at: Instant) {
        if let Some(pending) = self.lock().get_mut(transfer) {
            pending.stamps.set(stage, at);
        }
    }

    fn finish(&self, transfer: &str, at: Instant, outcome: Result<(), String>) {
        let Some(mut pending) = self.lock().remove(transfer) else {
            return;
        };
        pending.stamps.set(Stage::Completed, at);
        // The waiter may have given up (its pass failed already).
        let _ = pending.done.send(outcome.map(|()| pending.stamps));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Resolves when one transfer completes.
#[derive(Debug)]
pub(super) struct Waiter {
    transfer: String,
    finished: oneshot::Receiver<Finished>,
}

impl Waiter {
    /// The transfer's stamps once it completed; an error if it failed, or took longer than
    /// [`COMPLETION_TIMEOUT`].
    pub(super) async fn completed(self) -> anyhow::Result<Stamps> {
        let transfer = self.transfer;
        tokio::time::timeout(COMPLETION_TIMEOUT, self.finished)
            .await
            .with_context(|| {
                format!(
                    "transfer {transfer} was not completed within {} s",
                    COMPLETION_TIMEOUT.as_secs()
                )
            })?
            .context("the feed follower stopped")?
            .map_err(|reason| {
                anyhow::anyhow!(
                    "transfer {transfer} failed ({reason}): the amounts never fail, so a \
                     timeout fired (a transfer waited longer than `STUCK_AFTER`); lower \
                     --in-flight"
                )
            })
    }
}

/// A task following the store's feed from its head, finishing the transfers of a
/// [`Registry`] as their instances decide `Complete` or `Fail`.
#[derive(Debug)]
pub(super) struct Follower {
    task: JoinHandle<anyhow::Result<()>>,
}

impl Follower {
    pub(super) async fn start(
        store: &PgEventStore,
        registry: Arc<Registry>,
    ) -> anyhow::Result<Self> {
        let head = store.head().await?;
        let mut subscription = store.subscribe(head).await?;
        let prefix = format!("{}-", Transfer::NAME);
        let task = tokio::spawn(async move {
            while let Some(batch) = subscription.next().await {
                let batch = batch?;
                // Stamped once per batch, as it is read: what a client following the feed
                // learns then.
                let now = Instant::now();
                for event in &batch.events {
                    if event.event_type != DECIDED {
                        continue;
                    }
                    let Some(transfer) = event.stream_id.as_str().strip_prefix(&prefix) else {
                        continue;
                    };
                    let decision = Decision::<Transfer>::decode(event, &JsonCodec)?;
                    for action in &decision.actions {
                        match action {
                            Action::Complete => registry.finish(transfer, now, Ok(())),
                            Action::Fail { reason } => {
                                registry.finish(transfer, now, Err(reason.clone()));
                            }
                            _ => {}
                        }
                    }
                }
            }
            anyhow::Ok(())
        });
        Ok(Follower { task })
    }

    /// Stops following; the error it stopped on, if it stopped by itself.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        if self.task.is_finished() {
            self.task.await.context("the feed follower panicked")??;
            anyhow::bail!("the feed follower's subscription ended");
        }
        self.task.abort();
        Ok(())
    }
}
