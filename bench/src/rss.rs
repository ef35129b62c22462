//! This process's resident memory, from Linux's `/proc/self/status` (elsewhere every reading
//! is `None`), for the benchmarks that show memory stays flat while a projector catches up.

use std::fs;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One reading of `/proc/self/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rss {
    /// `VmRSS`: resident now.
    pub(crate) now: u64,
    /// `VmHWM`: the peak since the process started or the peak was last reset
    /// ([`reset_peak`]).
    pub(crate) peak: u64,
}

impl Rss {
    /// The current reading, or `None` where `/proc/self/status` cannot be read.
    pub(crate) fn read() -> Option<Rss> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        Some(Rss {
            now: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
}

/// Resets the kernel's peak (`VmHWM`) to the current resident size by writing `5` to
/// `/proc/self/clear_refs` (Linux 4.0 and later); `false` when that is not possible, and the
/// peak then still covers everything since the process started.
pub(crate) fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Mebibytes, for reports.
pub(crate) fn mib(bytes: u64) -> f64 {
    // Memory sizes are far below 2^52 bytes.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

/// A task reading `VmRSS` every few milliseconds and keeping the largest value: the peak as
/// sampled, a check on `VmHWM` (which some kernels only update lazily) and the peak where it
/// could not be reset.
#[derive(Debug)]
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<u64>,
}

impl Sampler {
    pub(crate) fn start(every: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut max = 0;
            loop {
                max = max.max(Rss::read().map_or(0, |r| r.now));
                tokio::select! {
                    _ = stopped.changed() => return max.max(Rss::read().map_or(0, |r| r.now)),
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        Sampler { stop, task }
    }

    /// Stops sampling and returns the largest `VmRSS` seen, in bytes (0 when unavailable).
    pub(crate) async fn finish(self) -> u64 {
        self.stop.send_replace(true);
        self.task.await.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        if let Some(rss) = Rss::read() {
            assert!(rss.now > 0);
            assert!(rss.peak >= rss.now);
        }
    }
}
