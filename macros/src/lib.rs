//! Derive macros for foldline. Use them through the `foldline` crate (feature `derive`).
use proc_macro::TokenStream;

/// Derives `foldline::DomainEvent`.
#[proc_macro_derive(DomainEvent, attributes(foldline))]
pub fn derive_domain_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Derives `foldline::Command`.
#[proc_macro_derive(Command, attributes(foldline))]
pub fn derive_command(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Derives `foldline::Aggregate`.
#[proc_macro_derive(Aggregate, attributes(foldline))]
pub fn derive_aggregate(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
