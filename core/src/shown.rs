//! [`Shown`]: a value from outside, as an error message shows it.

use std::fmt;

/// A value that came from outside (a refused name, a checkpoint's text, an argument) as an
/// error message shows it: escaped, so it cannot break the message into lines or reach a
/// terminal as control codes, and cut short, so a 10 kB value does not make a 10 kB message.
///
/// - Control characters (C0, DEL, C1) and other characters that do not print (bidirectional
///   overrides, unassigned code points) are escaped as in Rust source: `\n`, `\r`, `\t`,
///   `\0`, `\u{1b}`. A backslash is shown as `\\`, so the escapes cannot be forged. Quotes and
///   everything printable are shown as they are.
/// - When the escaped value is longer than [`Shown::MAX_WIDTH`] characters, it is cut there
///   (never inside an escape) and followed by the value's size: `…(10240 bytes)`.
///
/// Errors keep the whole value in a field and use `Shown` only in their message.
///
/// ```
/// use foldline::Shown;
/// assert_eq!(Shown::new("acct\n\u{1b}[31m").to_string(), r"acct\n\u{1b}[31m");
/// let long = "x".repeat(10_240);
/// assert_eq!(
///     Shown::new(&long).to_string(),
///     format!("{}…(10240 bytes)", "x".repeat(Shown::MAX_WIDTH)),
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown<'a>(&'a str);

impl<'a> Shown<'a> {
    /// How many characters of the escaped value are shown before it is cut.
    pub const MAX_WIDTH: usize = 64;

    /// `value`, to be shown in a message.
    pub fn new(value: &'a str) -> Self {
        Shown(value)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width: usize = self.0.chars().map(|c| Escaped::of(c).len()).sum();
        let fits = width <= Self::MAX_WIDTH;
        let mut shown = 0;
        for c in self.0.chars() {
            let escaped = Escaped::of(c);
            if !fits && shown + escaped.len() > Self::MAX_WIDTH {
                return write!(f, "…({} bytes)", self.0.len());
            }
            shown += escaped.len();
            fmt::Display::fmt(&escaped, f)?;
        }
        Ok(())
    }
}

/// One character as [`Shown`] writes it.
enum Escaped {
    /// Printable: as it is.
    Plain(char),
    /// Escaped as in Rust source.
    Escaped(std::char::EscapeDebug),
}

impl Escaped {
    fn of(c: char) -> Self {
        match c {
            // `escape_debug` escapes quotes too, which need no escaping in a message.
            '"' | '\'' => Escaped::Plain(c),
            _ => {
                let escaped = c.escape_debug();
                if escaped.len() == 1 {
                    Escaped::Plain(c)
                } else {
                    Escaped::Escaped(escaped)
                }
            }
        }
    }

    /// How many characters it takes.
    fn len(&self) -> usize {
        match self {
            Escaped::Plain(_) => 1,
            Escaped::Escaped(escaped) => escaped.len(),
        }
    }
}

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escaped::Plain(c) => fmt::Write::write_char(f, *c),
            Escaped::Escaped(escaped) => fmt::Display::fmt(escaped, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(value: &str) -> String {
        Shown::new(value).to_string()
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("a\nb\rc\td\0e"), r"a\nb\rc\td\0e");
        assert_eq!(shown("\u{1b}[31mred"), r"\u{1b}[31mred");
        assert_eq!(shown("del\u{7f}"), r"del\u{7f}");
        assert_eq!(shown("csi\u{9b}"), r"csi\u{9b}");
        // A right-to-left override would reorder what the terminal shows.
        assert_eq!(shown("a\u{202e}b"), r"a\u{202e}b");
        assert_eq!(shown("line\u{2028}sep"), r"line\u{2028}sep");
    }

    #[test]
    fn backslashes_are_escaped_and_quotes_and_printables_kept() {
        assert_eq!(shown(r"a\nb"), r"a\\nb");
        assert_eq!(shown(r#"it's "x""#), r#"it's "x""#);
        assert_eq!(shown("café ☕"), "café ☕");
        assert_eq!(shown(""), "");
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let fits = "x".repeat(Shown::MAX_WIDTH);
        assert_eq!(shown(&fits), fits);
        let long = "x".repeat(10_240);
        assert_eq!(
            shown(&long),
            format!("{}…(10240 bytes)", "x".repeat(Shown::MAX_WIDTH))
        );
        // Escapes count at their escaped width and are never cut in half.
        let newlines = "\n".repeat(40);
        assert_eq!(
            shown(&newlines),
            format!("{}…(40 bytes)", r"\n".repeat(Shown::MAX_WIDTH / 2))
        );
        let escapes = format!("{}{}", "x".repeat(60), "\u{1b}".repeat(3));
        assert_eq!(shown(&escapes), format!("{}…(63 bytes)", "x".repeat(60)));
    }
}
