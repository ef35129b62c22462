//! What the hidden payload structs of an event's struct variant take over from the enum: the
//! fields' `#[serde(...)]` attributes, the naming rule of the variant (`rename_all`) or of the
//! enum (`rename_all_fields`), and field types with `Self`
//! spelled out (inside a payload struct, `Self` would mean the struct).

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::quote;
use syn::punctuated::Punctuated;
use syn::{Attribute, Field, Ident, Meta, Token, Type};

const SERDE: &str = "serde";

/// The field's `#[serde(...)]` attributes, for both payload structs.
///
/// The serializing struct holds `&T` where the enum holds `T`. That is transparent to
/// `rename`, `skip_serializing_if = "path"`, `with`/`serialize_with` and the rest: serde
/// passes `&&T` to those functions, which coerces to the `&T` they take.
pub(crate) fn field_attrs(field: &Field) -> Vec<&Attribute> {
    field
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident(SERDE))
        .collect()
}

/// The container attributes of a variant's payload structs: the variant's `rename_all`, else
/// the enum's `rename_all_fields` as `rename_all`.
///
/// Other `#[serde(...)]` keys on the enum and its variants concern serde's own representation
/// of the enum (variant names, tagging), which foldline does not use: the type name travels
/// beside the payload.
pub(crate) fn container_attrs(
    enum_attrs: &[Attribute],
    variant_attrs: &[Attribute],
) -> TokenStream {
    let mut kept: Vec<TokenStream> = Vec::new();
    let mut variant_renames = false;
    for meta in serde_metas(variant_attrs) {
        let path = meta.path();
        if path.is_ident("rename_all") {
            variant_renames = true;
            kept.push(quote!(#meta));
        }
    }
    if !variant_renames {
        for meta in serde_metas(enum_attrs) {
            if meta.path().is_ident("rename_all_fields") {
                let renamed = match meta {
                    Meta::NameValue(nv) => {
                        let value = nv.value;
                        quote!(rename_all = #value)
                    }
                    Meta::List(list) => {
                        let tokens = list.tokens;
                        quote!(rename_all(#tokens))
                    }
                    Meta::Path(_) => continue,
                };
                kept.push(renamed);
            }
        }
    }
    if kept.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[serde(#(#kept),*)])
    }
}

/// Every key of every `#[serde(...)]` in `attrs`; malformed ones are left to serde's derives
/// (they are not ours to report).
fn serde_metas(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident(SERDE))
        .filter_map(|attr| {
            attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

/// `ty` with every `Self` replaced by `enum_ident`.
pub(crate) fn replace_self(ty: &Type, enum_ident: &Ident) -> TokenStream {
    replace_self_tokens(quote!(#ty), enum_ident)
}

fn replace_self_tokens(tokens: TokenStream, enum_ident: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) if ident == "Self" => {
                let mut replaced = enum_ident.clone();
                replaced.set_span(ident.span());
                TokenTree::Ident(replaced)
            }
            TokenTree::Group(group) => {
                let mut replaced = Group::new(
                    group.delimiter(),
                    replace_self_tokens(group.stream(), enum_ident),
                );
                replaced.set_span(group.span());
                TokenTree::Group(replaced)
            }
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn replaces_self_everywhere() {
        let ty: Type = parse_quote!(Vec<Box<Self>>);
        let ident: Ident = parse_quote!(Tree);
        let replaced: Type = syn::parse2(replace_self(&ty, &ident)).unwrap();
        let expected: Type = parse_quote!(Vec<Box<Tree>>);
        assert_eq!(replaced, expected);
    }

    #[test]
    fn keeps_variant_naming_rules() {
        let enum_attrs: Vec<Attribute> =
            vec![parse_quote!(#[serde(tag = "t", rename_all_fields = "camelCase")])];
        let variant: Vec<Attribute> = vec![parse_quote!(#[serde(rename = "x")])];
        assert_eq!(
            container_attrs(&enum_attrs, &variant).to_string(),
            quote!(#[serde(rename_all = "camelCase")]).to_string()
        );
        let variant: Vec<Attribute> = vec![parse_quote!(#[serde(rename_all = "UPPERCASE")])];
        assert_eq!(
            container_attrs(&enum_attrs, &variant).to_string(),
            quote!(#[serde(rename_all = "UPPERCASE")]).to_string()
        );
        assert!(container_attrs(&[], &[]).is_empty());
    }
}
