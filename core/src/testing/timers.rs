//! The conformance cases of a [`TimerStore`]: what every implementation must do, whatever it
//! keeps its timers in.
//!
//! Each case takes a fresh store (or one shared with other tests: every case works under
//! process names of its own), and panics naming the case and what went wrong.
//! [`timer_store_conformance_tests!`](crate::timer_store_conformance_tests) turns them into one
//! test each; [`run_all`] runs them one after the other.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! foldline::testing::timers::run_all(async || foldline::InMemoryTimerStore::new()).await;
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::error::Result;
use crate::names::StreamId;
use crate::process::{Timer, TimerStore};

/// The long lease of the cases that do not test leases.
const LEASE: Duration = Duration::from_secs(60);

/// One run of one case: names unique to it, and failures that name it.
struct Case {
    name: &'static str,
    process: String,
    /// A fixed "now", whole seconds, so that every store keeps it exactly.
    now: SystemTime,
}

impl Case {
    fn new(name: &'static str) -> Self {
        Case {
            name,
            process: format!("conformance-{name}-{}", Uuid::now_v7().simple()),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        }
    }

    fn instance(&self, name: &str) -> StreamId {
        StreamId::new(format!("{}-{name}", self.process))
            .unwrap_or_else(|e| self.fail(format_args!("test stream id is invalid: {e}")))
    }

    /// A timer of `instance` due `offset_secs` from now (negative: in the past).
    fn timer(&self, instance: &StreamId, timeout: &str, offset_secs: i64) -> Timer {
        let due_at = if offset_secs >= 0 {
            self.now + Duration::from_secs(offset_secs.unsigned_abs())
        } else {
            self.now - Duration::from_secs(offset_secs.unsigned_abs())
        };
        Timer::new(
            Uuid::now_v7(),
            self.process.clone(),
            instance.clone(),
            timeout.as_bytes().to_vec(),
            due_at,
        )
    }

    fn ok<T>(&self, result: Result<T>, doing: impl fmt::Display) -> T {
        result.unwrap_or_else(|e| self.fail(format_args!("{doing}: {e}")))
    }

    #[track_caller]
    fn check(&self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.fail(message());
        }
    }

    #[track_caller]
    fn fail(&self, message: impl fmt::Display) -> ! {
        panic!(
            "timer store conformance case `{}` failed: {message}",
            self.name
        )
    }

    async fn schedule<S: TimerStore>(&self, store: &S, timer: &Timer) {
        let doing = format!("scheduling timer {}", timer.id);
        self.ok(store.schedule(timer.clone()).await, doing);
    }

    async fn claim<S: TimerStore>(&self, store: &S, at: SystemTime, limit: usize) -> Vec<Uuid> {
        let claimed = self.ok(
            store.claim_due(&self.process, at, limit, LEASE).await,
            "claiming due timers",
        );
        claimed.into_iter().map(|timer| timer.id).collect()
    }
}

/// Only due timers are claimed, earliest first, up to the limit, and only the process's own;
/// a claimed timer comes back whole.
pub async fn timers_claim_due_ones_earliest_first<S: TimerStore>(store: S) {
    let case = Case::new("timers_claim_due_ones_earliest_first");
    let instance = case.instance("i");
    let later = case.timer(&instance, "later", 5);
    let recent = case.timer(&instance, "recent", -1);
    let oldest = case.timer(&instance, "oldest", -30);
    let now = case.timer(&instance, "now", 0);
    for timer in [&later, &recent, &oldest, &now] {
        case.schedule(&store, timer).await;
    }
    let other = Case::new("timers_claim_due_ones_earliest_first");
    case.schedule(&store, &other.timer(&other.instance("i"), "x", -60))
        .await;

    let first = case.ok(
        store.claim_due(&case.process, case.now, 2, LEASE).await,
        "claiming due timers",
    );
    case.check(first == [oldest.clone(), recent.clone()], || {
        format!("the two earliest due timers should be claimed whole: expected {oldest:?}, {recent:?}; got {first:?}")
    });
    let rest = case.claim(&store, case.now, 10).await;
    case.check(rest == [now.id], || {
        format!("the one due exactly now should be claimed next, and nothing not due: got {rest:?}")
    });
}

/// Scheduling a timer id again changes nothing: one timer, as first scheduled.
pub async fn timers_schedule_is_idempotent<S: TimerStore>(store: S) {
    let case = Case::new("timers_schedule_is_idempotent");
    let instance = case.instance("i");
    let first = case.timer(&instance, "t", -10);
    case.schedule(&store, &first).await;
    let mut again = first.clone();
    again.due_at = case.now + Duration::from_secs(100);
    again.timeout = b"changed".to_vec();
    case.schedule(&store, &again).await;
    let pending = case.ok(store.pending(&case.process, &instance).await, "listing");
    case.check(pending == [first.clone()], || {
        format!("a timer scheduled twice should be stored once, as first scheduled ({first:?}): got {pending:?}")
    });
}

/// A claimed timer is not claimed again until its lease runs out; then it is (its claimer is
/// presumed dead: late rather than never).
pub async fn timers_claimed_wait_for_the_lease<S: TimerStore>(store: S) {
    let case = Case::new("timers_claimed_wait_for_the_lease");
    let timer = case.timer(&case.instance("i"), "t", -1);
    case.schedule(&store, &timer).await;
    let lease = Duration::from_secs(10);
    let claimed = case.ok(
        store.claim_due(&case.process, case.now, 10, lease).await,
        "claiming",
    );
    case.check(claimed.len() == 1, || {
        format!("expected the timer, got {claimed:?}")
    });
    let during = case.ok(
        store
            .claim_due(&case.process, case.now + Duration::from_secs(9), 10, lease)
            .await,
        "claiming during the lease",
    );
    case.check(during.is_empty(), || {
        format!("a timer leased to another claimer must not be claimed: got {during:?}")
    });
    let after = case.ok(
        store
            .claim_due(&case.process, case.now + Duration::from_secs(11), 10, lease)
            .await,
        "claiming after the lease",
    );
    case.check(after.len() == 1 && after[0].id == timer.id, || {
        format!("after its lease the timer should be claimed again: got {after:?}")
    });
}

/// A removed timer (fired) is neither claimed nor pending; removing it again is fine.
pub async fn timers_removed_are_gone<S: TimerStore>(store: S) {
    let case = Case::new("timers_removed_are_gone");
    let instance = case.instance("i");
    let timer = case.timer(&instance, "t", -1);
    case.schedule(&store, &timer).await;
    case.ok(store.remove(timer.id).await, "removing");
    case.ok(store.remove(timer.id).await, "removing again");
    let claimed = case.claim(&store, case.now + LEASE * 2, 10).await;
    let pending = case.ok(store.pending(&case.process, &instance).await, "listing");
    let next = case.ok(store.next_due(&case.process).await, "asking the next due");
    case.check(claimed.is_empty() && pending.is_empty() && next.is_none(), || {
        format!("a removed timer is gone: claimed {claimed:?}, pending {pending:?}, next due {next:?}")
    });
}

/// Cancelling removes the instance's pending timers with that timeout only (claimed ones
/// too); cancelling all removes the instance's every timer and no other instance's.
pub async fn timers_cancel_only_what_they_name<S: TimerStore>(store: S) {
    let case = Case::new("timers_cancel_only_what_they_name");
    let (a, b) = (case.instance("a"), case.instance("b"));
    let a_x1 = case.timer(&a, "x", -5);
    let a_x2 = case.timer(&a, "x", 20);
    let a_y = case.timer(&a, "y", 30);
    let b_x = case.timer(&b, "x", 40);
    for timer in [&a_x1, &a_x2, &a_y, &b_x] {
        case.schedule(&store, timer).await;
    }
    // A claimed timer can be cancelled too.
    let claimed = case.claim(&store, case.now, 10).await;
    case.check(claimed == [a_x1.id], || {
        format!("expected a's due x, got {claimed:?}")
    });

    let cancelled = case.ok(store.cancel(&case.process, &a, b"x").await, "cancelling");
    case.check(cancelled == 2, || {
        format!("both of a's `x` timers should be cancelled, reported {cancelled}")
    });
    let pending_a = case.ok(store.pending(&case.process, &a).await, "listing a");
    let pending_b = case.ok(store.pending(&case.process, &b).await, "listing b");
    case.check(
        pending_a == [a_y.clone()] && pending_b == [b_x.clone()],
        || format!("only a's `x` timers go: a has {pending_a:?}, b has {pending_b:?}"),
    );
    let next = case.ok(store.next_due(&case.process).await, "asking the next due");
    case.check(next == Some(a_y.due_at), || {
        format!(
            "the next due should be a's `y` at {:?}, got {next:?}",
            a_y.due_at
        )
    });

    let all = case.ok(store.cancel_all(&case.process, &a).await, "cancelling all");
    let pending_a = case.ok(store.pending(&case.process, &a).await, "listing a");
    let pending_b = case.ok(store.pending(&case.process, &b).await, "listing b");
    case.check(all == 1 && pending_a.is_empty() && pending_b == [b_x.clone()], || {
        format!("cancel_all removes a's every timer ({all} reported) and not b's: a {pending_a:?}, b {pending_b:?}")
    });
}

/// Claimers at once get disjoint timers, and together every due one.
pub async fn timers_concurrent_claims_are_disjoint<S: TimerStore + Clone>(store: S) {
    let case = Case::new("timers_concurrent_claims_are_disjoint");
    let mut scheduled = HashSet::new();
    for i in 0..40 {
        let timer = case.timer(&case.instance(&format!("i{}", i % 7)), "t", -i);
        scheduled.insert(timer.id);
        case.schedule(&store, &timer).await;
    }
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let (store, process, now) = (store.clone(), case.process.clone(), case.now);
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            // Bounded: a store that hands out claimed timers again would never run dry.
            for _ in 0..40 {
                let batch = store.claim_due(&process, now, 3, LEASE).await?;
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|timer| timer.id));
                tokio::task::yield_now().await;
            }
            Ok::<_, crate::Error>(mine)
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        let mine = claimer
            .await
            .unwrap_or_else(|e| case.fail(format_args!("a claimer panicked: {e}")));
        claimed.extend(case.ok(mine, "claiming concurrently"));
    }
    let unique: HashSet<Uuid> = claimed.iter().copied().collect();
    case.check(unique.len() == claimed.len(), || {
        format!(
            "a timer was claimed twice: {} claims of {} timers",
            claimed.len(),
            unique.len()
        )
    });
    case.check(unique == scheduled, || {
        format!(
            "every due timer should be claimed once: {} of {}",
            unique.len(),
            scheduled.len()
        )
    });
}

/// Runs every case, one after the other, each on a fresh store from `make`.
///
/// # Panics
///
/// At the first case the store fails, naming the case and what went wrong.
pub async fn run_all<S, F>(make: F)
where
    S: TimerStore + Clone,
    F: AsyncFn() -> S,
{
    timers_claim_due_ones_earliest_first(make().await).await;
    timers_schedule_is_idempotent(make().await).await;
    timers_claimed_wait_for_the_lease(make().await).await;
    timers_removed_are_gone(make().await).await;
    timers_cancel_only_what_they_name(make().await).await;
    timers_concurrent_claims_are_disjoint(make().await).await;
}

/// One `#[tokio::test]` per [`TimerStore`] conformance case; used like
/// [`event_store_conformance_tests!`](crate::event_store_conformance_tests).
///
/// ```
/// foldline::timer_store_conformance_tests!(store = foldline::InMemoryTimerStore::new() => store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! timer_store_conformance_tests {
    ($guard:pat = $setup:expr => $store:expr) => {
        $crate::__conformance_tests!(@in timers; $guard = $setup => $store;
            timers_claim_due_ones_earliest_first,
            timers_schedule_is_idempotent,
            timers_claimed_wait_for_the_lease,
            timers_removed_are_gone,
            timers_cancel_only_what_they_name,
            timers_concurrent_claims_are_disjoint,
        );
    };
}
