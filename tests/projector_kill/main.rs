//! Projectors in processes of their own, killed with SIGKILL at random points; two started
//! together; Redis restarted under a running projector. After each, the read model must equal
//! a fresh rebuild and the counters the number of events: nothing lost, nothing doubled.
//!
//! How the kills are driven: the store holds a backlog, and before each of 50 rounds a writer
//! appends more (12–23 appends of 1–49 events for Redis, 2–5 for Tantivy); a
//! `projector-worker` process (tests/bin) starts on it and is killed with SIGKILL
//! (`Child::kill`): in one round of five at a random 0–80 ms after it started (connecting,
//! picking its slot, first reads), otherwise 0–20 ms after its first commit shows in the
//! target — wherever it is then: handling, between `EVALSHA` and its reply, inside a Tantivy
//! commit. Small batches (5 events for Redis, 20 for Tantivy) make the work last; the test
//! counts the kills that left work undone and insists on at least 15 (typically all 50). Then
//! one last worker runs with `--catch-up` to the head and exits. `kafka.rs` does the same from
//! a Kafka store, 20 times per target.

mod kafka;
mod redis;
mod support;
mod tantivy;
