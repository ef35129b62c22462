//! `streams`, `events`, `tail`: what the store holds, read-only.
//!
//! Every event prints the same way in the three commands: a table row (or, for `tail`, a line
//! with the same cells) for people, an `event` JSON line for scripts. In JSON a payload that is
//! JSON is embedded as a value (`payload`); any other payload is carried losslessly as standard
//! base64 in `payload_base64` instead, so exactly one of the two fields is present. An event
//! the store could not read whole (a row written around the store) is listed in its place,
//! marked: `UNREADABLE: <why>` in the payload column with its stored stream id and type, and
//! an `unreadable` object (`reason`, `raw`) in JSON. It never fails the listing.

use std::time::{SystemTime, UNIX_EPOCH};

use foldline::{
    Checkpoint, EventMetadata, ManagedStore, RecordedEvent, StreamId, UnreadableEvent, Version,
};
use serde::Serialize;
use uuid::Uuid;

use crate::Admin;
use crate::cli::{EventsArgs, StreamsArgs, TailArgs};
use crate::error::{AdminError, Outcome};
use crate::output::Output;

/// Characters of payload shown in a human row before it is cut with `…`.
const PAYLOAD_WIDTH: usize = 80;

/// The human columns of an event, in `events` and `tail`.
const EVENT_HEADERS: [&str; 6] = [
    "POSITION", "STREAM", "VERSION", "TYPE", "RECORDED", "PAYLOAD",
];

/// `tail`'s column widths (it cannot measure rows it has not seen; longer cells push on).
const TAIL_WIDTHS: [usize; 5] = [14, 20, 7, 16, 24];

/// One `stream` JSON line.
#[derive(Serialize)]
struct StreamLine<'a> {
    stream: &'a str,
    stream_version: u64,
}

/// One `event` JSON line (and the event fields of a `trace_event` line).
#[derive(Serialize)]
pub(super) struct EventLine<'a> {
    event_id: Uuid,
    stream: &'a str,
    stream_version: u64,
    position: String,
    /// On the global feed (`events --all`, `tail`): the checkpoint that resumes right after
    /// this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_after: Option<String>,
    event_type: &'a str,
    schema_version: u32,
    recorded_at: String,
    /// The payload, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<serde_json::Value>,
    /// The payload in standard base64, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    metadata: &'a EventMetadata,
    /// For an event the store could not read whole: why, and its stored values (the fields
    /// above hold placeholders where the row could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a UnreadableEvent>,
}

impl<'a> EventLine<'a> {
    pub(super) fn new(event: &'a RecordedEvent, checkpoint_after: Option<&Checkpoint>) -> Self {
        let (payload, payload_base64) = match serde_json::from_slice(&event.payload) {
            Ok(value) => (Some(value), None),
            Err(_) => (None, Some(base64(&event.payload))),
        };
        EventLine {
            event_id: event.event_id,
            stream: event.stream_id.as_str(),
            stream_version: event.stream_version.get(),
            position: event.position.to_string(),
            checkpoint_after: checkpoint_after.map(ToString::to_string),
            event_type: event.event_type.as_str(),
            schema_version: event.schema_version,
            recorded_at: rfc3339(event.recorded_at, Precision::Micros),
            payload,
            payload_base64,
            metadata: &event.metadata,
            unreadable: event.unreadable.as_deref(),
        }
    }
}

/// `events --all`'s last JSON line.
#[derive(Serialize)]
struct PageLine {
    next_after: String,
}

/// `tail`'s first JSON line: it follows the feed from here (only what is committed after
/// `after` will print).
#[derive(Serialize)]
struct TailStartedLine {
    after: String,
}

/// `tail`'s last JSON line.
#[derive(Serialize)]
struct TailStoppedLine {
    /// `limit` or `interrupted`.
    reason: &'static str,
    events: u64,
    next_after: String,
}

pub(crate) async fn streams<S: ManagedStore>(
    admin: &Admin<S>,
    args: &StreamsArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    check_limit(args.limit)?;
    let after = args
        .after
        .as_deref()
        .map(StreamId::new)
        .transpose()
        .map_err(|source| AdminError::InvalidArgument {
            flag: "--after",
            expected: "a stream id, as `streams` prints it",
            source,
        })?;
    let streams = admin.store().streams(after.as_ref(), args.limit).await?;
    for (stream, version) in &streams {
        out.record(
            "stream",
            &StreamLine {
                stream: stream.as_str(),
                stream_version: version.get(),
            },
        )?;
    }
    if streams.is_empty() {
        out.line(match &after {
            Some(after) => format!("no streams after `{after}`"),
            None => "no streams".to_owned(),
        })?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|(stream, version)| vec![stream.to_string(), version.to_string()])
        .collect();
    out.table(&["STREAM", "VERSION"], &rows)?;
    if let Some((last, _)) = streams.last().filter(|_| streams.len() == args.limit) {
        out.line(format!(
            "more may follow: next page with `streams --after {last}`"
        ))?;
    }
    Ok(Outcome::Ok)
}

pub(crate) async fn events<S: ManagedStore>(
    admin: &Admin<S>,
    args: &EventsArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    check_limit(args.limit)?;
    if args.all {
        return feed_page(admin, args, out).await;
    }
    let Some(stream) = args.stream.as_deref() else {
        return Err(AdminError::Usage(
            "events: name a stream, or pass --all".into(),
        ));
    };
    let stream = StreamId::new(stream)?;
    let from = Version::new(args.from);
    let events = admin.store().read_stream(&stream, from, args.limit).await?;
    for event in &events {
        out.record("event", &EventLine::new(event, None))?;
    }
    if events.is_empty() {
        out.line(format!(
            "stream `{stream}` has no events from version {from}"
        ))?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = events.iter().map(human_cells).collect();
    out.table(&EVENT_HEADERS, &rows)?;
    if let Some(last) = events.last().filter(|_| events.len() == args.limit) {
        out.line(format!(
            "more may follow: next page with `events {stream} --from {}`",
            last.stream_version.next()
        ))?;
    }
    Ok(Outcome::Ok)
}

/// `events --all`: one page of the global feed, and where the next one starts.
async fn feed_page<S: ManagedStore>(
    admin: &Admin<S>,
    args: &EventsArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    let after = parse_checkpoint(args.after.as_deref())?.unwrap_or(Checkpoint::START);
    let batch = admin.store().read_all(&after, args.limit).await?;
    let mut checkpoint = after.clone();
    for event in &batch.events {
        checkpoint.advance(event.position);
        out.record("event", &EventLine::new(event, Some(&checkpoint)))?;
    }
    out.record(
        "events_page",
        &PageLine {
            next_after: batch.checkpoint.to_string(),
        },
    )?;
    if batch.events.is_empty() {
        out.line(format!("no events after {after}"))?;
    } else {
        let rows: Vec<Vec<String>> = batch.events.iter().map(human_cells).collect();
        out.table(&EVENT_HEADERS, &rows)?;
    }
    out.line(format!(
        "continue with `events --all --after {}`",
        batch.checkpoint
    ))?;
    Ok(Outcome::Ok)
}

pub(crate) async fn tail<S: ManagedStore>(
    admin: &Admin<S>,
    args: &TailArgs,
    out: &mut Output,
) -> Result<Outcome, AdminError> {
    if args.limit == Some(0) {
        return Err(AdminError::Usage("--limit must be at least 1".into()));
    }
    let after = match parse_checkpoint(args.after.as_deref())? {
        Some(after) => after,
        None => admin.store().head().await?,
    };
    let mut subscription = admin.store().subscribe(after.clone()).await?;
    out.record(
        "tail_started",
        &TailStartedLine {
            after: after.to_string(),
        },
    )?;
    out.line(format!("following the feed after {after} (Ctrl-C to stop)"))?;
    out.line(tail_line(&EVENT_HEADERS.map(str::to_owned)))?;

    let mut checkpoint = after;
    let mut seen: u64 = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let reason = 'follow: loop {
        // `Subscription::next` is cancel safe: an interrupted read loses nothing.
        let batch = tokio::select! {
            signal = &mut interrupted => {
                signal.map_err(|source| AdminError::Io { what: "listening for Ctrl-C", source })?;
                break 'follow "interrupted";
            }
            batch = subscription.next() => batch,
        };
        let batch = match batch {
            Some(batch) => batch?,
            None => {
                return Err(foldline::Error::Closed {
                    what: "subscription to the global feed",
                }
                .into());
            }
        };
        for event in &batch.events {
            checkpoint.advance(event.position);
            seen += 1;
            // Only the form that prints: each parses the payload.
            if out.is_json() {
                out.record("event", &EventLine::new(event, Some(&checkpoint)))?;
            } else {
                out.line(tail_line(&human_cells(event)))?;
            }
            if args.limit.is_some_and(|limit| seen >= limit) {
                break 'follow "limit";
            }
        }
    };
    out.record(
        "tail_stopped",
        &TailStoppedLine {
            reason,
            events: seen,
            next_after: checkpoint.to_string(),
        },
    )?;
    out.line(format!(
        "stopped ({reason}) after {seen} event(s); resume with `tail --after {checkpoint}`"
    ))?;
    Ok(Outcome::Ok)
}

pub(super) fn check_limit(limit: usize) -> Result<(), AdminError> {
    if limit == 0 {
        return Err(AdminError::Usage("--limit must be at least 1".into()));
    }
    Ok(())
}

/// `--after`'s checkpoint, if given.
fn parse_checkpoint(text: Option<&str>) -> Result<Option<Checkpoint>, AdminError> {
    text.map(str::parse::<Checkpoint>)
        .transpose()
        .map_err(|source| AdminError::InvalidArgument {
            flag: "--after",
            expected: "a checkpoint as `status` and `events --all` print it \
                (such as 0:69021:14), or `start`",
            source,
        })
}

fn human_cells(event: &RecordedEvent) -> Vec<String> {
    if let Some(unreadable) = &event.unreadable {
        // The stored stream id and type, not the placeholders (the table escapes what they
        // may hold: newlines, escape sequences).
        let raw = |column: &str| unreadable.raw.get(column).cloned().unwrap_or_default();
        return vec![
            event.position.to_string(),
            raw("stream_id"),
            event.stream_version.to_string(),
            raw("event_type"),
            rfc3339(event.recorded_at, Precision::Millis),
            format!("UNREADABLE: {}", unreadable.reason),
        ];
    }
    vec![
        event.position.to_string(),
        event.stream_id.to_string(),
        event.stream_version.to_string(),
        event.event_type.to_string(),
        rfc3339(event.recorded_at, Precision::Millis),
        human_payload(&event.payload),
    ]
}

/// Cells padded to [`TAIL_WIDTHS`], the last one as it is.
fn tail_line(cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        match TAIL_WIDTHS.get(i) {
            Some(width) => line.push_str(&format!("{cell:<width$}  ")),
            None => line.push_str(cell),
        }
    }
    line.trim_end().to_owned()
}

/// Compact JSON cut to [`PAYLOAD_WIDTH`] characters; a size for anything else.
fn human_payload(payload: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return format!("({} bytes, not JSON)", payload.len());
    };
    let text = value.to_string();
    if text.chars().count() <= PAYLOAD_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(PAYLOAD_WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[derive(Clone, Copy)]
pub(super) enum Precision {
    Millis,
    Micros,
}

/// `t` as RFC 3339 in UTC, such as `2025-03-14T09:26:53.589793Z`.
pub(super) fn rfc3339(t: SystemTime, precision: Precision) -> String {
    // Whole microseconds since the epoch, negative before it.
    let micros: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_micros()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_micros()).unwrap_or(i128::MAX),
    };
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let time = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
    match precision {
        Precision::Millis => format!("{time}.{:03}Z", fraction / 1000),
        Precision::Micros => format!("{time}.{fraction:06}Z"),
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_in_utc() {
        let at = |secs: u64, micros: u64| {
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
        };
        assert_eq!(
            rfc3339(at(0, 0), Precision::Millis),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(at(951_782_400, 7), Precision::Micros),
            "2000-02-29T00:00:00.000007Z"
        );
        assert_eq!(
            rfc3339(at(1_709_251_199, 999_999), Precision::Millis),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339(at(4_102_444_800, 0), Precision::Micros),
            "2100-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_micros(1), Precision::Micros),
            "1969-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn base64_with_padding() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\x00\xfe", "/wD+"),
        ] {
            assert_eq!(base64(bytes), text);
        }
    }

    #[test]
    fn human_payloads_are_compact_and_cut() {
        assert_eq!(human_payload(br#"{ "a" : 1 }"#), r#"{"a":1}"#);
        assert_eq!(human_payload(b"\xff\x01"), "(2 bytes, not JSON)");
        let long = format!("\"{}\"", "x".repeat(200));
        let shown = human_payload(long.as_bytes());
        assert_eq!(shown.chars().count(), PAYLOAD_WIDTH);
        assert!(shown.ends_with('…'));
    }
}
