//! How tantivy's and the file system's failures become [`foldline::Error`]s, and the errors
//! this crate raises itself.

use std::io;

use foldline::{BackendError, BackendErrorKind, Error};
use tantivy::TantivyError;
use tantivy::directory::error::LockError;

/// The name every [`BackendError`] of this crate carries.
pub(crate) const BACKEND: &str = "tantivy";

/// Something this crate refuses: a schema it cannot key documents by, a document that does not
/// fit the schema, a key of the wrong shape.
///
/// It reaches callers as the [source](std::error::Error::source) of an
/// [`Error::Backend`] of kind [`BackendErrorKind::Rejected`]; find it with
/// [`TantivyTargetError::find`]. Nothing was written when it is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TantivyTargetError {
    /// The key field named in the options is not in the schema.
    #[error("the schema has no field `{field}` to key documents by")]
    KeyFieldMissing {
        /// The field named as key.
        field: String,
    },
    /// The key field is not indexed, so a document cannot be found (or replaced) by its key.
    #[error("key field `{field}` is not indexed; declare it with `STRING` (or `INDEXED` for u64)")]
    KeyFieldNotIndexed {
        /// The key field.
        field: String,
    },
    /// The key field is a text field split into tokens, so a whole key is not one term.
    #[error(
        "key field `{field}` uses tokenizer `{tokenizer}`; a key must be one term: declare the \
         field with `STRING` (tokenizer `raw`)"
    )]
    KeyFieldTokenized {
        /// The key field.
        field: String,
        /// Its tokenizer.
        tokenizer: String,
    },
    /// The key field is neither text nor u64.
    #[error("key field `{field}` is of type {field_type}; a key field must be text or u64")]
    KeyFieldType {
        /// The key field.
        field: String,
        /// Its type, as tantivy names it.
        field_type: String,
    },
    /// A slot's index was created with another schema than the target's.
    #[error(
        "slot {slot} was built with a different schema than this target's; bump the \
         projection's version to rebuild it with the new schema"
    )]
    SchemaMismatch {
        /// The slot.
        slot: u32,
    },
    /// A key for a u64 key field is not a decimal u64.
    #[error("key `{key}` is not a u64, but the key field `{field}` holds u64s")]
    KeyNotU64 {
        /// The key.
        key: String,
        /// The key field.
        field: String,
    },
    /// An upserted document holds a key field value other than its key.
    #[error("the document upserted under key `{key}` holds `{found}` in key field `{field}`")]
    KeyMismatch {
        /// The key it was upserted under.
        key: String,
        /// The key field.
        field: String,
        /// What the document holds there.
        found: String,
    },
    /// An upserted document uses a field the schema does not have (it was built for another
    /// schema).
    #[error("the document upserted under key `{key}` uses field #{field_id}, not in the schema")]
    UnknownField {
        /// The key it was upserted under.
        key: String,
        /// The unknown field's id.
        field_id: u32,
    },
    /// A search named a default field the active slot's schema does not have.
    #[error("no field `{field}` to search in")]
    SearchFieldMissing {
        /// The field named.
        field: String,
    },
}

impl TantivyTargetError {
    /// The `TantivyTargetError` somewhere in `error`'s chain of sources, if any.
    ///
    /// ```
    /// use foldline_tantivy::{TantivyTargetError, TantivyTargetOptions, TantivyTarget};
    /// use tantivy::schema::{Schema, TEXT};
    ///
    /// let mut schema = Schema::builder();
    /// schema.add_text_field("title", TEXT);
    /// let options = TantivyTargetOptions::new("/tmp/unused", schema.build(), "id");
    /// let err = TantivyTarget::new(options).unwrap_err();
    /// assert!(matches!(
    ///     TantivyTargetError::find(&err),
    ///     Some(TantivyTargetError::KeyFieldMissing { .. })
    /// ));
    /// ```
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<Self>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }
}

/// A rejection by this crate as a [`foldline::Error`].
pub(crate) fn rejected(context: impl Into<String>, why: TantivyTargetError) -> Error {
    backend(BackendErrorKind::Rejected, context, Some(Box::new(why)))
}

/// A [`foldline::Error::Backend`] of this crate.
pub(crate) fn backend(
    kind: BackendErrorKind,
    context: impl Into<String>,
    source: Option<foldline::BoxError>,
) -> Error {
    Error::Backend(BackendError::new(BACKEND, kind, context, source))
}

/// A tantivy failure while doing `context`.
///
/// A busy writer lock means another writer (process, or another target in this process) holds
/// the index: [`BackendErrorKind::NotOwner`]. I/O and thread failures are
/// [`Unavailable`](BackendErrorKind::Unavailable), damaged or incompatible data
/// [`Corrupt`](BackendErrorKind::Corrupt), everything else (schema, arguments)
/// [`Rejected`](BackendErrorKind::Rejected).
pub(crate) fn from_tantivy(error: TantivyError, context: impl Into<String>) -> Error {
    let kind = match &error {
        TantivyError::LockFailure(LockError::LockBusy, _) => BackendErrorKind::NotOwner,
        TantivyError::LockFailure(LockError::IoError(_), _)
        | TantivyError::IoError(_)
        | TantivyError::OpenDirectoryError(_)
        | TantivyError::OpenReadError(_)
        | TantivyError::OpenWriteError(_)
        | TantivyError::ErrorInThread(_)
        | TantivyError::SystemError(_)
        | TantivyError::Poisoned => BackendErrorKind::Unavailable,
        TantivyError::DataCorruption(_)
        | TantivyError::IncompatibleIndex(_)
        | TantivyError::DeserializeError(_) => BackendErrorKind::Corrupt,
        _ => BackendErrorKind::Rejected,
    };
    backend(kind, context, Some(Box::new(error)))
}

/// A file-system failure while doing `context`: [`BackendErrorKind::Unavailable`].
pub(crate) fn from_io(error: io::Error, context: impl Into<String>) -> Error {
    backend(
        BackendErrorKind::Unavailable,
        context,
        Some(Box::new(error)),
    )
}

/// A small file of ours (`slot.json`, the commit payload, ...) that does not parse.
pub(crate) fn corrupt(context: impl Into<String>, source: foldline::BoxError) -> Error {
    backend(BackendErrorKind::Corrupt, context, Some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_writer_lock_is_not_owner_and_transient() {
        let err = from_tantivy(
            TantivyError::LockFailure(LockError::LockBusy, None),
            "opening the writer",
        );
        let Error::Backend(backend) = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert_eq!(backend.kind(), BackendErrorKind::NotOwner);
        assert!(err.is_transient());
    }

    #[test]
    fn corruption_is_not_transient() {
        let err = from_tantivy(
            TantivyError::DataCorruption(tantivy::error::DataCorruption::comment_only("bad")),
            "reading",
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn find_walks_the_chain() {
        let err = rejected(
            "checking",
            TantivyTargetError::KeyFieldMissing { field: "id".into() },
        );
        assert_eq!(
            TantivyTargetError::find(&err),
            Some(&TantivyTargetError::KeyFieldMissing { field: "id".into() })
        );
        assert_eq!(TantivyTargetError::find(&Error::Closed { what: "x" }), None);
    }
}
