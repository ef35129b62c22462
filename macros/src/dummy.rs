//! The sealed block every derive's output goes into (after serde_derive's `dummy.rs`).

use proc_macro2::TokenStream;
use quote::quote;

/// The path of the foldline crate: `#[foldline(crate = "...")]`, or `::foldline`.
pub(crate) fn foldline_path(krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path),
        None => quote!(::foldline),
    }
}

/// Puts `code` inside `const _: () = { use <foldline>::__private as _fl; ... };`, so that its
/// items and imports are private to the expansion and never collide with the user's names,
/// and silences the lints generated code could trip in the user's crate.
pub(crate) fn wrap_in_const(krate: Option<&syn::Path>, code: TokenStream) -> TokenStream {
    let foldline = foldline_path(krate);
    quote! {
        #[doc(hidden)]
        #[allow(
            non_upper_case_globals,
            non_camel_case_types,
            non_snake_case,
            unused_attributes,
            unused_qualifications,
            unused_extern_crates,
            dead_code,
            missing_docs,
            unreachable_pub,
            missing_debug_implementations,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
        const _: () = {
            use #foldline::__private as _fl;
            #code
        };
    }
}

/// The string serde's `#[serde(crate = "...")]` wants for the serde re-exported by foldline.
pub(crate) fn serde_path(krate: Option<&syn::Path>) -> syn::LitStr {
    let foldline = foldline_path(krate);
    syn::LitStr::new(
        &format!("{foldline}::__private::serde").replace(' ', ""),
        proc_macro2::Span::call_site(),
    )
}
