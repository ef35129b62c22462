//! How Kafka failures become `foldline::Error`s.

use foldline::{BackendErrorKind, BoxError, DriverErrors};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The Kafka backend's [`DriverErrors`]: `Kafka::error(context, error)` wraps an rdkafka
/// error, classified by its error code, with what foldline was doing.
pub(crate) struct Kafka;

impl DriverErrors for Kafka {
    const BACKEND: &'static str = "kafka";
    type Driver = KafkaError;

    fn classify(error: &KafkaError) -> BackendErrorKind {
        if let KafkaError::Transaction(transaction) = error {
            if transaction.is_fatal() {
                // A fenced producer is fatal: another owner has the partition now.
                return match transaction.code() {
                    RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced => BackendErrorKind::NotOwner,
                    _ => BackendErrorKind::Rejected,
                };
            }
            if transaction.is_retriable() || transaction.txn_requires_abort() {
                return BackendErrorKind::Unavailable;
            }
        }
        match error.rdkafka_error_code() {
            Some(code) => classify_code(code),
            // Client creation and configuration: the settings, not the brokers.
            None => BackendErrorKind::Rejected,
        }
    }

    fn into_source(error: KafkaError) -> BoxError {
        Box::new(Unchained(error))
    }
}

/// An rdkafka error as a source, without its own source: rdkafka's errors print their error
/// code and then give it again as their source, which would print it twice.
#[derive(Debug)]
struct Unchained(KafkaError);

impl std::fmt::Display for Unchained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Unchained {}

/// The kind of a broker's or librdkafka's error code.
pub(crate) fn classify_code(code: RDKafkaErrorCode) -> BackendErrorKind {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageTimedOut | C::OperationTimedOut | C::RequestTimedOut | C::TimedOutQueue => {
            BackendErrorKind::Timeout
        }
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::BrokerDestroy
        | C::DestroyBroker
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::PreferredLeaderNotAvailable
        | C::NetworkException
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ConcurrentTransactions
        | C::FencedLeaderEpoch => BackendErrorKind::Unavailable,
        C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::Fenced
        | C::TransactionCoordinatorFenced => BackendErrorKind::NotOwner,
        _ => BackendErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_brokers_are_transient_and_fencing_is_not_ownership() {
        let down = Kafka::error(
            "listing topics",
            KafkaError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown),
        );
        assert!(down.is_transient());
        let fenced = Kafka::error(
            "committing",
            KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced),
        );
        // Retryable: another owner may take the append.
        assert!(fenced.is_transient());
        assert!(matches!(
            &fenced,
            foldline::Error::Backend(e) if e.kind() == BackendErrorKind::NotOwner
        ));
        let refused = Kafka::error(
            "creating a topic",
            KafkaError::AdminOp(RDKafkaErrorCode::PolicyViolation),
        );
        assert!(!refused.is_transient());
    }
}
