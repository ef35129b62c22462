//! `#[derive(ProcessManager)]`: the name and associated types from `#[foldline(...)]`, and
//! `correlate`/`decide`/`evolve` forwarded to the user's inherent functions.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Type, parse_quote};

use crate::ast::{self, Container};
use crate::check;
use crate::ctxt::Ctxt;
use crate::dummy;

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(cont) = Container::<ast::Process>::from_ast(&cx, input) else {
        cx.check()?;
        unreachable!("from_ast reports why it gives no container");
    };
    check::check_process(&cx, &cont);
    cx.check()?;

    let ident = cont.ident;
    let attrs = &cont.attrs;
    let (Some(name), Some(id), Some(event), Some(command)) =
        (&attrs.name, &attrs.id, &attrs.event, &attrs.command)
    else {
        unreachable!("check_process reports missing keys");
    };
    // No `timeout`: a process that schedules none, woken by nothing.
    let unit: Type = parse_quote!(());
    let timeout = attrs.timeout.as_ref().unwrap_or(&unit);
    let associated = [
        (quote!(Id), id),
        (quote!(Event), event),
        (quote!(Command), command),
        (quote!(Timeout), timeout),
    ]
    .into_iter()
    .map(|(assoc, ty)| quote_spanned!(ty.span()=> type #assoc = #ty;));

    // `Transfer::decide` must reach the user's inherent function. Were it missing, the path
    // would silently resolve to the trait function being defined (endless recursion); these
    // traits, in scope here with `ProcessManager`, make it ambiguous instead: error E0034,
    // naming them.
    let correlate = quote!(#ident::correlate(event));
    let decide = quote!(#ident::decide(self, input));
    let evolve = quote!(#ident::evolve(self, input));

    let code = quote! {
        use _fl::ProcessManager as _;

        trait ProcessManagerNeedsInherentCorrelateFunction {
            fn correlate(_: ()) {}
        }
        impl ProcessManagerNeedsInherentCorrelateFunction for #ident {}

        trait ProcessManagerNeedsInherentDecideMethod {
            fn decide(&self, _: ()) {}
        }
        impl ProcessManagerNeedsInherentDecideMethod for #ident {}

        trait ProcessManagerNeedsInherentEvolveMethod {
            fn evolve(&mut self, _: ()) {}
        }
        impl ProcessManagerNeedsInherentEvolveMethod for #ident {}

        #[automatically_derived]
        impl _fl::ProcessManager for #ident {
            const NAME: &'static str = #name;
            #(#associated)*

            fn correlate(
                event: &_fl::Envelope<'_, Self::Event>,
            ) -> _fl::Option<Self::Id> {
                #correlate
            }

            fn decide(&self, input: &_fl::Input<Self>) -> _fl::Vec<_fl::Action<Self>> {
                #decide
            }

            fn evolve(&mut self, input: &_fl::Input<Self>) {
                #evolve
            }
        }
    };
    Ok(dummy::wrap_in_const(attrs.krate.as_ref(), code))
}
