//! Process manager instances on PostgreSQL: decisions recorded in the instance's stream (as
//! `jsonb`) load back whole, a redelivered input is recognized, and two runners deciding on one
//! instance at once conflict instead of both recording.

use std::time::Duration;

use foldline::{
    Action, Envelope, Input, JsonCodec, Outcome, ProcessManager, ProcessStatus, StoredInstance,
};
use foldline_tests::pg::test_schema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, foldline::DomainEvent)]
enum ShipmentEvent {
    Requested { shipment: String, parcels: u32 },
    Picked { shipment: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShipmentCommand {
    Pick { shipment: String, parcels: u32 },
    Cancel { shipment: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShipmentTimeout {
    NotPicked { attempt: u32 },
}

#[derive(Debug, Default)]
struct Shipment {
    shipment: String,
    parcels: u32,
}

impl ProcessManager for Shipment {
    const NAME: &'static str = "shipment";
    type Id = String;
    type Event = ShipmentEvent;
    type Command = ShipmentCommand;
    type Timeout = ShipmentTimeout;

    fn correlate(event: &Envelope<'_, ShipmentEvent>) -> Option<String> {
        match &event.event {
            ShipmentEvent::Requested { shipment, .. } | ShipmentEvent::Picked { shipment } => {
                Some(shipment.clone())
            }
        }
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(ShipmentEvent::Requested { shipment, parcels }) => vec![
                Action::Send(ShipmentCommand::Pick {
                    shipment: shipment.clone(),
                    parcels: *parcels,
                }),
                Action::Schedule {
                    timeout: ShipmentTimeout::NotPicked { attempt: 1 },
                    after: Duration::from_millis(1500),
                },
            ],
            Input::Event(ShipmentEvent::Picked { .. }) => vec![
                Action::Cancel(ShipmentTimeout::NotPicked { attempt: 1 }),
                Action::Complete,
            ],
            Input::Refused { error, .. } => vec![Action::Fail {
                reason: error.clone(),
            }],
            Input::Timeout(ShipmentTimeout::NotPicked { .. }) => vec![
                Action::Send(ShipmentCommand::Cancel {
                    shipment: self.shipment.clone(),
                    reason: "not picked in time".into(),
                }),
                Action::Fail {
                    reason: "not picked in time".into(),
                },
            ],
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        if let Input::Event(ShipmentEvent::Requested { shipment, parcels }) = input {
            self.shipment = shipment.clone();
            self.parcels = *parcels;
        }
    }
}

async fn load(store: &foldline_postgres::PgEventStore, id: &str) -> StoredInstance<Shipment> {
    StoredInstance::load(store, &JsonCodec, &id.to_owned())
        .await
        .expect("loading the instance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_process_decisions_load_back_whole_and_redeliveries_are_recognized() -> anyhow::Result<()>
{
    let schema = test_schema().await;
    let store = schema.store().clone();
    let id = "s-1".to_owned();
    let requested = Uuid::now_v7();
    let input = Input::Event(ShipmentEvent::Requested {
        shipment: id.clone(),
        parcels: 3,
    });
    let (stored, outcome) = load(&store, &id)
        .await
        .decide(&store, &JsonCodec, requested, &input, Some(requested))
        .await?;
    let Outcome::Decided(first) = outcome else {
        anyhow::bail!("expected a decision, got {outcome:?}");
    };
    assert_eq!(first.actions.len(), 2);

    // Loaded anew from PostgreSQL: the same instance, the same recorded actions.
    let loaded = load(&store, &id).await;
    assert_eq!(loaded.version, stored.version);
    assert_eq!(loaded.instance.state().parcels, 3);
    assert_eq!(
        loaded.instance.pending_timeouts(),
        [ShipmentTimeout::NotPicked { attempt: 1 }]
    );
    let recorded = loaded.decided(requested).expect("decided");
    assert_eq!(recorded.actions, first.actions);
    assert_eq!(recorded.event_id, first.event_id);
    assert_eq!(loaded.correlation_id, Some(requested));

    // The same input again (a redelivery after a crash): recognized, nothing recorded.
    let (loaded, again) = loaded
        .decide(&store, &JsonCodec, requested, &input, None)
        .await?;
    assert!(
        matches!(&again, Outcome::Redelivered(d) if d.actions == first.actions),
        "{again:?}"
    );
    assert_eq!(loaded.version.get(), 1);

    // The timeout fires: cancel and fail; later inputs are ignored.
    let (loaded, fired) = loaded
        .decide(
            &store,
            &JsonCodec,
            Uuid::now_v7(),
            &Input::Timeout(ShipmentTimeout::NotPicked { attempt: 1 }),
            None,
        )
        .await?;
    assert!(
        matches!(fired, Outcome::Decided(ref d) if d.actions.len() == 2),
        "{fired:?}"
    );
    let reloaded = load(&store, &id).await;
    assert_eq!(
        *reloaded.instance.status(),
        ProcessStatus::Failed {
            reason: "not picked in time".into()
        }
    );
    assert!(reloaded.instance.pending_timeouts().is_empty());
    let (_, late) = loaded
        .decide(
            &store,
            &JsonCodec,
            Uuid::now_v7(),
            &Input::Event(ShipmentEvent::Picked {
                shipment: id.clone(),
            }),
            None,
        )
        .await?;
    assert!(matches!(late, Outcome::Ignored), "{late:?}");
    assert_eq!(load(&store, &id).await.version.get(), 2);
    Ok(())
}

/// Two runners that loaded the same instance decide on different inputs at once: one records,
/// the other gets a conflict (nothing recorded), and decides again on the instance loaded anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_process_two_runners_on_one_instance_conflict() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let (store, other) = (schema.store().clone(), schema.connect_another().await?);
    let id = "s-2".to_owned();
    let (a, b) = (load(&store, &id).await, load(&other, &id).await);
    let requested = Input::Event(ShipmentEvent::Requested {
        shipment: id.clone(),
        parcels: 1,
    });
    let picked = Input::Event(ShipmentEvent::Picked {
        shipment: id.clone(),
    });
    let (first, second) = tokio::join!(
        a.decide(&store, &JsonCodec, Uuid::now_v7(), &requested, None),
        b.decide(&other, &JsonCodec, Uuid::now_v7(), &picked, None),
    );
    let (won, lost) = match (first, second) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        (Ok(_), Ok(_)) => anyhow::bail!("both runners recorded a decision at version 1"),
        (Err(a), Err(b)) => anyhow::bail!("both failed: {a}; {b}"),
    };
    assert!(lost.is_conflict(), "{lost}");
    assert_eq!(won.0.version.get(), 1);
    let reloaded = load(&store, &id).await;
    assert_eq!(reloaded.version.get(), 1, "the loser recorded nothing");
    Ok(())
}
