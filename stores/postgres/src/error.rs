//! How PostgreSQL failures become `foldline::Error`s.

use foldline::{BackendError, BackendErrorKind, Error};
use tokio_postgres::error::SqlState;

/// The backend name in every [`BackendError`] this crate builds.
pub(crate) const BACKEND: &str = "postgres";

/// Wraps a driver error, classified by SQLSTATE, with what foldline was doing.
pub(crate) fn backend(context: impl Into<String>, error: tokio_postgres::Error) -> Error {
    let kind = classify(&error);
    Error::Backend(BackendError::new(
        BACKEND,
        kind,
        context,
        Some(Box::new(error)),
    ))
}

/// Wraps a pool error (no connection could be had). A failed connection attempt is the
/// driver's error itself: the pool's wrapper only repeats its message in its own.
pub(crate) fn pool(context: impl Into<String>, error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(e) => backend(context, e),
        other => Error::Backend(BackendError::new(
            BACKEND,
            BackendErrorKind::Unavailable,
            context,
            Some(Box::new(other)),
        )),
    }
}

/// A failure without a driver error (a row in an unexpected shape).
pub(crate) fn corrupt(context: impl Into<String>) -> Error {
    Error::Backend(BackendError::new(
        BACKEND,
        BackendErrorKind::Corrupt,
        context,
        None,
    ))
}

pub(crate) fn classify(error: &tokio_postgres::Error) -> BackendErrorKind {
    if error.is_closed() {
        return BackendErrorKind::Unavailable;
    }
    let Some(code) = error.code() else {
        // No SQLSTATE: an I/O or protocol failure on the connection.
        return BackendErrorKind::Unavailable;
    };
    let class = &code.code()[..2];
    if class == "08" // connection exception
        || class == "53" // insufficient resources
        || class == "57" // operator intervention: admin shutdown, crash shutdown, cannot connect now
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
    {
        return BackendErrorKind::Unavailable;
    }
    if *code == SqlState::QUERY_CANCELED {
        return BackendErrorKind::Timeout;
    }
    BackendErrorKind::Rejected
}

/// Whether `error` means the connection is unusable (so the whole batch failed, not one row).
pub(crate) fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    matches!(
        classify(error),
        BackendErrorKind::Unavailable | BackendErrorKind::Timeout
    )
}
