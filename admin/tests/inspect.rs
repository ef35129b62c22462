//! `streams`, `events`, `tail` and `migrate`, run in-process against a fresh PostgreSQL schema
//! per test (`scripts/postgres.sh start` brings the server up), reading the JSON lines back.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use foldline::{
    AppendRequest, EventMetadata, EventStore, EventType, ExpectedVersion, InMemoryEventStore,
    ManagedStore, NameKind, NameRule, NewEvent, SchemaName, StreamId,
};
use foldline_admin::{Admin, AdminError, Cli, Outcome, Output};
use foldline_postgres::PgTestSchema;
use foldline_postgres::{PgEventStore, PgStoreOptions};
use serde_json::{Value, json};

/// Everything a command wrote, shared with the test while the command runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8(bytes.clone()).expect("output is UTF-8")
    }

    /// Every line as JSON, each checked for `type` and `version`.
    fn records(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("each line is JSON");
                assert!(value["type"].is_string(), "{line}");
                assert_eq!(value["version"], 1, "{line}");
                value
            })
            .collect()
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }
}

/// The tests build their store themselves: no connection flags.
#[derive(Debug, clap::Args)]
struct NoConnections {}

/// Runs `foldline <args>` on `admin`, in JSON mode when `args` holds `--json`.
async fn run<S: ManagedStore>(
    admin: &Admin<S>,
    args: &[&str],
) -> (Result<Outcome, AdminError>, Captured) {
    let cli = Cli::<NoConnections>::try_parse_from(
        std::iter::once("foldline").chain(args.iter().copied()),
    )
    .expect("the arguments parse");
    let captured = Captured::default();
    let mut out = Output::to_writer(cli.json, captured.clone());
    let result = admin.execute(&cli.command, &mut out).await;
    (result, captured)
}

async fn append(store: &impl EventStore, stream: &str, payloads: &[Value]) -> anyhow::Result<()> {
    let events = payloads
        .iter()
        .map(|p| {
            Ok(
                NewEvent::new(EventType::new("Deposited")?, 1, serde_json::to_vec(p)?)
                    .with_metadata(EventMetadata::new().with_user("user", "ada")),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    store
        .append(AppendRequest::new(
            StreamId::new(stream)?,
            ExpectedVersion::Any,
            events,
        ))
        .await?;
    Ok(())
}

/// The feed from the start once it shows `count` events. Appends that returned are committed,
/// but the feed stops short of any transaction still open anywhere on the server (another
/// test's append in another schema), so the last of them can show a moment later.
async fn whole_feed(store: &PgEventStore, count: usize) -> anyhow::Result<foldline::EventBatch> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let batch = store.read_all(&foldline::Checkpoint::START, 100).await?;
            if batch.events.len() >= count {
                return Ok(batch);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the feed did not show {count} events within 10 s"))?
}

fn strings(records: &[Value], field: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r[field].as_str().expect("a string field").to_owned())
        .collect()
}

#[tokio::test]
async fn streams_page_through_all_streams_in_order() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    for (i, stream) in ["acct-3", "acct-1", "acct-5", "acct-2", "acct-4"]
        .into_iter()
        .enumerate()
    {
        let payloads: Vec<Value> = (0..=i).map(|n| json!({ "n": n })).collect();
        append(schema.store(), stream, &payloads).await?;
    }

    let (result, first) = run(&admin, &["--json", "streams", "--limit", "2"]).await;
    assert_eq!(result?, Outcome::Ok);
    let first = first.of_type("stream");
    assert_eq!(strings(&first, "stream"), ["acct-1", "acct-2"]);
    assert_eq!(first[0]["stream_version"], 2);
    assert_eq!(first[1]["stream_version"], 4);

    // A full page tells people how to get the next one.
    let (result, human) = run(&admin, &["streams", "--limit", "2"]).await;
    assert_eq!(result?, Outcome::Ok);
    let text = human.text();
    assert!(text.starts_with("STREAM  VERSION\n"), "{text}");
    assert!(text.contains("--after acct-2"), "{text}");

    let (result, second) = run(
        &admin,
        &["--json", "streams", "--after", "acct-2", "--limit", "2"],
    )
    .await;
    assert_eq!(result?, Outcome::Ok);
    assert_eq!(
        strings(&second.of_type("stream"), "stream"),
        ["acct-3", "acct-4"]
    );

    let (result, last) = run(&admin, &["streams", "--after", "acct-4", "--limit", "2"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(last.text().contains("acct-5"));
    assert!(
        !last.text().contains("--after"),
        "a short page is the last one"
    );

    let (result, none) = run(&admin, &["--json", "streams", "--after", "acct-5"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(none.records().is_empty());
    Ok(())
}

#[tokio::test]
async fn events_of_a_stream_from_a_version() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    let payloads: Vec<Value> = (1..=5).map(|n| json!({ "amount": n * 10 })).collect();
    append(schema.store(), "acct-1", &payloads).await?;
    append(schema.store(), "acct-2", &[json!({ "amount": 1 })]).await?;

    let (result, out) = run(
        &admin,
        &["--json", "events", "acct-1", "--from", "2", "--limit", "2"],
    )
    .await;
    assert_eq!(result?, Outcome::Ok);
    let events = out.of_type("event");
    assert_eq!(events.len(), 2);
    let stored = schema
        .store()
        .read_stream(&StreamId::new("acct-1")?, 2.into(), 2)
        .await?;
    for (line, event) in events.iter().zip(&stored) {
        assert_eq!(line["event_id"], event.event_id.to_string());
        assert_eq!(line["stream"], "acct-1");
        assert_eq!(line["stream_version"], event.stream_version.get());
        assert_eq!(line["position"], event.position.to_string());
        assert_eq!(line["event_type"], "Deposited");
        assert_eq!(line["schema_version"], 1);
        assert_eq!(line["metadata"], json!({ "user": { "user": "ada" } }));
        assert!(
            line.get("checkpoint_after").is_none(),
            "only feed events carry one"
        );
        assert!(line.get("payload_base64").is_none());
        let recorded = line["recorded_at"].as_str().expect("recorded_at");
        assert_eq!(
            recorded.len(),
            "2025-01-01T00:00:00.000000Z".len(),
            "{recorded}"
        );
        assert!(
            recorded.ends_with('Z') && recorded.as_bytes()[10] == b'T',
            "{recorded}"
        );
    }
    assert_eq!(events[0]["payload"], json!({ "amount": 20 }));
    assert_eq!(events[1]["payload"], json!({ "amount": 30 }));

    let (result, human) = run(&admin, &["events", "acct-1", "--from", "4"]).await;
    assert_eq!(result?, Outcome::Ok);
    let text = human.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("POSITION"), "{text}");
    assert!(lines[0].ends_with("PAYLOAD"), "{text}");
    assert_eq!(lines.len(), 3, "a header and versions 4 and 5: {text}");
    assert!(lines[2].ends_with(r#"{"amount":50}"#), "{text}");

    let (result, empty) = run(&admin, &["--json", "events", "no-such-stream"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(empty.records().is_empty());
    Ok(())
}

#[tokio::test]
async fn feed_pages_continue_with_exactly_the_rest() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    for n in 0..7 {
        append(
            schema.store(),
            &format!("acct-{}", n % 3),
            &[json!({ "n": n })],
        )
        .await?;
    }
    let all = whole_feed(schema.store(), 7).await?;
    let all_ids: Vec<String> = all.events.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(all_ids.len(), 7);

    let (result, first) = run(&admin, &["--json", "events", "--all", "--limit", "3"]).await;
    assert_eq!(result?, Outcome::Ok);
    let records = first.records();
    let last = records.last().expect("a page line");
    assert_eq!(last["type"], "events_page", "the page line comes last");
    let next = last["next_after"].as_str().expect("next_after").to_owned();
    let page = first.of_type("event");
    assert_eq!(strings(&page, "event_id"), all_ids[..3]);
    assert_eq!(page[2]["checkpoint_after"], next.as_str());
    assert_eq!(page[0]["checkpoint_after"], page[0]["position"]);

    let (result, rest) = run(&admin, &["--json", "events", "--all", "--after", &next]).await;
    assert_eq!(result?, Outcome::Ok);
    let rest_events = rest.of_type("event");
    assert_eq!(strings(&rest_events, "event_id"), all_ids[3..]);
    let end = rest.of_type("events_page")[0]["next_after"]
        .as_str()
        .expect("next_after")
        .to_owned();
    assert_eq!(end, all.checkpoint.to_string());

    // Past the end: no events, and the same checkpoint to carry on from.
    let (result, past) = run(&admin, &["--json", "events", "--all", "--after", &end]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(past.of_type("event").is_empty());
    assert_eq!(past.of_type("events_page")[0]["next_after"], end.as_str());

    let (result, human) = run(&admin, &["events", "--all", "--limit", "3"]).await;
    assert_eq!(result?, Outcome::Ok);
    let text = human.text();
    assert!(
        text.trim_end()
            .ends_with(&format!("events --all --after {next}`")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn tail_prints_events_committed_after_it_started_and_stops_at_the_limit() -> anyhow::Result<()>
{
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    append(schema.store(), "before", &[json!({ "old": true })]).await?;
    // In the feed (so in the head the tail starts from) before the tail starts.
    whole_feed(schema.store(), 1).await?;

    let cli = Cli::<NoConnections>::try_parse_from(["foldline", "--json", "tail", "--limit", "3"])?;
    let captured = Captured::default();
    let mut out = Output::to_writer(true, captured.clone());
    let tail = admin.execute(&cli.command, &mut out);
    let writer = async {
        // Append only once the tail has read the head, so nothing lands before it.
        tokio::time::timeout(Duration::from_secs(10), async {
            while captured.of_type("tail_started").is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await?;
        for n in 0..4 {
            append(schema.store(), "after", &[json!({ "n": n })]).await?;
        }
        anyhow::Ok(())
    };
    let (result, written) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(tail, writer)
    })
    .await?;
    written?;
    assert_eq!(result?, Outcome::Ok);

    let records = captured.records();
    assert_eq!(records[0]["type"], "tail_started");
    let events = captured.of_type("event");
    let payloads: Vec<&Value> = events.iter().map(|e| &e["payload"]).collect();
    assert_eq!(
        payloads,
        [&json!({"n": 0}), &json!({"n": 1}), &json!({"n": 2})]
    );
    assert!(events.iter().all(|e| e["stream"] == "after"));
    let stopped = records.last().expect("a stop line");
    assert_eq!(stopped["type"], "tail_stopped");
    assert_eq!(stopped["reason"], "limit");
    assert_eq!(stopped["events"], 3);
    assert_eq!(stopped["next_after"], events[2]["checkpoint_after"]);

    // Resuming from where it stopped gives the fourth event, and only it.
    let (result, resumed) = run(
        &admin,
        &[
            "--json",
            "tail",
            "--limit",
            "1",
            "--after",
            stopped["next_after"].as_str().expect("text"),
        ],
    )
    .await;
    assert_eq!(result?, Outcome::Ok);
    assert_eq!(resumed.of_type("event")[0]["payload"], json!({"n": 3}));
    Ok(())
}

#[tokio::test]
async fn migrate_check_passes_on_a_current_schema() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());

    let (result, out) = run(&admin, &["--json", "migrate", "--check"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert_eq!(
        out.of_type("migrate"),
        [json!({"type": "migrate", "version": 1, "check": true, "applied": [], "pending": []})]
    );

    let (result, out) = run(&admin, &["migrate"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(out.text().contains("up to date"), "{}", out.text());
    Ok(())
}

/// A schema name nobody has created; dropped (if it came to exist) when the test ends.
struct FreshSchema {
    name: SchemaName,
    url: String,
}

impl FreshSchema {
    fn new() -> anyhow::Result<Self> {
        let url = std::env::var(foldline_postgres::ENV_URL)
            .unwrap_or_else(|_| foldline_postgres::DEFAULT_URL.to_owned());
        let name = SchemaName::new(format!("test_{}", uuid::Uuid::now_v7().simple()))?;
        Ok(FreshSchema { name, url })
    }

    async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn exists(&self) -> anyhow::Result<bool> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
                &[&self.name.as_str()],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn drop_it(&self) -> anyhow::Result<()> {
        self.client()
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn migrate_check_fails_on_a_fresh_schema_and_creates_nothing() -> anyhow::Result<()> {
    let fresh = FreshSchema::new()?;
    let outcome = async {
        let options = PgStoreOptions::from_url(&fresh.url)?.with_schema(fresh.name.clone());
        let admin = Admin::new(PgEventStore::connect(options).await?);

        let (result, out) = run(&admin, &["--json", "migrate", "--check"]).await;
        assert_eq!(result?, Outcome::CheckFailed);
        let line = &out.of_type("migrate")[0];
        assert_eq!(line["check"], true);
        assert_eq!(line["applied"], json!([]));
        assert_eq!(line["pending"], json!(["1", "2", "3", "4", "5"]));
        assert!(!fresh.exists().await?, "--check must not create the schema");

        let (result, human) = run(&admin, &["migrate", "--check"]).await;
        assert_eq!(result?, Outcome::CheckFailed);
        assert!(
            human
                .text()
                .contains("5 pending migration(s): 1, 2, 3, 4, 5"),
            "{}",
            human.text()
        );

        let (result, out) = run(&admin, &["--json", "migrate"]).await;
        assert_eq!(result?, Outcome::Ok);
        assert_eq!(
            out.of_type("migrate")[0]["applied"],
            json!(["1", "2", "3", "4", "5"])
        );
        assert!(fresh.exists().await?);

        let (result, _) = run(&admin, &["migrate", "--check"]).await;
        assert_eq!(result?, Outcome::Ok);
        anyhow::Ok(())
    }
    .await;
    fresh.drop_it().await?;
    outcome
}

#[tokio::test]
async fn invalid_checkpoints_and_stream_ids_are_errors() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    let invalid_input = |result: Result<Outcome, AdminError>| match result {
        Err(AdminError::Foldline(error) | AdminError::InvalidArgument { source: error, .. }) => {
            error.is_invalid_input()
        }
        _ => false,
    };

    for args in [
        &["--json", "events", "--all", "--after", "yesterday"][..],
        &["--json", "events", "--all", "--after", "0:12"],
        // Well formed, but not a PostgreSQL checkpoint (one partition only).
        &["--json", "events", "--all", "--after", "0:1:1,1:1:1"],
        &["--json", "tail", "--after", "nope"],
        &["--json", "events", "has space"],
        &["--json", "streams", "--after", "{braces}"],
    ] {
        let (result, out) = run(&admin, args).await;
        let message = result.as_ref().err().map(ToString::to_string);
        assert!(invalid_input(result), "{args:?}: {message:?}");
        assert!(out.records().is_empty(), "{args:?} printed nothing");
    }
    let (result, _) = run(&admin, &["events", "--all", "--after", "yesterday"]).await;
    let error = result.expect_err("an invalid checkpoint");
    assert_eq!(
        foldline_admin::format_error(&error),
        "error: invalid value for --after: a checkpoint as `status` and `events --all` print \
         it (such as 0:69021:14), or `start`\n  caused by: invalid checkpoint `yesterday`"
    );
    let (result, _) = run(&admin, &["streams", "--after", "{braces}"]).await;
    let message = result.expect_err("an invalid stream id").to_string();
    assert!(
        message.starts_with("invalid value for --after: a stream id"),
        "{message}"
    );

    let (result, _) = run(&admin, &["streams", "--limit", "0"]).await;
    assert!(matches!(result, Err(AdminError::Usage(_))));
    Ok(())
}

/// Arguments built to attack the terminal that reads the error — a newline followed by a forged
/// `error:` line, an ANSI escape, 10 kB of padding — are refused with an error that prints as
/// one short `error:` line (plus its `caused by:` lines), the escapes shown as `\n` and
/// `\u{1b}`, naming the character a stream id refused and where it is. Nothing is printed on
/// stdout.
#[tokio::test]
async fn hostile_arguments_print_as_one_short_error_line() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    let hostile = format!("acct\nerror: forged\u{1b}[31m{}", "x".repeat(10_240));
    let shown = r"acct\nerror: forged\u{1b}[31m";
    let refused = r"contains `\n` (U+000A) at byte 4, which is not allowed";
    for (args, names_the_character) in [
        (&["events", hostile.as_str()][..], true),
        (&["streams", "--after", &hostile], true),
        (&["events", "--all", "--after", &hostile], false),
        (&["tail", "--after", &hostile], false),
        (&["pause", &hostile], false),
    ] {
        // The command without the 10 kB value, for the failure messages.
        let command = args[..args.len() - 1].join(" ");
        let (result, out) = run(&admin, args).await;
        let error = result.expect_err("a hostile argument is refused");
        let printed = foldline_admin::format_error(&error);
        let lines: Vec<&str> = printed.split('\n').collect();
        assert!(lines[0].starts_with("error: "), "{command}: {printed:.300}");
        assert!(
            lines[1..].iter().all(|l| l.starts_with("  caused by: ")),
            "{command}: a line that is not the error's own: {printed:.300}"
        );
        assert!(
            !printed.chars().any(|c| c.is_control() && c != '\n'),
            "{command}: a raw control character: {printed:.300?}"
        );
        assert!(
            printed.len() < 400,
            "{command}: {} bytes: {printed:.300}",
            printed.len()
        );
        assert!(printed.contains(shown), "{command}: {printed:.300}");
        assert!(
            printed.contains("bytes)`"),
            "{command}: not cut short: {printed:.300}"
        );
        assert_eq!(
            printed.contains(refused),
            names_the_character,
            "{command}: {printed:.300}"
        );
        assert!(out.text().is_empty(), "{command} printed {:?}", out.text());
    }

    // The error keeps the whole value, and the rule it broke, for whoever handles it.
    let (result, _) = run(&admin, &["events", &hostile]).await;
    match result {
        Err(AdminError::Foldline(foldline::Error::InvalidName {
            kind: NameKind::StreamId,
            value,
            reason,
        })) => {
            assert_eq!(value, hostile);
            assert_eq!(
                reason,
                NameRule::Character {
                    character: '\n',
                    at: 4
                }
            );
        }
        other => panic!("expected an invalid stream id, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn payloads_that_are_not_json_are_carried_as_base64() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let event = NewEvent::new(EventType::new("Blob")?, 1, vec![0xff, 0x00, 0xfe]);
    store
        .append(AppendRequest::new(
            StreamId::new("blob-1")?,
            ExpectedVersion::Any,
            vec![event],
        ))
        .await?;
    let admin = Admin::new(store);

    let (result, out) = run(&admin, &["--json", "events", "blob-1"]).await;
    assert_eq!(result?, Outcome::Ok);
    let line = &out.of_type("event")[0];
    assert!(line.get("payload").is_none());
    assert_eq!(line["payload_base64"], "/wD+");

    let (result, human) = run(&admin, &["events", "--all"]).await;
    assert_eq!(result?, Outcome::Ok);
    assert!(
        human.text().contains("(3 bytes, not JSON)"),
        "{}",
        human.text()
    );
    Ok(())
}

/// Rows written around the store (an invalid stream id with a newline and an escape sequence,
/// metadata that is not foldline's) are listed in their place as unreadable, with the stored
/// values escaped, by `events --all`, `events <stream>` and `tail`; the listings go on past them.
#[tokio::test]
async fn unreadable_rows_are_listed_as_unreadable_not_failures() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let admin = Admin::new(schema.store().clone());
    append(schema.store(), "good", &[json!({ "n": 1 })]).await?;
    append(schema.store(), "meta", &[json!({ "n": 2 })]).await?;
    let (client, connection) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let events = format!("\"{}\".events", schema.name());
    let bad_stream = "bad\nerror: forged\u{1b}[31m";
    client
        .execute(
            &format!(
                "INSERT INTO {events} (stream_id, stream_version, event_id, event_type, \
                 schema_version, payload, metadata) \
                 VALUES ($1, 1, $2, 'note', 1, '{{\"n\": 3}}', '{{}}')"
            ),
            &[&bad_stream, &uuid::Uuid::now_v7()],
        )
        .await?;
    client
        .execute(
            &format!(
                "UPDATE {events} SET metadata = '{{\"command_id\": 7}}' WHERE stream_id = 'meta'"
            ),
            &[],
        )
        .await?;
    append(schema.store(), "good", &[json!({ "n": 4 })]).await?;

    let (result, out) = run(&admin, &["--json", "events", "--all"]).await;
    assert_eq!(result?, Outcome::Ok);
    let listed = out.of_type("event");
    assert_eq!(listed.len(), 4, "{}", out.text());
    let unreadable: Vec<&Value> = listed
        .iter()
        .filter(|e| !e["unreadable"].is_null())
        .collect();
    assert_eq!(unreadable.len(), 2, "{}", out.text());
    assert!(
        unreadable[0]["unreadable"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("malformed metadata")),
        "{}",
        unreadable[0]
    );
    assert_eq!(unreadable[1]["unreadable"]["raw"]["stream_id"], bad_stream);
    assert!(
        unreadable[1]["unreadable"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("invalid stream id")),
        "{}",
        unreadable[1]
    );
    assert_eq!(listed[3]["payload"], json!({ "n": 4 }));

    let (result, human) = run(&admin, &["events", "--all"]).await;
    assert_eq!(result?, Outcome::Ok);
    let text = human.text();
    assert!(text.contains("UNREADABLE: invalid stream id"), "{text}");
    assert!(text.contains(r"bad\nerror: forged\u{1b}[31m"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "a raw escape reached the terminal: {text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("error:")),
        "a stored value forged a line: {text}"
    );

    let (result, out) = run(&admin, &["--json", "events", "meta"]).await;
    assert_eq!(result?, Outcome::Ok);
    let listed = out.of_type("event");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["unreadable"]["raw"]["metadata"],
        r#"{"command_id": 7}"#
    );

    let (result, out) = run(
        &admin,
        &["--json", "tail", "--after", "start", "--limit", "4"],
    )
    .await;
    assert_eq!(result?, Outcome::Ok);
    let tailed = out.of_type("event");
    assert_eq!(tailed.len(), 4);
    assert_eq!(tailed[2]["unreadable"]["raw"]["stream_id"], bad_stream);
    Ok(())
}
