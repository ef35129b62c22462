use crate::error::Error;

/// Why executing a command failed: the aggregate refused it, or the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command (its `handle` returned an error). Nothing was written.
    #[error("the aggregate refused the command")]
    Rejected(#[source] E),
    /// Loading or appending failed. A [conflict](Error::is_conflict) here means every retry
    /// also conflicted.
    #[error(transparent)]
    Store(#[from] Error),
}

impl<E> CommandError<E> {
    /// Whether the aggregate refused the command.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CommandError::Rejected(_))
    }

    /// The aggregate's reason for refusing, if it refused.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            CommandError::Rejected(e) => Some(e),
            CommandError::Store(_) => None,
        }
    }

    /// Whether the command kept conflicting with concurrent writers until retries ran out.
    pub fn is_conflict(&self) -> bool {
        matches!(self, CommandError::Store(e) if e.is_conflict())
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CommandError::Store(e) if e.is_transient() || e.is_conflict())
    }

    /// The store's error, if the store failed.
    pub fn store_error(&self) -> Option<&Error> {
        match self {
            CommandError::Store(e) => Some(e),
            CommandError::Rejected(_) => None,
        }
    }
}
