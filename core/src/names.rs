//! Validated names: a name that reaches SQL, a Redis key or a directory is checked once, here.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, NameKind};

/// Checks `value` against the rules of `kind`, returning why it is invalid.
const fn check(kind: NameKind, value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    let max = kind.max_len();
    if bytes.is_empty() {
        return Err("must not be empty");
    }
    if bytes.len() > max {
        return Err("is too long");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ok = match kind {
            // Stream ids carry user ids: allow the punctuation ids commonly contain, never
            // whitespace, quotes, control characters or braces (braces are Redis hash tags).
            NameKind::StreamId | NameKind::IdempotencyKey => {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'_' | b'.' | b':' | b'@' | b'/' | b'+' | b'=' | b'#'
                    )
            }
            NameKind::EventType => {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
            }
            // Projection and schema names become identifiers, key prefixes and directory names.
            NameKind::ProjectionName | NameKind::SchemaName => {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
            }
            NameKind::KeyPrefix => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'),
        };
        if !ok {
            return Err("contains a character that is not allowed");
        }
        i += 1;
    }
    let first = bytes[0];
    match kind {
        NameKind::EventType | NameKind::ProjectionName | NameKind::SchemaName
            if !first.is_ascii_alphabetic() =>
        {
            Err("must start with a letter")
        }
        _ => Ok(()),
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidName`] when `value` breaks the rules in the type's documentation.
            pub fn new(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                match check($kind, &value) {
                    Ok(()) => Ok(Self(Cow::Owned(value))),
                    Err(reason) => Err(Error::InvalidName { kind: $kind, value, reason }),
                }
            }

            /// Wraps a `'static` string, checked at compile time when used in a `const`.
            ///
            /// # Panics
            ///
            /// When `value` is invalid (a compile error in const context).
            pub const fn from_static(value: &'static str) -> Self {
                match check($kind, value) {
                    Ok(()) => Self(Cow::Borrowed(value)),
                    Err(_) => panic!(concat!("invalid ", stringify!($name))),
                }
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// The id of one event stream, usually `<aggregate name>-<aggregate id>`.
    ///
    /// 1 to 255 ASCII characters: letters, digits and `- _ . : @ / + = #`. No whitespace, quotes,
    /// control characters or braces, so a stream id is safe in SQL parameters, Kafka keys and
    /// Redis keys alike.
    ///
    /// ```
    /// use foldline::StreamId;
    /// let id = StreamId::new("account-42")?;
    /// assert_eq!(id.as_str(), "account-42");
    /// assert!(StreamId::new("has space").unwrap_err().is_invalid_input());
    /// # Ok::<(), foldline::Error>(())
    /// ```
    StreamId,
    NameKind::StreamId
);

validated_name!(
    /// The stable name of an event type, stored with every event (`Deposited`, `bank.Opened`).
    ///
    /// 1 to 128 ASCII characters, starting with a letter: letters, digits and `- _ . :`.
    EventType,
    NameKind::EventType
);

validated_name!(
    /// The name of a projection: 1 to 48 characters, starting with a lowercase letter, then
    /// lowercase letters, digits and `_`. Safe as a Redis key part, an index directory name and
    /// an SQL identifier.
    ProjectionName,
    NameKind::ProjectionName
);

validated_name!(
    /// The name of a database schema a store keeps its tables in: 1 to 63 characters, starting
    /// with a lowercase letter, then lowercase letters, digits and `_` (a PostgreSQL identifier
    /// that never needs quoting).
    SchemaName,
    NameKind::SchemaName
);

validated_name!(
    /// A key that makes a command idempotent: a redelivered command with the same key appends
    /// nothing and returns the first result. 1 to 128 characters, as for [`StreamId`].
    IdempotencyKey,
    NameKind::IdempotencyKey
);

impl StreamId {
    /// The stream of aggregate `name` with id `id`: `"{name}-{id}"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] when the id renders to characters a stream id cannot hold.
    pub fn for_aggregate(name: &str, id: &impl fmt::Display) -> Result<Self, Error> {
        Self::new(format!("{name}-{id}"))
    }
}

impl NameKind {
    const fn max_len(self) -> usize {
        match self {
            NameKind::StreamId => 255,
            NameKind::EventType | NameKind::IdempotencyKey => 128,
            NameKind::ProjectionName => 48,
            NameKind::SchemaName => 63,
            NameKind::KeyPrefix => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(StreamId::new("account-1").is_ok());
        assert!(StreamId::new("a{b}").is_err());
        assert!(StreamId::new("").is_err());
        assert!(StreamId::new("x".repeat(256)).is_err());
        assert!(EventType::new("Deposited").is_ok());
        assert!(EventType::new("1Deposited").is_err());
        assert!(SchemaName::new("tenant_1").is_ok());
        assert!(SchemaName::new("public; drop table x").is_err());
        assert!(SchemaName::new("Upper").is_err());
        assert!(ProjectionName::new("balances").is_ok());
    }

    #[test]
    fn serde_round_trip_validates() {
        let id: StreamId = serde_json::from_str("\"s-1\"").unwrap();
        assert_eq!(id, "s-1");
        assert!(serde_json::from_str::<StreamId>("\"bad id\"").is_err());
    }

    #[test]
    fn static_names_are_borrowed() {
        const T: EventType = EventType::from_static("Opened");
        assert_eq!(T.as_str(), "Opened");
    }
}
