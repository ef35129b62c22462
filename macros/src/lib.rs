//! Derive macros for foldline. Use them through the `foldline` crate (feature `derive`), whose
//! documentation describes the attributes: `#[derive(DomainEvent)]`, `#[derive(Command)]`,
//! `#[derive(Aggregate)]` and `#[derive(ProcessManager)]`.
//!
//! Every derive runs the same pipeline: parse the input and its `#[foldline(...)]` attributes
//! (`ast`, `attr`), check them (`check`), report all errors at once (`ctxt`), then generate
//! code in a sealed `const _: () = { ... };` block (`dummy`).
#![doc(test(attr(deny(warnings))))]

mod aggregate;
mod ast;
mod attr;
mod check;
mod command;
mod ctxt;
mod dummy;
mod event;
mod process;
mod serde_attrs;

use proc_macro::TokenStream;

#[doc = include_str!("docs/domain_event.md")]
#[proc_macro_derive(DomainEvent, attributes(foldline, serde))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    expand_with(input, event::expand)
}

#[doc = include_str!("docs/command.md")]
#[proc_macro_derive(Command, attributes(foldline))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    expand_with(input, command::expand)
}

#[doc = include_str!("docs/aggregate.md")]
#[proc_macro_derive(Aggregate, attributes(foldline))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    expand_with(input, aggregate::expand)
}

#[doc = include_str!("docs/process_manager.md")]
#[proc_macro_derive(ProcessManager, attributes(foldline))]
pub fn derive_process_manager(input: TokenStream) -> TokenStream {
    expand_with(input, process::expand)
}

/// Parses the input, runs `expand`, and turns its errors into `compile_error!`s.
fn expand_with(
    input: TokenStream,
    expand: fn(&syn::DeriveInput) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
