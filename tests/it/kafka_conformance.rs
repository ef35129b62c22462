//! The Kafka store passes the event store and snapshot store conformance suites, one test per
//! case, each under a topic prefix of its own, against a real broker (`scripts/kafka.sh start`).

use foldline_kafka::KafkaTestTopics;

/// A store under a fresh prefix; the test fails (never skips) when no broker answers.
async fn kafka_store() -> KafkaTestTopics {
    match KafkaTestTopics::create().await {
        Ok(topics) => topics,
        Err(error) => panic!(
            "cannot set up a Kafka test store: {}",
            foldline::error_chain(&error, ": ")
        ),
    }
}

foldline::event_store_conformance_tests!(topics = kafka_store().await => topics.store().clone());

foldline::snapshot_store_conformance_tests!(topics = kafka_store().await => topics.store().clone());
