//! What this crate refuses itself: a schema it cannot key documents by, a document that does
//! not fit the schema, a key of the wrong shape.

use foldline::{BackendErrorKind, DriverErrors, Error, Shown, SlotId};

use crate::error::Tantivy;

/// Something this crate refuses: a schema it cannot key documents by, a document that does not
/// fit the schema, a key of the wrong shape.
///
/// It reaches callers as the [source](std::error::Error::source) of an
/// [`Error::Backend`] of kind [`BackendErrorKind::Rejected`]; find it with
/// [`TantivyTargetError::find`]. Nothing was written when it is returned. Keys and values from
/// documents, and a field named by a search, are shown [escaped and cut short](Shown).
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
        slot: SlotId,
    },
    /// A key for a u64 key field is not a decimal u64.
    #[error(
        "key `{}` is not a u64, but the key field `{field}` holds u64s",
        Shown::new(.key)
    )]
    KeyNotU64 {
        /// The key.
        key: String,
        /// The key field.
        field: String,
    },
    /// An upserted document holds a key field value other than its key.
    #[error(
        "the document upserted under key `{}` holds `{}` in key field `{field}`",
        Shown::new(.key),
        Shown::new(.found)
    )]
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
    #[error(
        "the document upserted under key `{}` uses field #{field_id}, not in the schema",
        Shown::new(.key)
    )]
    UnknownField {
        /// The key it was upserted under.
        key: String,
        /// The unknown field's id.
        field_id: u32,
    },
    /// A search named a default field the active slot's schema does not have.
    #[error("no field `{}` to search in", Shown::new(.field))]
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

/// A refusal by this crate as a [`foldline::Error`]: kind
/// [`Rejected`](BackendErrorKind::Rejected), with `why` as the source.
pub(crate) fn rejected(context: impl Into<String>, why: TantivyTargetError) -> Error {
    Tantivy::failure(BackendErrorKind::Rejected, context, Some(Box::new(why)))
}

#[cfg(test)]
mod tests {
    use foldline::Error;

    use super::{TantivyTargetError, rejected};

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
