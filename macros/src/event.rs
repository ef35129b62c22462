//! `#[derive(DomainEvent)]`: type names, schema versions, payload encoding and the upcaster
//! chain of older versions.
//!
//! The enum itself need not implement serde's traits: each struct variant gets two hidden
//! structs with the variant's fields (and their `#[serde(...)]` attributes), one borrowing the
//! fields to serialize them and one owning them to deserialize; a newtype variant's payload is
//! its inner value and a unit variant's payload is `()`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use crate::ast::{self, Container, Data, Style};
use crate::check;
use crate::ctxt::Ctxt;
use crate::dummy;
use crate::serde_attrs;

type Variant<'a> = ast::Variant<'a, ast::Event>;

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(cont) = Container::<ast::Event>::from_ast(&cx, input) else {
        cx.check()?;
        unreachable!("from_ast reports why it gives no container");
    };
    check::check_event(&cx, &cont);
    cx.check()?;

    let Data::Enum(variants) = &cont.data else {
        unreachable!("check_event rejects structs");
    };
    let krate = cont.attrs.krate.as_ref();
    let serde_path = dummy::serde_path(krate);
    let ident = cont.ident;
    let variants: Vec<Expanded<'_>> = variants
        .iter()
        .map(|variant| Expanded::new(ident, &input.attrs, variant))
        .collect();

    let types = variants.iter().map(|v| {
        let (name, version) = (&v.name, &v.version);
        quote!((#name, #version))
    });
    let event_type_arms = variants.iter().map(|v| {
        let (pattern, name) = (&v.pattern, &v.name);
        quote! {
            #pattern => {
                const TYPE: _fl::EventType = _fl::EventType::from_static(#name);
                TYPE
            }
        }
    });
    let version_arms = variants.iter().map(|v| {
        let (pattern, version) = (&v.pattern, &v.version);
        quote!(#pattern => #version)
    });
    let encode_arms = variants.iter().map(|v| v.encode_arm(&serde_path));
    let decode_arms = variants.iter().map(|v| v.decode_arm(&serde_path));

    let decode_payload = decode_payload_fn();
    let code = quote! {
        #decode_payload

        #[automatically_derived]
        impl _fl::DomainEvent for #ident {
            const TYPES: &'static [(&'static str, u32)] = &[#(#types),*];

            fn event_type(&self) -> _fl::EventType {
                match self {
                    #(#event_type_arms)*
                }
            }

            fn schema_version(&self) -> u32 {
                match self {
                    #(#version_arms,)*
                }
            }

            fn encode<__C: _fl::Codec>(
                &self,
                __codec: &__C,
            ) -> _fl::Result<_fl::Vec<u8>, _fl::BoxError> {
                match self {
                    #(#encode_arms)*
                }
            }

            fn decode<__C: _fl::Codec>(
                __codec: &__C,
                __event_type: &str,
                __schema_version: u32,
                __payload: &[u8],
            ) -> _fl::Result<Self, _fl::DecodeError> {
                match __event_type {
                    #(#decode_arms)*
                    _ => _fl::Err(_fl::DecodeError::UnknownType {
                        event_type: _fl::String::from(__event_type),
                    }),
                }
            }
        }
    };
    Ok(dummy::wrap_in_const(krate, code))
}

/// One variant, with what the generated code needs about it.
struct Expanded<'a> {
    enum_ident: &'a Ident,
    /// The payload structs' `#[serde(...)]` container attributes.
    serde_container: TokenStream,
    variant: &'a Variant<'a>,
    /// `Enum::Variant { .. }`
    pattern: TokenStream,
    /// The stored type name.
    name: LitStr,
    /// The current schema version, as an unsuffixed literal.
    version: Literal,
}

impl<'a> Expanded<'a> {
    fn new(enum_ident: &'a Ident, enum_attrs: &[syn::Attribute], variant: &'a Variant<'a>) -> Self {
        let variant_ident = variant.ident;
        let name_span = variant
            .attrs
            .rename
            .as_ref()
            .map_or_else(|| variant_ident.span(), LitStr::span);
        Expanded {
            enum_ident,
            serde_container: serde_attrs::container_attrs(enum_attrs, &variant.original.attrs),
            variant,
            pattern: quote!(#enum_ident::#variant_ident { .. }),
            name: LitStr::new(&variant.attrs.type_name(variant_ident), name_span),
            version: Literal::u32_unsuffixed(variant.attrs.current_version()),
        }
    }

    /// The payload's shape.
    fn payload(&self) -> Payload<'a> {
        match (self.variant.style, self.variant.fields.as_slice()) {
            (Style::Struct, fields) => Payload::Fields(fields),
            (Style::Tuple, [field]) => Payload::Newtype(field),
            _ => Payload::Unit,
        }
    }

    /// `Enum::Variant { a: __field0, .. } => <encode the payload>`
    fn encode_arm(&self, serde_path: &LitStr) -> TokenStream {
        let enum_ident = self.enum_ident;
        let variant_ident = self.variant.ident;
        let serde_container = &self.serde_container;
        match self.payload() {
            Payload::Unit => {
                let pattern = &self.pattern;
                quote! {
                    #pattern => <__C as _fl::Codec>::encode::<()>(__codec, &()),
                }
            }
            Payload::Newtype(field) => {
                let ty = field.ty;
                let encode = quote_spanned! {ty.span()=>
                    <__C as _fl::Codec>::encode::<#ty>(__codec, __field0)
                };
                quote! {
                    #enum_ident::#variant_ident { 0: __field0 } => #encode,
                }
            }
            Payload::Fields(fields) => {
                let members: Vec<_> = fields.iter().map(|f| &f.member).collect();
                let bindings: Vec<Ident> = (0..fields.len())
                    .map(|i| format_ident!("__field{}", i))
                    .collect();
                let lifetime = if fields.is_empty() {
                    quote!()
                } else {
                    quote!(<'__payload>)
                };
                let definitions = fields.iter().map(|field| {
                    let member = &field.member;
                    let ty = serde_attrs::replace_self(field.ty, enum_ident);
                    let attrs = serde_attrs::field_attrs(field.original);
                    quote!(#(#attrs)* #member: &'__payload #ty)
                });
                quote! {
                    #enum_ident::#variant_ident { #(#members: #bindings),* } => {
                        #[derive(_fl::serde::Serialize)]
                        #[serde(crate = #serde_path)]
                        #serde_container
                        struct __Payload #lifetime {
                            #(#definitions,)*
                        }
                        <__C as _fl::Codec>::encode(
                            __codec,
                            &__Payload { #(#members: #bindings),* },
                        )
                    }
                }
            }
        }
    }

    /// `"Name" => match __schema_version { current => .., older => .., _ => unsupported }`
    fn decode_arm(&self, serde_path: &LitStr) -> TokenStream {
        let name = &self.name;
        let version = &self.version;
        let current = self.decode_current(serde_path);
        let older = self.decode_older();
        quote! {
            #name => match __schema_version {
                #version => #current,
                #(#older)*
                __version => _fl::Err(_fl::DecodeError::UnsupportedVersion {
                    event_type: _fl::String::from(__event_type),
                    version: __version,
                    current: #version,
                }),
            },
        }
    }

    /// Decodes a payload written at the current version.
    fn decode_current(&self, serde_path: &LitStr) -> TokenStream {
        let enum_ident = self.enum_ident;
        let variant_ident = self.variant.ident;
        let serde_container = &self.serde_container;
        match self.payload() {
            Payload::Unit => quote! {{
                let () = decode_payload::<__C, ()>(__codec, __payload)?;
                _fl::Ok(#enum_ident::#variant_ident {})
            }},
            Payload::Newtype(field) => {
                let ty = field.ty;
                let decode = quote_spanned! {ty.span()=>
                    decode_payload::<__C, #ty>(__codec, __payload)?
                };
                quote! {{
                    let __value = #decode;
                    _fl::Ok(#enum_ident::#variant_ident { 0: __value })
                }}
            }
            Payload::Fields(fields) => {
                let members: Vec<_> = fields.iter().map(|f| &f.member).collect();
                let definitions = fields.iter().map(|field| {
                    let member = &field.member;
                    let ty = serde_attrs::replace_self(field.ty, enum_ident);
                    let attrs = serde_attrs::field_attrs(field.original);
                    quote!(#(#attrs)* #member: #ty)
                });
                quote! {{
                    #[derive(_fl::serde::Deserialize)]
                    #[serde(crate = #serde_path)]
                    #serde_container
                    struct __Payload {
                        #(#definitions,)*
                    }
                    let __value = decode_payload::<__C, __Payload>(__codec, __payload)?;
                    _fl::Ok(#enum_ident::#variant_ident { #(#members: __value.#members),* })
                }}
            }
        }
    }

    /// One arm per older version in `upcast(...)`: decode as that version's type, convert
    /// step by step into the newest declared type, then into the event.
    fn decode_older(&self) -> Vec<TokenStream> {
        let Some(upcast) = &self.variant.attrs.upcast else {
            return Vec::new();
        };
        let mut steps: Vec<&crate::attr::UpcastStep> = upcast.steps.iter().collect();
        steps.sort_by_key(|step| step.version);
        (0..steps.len())
            .map(|start| {
                let version = Literal::u32_unsuffixed(steps[start].version);
                let first = &steps[start].ty;
                let read = quote_spanned! {first.span()=>
                    let __value = decode_payload::<__C, #first>(__codec, __payload)?;
                };
                let converts = steps[start + 1..].iter().map(|step| {
                    let ty = &step.ty;
                    quote_spanned! {ty.span()=>
                        let __value: #ty = _fl::From::from(__value);
                    }
                });
                let last = &steps[steps.len() - 1].ty;
                let into_event = quote_spanned! {last.span()=>
                    <Self as _fl::From<#last>>::from(__value)
                };
                quote! {
                    #version => {
                        #read
                        #(#converts)*
                        _fl::Ok(#into_event)
                    }
                }
            })
            .collect()
    }
}

/// What a variant's payload is made of.
enum Payload<'a> {
    /// No fields: `()`.
    Unit,
    /// One unnamed field: the field's value.
    Newtype(&'a ast::Field<'a, ast::Event>),
    /// Named fields: an object of them.
    Fields(&'a [ast::Field<'a, ast::Event>]),
}

/// The function every decode arm calls, defined once per expansion: decodes a `T` and wraps
/// a codec error into `DecodeError::Payload`.
fn decode_payload_fn() -> TokenStream {
    quote! {
        fn decode_payload<__C: _fl::Codec, __T: _fl::serde::de::DeserializeOwned>(
            codec: &__C,
            payload: &[u8],
        ) -> _fl::Result<__T, _fl::DecodeError> {
            <__C as _fl::Codec>::decode::<__T>(codec, payload).map_err(_fl::DecodeError::Payload)
        }
    }
}
