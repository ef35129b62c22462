//! What a benchmark reports: figures, printed as one JSON line each on stdout.

use std::io::Write;

use serde::Serialize;

/// One measured figure, beside the raw limit measured in the same run when there is one.
///
/// Printed as `{"bench": "...", "value": N, "unit": "...", "limit": N or null, "ratio": N or null}`:
/// `limit` is the same quantity measured without foldline (a bare append loop, plain INSERTs,
/// pipelined Redis writes...) on the same store, and `ratio` is `value / limit` — or
/// `limit / value` for figures where lower is better (latencies, [`Figure::against_lower`]),
/// so a ratio is always "the share of the limit foldline reaches": 1 is as good as the limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Figure {
    /// `<benchmark>` for its main figure, `<benchmark>/<detail>` for the others (`/p99`).
    pub(crate) bench: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    pub(crate) limit: Option<f64>,
    pub(crate) ratio: Option<f64>,
}

impl Figure {
    /// A throughput (or other figure) measured against its raw limit.
    pub(crate) fn against(
        bench: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &'static str,
    ) -> Self {
        let ratio = (limit > 0.0).then(|| round(value / limit, 3));
        Figure {
            bench: bench.into(),
            value: tidy(value),
            unit,
            limit: Some(tidy(limit)),
            ratio,
        }
    }

    /// A figure where lower is better (a latency) measured against its raw limit:
    /// `ratio = limit / value`.
    pub(crate) fn against_lower(
        bench: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &'static str,
    ) -> Self {
        let ratio = (value > 0.0).then(|| round(limit / value, 3));
        Figure {
            bench: bench.into(),
            value: tidy(value),
            unit,
            limit: Some(tidy(limit)),
            ratio,
        }
    }

    /// A figure with no raw limit to compare with (latency percentiles, sizes).
    pub(crate) fn alone(bench: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Figure {
            bench: bench.into(),
            value: tidy(value),
            unit,
            limit: None,
            ratio: None,
        }
    }
}

/// Writes `figures` to stdout, one JSON object per line, and flushes.
pub(crate) fn print(figures: &[Figure]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for figure in figures {
        serde_json::to_writer(&mut out, figure)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Keeps about four significant digits: more is noise in a benchmark.
fn tidy(value: f64) -> f64 {
    if value.abs() >= 1000.0 {
        value.round()
    } else {
        round(value, 2)
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_documented_shape() {
        let figure = Figure::against("memory-command", 250_000.4, 1_000_000.0, "commands/s");
        let line = serde_json::to_string(&figure).unwrap();
        assert_eq!(
            line,
            r#"{"bench":"memory-command","value":250000.0,"unit":"commands/s","limit":1000000.0,"ratio":0.25}"#
        );
        let lower = Figure::against_lower("live-lag", 8.0, 2.0, "ms");
        assert_eq!(lower.ratio, Some(0.25));
        let alone =
            serde_json::to_string(&Figure::alone("memory-command/p99", 12.346, "us")).unwrap();
        assert_eq!(
            alone,
            r#"{"bench":"memory-command/p99","value":12.35,"unit":"us","limit":null,"ratio":null}"#
        );
    }
}
