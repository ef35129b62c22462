//! Telling how the projector is doing: progress to watchers (and a rebuild's callback), lag
//! to the metrics, heartbeats to the target.

use std::time::SystemTime;

use super::super::telemetry;
use super::Driver;
use crate::codec::Codec;
use crate::error::error_chain;
use crate::projection::Projection;
use crate::projection::target::{ProjectionTarget, ProjectorHeartbeat, ProjectorState};
use crate::store::EventStore;

impl<S, P, T, C> Driver<'_, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// Computes the lag from the progress's checkpoint and head (and, in seconds, from the
    /// last event committed), and records it in the metrics.
    pub(super) fn update_lag(&mut self) {
        let progress = &mut self.progress;
        progress.lag_events = progress.checkpoint.distance_to(&progress.head);
        let behind = !progress.checkpoint.covers_checkpoint(&progress.head);
        let seconds = match (behind, self.last_recorded_at) {
            (true, Some(at)) => SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64(),
            _ => 0.0,
        };
        telemetry::lag(&P::NAME, progress.lag_events, seconds);
    }

    /// Sets the state; any state but [`ProjectorState::Retrying`] and
    /// [`ProjectorState::Failed`] clears the last failure.
    pub(super) fn set_state(&mut self, state: ProjectorState) {
        self.progress.state = state;
        if !matches!(state, ProjectorState::Retrying | ProjectorState::Failed) {
            self.progress.error = None;
        }
    }

    /// Sets `state` ([`ProjectorState::Retrying`] or [`ProjectorState::Failed`]) with the
    /// failure `error`, and reports both.
    pub(super) async fn report_failure(&mut self, state: ProjectorState, error: String) {
        self.set_state(state);
        self.progress.error = Some(error);
        self.record_heartbeat().await;
    }

    /// Sends the progress to its watchers, and to a rebuild's callback.
    pub(super) fn publish(&mut self) {
        self.shared.progress.send_replace(self.progress.clone());
        if let Some(on_progress) = self.on_progress.as_mut() {
            on_progress(&self.progress);
        }
    }

    /// Records the projector's state, and its last failure while it has one, in the target,
    /// for `status`; a failure to do so is logged, never fatal.
    pub(super) async fn record_heartbeat(&mut self) {
        self.publish();
        let progress = &self.progress;
        let mut heartbeat = ProjectorHeartbeat::new(
            progress.state,
            progress.slot,
            progress.checkpoint.clone(),
            self.shared.options.owner.clone(),
        );
        if let Some(error) = &progress.error {
            heartbeat = heartbeat.with_error(error.clone());
        }
        if let Err(error) = self
            .shared
            .target
            .record_heartbeat(&P::NAME, &heartbeat)
            .await
        {
            tracing::debug!(projection = %P::NAME, error = %error_chain(&error, ": "), "could not report status");
        }
    }
}
