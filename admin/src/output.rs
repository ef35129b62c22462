//! Human tables on stdout by default; with `--json`, one JSON object per line, each with a
//! `type` and a `version` so scripts can rely on the shape.
//!
//! Nothing printed carries a raw control character: stream ids are validated, but payloads,
//! error messages, a transaction's query text and a driver's messages come from outside, and
//! a newline or an escape code in them would break a line in two or reach the terminal. Human
//! lines show them escaped (`\n`, `\u{1b}`); JSON lines escape what JSON leaves raw.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

use crate::error::AdminError;

/// The version of every JSON line's shape; bumped when a field changes meaning or goes away.
pub const JSON_VERSION: u32 = 1;

/// Where a command's results go.
pub struct Output {
    json: bool,
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Output {
    /// Output to stdout.
    pub fn stdout(json: bool) -> Self {
        Output {
            json,
            out: Box::new(std::io::stdout()),
        }
    }

    /// Output to any writer (tests).
    pub fn to_writer(json: bool, out: impl Write + Send + 'static) -> Self {
        Output {
            json,
            out: Box::new(out),
        }
    }

    /// Whether results are JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One JSON line `{"type": kind, "version": 1, ...value's fields}`; nothing in human mode.
    ///
    /// # Errors
    ///
    /// When stdout cannot be written.
    pub fn record<T: Serialize>(&mut self, kind: &str, value: &T) -> Result<(), AdminError> {
        if !self.json {
            return Ok(());
        }
        // `type` and `version` first, so a reader of the raw line sees what it is at once.
        let mut line = serde_json::json!({ "type": kind, "version": JSON_VERSION }).to_string();
        line.pop();
        match serde_json::to_value(value).map_err(|e| AdminError::output(e.into()))? {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields {
                    if key == "type" || key == "version" {
                        continue;
                    }
                    line.push(',');
                    line.push_str(&serde_json::Value::String(key).to_string());
                    line.push(':');
                    line.push_str(&field.to_string());
                }
            }
            other => {
                line.push_str(",\"value\":");
                line.push_str(&other.to_string());
            }
        }
        line.push('}');
        let line = json_safe(&line);
        writeln!(self.out, "{line}").map_err(AdminError::output)?;
        self.out.flush().map_err(AdminError::output)
    }

    /// A line of text, its control characters escaped; nothing in JSON mode.
    ///
    /// # Errors
    ///
    /// When stdout cannot be written.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), AdminError> {
        if self.json {
            return Ok(());
        }
        let text = text.to_string();
        let text = terminal_safe(&text);
        writeln!(self.out, "{text}").map_err(AdminError::output)?;
        self.out.flush().map_err(AdminError::output)
    }

    /// A table with aligned columns; nothing in JSON mode.
    ///
    /// # Errors
    ///
    /// When stdout cannot be written.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) -> Result<(), AdminError> {
        if self.json {
            return Ok(());
        }
        // Escaped before measuring, so that the columns line up as printed.
        let rows: Vec<Vec<Cow<'_, str>>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| terminal_safe(cell)).collect())
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let render = |cells: Vec<&str>| {
            let mut line = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            line.trim_end().to_owned()
        };
        self.line(render(headers.to_vec()))?;
        for row in &rows {
            self.line(render(row.iter().map(AsRef::as_ref).collect()))?;
        }
        Ok(())
    }
}

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1), a line
/// or paragraph separator, or a bidirectional control (which reorders what is shown).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [unsafe](is_unsafe) character escaped as in Rust source (`\n`, `\u{1b}`).
/// Backslashes are left alone, so text escaped already (by [`foldline::Shown`]) stays as it is.
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape_unsafe(text, |c, safe| safe.extend(c.escape_debug()))
}

/// A JSON line with the [unsafe](is_unsafe) characters JSON leaves raw (DEL, C1, the
/// separators and bidirectional controls) written as `\uXXXX`. Outside strings a JSON line
/// holds only ASCII punctuation, so each of them is inside a string, where the escape means
/// the same character.
fn json_safe(line: &str) -> Cow<'_, str> {
    escape_unsafe(line, |c, safe| {
        safe.push_str(&format!("\\u{:04x}", u32::from(c)));
    })
}

/// `text` with each [unsafe](is_unsafe) character written by `escape` instead; borrowed when
/// there is none.
fn escape_unsafe(text: &str, escape: fn(char, &mut String)) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            escape(c, &mut safe);
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    #[test]
    fn no_raw_control_character_is_printed() {
        let captured = Captured::default();
        let mut human = Output::to_writer(false, captured.clone());
        human.line("one\nerror: forged \u{1b}[2J").unwrap();
        human
            .table(
                &["NAME", "QUERY"],
                &[
                    vec!["a\tb".into(), "select\r\n1".into()],
                    vec!["cd".into(), "\u{9b}x".into()],
                ],
            )
            .unwrap();
        assert_eq!(
            captured.text(),
            "one\\nerror: forged \\u{1b}[2J\n\
             NAME  QUERY\n\
             a\\tb  select\\r\\n1\n\
             cd    \\u{9b}x\n"
        );

        let captured = Captured::default();
        let mut json = Output::to_writer(true, captured.clone());
        let text = "nl\n esc\u{1b} del\u{7f} csi\u{9b} rlo\u{202e}";
        json.record("x", &serde_json::json!({ "text": text }))
            .unwrap();
        let line = captured.text();
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            !line.trim_end_matches('\n').chars().any(is_unsafe),
            "{line:?}"
        );
        let value: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(value["text"], text, "the escapes mean the same characters");
    }

    #[test]
    fn tables_align_and_json_lines_carry_type_and_version() {
        let captured = Captured::default();
        let mut human = Output::to_writer(false, captured.clone());
        human
            .table(
                &["NAME", "LAG"],
                &[
                    vec!["balances".into(), "3".into()],
                    vec!["m".into(), "12".into()],
                ],
            )
            .unwrap();
        human.record("x", &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            captured.text(),
            "NAME      LAG\nbalances  3\nm         12\n"
        );

        let captured = Captured::default();
        let mut json = Output::to_writer(true, captured.clone());
        json.table(&["NAME"], &[vec!["balances".into()]]).unwrap();
        json.record("projection_status", &serde_json::json!({"lag_events": 3}))
            .unwrap();
        let text = captured.text();
        assert!(
            text.starts_with(r#"{"type":"projection_status","version":1,"#),
            "{text}"
        );
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["type"], "projection_status");
        assert_eq!(line["version"], 1);
        assert_eq!(line["lag_events"], 3);
    }
}
