//! How Redis failures become `foldline::Error`s.

use foldline::{BackendError, BackendErrorKind, BoxError, Error};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The backend name in every [`BackendError`] this crate builds.
pub(crate) const BACKEND: &str = "redis";

/// Wraps a driver error, classified, with what foldline was doing.
pub(crate) fn backend(context: impl Into<String>, error: RedisError) -> Error {
    let kind = classify(&error);
    Error::Backend(BackendError::new(
        BACKEND,
        kind,
        context,
        Some(Box::new(DriverError(error))),
    ))
}

/// The redis-rs error behind a [`BackendError`] of this crate (downcast its source to this).
///
/// redis-rs prints an I/O error's message in its own and returns the I/O error as its
/// `source()` too, so an error chain would say "Connection refused" twice; this wrapper
/// leaves out a source whose message is already in the error's.
#[derive(Debug)]
pub struct DriverError(pub(crate) RedisError);

impl DriverError {
    /// The driver's error.
    pub fn redis_error(&self) -> &RedisError {
        &self.0
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let message = self.0.to_string();
        self.0
            .source()
            .filter(|inner| !message.contains(&inner.to_string()))
    }
}

/// Stored data not in the shape this crate writes (a checkpoint that does not parse, a slot
/// entry that is not JSON).
pub(crate) fn corrupt(context: impl Into<String>, source: Option<BoxError>) -> Error {
    Error::Backend(BackendError::new(
        BACKEND,
        BackendErrorKind::Corrupt,
        context,
        source,
    ))
}

/// The kind of a driver error: lost or refused connections and servers that cannot serve
/// right now are `Unavailable`, timeouts `Timeout` (both transient); answers of an unexpected
/// shape `Corrupt`; everything else the server refused is `Rejected`.
pub(crate) fn classify(error: &RedisError) -> BackendErrorKind {
    if error.is_timeout() {
        return BackendErrorKind::Timeout;
    }
    if error.is_connection_refusal() || error.is_connection_dropped() || error.is_io_error() {
        return BackendErrorKind::Unavailable;
    }
    match error.kind() {
        // Loading its dataset, a cluster reconfiguring, a replica promoted: retry later.
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => BackendErrorKind::Unavailable,
        // Another script is running past `busy-reply-threshold`.
        ErrorKind::Extension if error.code() == Some("BUSY") => BackendErrorKind::Unavailable,
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => BackendErrorKind::Corrupt,
        _ => BackendErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use foldline::BackendErrorKind;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::{DriverError, classify};

    #[test]
    fn a_driver_error_does_not_repeat_its_source() {
        let refused = DriverError(RedisError::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert!(refused.to_string().contains("refused"), "{refused}");
        assert!(std::error::Error::source(&refused).is_none());
        assert!(refused.redis_error().is_connection_refusal());
    }

    #[test]
    fn classifies() {
        let io = |kind| RedisError::from(io::Error::from(kind));
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionRefused)),
            BackendErrorKind::Unavailable
        );
        assert_eq!(
            classify(&io(io::ErrorKind::ConnectionReset)),
            BackendErrorKind::Unavailable
        );
        assert_eq!(
            classify(&io(io::ErrorKind::TimedOut)),
            BackendErrorKind::Timeout
        );
        assert_eq!(
            classify(&RedisError::from((
                ErrorKind::Server(ServerErrorKind::BusyLoading),
                "loading"
            ))),
            BackendErrorKind::Unavailable
        );
        assert_eq!(
            classify(&RedisError::from((
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "WRONGTYPE"
            ))),
            BackendErrorKind::Rejected
        );
        assert_eq!(
            classify(&RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "shape"
            ))),
            BackendErrorKind::Corrupt
        );
    }
}
