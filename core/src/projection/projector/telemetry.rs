//! The projector's metrics, through the `metrics` facade (the application installs a recorder).
//!
//! | name | kind | labels |
//! |------|------|--------|
//! | `foldline_projection_events_total` | counter | `projection`, `outcome` = `applied` / `skipped` |
//! | `foldline_projection_batch_seconds` | histogram | `projection` |
//! | `foldline_projection_batch_events` | histogram | `projection` |
//! | `foldline_projection_lag_events` | gauge | `projection` |
//! | `foldline_projection_lag_seconds` | gauge | `projection` |
//! | `foldline_projection_retries_total` | counter | `projection` |
//! | `foldline_projection_dead_letters_total` | counter | `projection` |
//! | `foldline_projection_commit_moved_total` | counter | `projection` |

use std::time::Duration;

use crate::names::ProjectionName;

pub(super) fn batch(projection: &ProjectionName, applied: u64, skipped: u64, took: Duration) {
    let name = projection.to_string();
    metrics::counter!("foldline_projection_events_total", "projection" => name.clone(), "outcome" => "applied")
        .increment(applied);
    metrics::counter!("foldline_projection_events_total", "projection" => name.clone(), "outcome" => "skipped")
        .increment(skipped);
    metrics::histogram!("foldline_projection_batch_seconds", "projection" => name.clone())
        .record(took.as_secs_f64());
    #[expect(clippy::cast_precision_loss, reason = "a histogram of batch sizes")]
    metrics::histogram!("foldline_projection_batch_events", "projection" => name)
        .record((applied + skipped) as f64);
}

pub(super) fn lag(projection: &ProjectionName, events: u64, seconds: f64) {
    let name = projection.to_string();
    #[expect(clippy::cast_precision_loss, reason = "a gauge")]
    metrics::gauge!("foldline_projection_lag_events", "projection" => name.clone())
        .set(events as f64);
    metrics::gauge!("foldline_projection_lag_seconds", "projection" => name).set(seconds);
}

pub(super) fn retry(projection: &ProjectionName) {
    metrics::counter!("foldline_projection_retries_total", "projection" => projection.to_string())
        .increment(1);
}

pub(super) fn dead_letter(projection: &ProjectionName) {
    metrics::counter!("foldline_projection_dead_letters_total", "projection" => projection.to_string())
        .increment(1);
}

pub(super) fn moved(projection: &ProjectionName) {
    metrics::counter!("foldline_projection_commit_moved_total", "projection" => projection.to_string())
        .increment(1);
}
