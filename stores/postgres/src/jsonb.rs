//! What PostgreSQL's `jsonb` accepts, checked before an append is queued.
//!
//! An append whose payload or metadata the server would refuse must fail alone, with
//! [`Error::InvalidPayload`](foldline::Error::InvalidPayload), and never reach the group commit
//! it would have joined. So [`check`] refuses what `jsonb` refuses, as found by experiment
//! against PostgreSQL 15 and read in its `numeric.c` (`tests/it/pg_payloads.rs` holds the check
//! to the server's own verdict on random input):
//!
//! - **JSON as RFC 8259 has it**: one value; whitespace is space, tab, line feed and carriage
//!   return; no leading zeros, no `+`, no `.5` or `1.`, no trailing commas, no comments.
//! - **UTF-8 throughout**, inside strings too: the payload travels as text.
//! - **Strings** hold no raw control character (U+0000 to U+001F). Escapes are `\"`, `\\`,
//!   `\/`, `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX`, except `\u0000` ("unsupported Unicode
//!   escape sequence": PostgreSQL's text cannot hold NUL) and surrogates that are not a high
//!   one followed at once by a low one (`\ud800` alone, `\udc00\ud800`).
//! - **Numbers** become `numeric`, which refuses an exponent of ±1 073 741 823 or beyond
//!   (before it looks at the digits: even `0e1073741823`), more than 16 383 digits after the
//!   decimal point once the exponent is applied (`1e-16384`, `0e-16384`), and a first non-zero
//!   digit at 10^131072 or beyond (its weight is at most 32 767 base-10 000 digits:
//!   `1e131072`). Zero with a large exponent is fine (`0e1000000`).
//! - **Nesting** of at most [`MAX_DEPTH`] arrays and objects. This is the one place the check
//!   refuses more than the server: PostgreSQL's limit is its `max_stack_depth` (about 10 000
//!   levels at the default 2 MB, about 500 at the smallest setting), which no client can know,
//!   so a fixed bound far below the smallest setting never accepts what a server refuses. It
//!   is also serde_json's recursion limit, so the JSON codec could not decode anything deeper.
//!
//! Not checked: sizes. A `jsonb` value holds at most 255 MiB, far beyond the default event size
//! limit of 1 MiB. Should the server refuse an event anyway (too large, a character a database
//! not in UTF-8 cannot hold), the writer halves its batch until that append is alone
//! (`writer/mod.rs`), so it still fails alone, with the server's error.
//!
//! serde_json cannot do this check. Skipping a value (`IgnoredAny`) does not look inside its
//! strings, so `{"a":"\xff"}`, `\ud800` and `\u0000` all pass; decoding numbers turns them into
//! `f64`, so `1e-1000000` passes as `0` and `1e400` is refused; and its errors give a line and
//! column, not a byte offset. Its `arbitrary_precision` feature would change
//! `serde_json::Value` for every crate in the build. The grammar is small, so this module walks
//! the bytes itself, without recursion.

use std::fmt;

/// The deepest nesting of arrays and objects [`check`] accepts: `[[1]]` is 2 levels.
pub(crate) const MAX_DEPTH: usize = 128;

/// `numeric_in` refuses an exponent of `INT_MAX / 2` or beyond, either way.
const MAX_EXPONENT: i64 = 1_073_741_823;
/// `numeric`'s largest display scale: digits after the decimal point.
const MAX_SCALE: i64 = 0x3FFF;
/// `numeric`'s largest weight, in base-10 000 digits before the decimal point, less one.
const MAX_WEIGHT: i64 = 32_767;
/// Decimal digits per base-10 000 digit of `numeric`.
const DEC_DIGITS: i64 = 4;

/// Why `jsonb` would refuse some JSON text, and where.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not JSON that PostgreSQL's jsonb accepts: {problem} at byte offset {offset}")]
pub(crate) struct JsonbError {
    /// What was checked: "the payload", "the metadata".
    what: &'static str,
    problem: Problem,
    offset: usize,
}

impl JsonbError {
    #[cfg(test)]
    pub(crate) fn problem(&self) -> Problem {
        self.problem
    }

    #[cfg(test)]
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }
}

/// What is wrong at the offset a [`JsonbError`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// The text ends inside a value, or holds no value at all.
    UnexpectedEnd,
    /// A character that cannot stand here (after the value, too).
    Unexpected(char),
    /// A raw control character inside a string.
    ControlCharacter(u8),
    /// A backslash followed by something other than an escape.
    InvalidEscape,
    /// `\u0000`.
    NulEscape,
    /// A surrogate escape that is not a high one followed by a low one.
    LoneSurrogate(u16),
    /// A number that is not JSON (`-`, `1.`, `1e`).
    InvalidNumber,
    /// A number `numeric` cannot hold.
    NumberOutOfRange(NumericLimit),
    /// More than [`MAX_DEPTH`] nested arrays and objects.
    TooDeep,
}

/// Which limit of `numeric` a number breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumericLimit {
    /// The exponent itself.
    Exponent,
    /// Digits after the decimal point.
    Scale,
    /// Digits before the decimal point.
    Weight,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Problem::UnexpectedEnd => f.write_str("unexpected end of input"),
            Problem::Unexpected(c) => write!(f, "unexpected character {c:?}"),
            Problem::ControlCharacter(b) => {
                write!(f, "unescaped control character U+{b:04X} in a string")
            }
            Problem::InvalidEscape => f.write_str("invalid escape sequence in a string"),
            Problem::NulEscape => {
                f.write_str("`\\u0000` in a string (jsonb cannot hold the NUL character)")
            }
            Problem::LoneSurrogate(unit) => write!(f, "unpaired surrogate escape `\\u{unit:04x}`"),
            Problem::InvalidNumber => f.write_str("invalid number"),
            Problem::NumberOutOfRange(NumericLimit::Exponent) => write!(
                f,
                "number out of numeric's range (an exponent of ±{MAX_EXPONENT} or beyond)"
            ),
            Problem::NumberOutOfRange(NumericLimit::Scale) => write!(
                f,
                "number out of numeric's range (more than {MAX_SCALE} digits after the decimal point)"
            ),
            Problem::NumberOutOfRange(NumericLimit::Weight) => write!(
                f,
                "number out of numeric's range (more than {} digits before the decimal point)",
                (MAX_WEIGHT + 1) * DEC_DIGITS
            ),
            Problem::TooDeep => write!(f, "arrays and objects nested deeper than {MAX_DEPTH}"),
        }
    }
}

/// Checks that `json` is text PostgreSQL stores as `jsonb` (see the module docs); `what` names
/// it in the error.
pub(crate) fn check(what: &'static str, json: &[u8]) -> Result<(), JsonbError> {
    let error = |problem, offset| JsonbError {
        what,
        problem,
        offset,
    };
    let text =
        std::str::from_utf8(json).map_err(|e| error(Problem::InvalidUtf8, e.valid_up_to()))?;
    Walker { text, at: 0 }
        .walk()
        .map_err(|(problem, offset)| error(problem, offset))
}

/// A problem and its byte offset.
type Found = (Problem, usize);

/// An open array or object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Array,
    Object,
}

/// Walks one JSON text, already known to be UTF-8.
struct Walker<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Walker<'a> {
    fn walk(&mut self) -> Result<(), Found> {
        let mut open: Vec<Open> = Vec::new();
        'value: loop {
            // At the start of a value.
            self.skip_whitespace();
            match self.peek() {
                Some(b'[' | b'{') => {
                    let kind = if self.peek() == Some(b'[') {
                        Open::Array
                    } else {
                        Open::Object
                    };
                    if open.len() == MAX_DEPTH {
                        return Err((Problem::TooDeep, self.at));
                    }
                    open.push(kind);
                    self.at += 1;
                    self.skip_whitespace();
                    match (kind, self.peek()) {
                        (Open::Array, Some(b']')) | (Open::Object, Some(b'}')) => {
                            self.at += 1;
                            open.pop();
                        }
                        (Open::Array, _) => continue 'value,
                        (Open::Object, _) => {
                            self.member_name()?;
                            continue 'value;
                        }
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                _ => return Err(self.unexpected()),
            }
            // After a value: close what ends here, until a comma asks for the next value.
            loop {
                self.skip_whitespace();
                let Some(&kind) = open.last() else {
                    return match self.peek() {
                        None => Ok(()),
                        Some(_) => Err(self.unexpected()),
                    };
                };
                match (kind, self.peek()) {
                    (_, Some(b',')) => {
                        self.at += 1;
                        if kind == Open::Object {
                            self.skip_whitespace();
                            self.member_name()?;
                        }
                        continue 'value;
                    }
                    (Open::Array, Some(b']')) | (Open::Object, Some(b'}')) => {
                        self.at += 1;
                        open.pop();
                    }
                    _ => return Err(self.unexpected()),
                }
            }
        }
    }

    /// The text as bytes: the grammar is ASCII, so the walk goes byte by byte.
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// The problem at the current position: the character there, or the end.
    fn unexpected(&self) -> Found {
        match self.text[self.at..].chars().next() {
            Some(c) => (Problem::Unexpected(c), self.at),
            None => (Problem::UnexpectedEnd, self.at),
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// `"name"`, whitespace and `:`, leaving the walker at the member's value.
    fn member_name(&mut self) -> Result<(), Found> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.string()?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.unexpected());
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), Found> {
        for expected in word.bytes() {
            if self.peek() != Some(expected) {
                return Err(self.unexpected());
            }
            self.at += 1;
        }
        Ok(())
    }

    /// A string, from its opening quote to past its closing one.
    fn string(&mut self) -> Result<(), Found> {
        self.at += 1;
        loop {
            match self.peek() {
                None => return Err((Problem::UnexpectedEnd, self.at)),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => self.escape()?,
                Some(byte @ 0x00..=0x1F) => return Err((Problem::ControlCharacter(byte), self.at)),
                Some(_) => self.at += 1,
            }
        }
    }

    /// One escape, from its backslash.
    fn escape(&mut self) -> Result<(), Found> {
        let start = self.at;
        match self.bytes().get(start + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.at += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex_escape(start)?;
                match unit {
                    0 => Err((Problem::NulEscape, start)),
                    0xD800..=0xDBFF => {
                        // A high surrogate counts only with a low one right after it.
                        let low = if self.bytes().get(self.at..self.at + 2) == Some(b"\\u") {
                            Some(self.hex_escape(self.at)?)
                        } else {
                            None
                        };
                        match low {
                            Some(0xDC00..=0xDFFF) => Ok(()),
                            _ => Err((Problem::LoneSurrogate(unit), start)),
                        }
                    }
                    0xDC00..=0xDFFF => Err((Problem::LoneSurrogate(unit), start)),
                    _ => Ok(()),
                }
            }
            _ => Err((Problem::InvalidEscape, start)),
        }
    }

    /// The code unit of the `\uXXXX` at `start`, moving past it.
    fn hex_escape(&mut self, start: usize) -> Result<u16, Found> {
        let digits = self
            .text
            .get(start + 2..start + 6)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|d| u16::from_str_radix(d, 16).ok())
            .ok_or((Problem::InvalidEscape, start))?;
        self.at = start + 6;
        Ok(digits)
    }

    /// A number, checked against what `numeric` holds.
    fn number(&mut self) -> Result<(), Found> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let integer = match self.peek() {
            // A leading zero stands alone: what follows it is not part of the number.
            Some(b'0') => {
                self.at += 1;
                b"0"
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err((Problem::InvalidNumber, start)),
        };
        let mut fraction: &[u8] = &[];
        if self.peek() == Some(b'.') {
            self.at += 1;
            fraction = self.digits();
            if fraction.is_empty() {
                return Err((Problem::InvalidNumber, start));
            }
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let digits = self.digits();
            if digits.is_empty() {
                return Err((Problem::InvalidNumber, start));
            }
            exponent = digits.iter().fold(0_i64, |e, d| {
                e.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            if negative {
                exponent = -exponent;
            }
        }
        numeric_limit(integer, fraction, exponent).map_or(Ok(()), |limit| {
            Err((Problem::NumberOutOfRange(limit), start))
        })
    }

    /// A run of ASCII digits, possibly empty, moving past it.
    fn digits(&mut self) -> &'a [u8] {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        &self.bytes()[start..self.at]
    }
}

/// Which limit of `numeric` the number `integer.fraction` × 10^`exponent` breaks, if any: what
/// `numeric_in` and `make_result` in PostgreSQL's `numeric.c` refuse.
fn numeric_limit(integer: &[u8], fraction: &[u8], exponent: i64) -> Option<NumericLimit> {
    if exponent >= MAX_EXPONENT || exponent <= -MAX_EXPONENT {
        return Some(NumericLimit::Exponent);
    }
    let length = |digits: &[u8]| i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // The display scale: digits after the point once the exponent moved it (never below 0).
    if length(fraction).saturating_sub(exponent) > MAX_SCALE {
        return Some(NumericLimit::Scale);
    }
    // The power of ten of the first non-zero digit; zero has no weight to overflow.
    let first = integer.iter().chain(fraction).position(|&d| d != b'0')?;
    let power = length(integer) - 1 - i64::try_from(first).unwrap_or(i64::MAX) + exponent;
    let weight = power.div_euclid(DEC_DIGITS);
    (!(-MAX_WEIGHT - 1..=MAX_WEIGHT).contains(&weight)).then_some(NumericLimit::Weight)
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, NumericLimit, Problem, check};

    fn problem(json: &[u8]) -> Option<(Problem, usize)> {
        check("the payload", json)
            .err()
            .map(|e| (e.problem(), e.offset()))
    }

    /// Each verdict below was taken from PostgreSQL 15 (`SELECT '…'::jsonb`).
    #[test]
    fn accepts_what_jsonb_accepts() {
        let accepted: &[&[u8]] = &[
            br#"{"a":[1,2.5,-0,true,false,null,"x"]}"#,
            b" \t\r\n{ \"a\" : [ ] , \"b\" : { } } \n",
            br#""\" \\ \/ \b \f \n \r \t \u0001 \uFFFF \uD83D\uDE00 \udbff\udfff""#,
            "\"é 😀\"".as_bytes(),
            br#"{"a":1,"a":2}"#,
            b"1E+5",
            b"1e1000",
            b"1e131071",
            b"100e131069",
            b"123456789012345678901234567890e131042",
            b"0.0000000000000000000000000000001e131101",
            b"1e-16383",
            b"0e-16383",
            b"1.5e-16382",
            b"0.00000e-16378",
            b"0e1000000",
            b"0e1073741822",
            b"0.0e0000000000000000000000000000099999999",
        ];
        for json in accepted {
            assert_eq!(problem(json), None, "{}", String::from_utf8_lossy(json));
        }
    }

    #[test]
    fn refuses_what_jsonb_refuses() {
        let range = Problem::NumberOutOfRange;
        let refused: &[(&[u8], Problem, usize)] = &[
            (b"{\"a\":\"\xff\"}", Problem::InvalidUtf8, 6),
            (b"{\"\xc3\":1}", Problem::InvalidUtf8, 2),
            (br#"{"a":"\u0000"}"#, Problem::NulEscape, 6),
            (br#""\ud800""#, Problem::LoneSurrogate(0xd800), 1),
            (br#""\udc00""#, Problem::LoneSurrogate(0xdc00), 1),
            (br#""\ud800x""#, Problem::LoneSurrogate(0xd800), 1),
            (br#""\ud800\u0041""#, Problem::LoneSurrogate(0xd800), 1),
            (br#""\ud800\ud800""#, Problem::LoneSurrogate(0xd800), 1),
            (br#""\udc00\ud800""#, Problem::LoneSurrogate(0xdc00), 1),
            (br#""\ud800\u12""#, Problem::InvalidEscape, 7),
            (br#""\x""#, Problem::InvalidEscape, 1),
            (br#""\U0041""#, Problem::InvalidEscape, 1),
            (b"\"a\nb\"", Problem::ControlCharacter(b'\n'), 2),
            (b"\"\x00\"", Problem::ControlCharacter(0), 1),
            (b"1e131072", range(NumericLimit::Weight), 0),
            (b"100e131070", range(NumericLimit::Weight), 0),
            (b"1e1000000", range(NumericLimit::Weight), 0),
            (b"1e-16384", range(NumericLimit::Scale), 0),
            (b"[1e-1000000]", range(NumericLimit::Scale), 1),
            (b"0e-16384", range(NumericLimit::Scale), 0),
            (b"1.5e-16383", range(NumericLimit::Scale), 0),
            (b"0.00000e-16379", range(NumericLimit::Scale), 0),
            (b"0e1073741823", range(NumericLimit::Exponent), 0),
            (b"0e2147483648", range(NumericLimit::Exponent), 0),
            (
                b"-0e-99999999999999999999999",
                range(NumericLimit::Exponent),
                0,
            ),
            (b"", Problem::UnexpectedEnd, 0),
            (b"  ", Problem::UnexpectedEnd, 2),
            (b"not json", Problem::Unexpected('o'), 1),
            (b"00", Problem::Unexpected('0'), 1),
            (b"-", Problem::InvalidNumber, 0),
            (b"1.", Problem::InvalidNumber, 0),
            (b".5", Problem::Unexpected('.'), 0),
            (b"1e", Problem::InvalidNumber, 0),
            (b"1e+", Problem::InvalidNumber, 0),
            (b"+1", Problem::Unexpected('+'), 0),
            (b"-01", Problem::Unexpected('1'), 2),
            (b"[1,]", Problem::Unexpected(']'), 3),
            (br#"{"a":1,}"#, Problem::Unexpected('}'), 7),
            (br#"{"a" 1}"#, Problem::Unexpected('1'), 5),
            (b"{1:1}", Problem::Unexpected('1'), 1),
            (b"[1 2]", Problem::Unexpected('2'), 3),
            (b"\x0b1", Problem::Unexpected('\x0b'), 0),
            (b"\x0c1", Problem::Unexpected('\x0c'), 0),
            (b"truex", Problem::Unexpected('x'), 4),
            (b"tru", Problem::UnexpectedEnd, 3),
            (br#"{"unterminated":"#, Problem::UnexpectedEnd, 16),
            (br#""open"#, Problem::UnexpectedEnd, 5),
            (b"[", Problem::UnexpectedEnd, 1),
            (b"{} {}", Problem::Unexpected('{'), 3),
            ("[1]é".as_bytes(), Problem::Unexpected('é'), 3),
        ];
        for (json, expected, offset) in refused {
            assert_eq!(
                problem(json),
                Some((*expected, *offset)),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(problem(nested(MAX_DEPTH).as_bytes()), None);
        assert_eq!(
            problem(nested(MAX_DEPTH + 1).as_bytes()),
            Some((Problem::TooDeep, MAX_DEPTH))
        );
        let objects = format!("{}1{}", r#"{"a":"#.repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(problem(objects.as_bytes()), None);
        // Far deeper than any server's stack: refused without recursion.
        assert_eq!(
            problem(nested(1_000_000).as_bytes()),
            Some((Problem::TooDeep, MAX_DEPTH))
        );
    }

    #[test]
    fn the_message_says_what_and_where_without_the_payload() {
        let secret = "s3cr3t".repeat(1000);
        let json = format!("{{\"a\":\"{secret}\\u0000\"}}");
        let error = check("the metadata", json.as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("the metadata "), "{message}");
        assert!(
            message.contains(&format!("byte offset {}", 6 + secret.len())),
            "{message}"
        );
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}
