use crate::error::{Error, Result};
use crate::store::AppendRequest;

/// Limits a store enforces on appends, the same way in every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreLimits {
    /// Largest payload plus metadata of one event, in bytes. Default 1 MiB (Kafka's default
    /// message size, and far beyond what a well-shaped event needs).
    pub max_event_bytes: usize,
    /// Most events in one append. Default 10 000.
    pub max_events_per_append: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_event_bytes: 1024 * 1024,
            max_events_per_append: 10_000,
        }
    }
}

impl StoreLimits {
    /// Sets [`max_event_bytes`](StoreLimits::max_event_bytes).
    #[must_use]
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Sets [`max_events_per_append`](StoreLimits::max_events_per_append).
    #[must_use]
    pub fn with_max_events_per_append(mut self, count: usize) -> Self {
        self.max_events_per_append = count;
        self
    }

    /// Checks `request` against these limits before anything is written.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyEvents`] or [`Error::EventTooLarge`] (naming the first oversize event).
    pub fn check(&self, request: &AppendRequest) -> Result<()> {
        let count = request.events().len();
        if count > self.max_events_per_append {
            return Err(Error::TooManyEvents {
                stream: request.stream().clone(),
                count,
                limit: self.max_events_per_append,
            });
        }
        for event in request.events() {
            let size = event.encoded_len();
            if size > self.max_event_bytes {
                return Err(Error::EventTooLarge {
                    stream: request.stream().clone(),
                    event_type: event.event_type.clone(),
                    size,
                    limit: self.max_event_bytes,
                });
            }
        }
        Ok(())
    }
}
