//! `#[derive(Aggregate)]`: the name, associated types and snapshot policy from
//! `#[foldline(...)]`, and `handle`/`apply` forwarded to the user's inherent methods.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use crate::ast::{self, Container};
use crate::check;
use crate::ctxt::Ctxt;
use crate::dummy;

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(cont) = Container::<ast::Aggregate>::from_ast(&cx, input) else {
        cx.check()?;
        unreachable!("from_ast reports why it gives no container");
    };
    check::check_aggregate(&cx, &cont);
    cx.check()?;

    let ident = cont.ident;
    let attrs = &cont.attrs;
    let (Some(id), Some(command), Some(event), Some(error)) =
        (&attrs.id, &attrs.command, &attrs.event, &attrs.error)
    else {
        unreachable!("check_aggregate reports missing types");
    };
    let name = LitStr::new(
        &attrs.name_or_default(ident),
        attrs
            .name
            .as_ref()
            .map_or_else(|| ident.span(), LitStr::span),
    );
    let associated = [
        (quote!(Id), id),
        (quote!(Command), command),
        (quote!(Event), event),
        (quote!(Error), error),
    ]
    .into_iter()
    .map(|(assoc, ty)| quote_spanned!(ty.span()=> type #assoc = #ty;));

    let snapshot = attrs.snapshot.as_ref().map(|snapshot| {
        let every = snapshot.every.map_or(1, |every| every.value);
        let every = Literal::u64_unsuffixed(every);
        let version = Literal::u32_unsuffixed(snapshot.version.map_or(1, |v| v.value));
        let span = snapshot.keyword.span();
        let encode = quote_spanned! {span=>
            <__C as _fl::Codec>::encode::<Self>(codec, self)
        };
        let decode = quote_spanned! {span=>
            <__C as _fl::Codec>::decode::<Self>(codec, bytes)
        };
        quote! {
            const SNAPSHOT_EVERY: _fl::Option<u64> = _fl::Some(#every);
            const SNAPSHOT_VERSION: u32 = #version;

            fn encode_snapshot<__C: _fl::Codec>(
                &self,
                codec: &__C,
            ) -> _fl::Result<_fl::Option<_fl::Vec<u8>>, _fl::BoxError> {
                _fl::Result::map(#encode, _fl::Some)
            }

            fn decode_snapshot<__C: _fl::Codec>(
                codec: &__C,
                bytes: &[u8],
            ) -> _fl::Result<_fl::Option<Self>, _fl::BoxError> {
                _fl::Result::map(#decode, _fl::Some)
            }
        }
    });

    // `Account::handle` must reach the user's inherent method. Were it missing, the path would
    // silently resolve to the trait method being defined (endless recursion); these traits,
    // in scope here with `Aggregate`, make it ambiguous instead: error E0034, naming them.
    let handle = quote!(#ident::handle(self, command));
    let apply = quote!(#ident::apply(self, event));

    let code = quote! {
        use _fl::Aggregate as _;

        trait AggregateNeedsInherentHandleMethod {
            fn handle(&self, _: ()) {}
        }
        impl AggregateNeedsInherentHandleMethod for #ident {}

        trait AggregateNeedsInherentApplyMethod {
            fn apply(&mut self, _: ()) {}
        }
        impl AggregateNeedsInherentApplyMethod for #ident {}

        #[automatically_derived]
        impl _fl::Aggregate for #ident {
            const NAME: &'static str = #name;
            #snapshot
            #(#associated)*

            fn handle(
                &self,
                command: &Self::Command,
            ) -> _fl::Result<_fl::Vec<Self::Event>, Self::Error> {
                #handle
            }

            fn apply(&mut self, event: &Self::Event) {
                #apply
            }
        }
    };
    Ok(dummy::wrap_in_const(attrs.krate.as_ref(), code))
}
