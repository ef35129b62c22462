//! Validated names: a name that reaches SQL, a Redis key or a directory is checked once, here.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, NameKind};
use crate::shown::Shown;

/// Which rule a name broke: the `reason` of an [`Error::InvalidName`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameRule {
    /// The name is empty.
    Empty,
    /// The name holds a character its kind does not allow (the first such one).
    Character {
        /// The character.
        character: char,
        /// Its offset in the name, in bytes.
        at: usize,
    },
    /// The name is longer than its kind allows.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The most its kind allows, in bytes.
        max: usize,
    },
    /// The name must start with a letter, and does not.
    FirstNotLetter {
        /// Its first character.
        character: char,
    },
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameRule::Empty => f.write_str("must not be empty"),
            NameRule::Character { character, at } => write!(
                f,
                "contains `{}` (U+{:04X}) at byte {at}, which is not allowed",
                Shown::new(character.encode_utf8(&mut [0; 4])),
                u32::from(character)
            ),
            NameRule::TooLong { len, max } => {
                write!(f, "is {len} bytes long, over the limit of {max}")
            }
            NameRule::FirstNotLetter { character } => write!(
                f,
                "must start with a letter, not `{}`",
                Shown::new(character.encode_utf8(&mut [0; 4]))
            ),
        }
    }
}

/// Checks `value` against the rules of `kind`, returning the first rule it breaks. `const`, so
/// that `from_static` names are checked at compile time.
///
/// The characters are checked before the length: a long value with a newline in it is refused
/// for the newline, which says more about where it came from.
const fn check(kind: NameKind, value: &str) -> Result<(), NameRule> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(NameRule::Empty);
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
            // Every allowed character is ASCII, so `i` is where a character starts.
            return Err(NameRule::Character {
                character: char_at(bytes, i),
                at: i,
            });
        }
        i += 1;
    }
    let max = kind.max_len();
    if bytes.len() > max {
        return Err(NameRule::TooLong {
            len: bytes.len(),
            max,
        });
    }
    let first = bytes[0];
    match kind {
        NameKind::EventType | NameKind::ProjectionName | NameKind::SchemaName
            if !first.is_ascii_alphabetic() =>
        {
            Err(NameRule::FirstNotLetter {
                character: first as char,
            })
        }
        _ => Ok(()),
    }
}

/// The character of UTF-8 `bytes` that starts at `i` (`str::chars` is not `const`).
const fn char_at(bytes: &[u8], i: usize) -> char {
    let lead = bytes[i];
    let (len, mut code) = match lead {
        0x00..=0x7f => (1, lead as u32),
        0xc0..=0xdf => (2, (lead & 0x1f) as u32),
        0xe0..=0xef => (3, (lead & 0x0f) as u32),
        _ => (4, (lead & 0x07) as u32),
    };
    let mut k = 1;
    while k < len && i + k < bytes.len() {
        code = code << 6 | (bytes[i + k] & 0x3f) as u32;
        k += 1;
    }
    match char::from_u32(code) {
        Some(c) => c,
        None => char::REPLACEMENT_CHARACTER,
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
    /// Checks `value` against the rules of this kind of name, as the name types' `new` does.
    /// For a name with no type of its own (a [`KeyPrefix`](NameKind::KeyPrefix)), so that
    /// every crate refuses it by the same rules and with the same message.
    ///
    /// ```
    /// use foldline::{NameKind, NameRule};
    /// assert_eq!(NameKind::KeyPrefix.check("app-1"), Ok(()));
    /// assert_eq!(
    ///     NameKind::KeyPrefix.check("a:b"),
    ///     Err(NameRule::Character { character: ':', at: 1 })
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// The first rule `value` breaks.
    pub const fn check(self, value: &str) -> Result<(), NameRule> {
        check(self, value)
    }

    /// `value`, when it keeps the rules of this kind of name; as [`check`](NameKind::check),
    /// with the error the name types' `new` returns.
    ///
    /// ```
    /// use foldline::NameKind;
    /// assert_eq!(NameKind::KeyPrefix.validate("app-1".to_owned())?, "app-1");
    /// assert!(NameKind::KeyPrefix.validate("a:b".to_owned()).is_err());
    /// # Ok::<(), foldline::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] naming the rule `value` breaks.
    pub fn validate(self, value: String) -> Result<String, Error> {
        match check(self, &value) {
            Ok(()) => Ok(value),
            Err(reason) => Err(Error::InvalidName {
                kind: self,
                value,
                reason,
            }),
        }
    }

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

    fn refusal(error: Error) -> (NameKind, String, NameRule) {
        match error {
            Error::InvalidName {
                kind,
                value,
                reason,
            } => (kind, value, reason),
            other => panic!("expected Error::InvalidName, got {other:?}"),
        }
    }

    #[test]
    fn the_reason_names_the_refused_character_and_where_it_is() {
        let (kind, value, reason) = refusal(StreamId::new("acct\nerror: forged").unwrap_err());
        assert_eq!(
            (kind, value.as_str()),
            (NameKind::StreamId, "acct\nerror: forged")
        );
        assert_eq!(
            reason,
            NameRule::Character {
                character: '\n',
                at: 4
            }
        );
        assert_eq!(
            reason.to_string(),
            r"contains `\n` (U+000A) at byte 4, which is not allowed"
        );
        let cases = [
            ("a b", ' ', 1),
            ("x\u{1b}[31m", '\u{1b}', 1),
            ("del\u{7f}", '\u{7f}', 3),
            ("ab\u{9b}", '\u{9b}', 2),
            ("caf\u{e9}", '\u{e9}', 3),
            ("ok-\u{1f600}", '\u{1f600}', 3),
            ("a{b}", '{', 1),
        ];
        for (value, character, at) in cases {
            let (_, _, reason) = refusal(StreamId::new(value).unwrap_err());
            assert_eq!(reason, NameRule::Character { character, at }, "{value:?}");
        }
        let (_, _, reason) = refusal(StreamId::new("x\u{1b}").unwrap_err());
        assert_eq!(
            reason.to_string(),
            r"contains `\u{1b}` (U+001B) at byte 1, which is not allowed"
        );
        let (_, _, reason) = refusal(EventType::new("1Deposited").unwrap_err());
        assert_eq!(reason, NameRule::FirstNotLetter { character: '1' });
        assert_eq!(reason.to_string(), "must start with a letter, not `1`");
        let (_, _, reason) = refusal(StreamId::new("").unwrap_err());
        assert_eq!(reason.to_string(), "must not be empty");
    }

    #[test]
    fn long_names_are_refused_for_a_bad_character_first_then_for_length() {
        let (_, value, reason) = refusal(StreamId::new("x".repeat(10_240)).unwrap_err());
        assert_eq!(value.len(), 10_240, "the error keeps the whole value");
        assert_eq!(
            reason,
            NameRule::TooLong {
                len: 10_240,
                max: 255
            }
        );
        assert_eq!(
            reason.to_string(),
            "is 10240 bytes long, over the limit of 255"
        );
        let (_, _, reason) =
            refusal(StreamId::new(format!("{}\n", "x".repeat(10_240))).unwrap_err());
        assert_eq!(
            reason,
            NameRule::Character {
                character: '\n',
                at: 10_240
            }
        );
    }

    #[test]
    fn the_message_is_one_short_line_whatever_the_value() {
        let value = format!("acct\nerror: forged\r\u{1b}[2J\u{7f}{}", "x".repeat(10_240));
        let message = StreamId::new(value).unwrap_err().to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.len() < 200, "{} bytes: {message}", message.len());
        let shown = format!(
            r"acct\nerror: forged\r\u{{1b}}[2J\u{{7f}}{}",
            "x".repeat(28)
        );
        assert_eq!(shown.chars().count(), Shown::MAX_WIDTH);
        assert_eq!(
            message,
            format!(
                "invalid stream id `{shown}…(10264 bytes)`: contains `\\n` (U+000A) at byte 4, \
                 which is not allowed"
            )
        );
    }

    #[test]
    fn key_prefixes_are_checked_by_the_same_rules() {
        assert_eq!(NameKind::KeyPrefix.check("test-1.2_X"), Ok(()));
        assert_eq!(
            NameKind::KeyPrefix.check("a*"),
            Err(NameRule::Character {
                character: '*',
                at: 1
            })
        );
        assert_eq!(
            NameKind::KeyPrefix.check(&"p".repeat(65)),
            Err(NameRule::TooLong { len: 65, max: 64 })
        );
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
