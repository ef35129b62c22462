//! Commands on one aggregate take turns inside a process.
//!
//! Two commands on the same aggregate, run at once through one executor (or its clones), would
//! both load the same version, and one would lose its append to a version conflict, back off
//! and load again. Taking turns instead, the second decides on the state the first left (from
//! the cache, when there is one) and appends after it: no conflict, no reload. Conflicts then
//! come only from other processes (or other executors), which the version check still catches.
//!
//! Why hand-written: a map from stream to `tokio::sync::Mutex` is what crates such as
//! `async-lock` or `dashmap` would be used to build here too; the few lines below keep the map
//! small (entries nobody holds are swept as it grows) with no new dependency.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::names::StreamId;

/// The smallest size at which the map is swept of turns nobody holds.
const FIRST_SWEEP: usize = 64;

/// One queue per aggregate with a command in progress.
pub(crate) struct Turns {
    queues: Mutex<Queues>,
}

struct Queues {
    by_stream: HashMap<StreamId, Weak<AsyncMutex<()>>>,
    /// The map's size at which the next sweep runs.
    sweep_at: usize,
}

/// A command's turn on its aggregate: the next command on it waits until this is dropped.
pub(crate) struct Turn {
    _guard: OwnedMutexGuard<()>,
}

impl Turns {
    pub(crate) fn new() -> Self {
        Turns {
            queues: Mutex::new(Queues {
                by_stream: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// Waits for `stream`'s turn (in arrival order: tokio's mutex is fair).
    pub(crate) async fn take(&self, stream: &StreamId) -> Turn {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = match queues.by_stream.get(stream).and_then(Weak::upgrade) {
                Some(queue) => queue,
                None => {
                    let queue = Arc::new(AsyncMutex::new(()));
                    queues
                        .by_stream
                        .insert(stream.clone(), Arc::downgrade(&queue));
                    queue
                }
            };
            if queues.by_stream.len() >= queues.sweep_at {
                queues.by_stream.retain(|_, queue| queue.strong_count() > 0);
                queues.sweep_at = (queues.by_stream.len() * 2).max(FIRST_SWEEP);
            }
            queue
        };
        Turn {
            _guard: queue.lock_owned().await,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_stream
            .len()
    }
}

impl fmt::Debug for Turns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turns").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FIRST_SWEEP, Turns};
    use crate::names::StreamId;

    fn stream(n: usize) -> StreamId {
        StreamId::new(format!("account-{n}")).unwrap()
    }

    #[tokio::test]
    async fn a_second_turn_on_one_stream_waits_and_other_streams_do_not() {
        let turns = Turns::new();
        let first = turns.take(&stream(1)).await;
        let other = tokio::time::timeout(Duration::from_millis(100), turns.take(&stream(2))).await;
        assert!(other.is_ok(), "another stream's turn is free");
        let second = tokio::time::timeout(Duration::from_millis(100), turns.take(&stream(1))).await;
        assert!(second.is_err(), "the same stream's turn waits");
        drop(first);
        let second = tokio::time::timeout(Duration::from_millis(100), turns.take(&stream(1))).await;
        assert!(second.is_ok(), "free once the first is dropped");
    }

    #[tokio::test]
    async fn turns_nobody_holds_are_swept_as_the_map_grows() {
        let turns = Turns::new();
        let held = turns.take(&stream(0)).await;
        for n in 1..10 * FIRST_SWEEP {
            drop(turns.take(&stream(n)).await);
        }
        assert!(turns.len() <= 2 * FIRST_SWEEP, "{} entries", turns.len());
        drop(held);
    }
}
