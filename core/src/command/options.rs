use uuid::Uuid;

use crate::event::EventMetadata;
use crate::names::IdempotencyKey;

/// Per-command settings: its id, idempotency key and the metadata its events carry.
///
/// ```
/// use foldline::{CommandOptions, IdempotencyKey};
/// let options = CommandOptions::new()
///     .with_idempotency_key(IdempotencyKey::new("req-7f3a")?)
///     .with_user_metadata("user", "ada");
/// assert_eq!(options.idempotency_key().map(|k| k.as_str()), Some("req-7f3a"));
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CommandOptions {
    pub(crate) command_id: Option<Uuid>,
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    pub(crate) metadata: EventMetadata,
}

impl CommandOptions {
    /// No key, a fresh command id, empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the command id recorded on every event (default: a fresh UUID v7 per execution).
    #[must_use]
    pub fn with_command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// Makes the command idempotent: if a command with this key already appended, nothing is
    /// decided or written again and the first result is returned.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Sets the correlation id recorded on every event.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.metadata.correlation_id = Some(id);
        self
    }

    /// Sets the causation id recorded on every event.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.metadata.causation_id = Some(id);
        self
    }

    /// Adds application metadata recorded on every event.
    #[must_use]
    pub fn with_user_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.metadata.user.insert(key.into(), value.into());
        self
    }

    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }
}
