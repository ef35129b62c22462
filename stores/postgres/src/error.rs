//! How PostgreSQL failures become `foldline::Error`s.

use foldline::{BackendErrorKind, DriverErrors, Error};
use tokio_postgres::error::SqlState;

/// The PostgreSQL backend's [`DriverErrors`]: `Postgres::error(context, error)` wraps a
/// driver error, classified by SQLSTATE, with what foldline was doing.
pub(crate) struct Postgres;

impl DriverErrors for Postgres {
    const BACKEND: &'static str = "postgres";
    type Driver = tokio_postgres::Error;

    fn classify(error: &tokio_postgres::Error) -> BackendErrorKind {
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
}

/// Wraps a pool error (no connection could be had). A failed connection attempt is the
/// driver's error itself: the pool's wrapper only repeats its message in its own.
pub(crate) fn pool(context: impl Into<String>, error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(e) => Postgres::error(context, e),
        other => Postgres::failure(
            BackendErrorKind::Unavailable,
            context,
            Some(Box::new(other)),
        ),
    }
}

/// Whether `error` means the connection is unusable (so the whole batch failed, not one row).
pub(crate) fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    matches!(
        Postgres::classify(error),
        BackendErrorKind::Unavailable | BackendErrorKind::Timeout
    )
}
