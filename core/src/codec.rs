//! How event payloads and snapshots become bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// Turns serde values into bytes and back. [`JsonCodec`] is the default; implement this for
/// another format (every store keeps payloads as opaque bytes).
pub trait Codec: Send + Sync + 'static {
    /// A short name of the format, stored nowhere but shown in diagnostics (`"json"`).
    fn name(&self) -> &'static str;

    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// Whatever the format reports (e.g. a map with non-string keys in JSON).
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError>;

    /// Decodes a `T` from `bytes`.
    ///
    /// # Errors
    ///
    /// Whatever the format reports for bytes that are not a `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// JSON through `serde_json`: readable in the database and in `foldline events` output.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}
