//! Commands on one aggregate wait in a queue, and one task decides them in order.
//!
//! Two commands on the same aggregate, run at once through one executor (or its clones), would
//! both load the same version, and one would lose its append to a version conflict, back off
//! and load again. Instead they queue per aggregate, and a task (spawned by the first command
//! to find the queue empty, gone when it is empty again) takes everything queued, decides each
//! command in arrival order on the state the ones before it left, and appends all their events
//! in one append (`drain.rs`). No conflict, no reload within a process; and a hot aggregate
//! costs one store round trip per group of commands rather than one per command. Conflicts come
//! only from other processes (or other executors), which the version check still catches.
//!
//! Why hand-written: what is needed is a map from stream to a queue of type-erased commands,
//! with "start a task for it" decided atomically with the push; no crate offers that shape,
//! and a `Mutex<HashMap<_, VecDeque<_>>>` does it in a few lines.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::names::StreamId;

/// A queued command: a type-erased `drain::Waiting<A>`.
pub(crate) type Queued = Box<dyn Any + Send>;

/// The queues of the aggregates whose commands a task is deciding. An aggregate is in the map
/// exactly while its task runs.
pub(crate) struct Queues {
    by_stream: Mutex<HashMap<StreamId, VecDeque<Queued>>>,
}

impl Queues {
    pub(crate) fn new() -> Self {
        Queues {
            by_stream: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `command` for `stream`; `true` when no task runs for `stream`, and the caller
    /// must start one.
    pub(crate) fn push(&self, stream: &StreamId, command: Queued) -> bool {
        let mut queues = self.lock();
        match queues.get_mut(stream) {
            Some(queue) => {
                queue.push_back(command);
                false
            }
            None => {
                queues.insert(stream.clone(), VecDeque::from([command]));
                true
            }
        }
    }

    /// Up to `max` of `stream`'s queued commands, oldest first. Empty when none is queued: the
    /// queue is then gone, and the task asking must end (the next push starts a new one).
    pub(crate) fn take(&self, stream: &StreamId, max: usize) -> Vec<Queued> {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(stream) else {
            return Vec::new();
        };
        if queue.is_empty() {
            queues.remove(stream);
            return Vec::new();
        }
        let count = queue.len().min(max);
        queue.drain(..count).collect()
    }

    /// Ends `stream`'s queue when its task stops without emptying it (a panic in the
    /// aggregate): the commands still queued are dropped, their callers told
    /// (`Error::CommandAbandoned`), and the next command starts a new task.
    pub(crate) fn abandon(&self, stream: &StreamId) {
        // Dropped after the lock is released: a command can be large.
        let _abandoned = self.lock().remove(stream);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, VecDeque<Queued>>> {
        self.by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl fmt::Debug for Queues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queues").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Queues;
    use crate::names::StreamId;

    fn stream(n: usize) -> StreamId {
        StreamId::new(format!("account-{n}")).unwrap()
    }

    #[test]
    fn the_first_push_starts_a_task_and_the_queue_ends_when_taken_empty() {
        let queues = Queues::new();
        assert!(
            queues.push(&stream(1), Box::new(1_u32)),
            "first: start a task"
        );
        assert!(!queues.push(&stream(1), Box::new(2_u32)), "a task runs");
        assert!(queues.push(&stream(2), Box::new(3_u32)), "another stream");
        let taken: Vec<u32> = queues
            .take(&stream(1), 10)
            .into_iter()
            .map(|q| *q.downcast::<u32>().unwrap())
            .collect();
        assert_eq!(taken, [1, 2]);
        assert!(
            !queues.push(&stream(1), Box::new(4_u32)),
            "the task still runs"
        );
        assert_eq!(queues.take(&stream(1), 10).len(), 1);
        assert!(
            queues.take(&stream(1), 10).is_empty(),
            "empty: the task ends"
        );
        assert_eq!(queues.len(), 1, "only stream 2's queue is left");
        assert!(queues.push(&stream(1), Box::new(5_u32)), "a new task");
    }

    #[test]
    fn an_abandoned_queue_is_gone_and_the_next_push_starts_a_task() {
        let queues = Queues::new();
        assert!(queues.push(&stream(1), Box::new(1_u32)));
        assert!(!queues.push(&stream(1), Box::new(2_u32)));
        queues.abandon(&stream(1));
        assert_eq!(queues.len(), 0);
        assert!(queues.push(&stream(1), Box::new(3_u32)), "a new task");
    }

    #[test]
    fn take_returns_at_most_max_in_arrival_order() {
        let queues = Queues::new();
        for n in 0..5_u32 {
            queues.push(&stream(1), Box::new(n));
        }
        let first: Vec<u32> = queues
            .take(&stream(1), 3)
            .into_iter()
            .map(|q| *q.downcast::<u32>().unwrap())
            .collect();
        assert_eq!(first, [0, 1, 2]);
        assert_eq!(queues.take(&stream(1), 3).len(), 2);
    }
}
