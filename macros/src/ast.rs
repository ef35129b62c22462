//! The derive input as the expand modules see it: a [`Container`] of [`Variant`]s or
//! [`Field`]s, each with its parsed `#[foldline(...)]` attributes.

use syn::{Attribute, DeriveInput, Generics, Ident, Member, Type};

use crate::attr;
use crate::ctxt::Ctxt;

/// One derive: its name (for messages) and how it parses attributes at each position.
pub(crate) trait Derive {
    /// The derive's name, as in `#[derive(DomainEvent)]`.
    const NAME: &'static str;
    type Container;
    type Variant;
    type Field;

    fn container(cx: &Ctxt, attrs: &[Attribute]) -> Self::Container;
    fn variant(cx: &Ctxt, attrs: &[Attribute]) -> Self::Variant;
    fn field(cx: &Ctxt, attrs: &[Attribute]) -> Self::Field;
}

/// `#[derive(DomainEvent)]`.
pub(crate) struct Event;

impl Derive for Event {
    const NAME: &'static str = "DomainEvent";
    type Container = attr::EventContainer;
    type Variant = attr::EventVariant;
    type Field = attr::NoAttrs;

    fn container(cx: &Ctxt, attrs: &[Attribute]) -> Self::Container {
        attr::EventContainer::from_attrs(cx, attrs)
    }
    fn variant(cx: &Ctxt, attrs: &[Attribute]) -> Self::Variant {
        attr::EventVariant::from_attrs(cx, attrs)
    }
    fn field(cx: &Ctxt, attrs: &[Attribute]) -> Self::Field {
        attr::NoAttrs::from_attrs(cx, attrs, "event fields")
    }
}

/// `#[derive(Command)]`.
pub(crate) struct Command;

impl Derive for Command {
    const NAME: &'static str = "Command";
    type Container = attr::CommandContainer;
    type Variant = attr::CommandVariant;
    type Field = attr::CommandField;

    fn container(cx: &Ctxt, attrs: &[Attribute]) -> Self::Container {
        attr::CommandContainer::from_attrs(cx, attrs)
    }
    fn variant(cx: &Ctxt, attrs: &[Attribute]) -> Self::Variant {
        attr::CommandVariant::from_attrs(cx, attrs)
    }
    fn field(cx: &Ctxt, attrs: &[Attribute]) -> Self::Field {
        attr::CommandField::from_attrs(cx, attrs)
    }
}

/// `#[derive(Aggregate)]`.
pub(crate) struct Aggregate;

impl Derive for Aggregate {
    const NAME: &'static str = "Aggregate";
    type Container = attr::AggregateContainer;
    type Variant = attr::NoAttrs;
    type Field = attr::NoAttrs;

    fn container(cx: &Ctxt, attrs: &[Attribute]) -> Self::Container {
        attr::AggregateContainer::from_attrs(cx, attrs)
    }
    fn variant(cx: &Ctxt, attrs: &[Attribute]) -> Self::Variant {
        attr::NoAttrs::from_attrs(cx, attrs, "aggregate variants")
    }
    fn field(cx: &Ctxt, attrs: &[Attribute]) -> Self::Field {
        attr::NoAttrs::from_attrs(cx, attrs, "aggregate fields")
    }
}

/// `#[derive(ProcessManager)]`.
pub(crate) struct Process;

impl Derive for Process {
    const NAME: &'static str = "ProcessManager";
    type Container = attr::ProcessContainer;
    type Variant = attr::NoAttrs;
    type Field = attr::NoAttrs;

    fn container(cx: &Ctxt, attrs: &[Attribute]) -> Self::Container {
        attr::ProcessContainer::from_attrs(cx, attrs)
    }
    fn variant(cx: &Ctxt, attrs: &[Attribute]) -> Self::Variant {
        attr::NoAttrs::from_attrs(cx, attrs, "process manager variants")
    }
    fn field(cx: &Ctxt, attrs: &[Attribute]) -> Self::Field {
        attr::NoAttrs::from_attrs(cx, attrs, "process manager fields")
    }
}

/// The type a derive is applied to.
pub(crate) struct Container<'a, D: Derive> {
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: D::Container,
    pub(crate) data: Data<'a, D>,
    pub(crate) generics: &'a Generics,
    pub(crate) original: &'a DeriveInput,
}

pub(crate) enum Data<'a, D: Derive> {
    Enum(Vec<Variant<'a, D>>),
    Struct(Vec<Field<'a, D>>),
}

pub(crate) struct Variant<'a, D: Derive> {
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: D::Variant,
    pub(crate) style: Style,
    pub(crate) fields: Vec<Field<'a, D>>,
    pub(crate) original: &'a syn::Variant,
}

pub(crate) struct Field<'a, D: Derive> {
    /// The field's name, or its index in a tuple.
    pub(crate) member: Member,
    pub(crate) attrs: D::Field,
    pub(crate) ty: &'a Type,
    pub(crate) original: &'a syn::Field,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// `{ a: A, .. }`
    Struct,
    /// `(A, ..)`
    Tuple,
    /// No fields.
    Unit,
}

impl<'a, D: Derive> Container<'a, D> {
    /// Parses `input` and its attributes, recording every problem in `cx`. `None` for a union,
    /// which no derive supports.
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let attrs = D::container(cx, &input.attrs);
        let data = match &input.data {
            syn::Data::Enum(data) => Data::Enum(
                data.variants
                    .iter()
                    .map(|variant| Variant {
                        ident: &variant.ident,
                        attrs: D::variant(cx, &variant.attrs),
                        style: style_of(&variant.fields),
                        fields: fields_from_ast(cx, &variant.fields),
                        original: variant,
                    })
                    .collect(),
            ),
            syn::Data::Struct(data) => Data::Struct(fields_from_ast(cx, &data.fields)),
            syn::Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    format!("`#[derive({})]` does not support unions", D::NAME),
                );
                return None;
            }
        };
        Some(Container {
            ident: &input.ident,
            attrs,
            data,
            generics: &input.generics,
            original: input,
        })
    }
}

fn style_of(fields: &syn::Fields) -> Style {
    match fields {
        syn::Fields::Named(_) => Style::Struct,
        syn::Fields::Unnamed(_) => Style::Tuple,
        syn::Fields::Unit => Style::Unit,
    }
}

fn fields_from_ast<'a, D: Derive>(cx: &Ctxt, fields: &'a syn::Fields) -> Vec<Field<'a, D>> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| Field {
            member: match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(index.into()),
            },
            attrs: D::field(cx, &field.attrs),
            ty: &field.ty,
            original: field,
        })
        .collect()
}
