//! The `#[serde(...)]` attributes of an event's fields, forwarded to the hidden payload structs.

use syn::{Attribute, Field, Type};

/// The field's `#[serde(...)]` attributes for the borrowing struct that serializes it.
pub(crate) fn for_serialize(field: &Field, _ty: &Type) -> Vec<Attribute> {
    serde_attrs(field)
}

/// The field's `#[serde(...)]` attributes for the owned struct that deserializes it.
pub(crate) fn for_deserialize(field: &Field) -> Vec<Attribute> {
    serde_attrs(field)
}

fn serde_attrs(field: &Field) -> Vec<Attribute> {
    field
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde"))
        .cloned()
        .collect()
}
