//! Which store a checkpoint belongs to.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names one store's global feed, so that a checkpoint taken from it is never used with
/// another: positions are only meaningful in the feed that produced them (PostgreSQL's are
/// transaction ids, which another database or a restored backup hands out again).
///
/// Every [`ProjectionTarget`](crate::ProjectionTarget) slot records the identity of the store
/// it was built from, and the projector refuses to resume a slot built from another store
/// ([`Error::StoreMismatch`](crate::Error::StoreMismatch)). What an identity holds is up to
/// the store: PostgreSQL's is `postgres:<system identifier>/<database>/<schema>`, an
/// in-memory store's a random id drawn when it is created. Compare identities for equality
/// only; the text is for people.
///
/// ```
/// use foldline::{EventStore, InMemoryEventStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let store = InMemoryEventStore::new();
/// assert_eq!(store.identity().await?, store.clone().identity().await?);
/// assert_ne!(store.identity().await?, InMemoryEventStore::new().identity().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreIdentity(String);

impl StoreIdentity {
    /// An identity with this text (for store implementations).
    pub fn new(text: impl Into<String>) -> Self {
        StoreIdentity(text.into())
    }

    /// The identity's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
