//! Human tables on stdout by default; with `--json`, one JSON object per line, each with a
//! `type` and a `version` so scripts can rely on the shape.

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
        writeln!(self.out, "{line}").map_err(AdminError::output)?;
        self.out.flush().map_err(AdminError::output)
    }

    /// A line of text; nothing in JSON mode.
    ///
    /// # Errors
    ///
    /// When stdout cannot be written.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), AdminError> {
        if self.json {
            return Ok(());
        }
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
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in rows {
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
        for row in rows {
            self.line(render(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    }
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
