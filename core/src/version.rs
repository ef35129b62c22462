//! Stream versions and the expectation an append states about them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The version of a stream: the number of events in it, so the first event has version 1 and
/// an empty (or absent) stream is at [`Version::ZERO`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(u64);

impl Version {
    /// The version of a stream with no events.
    pub const ZERO: Version = Version(0);

    /// Wraps a raw version number.
    pub const fn new(value: u64) -> Self {
        Version(value)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version after this one.
    #[must_use]
    pub const fn next(self) -> Self {
        Version(self.0 + 1)
    }

    /// This version moved forward by `n` events.
    #[must_use]
    pub const fn add(self, n: u64) -> Self {
        Version(self.0 + n)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl From<u64> for Version {
    fn from(value: u64) -> Self {
        Version(value)
    }
}

/// What an append expects the stream's current version to be (optimistic concurrency).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet (have no events).
    NoStream,
    /// The stream's current version must be exactly this. `Exact(Version::ZERO)` is the same
    /// as [`ExpectedVersion::NoStream`].
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies this expectation.
    pub fn allows(self, actual: Version) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == Version::ZERO,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl From<Version> for ExpectedVersion {
    fn from(v: Version) -> Self {
        ExpectedVersion::Exact(v)
    }
}
