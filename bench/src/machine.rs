//! How busy the machine was while a benchmark ran: its own CPU use and everyone else's, from
//! Linux's `/proc` (elsewhere the note says it is not available).

use std::collections::HashMap;
use std::fs;

/// CPU counters at the start of a benchmark.
#[derive(Debug)]
pub(crate) struct Usage {
    start: Option<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Busy and total jiffies over all CPUs.
    busy: u64,
    total: u64,
    /// This process's user + system jiffies.
    own: u64,
    /// User + system jiffies of every process named `postgres` (a local PostgreSQL server's
    /// processes), by pid. A process that exits before the end takes its share with it.
    postgres: HashMap<u32, u64>,
    /// The same for processes named `redis-server`.
    redis: HashMap<u32, u64>,
    cpus: u32,
}

impl Usage {
    pub(crate) fn start() -> Self {
        Usage {
            start: Sample::now(),
        }
    }

    /// A one-line summary: CPUs, the share this process used, the shares local PostgreSQL
    /// and Redis server processes used (when any), the share everything else used, and the
    /// load average.
    pub(crate) fn finish(self) -> String {
        self.finish_with(None)
    }

    /// As [`finish`](Usage::finish), also naming the share of the PostgreSQL server processes
    /// in `backends` (this run's connections, so other clients' work is told apart).
    pub(crate) fn finish_with(self, backends: Option<&[u32]>) -> String {
        self.finish_split(backends).0
    }

    /// As [`finish_with`](Usage::finish_with), with the CPUs the PostgreSQL server processes
    /// used (all of them; 0 where not available).
    pub(crate) fn finish_split(self, backends: Option<&[u32]>) -> (String, f64) {
        let (Some(start), Some(end)) = (self.start, Sample::now()) else {
            return ("CPU usage not available on this system".to_owned(), 0.0);
        };
        let total = end.total.saturating_sub(start.total).max(1) as f64;
        let cpus = f64::from(end.cpus);
        let own = end.own.saturating_sub(start.own) as f64 / total * cpus;
        let busy = end.busy.saturating_sub(start.busy) as f64 / total * cpus;
        let used = |pid: &u32, now: &u64| {
            now.saturating_sub(start.postgres.get(pid).copied().unwrap_or(0))
        };
        let postgres = end
            .postgres
            .iter()
            .map(|(pid, now)| used(pid, now))
            .sum::<u64>() as f64
            / total
            * cpus;
        let redis = end
            .redis
            .iter()
            .map(|(pid, now)| now.saturating_sub(start.redis.get(pid).copied().unwrap_or(0)))
            .sum::<u64>() as f64
            / total
            * cpus;
        let others = (busy - own - postgres - redis).max(0.0);
        let mut server = String::new();
        if postgres > 0.005 {
            server = format!(" PostgreSQL {postgres:.2}");
            if let Some(backends) = backends {
                let ours = backends
                    .iter()
                    .filter_map(|pid| end.postgres.get_key_value(pid))
                    .map(|(pid, now)| used(pid, now))
                    .sum::<u64>() as f64
                    / total
                    * cpus;
                server.push_str(&format!(" (this run's backends {ours:.2})"));
            }
            server.push(',');
        }
        if redis > 0.005 {
            server.push_str(&format!(" Redis {redis:.2},"));
        }
        let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!(
            "{} CPUs; this process used {own:.2} of them,{server} everything else {others:.2}; \
             load average {load}",
            end.cpus
        );
        (line, postgres)
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
        let own = cpu_jiffies(&fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(Sample {
            busy,
            total: busy + idle + iowait,
            own,
            postgres: server_jiffies("postgres"),
            redis: server_jiffies("redis-server"),
            cpus,
        })
    }
}

/// User + system jiffies from the text of a `/proc/<pid>/stat`.
fn cpu_jiffies(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU jiffies of every live process named `name` (as `/proc/<pid>/stat` gives it), by pid.
fn server_jiffies(name: &str) -> HashMap<u32, u64> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashMap::new();
    };
    let prefix = format!("{name})");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, rest) = stat.split_once(" (")?;
            rest.starts_with(&prefix)
                .then(|| Some((pid, cpu_jiffies(&stat)?)))
                .flatten()
        })
        .collect()
}
