//! `rebuild --on-poison`: an operator gets a rebuild past an event the projection keeps failing
//! on without changing the code, and a rebuild that stops at one says what to do.

use foldline::{EventStore, StreamId, Version};

use crate::support::{Bank, append, deposited, opened};

/// Damages the payload of `stream`'s event at `version` in place, as a bad migration might:
/// valid JSON that no longer decodes into the event.
async fn damage(bank: &Bank, stream: &StreamId, version: i64) -> anyhow::Result<()> {
    let (client, connection) =
        tokio_postgres::connect(bank.schema.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let damaged = client
        .execute(
            &format!(
                "UPDATE \"{}\".events SET payload = '{{\"cents\": \"lots\"}}' \
                 WHERE stream_id = $1 AND stream_version = $2",
                bank.schema.name()
            ),
            &[&stream.as_str(), &version],
        )
        .await?;
    anyhow::ensure!(damaged == 1, "no event {stream}@{version}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_gets_past_a_poison_event_with_on_poison_dead_letter() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    let stream = StreamId::new("account-erin")?;
    append(
        &store,
        "erin",
        &[opened("Erin"), deposited(100), deposited(250)],
    )
    .await?;
    damage(&bank, &stream, 2).await?;
    let poison = store.read_stream(&stream, Version::new(2), 1).await?[0].event_id;

    // The projection's own policy (stop): the rebuild fails, naming the event and the way out,
    // and draws nothing after the failure.
    for args in [
        &["rebuild", "balances"][..],
        &["rebuild", "balances", "--on-poison", "stop"],
    ] {
        let ran = bank.foldline(args).await?;
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        assert!(
            ran.stderr.contains("--on-poison dead-letter")
                && ran.stderr.contains("account-erin")
                && ran.stderr.contains("version 2"),
            "{args:?}: {ran:?}"
        );
        // The projector's own log of the failure comes first; no progress line after it.
        let stopped_at = ran
            .stderr
            .find("projection stopped")
            .expect("the failure is logged");
        assert!(
            !ran.stderr[stopped_at..].contains("rebuilding:"),
            "progress after the failure: {ran:?}"
        );
    }

    // Parked: the rebuild completes without the damaged deposit, and says so.
    let ran = bank
        .foldline(&[
            "rebuild",
            "balances",
            "--on-poison",
            "dead-letter",
            "--json",
        ])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let line = &ran.of_type("projection_rebuild")[0];
    assert_eq!(line["dead_lettered"], 1, "{ran:?}");
    assert_eq!(bank.balances_now().await?["erin"], 250);
    let ran = bank
        .foldline(&["dead-letters", "list", "balances", "--json"])
        .await?;
    let letters = ran.of_type("dead_letter");
    assert_eq!(letters.len(), 1, "{ran:?}");
    assert_eq!(letters[0]["event_id"], poison.to_string());

    let ran = bank
        .foldline(&["rebuild", "balances", "--on-poison", "dead-letter"])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout.contains(
            "1 event(s) the projection failed on were parked: see `dead-letters list balances`"
        ),
        "{ran:?}"
    );
    Ok(())
}
