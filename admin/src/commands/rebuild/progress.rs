//! A rebuild's progress on stderr: a bar on a terminal, a line every few seconds otherwise,
//! nothing with `--json`.
//!
//! The rate is over the last [`RATE_WINDOW`], not since the start, so it says how fast the
//! rebuild goes now (not averaged over a wait for a lease or an outage). While the projector
//! is interrupted (a lost connection it retries), the line says so and why instead of a rate;
//! once the rebuild has failed, nothing more is drawn.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use foldline::{Checkpoint, ProjectorProgress, ProjectorState, SlotId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// How far back the rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Events per second over the last [`RATE_WINDOW`] of samples.
#[derive(Debug, Default)]
pub(super) struct RecentRate {
    /// `(when, events handled by then)`, oldest first; one sample older than the window is
    /// kept, so the window is covered whole.
    samples: VecDeque<(Instant, u64)>,
}

impl RecentRate {
    /// Notes that `count` events had been handled at `at`.
    pub(super) fn record(&mut self, at: Instant, count: u64) {
        self.samples.push_back((at, count));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(second, _)| at.duration_since(*second) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Events per second between the oldest sample kept and the newest; `None` before two
    /// samples some time apart.
    pub(super) fn per_second(&self) -> Option<f64> {
        let (&(first_at, first), &(last_at, last)) = (self.samples.front()?, self.samples.back()?);
        let seconds = last_at.duration_since(first_at).as_secs_f64();
        (seconds >= 0.001).then(|| last.saturating_sub(first) as f64 / seconds)
    }

    /// Forgets every sample: what came before a pause says nothing about the speed after it.
    pub(super) fn clear(&mut self) {
        self.samples.clear();
    }
}

/// What the progress says about one update.
#[derive(Debug, PartialEq)]
enum Phase<'a> {
    /// Waiting for another process's lease on the slot.
    Waiting,
    /// Interrupted, retrying from the slot's checkpoint.
    Retrying(&'a str),
    /// Handling events.
    Working,
    /// Stopped, failed or done: the result (or the error) says the rest.
    Ended,
}

impl<'a> Phase<'a> {
    fn of(progress: &'a ProjectorProgress) -> Self {
        match progress.state {
            // Standing by, the progress has not read the slot's checkpoint yet: say what it
            // waits for instead of a count of 0 (a resumed rebuild may be far along).
            ProjectorState::Standby => Phase::Waiting,
            ProjectorState::Retrying => {
                Phase::Retrying(progress.error.as_deref().unwrap_or("a failure"))
            }
            ProjectorState::Failed | ProjectorState::Stopped => Phase::Ended,
            _ => Phase::Working,
        }
    }
}

/// The plain line for `phase` on `slot`, `done` of `total` events at `rate` events per second.
fn plain_line(phase: &Phase<'_>, slot: SlotId, done: u64, total: u64, rate: Option<f64>) -> String {
    match *phase {
        Phase::Waiting => format!(
            "rebuilding: waiting for the lease on slot {slot}: another process holds it \
             (a stopped one's lease runs out on its own)"
        ),
        Phase::Retrying(error) => format!(
            "rebuilding: slot {slot}: interrupted at {done}/{total} events, retrying from the \
             slot's checkpoint: {error}"
        ),
        Phase::Working | Phase::Ended => match rate {
            Some(rate) => {
                format!("rebuilding: slot {slot}: {done}/{total} events, {rate:.0} events/s")
            }
            None => format!("rebuilding: slot {slot}: {done}/{total} events"),
        },
    }
}

/// A rebuild's progress, drawn on stderr.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    applied: u64,
    dead_lettered: u64,
    rate: RecentRate,
    last_line: Option<Instant>,
    /// The failure last shown, so an outage prints once, not once per retry.
    shown_error: Option<String>,
    finished: bool,
}

impl Progress {
    pub(super) fn new(json: bool, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!json && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The rate and ETA are ours (over the recent window), in the message.
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events{msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            plain: !json && !terminal,
            total,
            applied: 0,
            dead_lettered: 0,
            rate: RecentRate::default(),
            last_line: None,
            shown_error: None,
            finished: false,
        }
    }

    /// Events handled or skipped by this rebuild so far.
    pub(super) fn applied(&self) -> u64 {
        self.applied
    }

    /// Events this rebuild parked as dead letters.
    pub(super) fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    pub(super) fn update(&mut self, progress: &ProjectorProgress) {
        if self.finished {
            return;
        }
        self.applied = progress.applied + progress.skipped;
        self.dead_lettered = progress.dead_lettered;
        // The last report of a projector that stopped or failed: nothing more to draw (a
        // failure's error follows on its own lines).
        let phase = Phase::of(progress);
        if phase == Phase::Ended {
            return;
        }
        let done = Checkpoint::START.distance_to(&progress.checkpoint);
        let now = Instant::now();
        if phase == Phase::Working {
            self.shown_error = None;
            self.rate.record(now, self.applied);
        } else {
            self.rate.clear();
        }
        let rate = self.rate.per_second();
        if let Some(bar) = &self.bar {
            bar.set_length(self.total.max(done));
            bar.set_position(done);
            bar.set_message(match phase {
                Phase::Waiting => format!(" - waiting for the lease on slot {}", progress.slot),
                Phase::Retrying(error) => format!(" - interrupted, retrying: {error}"),
                Phase::Working | Phase::Ended => match rate.filter(|r| *r > 0.0) {
                    Some(rate) => {
                        let left = self.total.saturating_sub(done) as f64 / rate;
                        format!(", {rate:.0} events/s, ETA {}", seconds(left))
                    }
                    None => String::new(),
                },
            });
            return;
        }
        if !self.plain {
            return;
        }
        // An interruption prints at once (and once); progress every few seconds.
        let due = match phase {
            Phase::Retrying(error) => self.shown_error.as_deref() != Some(error),
            // Counting lines wait for a rate to show.
            Phase::Working if rate.is_none() => false,
            _ => self.last_line.is_none_or(|at| at.elapsed() >= PLAIN_EVERY),
        };
        if !due {
            return;
        }
        if let Phase::Retrying(error) = phase {
            self.shown_error = Some(error.to_owned());
        }
        self.last_line = Some(now);
        let line = plain_line(&phase, progress.slot, done, self.total, rate);
        #[expect(
            clippy::print_stderr,
            reason = "progress lines go to stderr, results to stdout"
        )]
        {
            eprintln!("{line}");
        }
    }

    /// Stops drawing: the bar is cleared after a success, and left where it stopped, marked,
    /// after a failure (the error follows on its own lines).
    pub(super) fn finish(&mut self, succeeded: bool) {
        self.finished = true;
        if let Some(bar) = &self.bar {
            if succeeded {
                bar.finish_and_clear();
            } else {
                bar.abandon_with_message(" - failed");
            }
        }
    }
}

/// `1h02m`, `3m05s`, `12s`.
fn seconds(seconds: f64) -> String {
    let total = Duration::try_from_secs_f64(seconds.round()).map_or(0, |d| d.as_secs());
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_recent_window_only() {
        let start = Instant::now();
        let mut rate = RecentRate::default();
        // 1000 events/s for a minute, then 10 events/s for 20 s.
        for s in 0..=60 {
            rate.record(start + Duration::from_secs(s), s * 1000);
        }
        for s in 1..=20 {
            rate.record(start + Duration::from_secs(60 + s), 60_000 + s * 10);
        }
        let now = rate.per_second().expect("a rate");
        assert!((now - 10.0).abs() < 0.5, "{now}");
    }

    #[test]
    fn an_outage_is_not_averaged_in() {
        let start = Instant::now();
        let mut rate = RecentRate::default();
        rate.record(start, 0);
        rate.record(start + Duration::from_secs(1), 500);
        // Interrupted for 30 s: the samples are dropped, the rate starts again after it.
        rate.clear();
        assert_eq!(rate.per_second(), None);
        rate.record(start + Duration::from_secs(31), 500);
        rate.record(start + Duration::from_secs(32), 1000);
        assert_eq!(rate.per_second(), Some(500.0));
    }

    #[test]
    fn an_interruption_is_said_with_its_cause_instead_of_a_rate() {
        let phase = Phase::Retrying("PostgreSQL failed while reading the feed: connection refused");
        let line = plain_line(&phase, SlotId::new(2), 40, 100, Some(12.0));
        assert!(line.contains("interrupted at 40/100 events"), "{line}");
        assert!(line.contains("connection refused"), "{line}");
        assert!(!line.contains("events/s"), "{line}");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(seconds(12.4), "12s");
        assert_eq!(seconds(185.0), "3m05s");
        assert_eq!(seconds(3720.0), "1h02m");
    }
}
