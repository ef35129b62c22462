//! How busy the machine was while a benchmark ran: its own CPU use and everyone else's, from
//! Linux's `/proc` (elsewhere the note says it is not available).

use std::fs;

/// CPU counters at the start of a benchmark.
#[derive(Debug)]
pub(crate) struct Usage {
    start: Option<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Busy and total jiffies over all CPUs.
    busy: u64,
    total: u64,
    /// This process's user + system jiffies.
    own: u64,
    cpus: u32,
}

impl Usage {
    pub(crate) fn start() -> Self {
        Usage {
            start: Sample::now(),
        }
    }

    /// A one-line summary: CPUs, the share this process used, the share everything else used,
    /// and the load average.
    pub(crate) fn finish(self) -> String {
        let (Some(start), Some(end)) = (self.start, Sample::now()) else {
            return "CPU usage not available on this system".to_owned();
        };
        let total = end.total.saturating_sub(start.total).max(1) as f64;
        let cpus = f64::from(end.cpus);
        let own = end.own.saturating_sub(start.own) as f64 / total * cpus;
        let busy = end.busy.saturating_sub(start.busy) as f64 / total * cpus;
        let others = (busy - own).max(0.0);
        let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{} CPUs; this process used {own:.2} of them, everything else {others:.2}; \
             load average {load}",
            end.cpus
        )
    }
}

impl Sample {
    fn now() -> Option<Sample> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let mut lines = stat.lines();
        let jiffies: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = jiffies[..] else {
            return None;
        };
        let busy = user + nice + system + irq + softirq + steal;
        let cpus = u32::try_from(lines.filter(|l| l.starts_with("cpu")).count()).ok()?;
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3, `state`;
        // utime and stime are fields 14 and 15.
        let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Sample {
            busy,
            total: busy + idle + iowait,
            own,
            cpus,
        })
    }
}
