//! What operators and projectors record per projection: control flags and status reports.

use std::time::{Duration, SystemTime};

use super::TargetProbe;
use super::fixture::{CLOCK_SLACK, Fixture, checkpoint, close};
use crate::names::ProjectionName;
use crate::position::{Checkpoint, Position};
use crate::projection::{NewSlot, ProjectionControl, ProjectorHeartbeat, ProjectorState, SlotId};

async fn control<T: TargetProbe>(
    fx: &Fixture,
    target: &T,
    projection: &ProjectionName,
) -> ProjectionControl {
    fx.ok(
        target.control(projection).await,
        format_args!("reading the control flags of `{projection}`"),
    )
}

async fn status<T: TargetProbe>(
    fx: &Fixture,
    target: &T,
    projection: &ProjectionName,
) -> Option<ProjectorHeartbeat> {
    fx.ok(
        target.heartbeat(projection).await,
        format_args!("reading the status of `{projection}`"),
    )
}

/// A projection never controlled has the default flags (not paused). `paused` set reads back
/// set, for that projection only (another one, with or without slots, keeps its own flags),
/// and creates no slots; cleared, it reads back cleared.
pub async fn control_flags_per_projection<T: TargetProbe>(target: T) {
    let fx = Fixture::new("control_flags_per_projection");
    let (p, q) = (fx.projection(), fx.projection());
    fx.check_eq(
        ProjectionControl::default().paused,
        false,
        "ProjectionControl::default().paused",
    );
    for name in [&p, &q] {
        let flags = control(&fx, &target, name).await;
        fx.check_eq(
            flags,
            ProjectionControl::default(),
            format_args!("the flags of `{name}`, never controlled"),
        );
    }
    // `q` exists in the target: a target that stores flags in the wrong place shows it.
    fx.create(&target, &q, 1, NewSlot::Resume).await;

    let steps = [
        (&p, true, "pausing `p`", false),
        (&q, true, "pausing `q` too", true),
        (&p, false, "resuming `p`", true),
        (&q, false, "resuming `q`", false),
    ];
    let mut paused_p = false;
    for (name, paused, what, paused_q) in steps {
        fx.ok(
            target
                .set_control(name, ProjectionControl::paused(paused))
                .await,
            what,
        );
        if *name == p {
            paused_p = paused;
        }
        let flags = (
            control(&fx, &target, &p).await,
            control(&fx, &target, &q).await,
        );
        fx.check_eq(
            flags,
            (
                ProjectionControl::paused(paused_p),
                ProjectionControl::paused(paused_q),
            ),
            format_args!("the flags of `p` and `q` after {what}"),
        );
    }
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![],
        "the slots of a projection only paused and resumed",
    );
}

/// A projection without reports has no status; a report reads back with every field (`at`
/// within a second); a second report replaces the first; reports are per projection.
pub async fn status_last_report_wins<T: TargetProbe>(target: T) {
    let fx = Fixture::new("status_last_report_wins");
    let (p, q) = (fx.projection(), fx.projection());
    let read = status(&fx, &target, &p).await;
    fx.check_eq(read, None, "the status of a projection never reported");

    let first = ProjectorHeartbeat::new(
        ProjectorState::Running,
        SlotId::new(1),
        checkpoint(&[Position::new(0, 3, 9), Position::new(4, 1, 0)]),
        "host-a:101".into(),
    );
    // An hour ago: a target must keep the reported time, not stamp its own.
    let mut second = ProjectorHeartbeat::new(
        ProjectorState::Failed,
        SlotId::new(2),
        Checkpoint::START,
        "host-b:202".into(),
    )
    .with_error("handler failed: boom".into());
    second.at = SystemTime::now() - Duration::from_secs(3600);

    for (report, what) in [(&first, "the first report"), (&second, "a second report")] {
        fx.ok(
            target.record_heartbeat(&p, report).await,
            format_args!("recording {what}"),
        );
        let read = status(&fx, &target, &p).await;
        fx.check(
            read.as_ref().is_some_and(|r| {
                r.state == report.state
                    && r.slot == report.slot
                    && r.checkpoint == report.checkpoint
                    && r.owner == report.owner
                    && r.error == report.error
                    && close(r.at, report.at)
            }),
            || {
                format!(
                    "the status after {what} should be {report:?} (`at` within \
                     {CLOCK_SLACK:?}), got {read:?}"
                )
            },
        );
    }
    let read = status(&fx, &target, &q).await;
    fx.check_eq(read, None, "the status of another projection");
}
