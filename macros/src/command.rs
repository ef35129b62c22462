//! `#[derive(Command)]`: which aggregate a command is for (its `#[foldline(id)]` field) and its
//! name.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use crate::ast::{self, Container, Data};
use crate::check;
use crate::ctxt::Ctxt;
use crate::dummy;

type Field<'a> = ast::Field<'a, ast::Command>;

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(cont) = Container::<ast::Command>::from_ast(&cx, input) else {
        cx.check()?;
        unreachable!("from_ast reports why it gives no container");
    };
    check::check_command(&cx, &cont);
    cx.check()?;

    let ident = cont.ident;
    let (id_ty, id_body, name_body) = match &cont.data {
        Data::Enum(variants) => {
            let mut id_ty = None;
            let mut id_arms = Vec::new();
            let mut name_arms = Vec::new();
            for variant in variants {
                let field = id_field(&variant.fields);
                id_ty.get_or_insert(field.ty);
                let variant_ident = variant.ident;
                let member = &field.member;
                let id = quote_spanned!(field.ty.span()=> __id);
                id_arms.push(quote!(#ident::#variant_ident { #member: __id, .. } => #id));
                let name = command_name(variant.attrs.name.as_ref(), variant_ident);
                name_arms.push(quote!(#ident::#variant_ident { .. } => #name));
            }
            (
                id_ty.expect("check_command rejects enums without variants"),
                quote!(match self { #(#id_arms,)* }),
                quote!(match self { #(#name_arms,)* }),
            )
        }
        Data::Struct(fields) => {
            let field = id_field(fields);
            let member = &field.member;
            let id = quote_spanned!(field.ty.span()=> &self.#member);
            let name = command_name(cont.attrs.name.as_ref(), ident);
            (field.ty, id, quote!(#name))
        }
    };
    let id_ty = quote_spanned!(id_ty.span()=> #id_ty);

    let code = quote! {
        #[automatically_derived]
        impl _fl::Command for #ident {
            type Id = #id_ty;

            fn aggregate_id(&self) -> &Self::Id {
                #id_body
            }

            fn command_name(&self) -> &'static str {
                #name_body
            }
        }
    };
    Ok(dummy::wrap_in_const(cont.attrs.krate.as_ref(), code))
}

/// The field marked `#[foldline(id)]` (`check_command` made sure there is exactly one).
fn id_field<'f, 'a>(fields: &'f [Field<'a>]) -> &'f Field<'a> {
    fields
        .iter()
        .find(|field| field.attrs.id.is_some())
        .expect("check_command rejects commands without an id field")
}

/// `name = "..."`, or the variant's (struct's) name.
fn command_name(name: Option<&LitStr>, ident: &Ident) -> LitStr {
    match name {
        Some(name) => name.clone(),
        None => LitStr::new(&syn::ext::IdentExt::unraw(ident).to_string(), ident.span()),
    }
}
