use std::time::Duration;

/// How often and how patiently a command is re-decided after a version conflict.
///
/// Delays grow exponentially from `base_delay` up to `max_delay`, with full jitter (a uniform
/// random delay below the bound), so writers contending on one stream spread out instead of
/// colliding again in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 8; 1 means no retry.
    pub max_attempts: u32,
    /// Upper bound of the first delay. Default 1 ms.
    pub base_delay: Duration,
    /// Largest delay. Default 100 ms.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// No retries: a conflict is returned at once.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets [`max_attempts`](RetryPolicy::max_attempts) (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the delay bounds.
    #[must_use]
    pub fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    /// The jittered delay before attempt `attempt + 1`, after `attempt` failed (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let bound = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_bounds() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            assert!(policy.delay_after(attempt) <= policy.max_delay);
        }
        assert!(policy.delay_after(1) <= policy.base_delay);
    }
}
