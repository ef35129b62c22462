//! How Redis failures become `foldline::Error`s.

use foldline::{BackendErrorKind, BoxError, DriverErrors};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The Redis backend's [`DriverErrors`]: `Redis::error(context, error)` wraps a redis-rs
/// error, classified, with what foldline was doing; its source is a [`RedisDriverError`].
pub(crate) struct Redis;

impl DriverErrors for Redis {
    const BACKEND: &'static str = "redis";
    type Driver = RedisError;

    /// Lost or refused connections and servers that cannot serve right now are
    /// `Unavailable`, timeouts `Timeout` (both transient); answers of an unexpected shape
    /// `Corrupt`; everything else the server refused is `Rejected`.
    fn classify(error: &RedisError) -> BackendErrorKind {
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

    fn into_source(error: RedisError) -> BoxError {
        Box::new(RedisDriverError(error))
    }
}

/// The redis-rs error behind a [`BackendError`](foldline::BackendError) of this crate
/// (downcast its source to this).
///
/// redis-rs prints an I/O error's message in its own and returns the I/O error as its
/// `source()` too, so an error chain would say "Connection refused" twice; this wrapper
/// leaves out a source whose message is already in the error's.
#[derive(Debug)]
pub struct RedisDriverError(RedisError);

impl RedisDriverError {
    /// The driver's error.
    pub fn redis_error(&self) -> &RedisError {
        &self.0
    }
}

impl std::fmt::Display for RedisDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RedisDriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let message = self.0.to_string();
        self.0
            .source()
            .filter(|inner| !message.contains(&inner.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use foldline::{BackendErrorKind, DriverErrors, Error};
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::{Redis, RedisDriverError};

    #[test]
    fn a_driver_error_does_not_repeat_its_source() {
        let refused = RedisDriverError(RedisError::from(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert!(refused.to_string().contains("refused"), "{refused}");
        assert!(std::error::Error::source(&refused).is_none());
        assert!(refused.redis_error().is_connection_refusal());
    }

    #[test]
    fn the_source_of_a_backend_error_is_the_wrapper() {
        let error = Redis::error(
            "reading",
            RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        let Error::Backend(backend) = &error else {
            panic!("expected a backend error, got {error:?}");
        };
        assert_eq!(backend.backend(), "redis");
        let source = std::error::Error::source(backend).expect("the driver's error");
        assert!(source.downcast_ref::<RedisDriverError>().is_some());
    }

    #[test]
    fn classifies() {
        let classify = Redis::classify;
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
