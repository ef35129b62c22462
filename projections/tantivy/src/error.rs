//! How tantivy's and the file system's failures become [`foldline::Error`]s.

use std::io;

use foldline::{BackendErrorKind, DriverErrors, Error};
use tantivy::TantivyError;
use tantivy::directory::error::LockError;

/// The tantivy backend's [`DriverErrors`]: `Tantivy::error(context, error)` wraps a tantivy
/// error, classified, with what foldline was doing.
pub(crate) struct Tantivy;

impl DriverErrors for Tantivy {
    const BACKEND: &'static str = "tantivy";
    type Driver = TantivyError;

    /// A busy writer lock means another writer (process, or another target in this process)
    /// holds the index: [`BackendErrorKind::NotOwner`]. I/O and thread failures are
    /// [`Unavailable`](BackendErrorKind::Unavailable), damaged or incompatible data
    /// [`Corrupt`](BackendErrorKind::Corrupt), everything else (schema, arguments)
    /// [`Rejected`](BackendErrorKind::Rejected).
    fn classify(error: &TantivyError) -> BackendErrorKind {
        match error {
            TantivyError::LockFailure(LockError::LockBusy, _) => BackendErrorKind::NotOwner,
            TantivyError::LockFailure(LockError::IoError(_), _)
            | TantivyError::IoError(_)
            | TantivyError::OpenDirectoryError(_)
            | TantivyError::OpenReadError(_)
            | TantivyError::OpenWriteError(_)
            | TantivyError::ErrorInThread(_)
            | TantivyError::SystemError(_)
            | TantivyError::Poisoned => BackendErrorKind::Unavailable,
            TantivyError::DataCorruption(_)
            | TantivyError::IncompatibleIndex(_)
            | TantivyError::DeserializeError(_) => BackendErrorKind::Corrupt,
            _ => BackendErrorKind::Rejected,
        }
    }
}

/// A file-system failure while doing `context`: [`BackendErrorKind::Unavailable`], with the
/// I/O error as the source.
pub(crate) fn io_error(context: impl Into<String>, error: io::Error) -> Error {
    Tantivy::failure(
        BackendErrorKind::Unavailable,
        context,
        Some(Box::new(error)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_writer_lock_is_not_owner_and_transient() {
        let err = Tantivy::error(
            "opening the writer",
            TantivyError::LockFailure(LockError::LockBusy, None),
        );
        let Error::Backend(backend) = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert_eq!(backend.kind(), BackendErrorKind::NotOwner);
        assert!(err.is_transient());
    }

    #[test]
    fn corruption_is_not_transient() {
        let err = Tantivy::error(
            "reading",
            TantivyError::DataCorruption(tantivy::error::DataCorruption::comment_only("bad")),
        );
        assert!(!err.is_transient());
    }
}
