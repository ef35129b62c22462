//! What every backend crate shares: turning its driver's errors into [`Error`]s, and hiding
//! passwords in the URLs it prints.

use crate::error::{BackendError, BackendErrorKind, BoxError, Error};

/// How a backend crate turns its driver's errors into foldline's [`Error`]s: one
/// implementation per backend, so every crate builds its [`BackendError`]s the same way.
///
/// Implement it on a private unit type named after the backend, in the crate's `error.rs`
/// (the orphan rule forbids implementing it on the driver's error type itself). Only
/// [`BACKEND`](DriverErrors::BACKEND), [`Driver`](DriverErrors::Driver) and
/// [`classify`](DriverErrors::classify) are required; the constructors are provided. Every
/// constructor takes `context` first: what foldline was doing, for the message
/// `<backend> failed while <context>`.
///
/// # Examples
///
/// A backend that keeps its data in files, with `std::io::Error` as its driver's error:
///
/// ```
/// use std::io;
/// use foldline::{BackendErrorKind, DriverErrors};
///
/// struct Files;
///
/// impl DriverErrors for Files {
///     const BACKEND: &'static str = "files";
///     type Driver = io::Error;
///
///     fn classify(error: &io::Error) -> BackendErrorKind {
///         match error.kind() {
///             io::ErrorKind::TimedOut => BackendErrorKind::Timeout,
///             io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
///                 BackendErrorKind::Rejected
///             }
///             _ => BackendErrorKind::Unavailable,
///         }
///     }
/// }
///
/// let error = Files::error("reading `slot.json`", io::Error::from(io::ErrorKind::TimedOut));
/// assert!(error.is_transient());
/// assert_eq!(error.to_string(), "files failed while reading `slot.json`");
/// assert!(std::error::Error::source(&error).is_some()); // the driver's error
///
/// let error = Files::corrupt("parsing `slot.json`", None);
/// assert!(!error.is_transient());
/// ```
pub trait DriverErrors {
    /// The backend's name in every [`BackendError`] it builds (`"postgres"`, `"redis"`).
    const BACKEND: &'static str;

    /// The driver's error type (`tokio_postgres::Error`, `redis::RedisError`).
    type Driver: std::error::Error + Send + Sync + 'static;

    /// The kind of a driver error, which decides whether retrying makes sense: lost
    /// connections `Unavailable`, slow answers `Timeout`, refusals `Rejected`, answers of an
    /// unexpected shape `Corrupt`.
    fn classify(error: &Self::Driver) -> BackendErrorKind;

    /// The driver's error as the [source](std::error::Error::source) of the
    /// [`BackendError`]: boxed as it is, unless the backend wraps it (for instance to leave
    /// out a source whose message the error already prints).
    fn into_source(error: Self::Driver) -> BoxError {
        Box::new(error)
    }

    /// `error`, [classified](DriverErrors::classify), as an [`Error::Backend`] that says what
    /// foldline was doing, with the driver's error as its source.
    fn error(context: impl Into<String>, error: Self::Driver) -> Error {
        let kind = Self::classify(&error);
        Self::failure(kind, context, Some(Self::into_source(error)))
    }

    /// Stored data not in the shape the backend writes (a row, a file, an answer that does
    /// not parse): an [`Error::Backend`] of kind [`BackendErrorKind::Corrupt`], with what
    /// failed to parse as its source, if anything.
    fn corrupt(context: impl Into<String>, source: Option<BoxError>) -> Error {
        Self::failure(BackendErrorKind::Corrupt, context, source)
    }

    /// An [`Error::Backend`] of kind `kind` that is not one of the driver's errors: something
    /// the backend crate refuses itself, or another library's failure (a pool, the file
    /// system).
    fn failure(
        kind: BackendErrorKind,
        context: impl Into<String>,
        source: Option<BoxError>,
    ) -> Error {
        Error::Backend(BackendError::new(Self::BACKEND, kind, context, source))
    }
}

/// `url` with its passwords replaced by `***`, safe for logs and error messages.
///
/// Three places are redacted: the password of a `scheme://user:password@host` URL (up to the
/// last `@` before the path, so an unencoded `@` in a password is hidden too), the value of a
/// `pass=` or `password=` query parameter (`redis+unix:///run/redis.sock?pass=...`), and a
/// `password=...` pair of a key-value connection string (`host=db password=... user=app`).
/// Everything else is kept as written, except that a key-value string's pairs are joined by
/// single spaces.
///
/// ```
/// use foldline::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/bank"), "postgres://app:***@db:5432/bank");
/// assert_eq!(redact_url("redis://:s3cret@cache:6379/2"), "redis://:***@cache:6379/2");
/// assert_eq!(
///     redact_url("unix:///run/redis.sock?db=1&pass=s3cret"),
///     "unix:///run/redis.sock?db=1&pass=***"
/// );
/// assert_eq!(redact_url("host=db password=s3cret user=app"), "host=db password=*** user=app");
/// ```
pub fn redact_url(url: &str) -> String {
    let url = match url.find("://") {
        Some(scheme_end) => mask_user_info(url, scheme_end + 3),
        None => mask_key_values(url),
    };
    match url.split_once('?') {
        Some((base, query)) => format!("{base}?{}", mask_query(query)),
        None => url,
    }
}

/// The password in the user info of the authority that starts at `authority_start`.
fn mask_user_info(url: &str, authority_start: usize) -> String {
    let rest = &url[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    if let Some(at) = rest[..authority_end].rfind('@')
        && let Some(colon) = rest[..at].find(':')
    {
        return format!(
            "{}{}:***{}",
            &url[..authority_start],
            &rest[..colon],
            &rest[at..]
        );
    }
    url.to_owned()
}

/// The values of `pass` and `password` parameters in a `a=1&b=2` query.
fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name == "pass" || name == "password" => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `password=` pairs in a whitespace-separated `key=value` connection string.
fn mask_key_values(text: &str) -> String {
    text.split_whitespace()
        .map(|pair| {
            if pair.starts_with("password=") {
                "password=***"
            } else {
                pair
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::{DriverErrors, redact_url};
    use crate::error::{BackendErrorKind, BoxError, Error};

    #[test]
    fn hides_postgres_passwords() {
        assert_eq!(
            redact_url("postgres://u:p@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
        assert_eq!(
            redact_url("host=h password=secret user=u"),
            "host=h password=*** user=u"
        );
    }

    #[test]
    fn hides_redis_passwords() {
        assert_eq!(redact_url("redis://u:p@h:6379/0"), "redis://u:***@h:6379/0");
        assert_eq!(redact_url("redis://:p@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://u@h/0"), "redis://u@h/0");
        assert_eq!(redact_url("redis://u:p@ss@h/0"), "redis://u:***@h/0");
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
        assert_eq!(
            redact_url("redis+unix:///s.sock?pass=x&db=2&password=y"),
            "redis+unix:///s.sock?pass=***&db=2&password=***"
        );
    }

    #[test]
    fn hides_query_passwords_without_a_scheme() {
        assert_eq!(
            redact_url("localhost:6379?pass=x&db=2"),
            "localhost:6379?pass=***&db=2"
        );
    }

    #[test]
    fn hides_a_password_holding_a_question_mark() {
        assert_eq!(
            redact_url("postgres://u:p?x@h/d?sslmode=disable&password=y"),
            "postgres://u:***@h/d?sslmode=disable&password=***"
        );
    }

    struct Files;

    impl DriverErrors for Files {
        const BACKEND: &'static str = "files";
        type Driver = io::Error;

        fn classify(error: &io::Error) -> BackendErrorKind {
            match error.kind() {
                io::ErrorKind::TimedOut => BackendErrorKind::Timeout,
                _ => BackendErrorKind::Unavailable,
            }
        }
    }

    struct Wrapped;

    impl DriverErrors for Wrapped {
        const BACKEND: &'static str = "wrapped";
        type Driver = io::Error;

        fn classify(_: &io::Error) -> BackendErrorKind {
            BackendErrorKind::Rejected
        }

        fn into_source(error: io::Error) -> BoxError {
            format!("wrapped: {error}").into()
        }
    }

    fn backend(error: &Error) -> &crate::BackendError {
        match error {
            Error::Backend(backend) => backend,
            other => panic!("expected a backend error, got {other:?}"),
        }
    }

    #[test]
    fn builds_backend_errors() {
        let error = Files::error("reading", io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(backend(&error).backend(), "files");
        assert_eq!(backend(&error).kind(), BackendErrorKind::Timeout);
        assert_eq!(error.to_string(), "files failed while reading");
        let source = std::error::Error::source(&error).expect("the driver's error");
        assert!(source.downcast_ref::<io::Error>().is_some());

        let error = Files::corrupt("parsing", None);
        assert_eq!(backend(&error).kind(), BackendErrorKind::Corrupt);
        assert!(std::error::Error::source(&error).is_none());

        let error = Files::failure(BackendErrorKind::NotOwner, "leasing", None);
        assert_eq!(backend(&error).kind(), BackendErrorKind::NotOwner);
        assert!(error.is_transient());
    }

    #[test]
    fn a_backend_may_wrap_its_drivers_errors() {
        let error = Wrapped::error("writing", io::Error::other("disk full"));
        assert_eq!(backend(&error).kind(), BackendErrorKind::Rejected);
        let source = std::error::Error::source(&error).expect("the wrapped error");
        assert_eq!(source.to_string(), "wrapped: disk full");
    }
}
