//! Checks on the application's schema, and the key field documents are found and replaced by.

use tantivy::TantivyDocument;
use tantivy::Term;
use tantivy::schema::{Field, FieldType, OwnedValue, Schema, Value};

use crate::refusal::TantivyTargetError;

/// The field that holds each document's key, checked to make one key exactly one term.
#[derive(Clone, Debug)]
pub(crate) struct KeyField {
    field: Field,
    name: String,
    kind: KeyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    /// A text field with the `raw` tokenizer (`STRING`): the whole key is one term.
    Text,
    /// An indexed u64 field: keys are decimal u64s.
    U64,
}

impl KeyField {
    /// Finds `name` in `schema` and checks that a key written there is one exact term: an
    /// indexed text field with the `raw` tokenizer (`STRING`), or an indexed u64 field.
    pub(crate) fn check(schema: &Schema, name: &str) -> Result<Self, TantivyTargetError> {
        let field = schema
            .get_field(name)
            .map_err(|_| TantivyTargetError::KeyFieldMissing { field: name.into() })?;
        let kind = match schema.get_field_entry(field).field_type() {
            FieldType::Str(options) => {
                let indexing = options
                    .get_indexing_options()
                    .ok_or_else(|| TantivyTargetError::KeyFieldNotIndexed { field: name.into() })?;
                if indexing.tokenizer() != "raw" {
                    return Err(TantivyTargetError::KeyFieldTokenized {
                        field: name.into(),
                        tokenizer: indexing.tokenizer().into(),
                    });
                }
                KeyKind::Text
            }
            FieldType::U64(options) if options.is_indexed() => KeyKind::U64,
            FieldType::U64(_) => {
                return Err(TantivyTargetError::KeyFieldNotIndexed { field: name.into() });
            }
            other => {
                return Err(TantivyTargetError::KeyFieldType {
                    field: name.into(),
                    field_type: format!("{:?}", other.value_type()),
                });
            }
        };
        Ok(KeyField {
            field,
            name: name.to_owned(),
            kind,
        })
    }

    /// The field's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The term that matches exactly the documents with key `key`.
    pub(crate) fn term(&self, key: &str) -> Result<Term, TantivyTargetError> {
        Ok(match self.kind {
            KeyKind::Text => Term::from_field_text(self.field, key),
            KeyKind::U64 => Term::from_field_u64(self.field, self.parse_u64(key)?),
        })
    }

    fn parse_u64(&self, key: &str) -> Result<u64, TantivyTargetError> {
        key.parse().map_err(|_| TantivyTargetError::KeyNotU64 {
            key: key.into(),
            field: self.name.clone(),
        })
    }

    /// Makes `doc` fit to be stored under `key` in an index of `schema`: every field it uses
    /// is in the schema, and its key field holds `key` (added when absent).
    ///
    /// # Errors
    ///
    /// [`TantivyTargetError::UnknownField`] for a document built for another schema,
    /// [`TantivyTargetError::KeyMismatch`] when its key field holds something else than `key`,
    /// [`TantivyTargetError::KeyNotU64`] for a u64 key field and a key that is not one.
    pub(crate) fn prepare(
        &self,
        schema: &Schema,
        key: &str,
        mut doc: TantivyDocument,
    ) -> Result<TantivyDocument, TantivyTargetError> {
        let fields = schema.num_fields();
        if let Some((field, _)) = doc
            .field_values()
            .find(|(field, _)| field.field_id() as usize >= fields)
        {
            return Err(TantivyTargetError::UnknownField {
                key: key.into(),
                field_id: field.field_id(),
            });
        }
        let mut present = false;
        for value in doc.get_all(self.field) {
            let matches = match self.kind {
                KeyKind::Text => value.as_str() == Some(key),
                KeyKind::U64 => value.as_u64() == Some(self.parse_u64(key)?),
            };
            if !matches {
                return Err(TantivyTargetError::KeyMismatch {
                    key: key.into(),
                    field: self.name.clone(),
                    found: describe(&OwnedValue::from(value)),
                });
            }
            present = true;
        }
        if !present {
            match self.kind {
                KeyKind::Text => doc.add_text(self.field, key),
                KeyKind::U64 => doc.add_u64(self.field, self.parse_u64(key)?),
            }
        }
        Ok(doc)
    }
}

fn describe(value: &OwnedValue) -> String {
    match value {
        OwnedValue::Str(s) => s.clone(),
        OwnedValue::U64(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use tantivy::schema::{FAST, INDEXED, STORED, STRING, TEXT};

    use super::*;

    fn schema() -> Schema {
        let mut builder = Schema::builder();
        builder.add_text_field("id", STRING | STORED);
        builder.add_text_field("title", TEXT | STORED);
        builder.add_u64_field("n", INDEXED | STORED);
        builder.add_u64_field("fast_only", FAST);
        builder.add_i64_field("signed", INDEXED);
        builder.add_text_field("stored_only", STORED);
        builder.build()
    }

    #[test]
    fn accepts_string_and_indexed_u64_keys() {
        assert!(KeyField::check(&schema(), "id").is_ok());
        assert!(KeyField::check(&schema(), "n").is_ok());
    }

    #[test]
    fn refuses_keys_that_are_not_one_exact_term() {
        let refused = |name: &str| KeyField::check(&schema(), name).unwrap_err();
        assert!(matches!(
            refused("missing"),
            TantivyTargetError::KeyFieldMissing { .. }
        ));
        assert!(matches!(
            refused("title"),
            TantivyTargetError::KeyFieldTokenized { tokenizer, .. } if tokenizer == "default"
        ));
        assert!(matches!(
            refused("fast_only"),
            TantivyTargetError::KeyFieldNotIndexed { .. }
        ));
        assert!(matches!(
            refused("stored_only"),
            TantivyTargetError::KeyFieldNotIndexed { .. }
        ));
        assert!(matches!(
            refused("signed"),
            TantivyTargetError::KeyFieldType { .. }
        ));
    }

    #[test]
    fn prepare_adds_a_missing_key_and_refuses_another_one() {
        let schema = schema();
        let key = KeyField::check(&schema, "id").unwrap();
        let title = schema.get_field("title").unwrap();
        let id = schema.get_field("id").unwrap();

        let mut doc = TantivyDocument::new();
        doc.add_text(title, "hello");
        let doc = key.prepare(&schema, "k1", doc).unwrap();
        assert_eq!(doc.get_first(id).and_then(|v| v.as_str()), Some("k1"));

        let same = key.prepare(&schema, "k1", doc.clone()).unwrap();
        assert_eq!(same.get_all(id).count(), 1);

        let err = key.prepare(&schema, "k2", doc).unwrap_err();
        assert!(matches!(err, TantivyTargetError::KeyMismatch { found, .. } if found == "k1"));
    }

    #[test]
    fn u64_keys_must_parse() {
        let schema = schema();
        let key = KeyField::check(&schema, "n").unwrap();
        assert!(key.term("42").is_ok());
        assert!(matches!(
            key.term("forty-two"),
            Err(TantivyTargetError::KeyNotU64 { .. })
        ));
        let doc = key.prepare(&schema, "42", TantivyDocument::new()).unwrap();
        let n = schema.get_field("n").unwrap();
        assert_eq!(doc.get_first(n).and_then(|v| v.as_u64()), Some(42));
    }

    #[test]
    fn a_document_of_another_schema_is_refused() {
        let schema = schema();
        let key = KeyField::check(&schema, "id").unwrap();
        let mut doc = TantivyDocument::new();
        doc.add_text(Field::from_field_id(99), "x");
        assert!(matches!(
            key.prepare(&schema, "k", doc),
            Err(TantivyTargetError::UnknownField { field_id: 99, .. })
        ));
    }
}
