//! The binary pointed at another schema (same Redis prefix, same index directory) refuses to
//! show the other store's read model as this one's: `status` names both stores and says to
//! rebuild; `rebuild` builds the read model from the schema it is pointed at.

use example_bank::projections::balances::Balances;
use foldline::{EventStore, Projection};
use foldline_postgres::PgTestSchema;

use crate::support::{Bank, append, deposited, opened};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_against_another_schema_names_both_stores_until_rebuilt() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    append(&bank.store(), "finn", &[opened("Finn"), deposited(100)]).await?;
    bank.balances().catch_up().await?;
    let other = PgTestSchema::create().await?;
    append(other.store(), "gail", &[opened("Gail"), deposited(7)]).await?;
    let (built_from, pointed_at) = (
        bank.store().identity().await?,
        other.store().identity().await?,
    );
    let schema = other.name().to_string();

    let ran = bank
        .foldline(&["status", "--json", "--schema", &schema])
        .await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    let refused = ran
        .of_type("projection_unreadable")
        .into_iter()
        .find(|r| r["projection"] == Balances::NAME.as_str())
        .unwrap_or_else(|| panic!("balances is refused: {ran:?}"));
    let error = refused["error"].as_str().unwrap_or_default();
    for part in [
        built_from.as_str(),
        pointed_at.as_str(),
        "foldline rebuild balances",
    ] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    // Nothing of the other schema reached the read model.
    assert_eq!(bank.balances_now().await?.get("gail"), None);

    let ran = bank
        .foldline(&["rebuild", "balances", "--schema", &schema])
        .await?;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let balances = bank.balances_now().await?;
    assert_eq!(balances.get("gail"), Some(&7), "{balances:?}");
    assert_eq!(balances.get("finn"), None, "{balances:?}");
    let ran = bank
        .foldline(&["status", "--json", "--schema", &schema])
        .await?;
    assert_eq!(ran.status_of("balances")["lag_events"], 0, "{ran:?}");

    // Now the first schema is the stranger.
    let ran = bank.foldline(&["status", "--json"]).await?;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("rebuild"), "{ran:?}");
    Ok(())
}
