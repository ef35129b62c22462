//! Checks that look at more than one attribute, or at an attribute together with the shape of
//! the type: shapes a derive does not support, names and versions, `id` fields.

use std::collections::{BTreeSet, HashMap};

use crate::ast::{self, Container, Data, Style};
use crate::attr::{self, SpannedInt};
use crate::ctxt::Ctxt;

/// The rules of one kind of name, as `core/src/names.rs` states them: checked when the derive
/// expands, so that a bad name is an error at the attribute and not a failure at run time.
struct NameRules {
    /// What the name is, for the message: "event type name".
    what: &'static str,
    /// The longest name, in bytes (every character allowed is ASCII).
    max_len: usize,
    /// Whether a byte may appear in the name; the first must also be an ASCII letter.
    allowed: fn(u8) -> bool,
    /// `allowed` in words, for the message.
    allowed_in_words: &'static str,
}

/// A `foldline::EventType`.
const EVENT_TYPE: NameRules = NameRules {
    what: "event type name",
    max_len: 128,
    allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'),
    allowed_in_words: "ASCII letters, digits and `-`, `_`, `.`, `:`",
};

/// An aggregate's name: 64 bytes at most leave room for the id in a 255-byte stream id.
const AGGREGATE_NAME: NameRules = NameRules {
    what: "aggregate name",
    max_len: 64,
    allowed: |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'),
    allowed_in_words: "ASCII letters, digits and `-`, `_`, `.`",
};

/// A process manager's name, which names its runner's projection: a `foldline::ProjectionName`.
/// Its characters are allowed in the stream ids (`"{name}-{id}"`) and command keys
/// (`"{name}:{input}:{index}"`) it starts, and its 48 bytes leave room for the rest of them.
const PROCESS_NAME: NameRules = NameRules {
    what: "process manager name",
    max_len: 48,
    allowed: |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
    allowed_in_words: "lowercase ASCII letters, digits and `_`",
};

impl NameRules {
    /// Why `name` breaks these rules, if it does: "it must not be empty".
    fn error(&self, name: &str) -> Option<String> {
        let bytes = name.as_bytes();
        let reason = if bytes.is_empty() {
            "must not be empty".to_owned()
        } else if bytes.len() > self.max_len {
            format!("is longer than {} characters", self.max_len)
        } else if !bytes[0].is_ascii_alphabetic() {
            "must start with an ASCII letter".to_owned()
        } else if !bytes.iter().all(|&b| (self.allowed)(b)) {
            format!("may only contain {}", self.allowed_in_words)
        } else {
            return None;
        };
        Some(format!("invalid {} {name:?}: it {reason}", self.what))
    }
}

/// Reports an enum given to a derive that takes a struct, which holds `what`.
fn only_structs<D: ast::Derive>(cx: &Ctxt, cont: &Container<'_, D>, what: &str) {
    if let syn::Data::Enum(data) = &cont.original.data {
        cx.error_at(
            data.enum_token.span,
            format!("`#[derive({})]` only supports structs: {what}", D::NAME),
        );
    }
}

/// Reports, on the type's name, each `(missing, key, what its value is, an example value)`
/// that is missing.
fn missing_keys(cx: &Ctxt, ident: &syn::Ident, required: &[(bool, attr::Symbol, &str, &str)]) {
    for &(missing, key, what, example) in required {
        if missing {
            cx.error_spanned_by(
                ident,
                format!("missing `#[foldline({key} = ...)]`: {what}, e.g. `{key} = {example}`"),
            );
        }
    }
}

fn no_generics<D: ast::Derive>(cx: &Ctxt, cont: &Container<'_, D>) {
    let generics = cont.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            format!("`#[derive({})]` does not support generic types", D::NAME),
        );
    }
}

/// Checks a `#[derive(DomainEvent)]` input.
pub(crate) fn check_event(cx: &Ctxt, cont: &Container<'_, ast::Event>) {
    no_generics(cx, cont);
    let variants = match &cont.data {
        Data::Enum(variants) => variants,
        Data::Struct(..) => {
            let token = match &cont.original.data {
                syn::Data::Struct(data) => data.struct_token.span,
                _ => cont.ident.span(),
            };
            cx.error_at(
                token,
                "`#[derive(DomainEvent)]` only supports enums: one variant per kind of event, e.g. `enum AccountEvent { Opened { owner: String }, Closed }`",
            );
            return;
        }
    };
    if variants.is_empty() {
        cx.error_spanned_by(cont.ident, "an event enum needs at least one variant");
    }
    let mut names: HashMap<String, &syn::Ident> = HashMap::new();
    for variant in variants {
        if variant.style == Style::Tuple && variant.fields.len() > 1 {
            cx.error_spanned_by(
                &variant.original.fields,
                format!(
                    "event variant `{}` has several unnamed fields: name them (`{} {{ a: A, b: B }}`) or wrap them in one type",
                    variant.ident, variant.ident
                ),
            );
        }

        let name = variant.attrs.type_name(variant.ident);
        let span = attr::span_of(variant.attrs.rename.as_ref(), variant.ident);
        if let Some(error) = EVENT_TYPE.error(&name) {
            cx.error_at(span, error);
        }
        if let Some(first) = names.get(&name) {
            cx.error_at(
                span,
                format!("duplicate event type name {name:?}: variant `{first}` already uses it"),
            );
        } else {
            names.insert(name, variant.ident);
        }

        check_versions(cx, &variant.attrs);
    }
}

fn check_versions(cx: &Ctxt, attrs: &attr::EventVariant) {
    if let Some(SpannedInt { value: 0, span }) = attrs.version {
        cx.error_at(span, "schema versions start at 1");
        return;
    }
    let current = attrs.current_version();
    let Some(upcast) = &attrs.upcast else {
        return;
    };
    if upcast.steps.is_empty() {
        cx.error_spanned_by(
            &upcast.keyword,
            "`upcast()` lists no older version: write `upcast(v1 = TypeOfV1)` or remove it",
        );
        return;
    }
    let mut declared: BTreeSet<u32> = BTreeSet::new();
    for step in &upcast.steps {
        if step.version == 0 {
            cx.error_spanned_by(&step.key, "schema versions start at 1: there is no `v0`");
        } else if step.version >= current {
            cx.error_spanned_by(
                &step.key,
                format!(
                    "`v{}` is not older than the current schema version {current}: upcasters read older versions only (raise `version = ...` when the payload changes)",
                    step.version
                ),
            );
        } else if !declared.insert(step.version) {
            cx.error_spanned_by(
                &step.key,
                format!("duplicate upcaster for `v{}`", step.version),
            );
        }
    }
    let Some(&oldest) = declared.iter().next() else {
        return;
    };
    for missing in (oldest + 1..current).filter(|v| !declared.contains(v)) {
        cx.error_spanned_by(
            &upcast.keyword,
            format!(
                "missing upcaster for v{missing}: each version from the oldest one upcast (v{oldest}) up to v{} needs its payload type, as in `upcast(v{oldest} = .., v{missing} = ..)`",
                current - 1
            ),
        );
    }
}

/// Checks a `#[derive(Command)]` input.
pub(crate) fn check_command(cx: &Ctxt, cont: &Container<'_, ast::Command>) {
    no_generics(cx, cont);
    if let Some(name) = &cont.attrs.name {
        check_command_name(cx, name);
    }
    match &cont.data {
        Data::Enum(variants) => {
            if let Some(name) = &cont.attrs.name {
                cx.error_spanned_by(
                    name,
                    "`name` on a command enum: put `#[foldline(name = \"...\")]` on the variants instead",
                );
            }
            if variants.is_empty() {
                cx.error_spanned_by(cont.ident, "a command enum needs at least one variant");
            }
            for variant in variants {
                if let Some(name) = &variant.attrs.name {
                    check_command_name(cx, name);
                }
                check_id_fields(cx, &variant.fields, variant.ident, "variant");
            }
        }
        Data::Struct(fields) => check_id_fields(cx, fields, cont.ident, "struct"),
    }
}

fn check_command_name(cx: &Ctxt, name: &syn::LitStr) {
    if name.value().trim().is_empty() {
        cx.error_spanned_by(name, "a command name must not be empty");
    }
}

fn check_id_fields(
    cx: &Ctxt,
    fields: &[ast::Field<'_, ast::Command>],
    owner: &syn::Ident,
    what: &str,
) {
    let mut ids = fields.iter().filter_map(|f| f.attrs.id.as_ref());
    if ids.next().is_none() {
        let msg = if fields.is_empty() {
            format!(
                "{what} `{owner}` has no fields, so it cannot say which aggregate it is for: add the aggregate id as a field marked `#[foldline(id)]`"
            )
        } else {
            format!(
                "{what} `{owner}` has no `#[foldline(id)]` field: mark the field that holds the aggregate id"
            )
        };
        cx.error_spanned_by(owner, msg);
    }
    for extra in ids {
        cx.error_spanned_by(
            extra,
            format!("{what} `{owner}` has more than one `#[foldline(id)]` field: mark only one"),
        );
    }
}

/// Checks a `#[derive(Aggregate)]` input.
pub(crate) fn check_aggregate(cx: &Ctxt, cont: &Container<'_, ast::Aggregate>) {
    no_generics(cx, cont);
    only_structs(cx, cont, "the aggregate's state");
    let attrs = &cont.attrs;
    missing_keys(
        cx,
        cont.ident,
        &[
            (
                attrs.id.is_none(),
                attr::ID,
                "the aggregate's id type",
                "AccountId",
            ),
            (
                attrs.command.is_none(),
                attr::COMMAND,
                "its command type",
                "AccountCommand",
            ),
            (
                attrs.event.is_none(),
                attr::EVENT,
                "its event type",
                "AccountEvent",
            ),
            (
                attrs.error.is_none(),
                attr::ERROR,
                "the error `handle` returns",
                "AccountError",
            ),
        ],
    );

    let name = attrs.name_or_default(cont.ident);
    if let Some(error) = AGGREGATE_NAME.error(&name) {
        let span = attr::span_of(attrs.name.as_ref(), cont.ident);
        let advice = if attrs.name.is_none() {
            ": set one with `#[foldline(name = \"...\")]`"
        } else {
            ""
        };
        cx.error_at(span, format!("{error}{advice}"));
    }

    if let Some(snapshot) = &attrs.snapshot {
        match snapshot.every {
            None => cx.error_spanned_by(
                &snapshot.keyword,
                "`snapshot(...)` needs `every = N`: take a snapshot every N events, e.g. `snapshot(every = 100)`",
            ),
            Some(SpannedInt { value: 0, span }) => cx.error_at(
                span,
                "`every` must be at least 1: the number of events between two snapshots",
            ),
            Some(_) => {}
        }
        if let Some(SpannedInt { value: 0, span }) = snapshot.version {
            cx.error_at(span, "snapshot versions start at 1");
        }
    }
}

/// Checks a `#[derive(ProcessManager)]` input.
pub(crate) fn check_process(cx: &Ctxt, cont: &Container<'_, ast::Process>) {
    no_generics(cx, cont);
    only_structs(cx, cont, "the state of one instance of the process");
    let attrs = &cont.attrs;
    missing_keys(
        cx,
        cont.ident,
        &[
            (
                !attrs.written.contains(&attr::NAME),
                attr::NAME,
                "the process's name, which starts its instances' stream ids and names its projection",
                "\"transfer\"",
            ),
            (
                !attrs.written.contains(&attr::ID),
                attr::ID,
                "the type of an instance's id",
                "TransferId",
            ),
            (
                !attrs.written.contains(&attr::EVENT),
                attr::EVENT,
                "the event type it reacts to",
                "BankEvent",
            ),
            (
                !attrs.written.contains(&attr::COMMAND),
                attr::COMMAND,
                "the command type it sends",
                "AccountCommand",
            ),
        ],
    );
    if let Some(name) = &attrs.name
        && let Some(error) = PROCESS_NAME.error(&name.value())
    {
        cx.error_spanned_by(name, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::{DeriveInput, parse_quote};

    /// The messages of the errors `check` finds in `input`, parsed as derive `D` sees it.
    fn errors<D: ast::Derive>(
        input: &DeriveInput,
        check: fn(&Ctxt, &Container<'_, D>),
    ) -> Vec<String> {
        let cx = Ctxt::new();
        if let Some(cont) = Container::<D>::from_ast(&cx, input) {
            check(&cx, &cont);
        }
        cx.check()
            .err()
            .map(|e| e.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    fn event_errors(input: DeriveInput) -> Vec<String> {
        errors(&input, check_event)
    }

    fn command_errors(input: DeriveInput) -> Vec<String> {
        errors(&input, check_command)
    }

    fn aggregate_errors(input: DeriveInput) -> Vec<String> {
        errors(&input, check_aggregate)
    }

    fn process_errors(input: DeriveInput) -> Vec<String> {
        errors(&input, check_process)
    }

    #[test]
    fn command_id_fields() {
        assert!(
            command_errors(parse_quote! {
                enum C { A { #[foldline(id)] id: u8 }, B(u8, #[foldline(id)] u8) }
            })
            .is_empty()
        );
        assert!(
            command_errors(parse_quote!(
                struct S(#[foldline(id)] u8);
            ))
            .is_empty()
        );
        let errors = command_errors(parse_quote! {
            #[foldline(name = "X")]
            enum C { A { id: u8 }, B, C(#[foldline(id)] u8, #[foldline(id)] u8) }
        });
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("`name` on a command enum"));
        assert!(errors[1].starts_with("variant `A` has no `#[foldline(id)]` field"));
        assert!(errors[2].starts_with("variant `B` has no fields"));
        assert!(errors[3].starts_with("variant `C` has more than one"));
        let errors = command_errors(parse_quote!(
            struct S;
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("struct `S` has no fields"));
    }

    #[test]
    fn aggregate_keys_and_snapshot() {
        assert!(
            aggregate_errors(parse_quote! {
                #[foldline(id = u8, command = C, event = E, error = X, snapshot(every = 1))]
                struct BankAccount;
            })
            .is_empty()
        );
        let errors = aggregate_errors(parse_quote! {
            #[foldline(snapshot(version = 0))]
            struct Ärger;
        });
        assert_eq!(errors.len(), 7, "{errors:?}");
        assert!(errors[0].starts_with("missing `#[foldline(id = ...)]`"));
        assert!(errors[3].starts_with("missing `#[foldline(error = ...)]`"));
        assert!(errors[4].starts_with("invalid aggregate name \"ärger\""));
        assert!(errors[5].starts_with("`snapshot(...)` needs `every = N`"));
        assert_eq!(errors[6], "snapshot versions start at 1");
    }

    #[test]
    fn process_keys_and_name() {
        assert!(
            process_errors(parse_quote! {
                #[foldline(name = "transfer", id = String, event = E, command = C, timeout = T)]
                struct Transfer { from: String }
            })
            .is_empty()
        );
        // `timeout` may be left out; the rest may not, and all is reported at once.
        let errors = process_errors(parse_quote! {
            #[foldline(id = String, id = u8, error = X, name = "Transfer")]
            #[foldline(name = "again")]
            enum Transfer<T> { A(T) }
        });
        assert_eq!(
            errors,
            [
                "duplicate foldline attribute `id`",
                "unknown foldline attribute `error` on a process manager, expected one of `name`, `id`, `event`, `command`, `timeout`, `crate`; a process manager has no error type: a command an aggregate refuses comes back to `decide` as `Input::Refused`",
                "duplicate foldline attribute `name`",
                "`#[derive(ProcessManager)]` does not support generic types",
                "`#[derive(ProcessManager)]` only supports structs: the state of one instance of the process",
                "missing `#[foldline(event = ...)]`: the event type it reacts to, e.g. `event = BankEvent`",
                "missing `#[foldline(command = ...)]`: the command type it sends, e.g. `command = AccountCommand`",
                "invalid process manager name \"Transfer\": it may only contain lowercase ASCII letters, digits and `_`",
            ]
        );
        let errors = process_errors(parse_quote! {
            #[foldline(id = String, event = E, command = C)]
            struct Transfer;
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("missing `#[foldline(name = ...)]`"));
        // A key written wrong is reported once: not as missing too.
        let errors = process_errors(parse_quote! {
            #[foldline(name = transfer, id = String, event = E, command = 3)]
            struct Transfer;
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0], "expected a string literal: `name = \"...\"`");
        assert!(errors[1].starts_with("expected one of"), "{errors:?}");
    }

    #[test]
    fn event_type_names() {
        assert_eq!(EVENT_TYPE.error("Opened"), None);
        assert_eq!(EVENT_TYPE.error("account.deposited:v2"), None);
        assert!(EVENT_TYPE.error("").is_some());
        assert!(EVENT_TYPE.error("1st").is_some());
        assert!(EVENT_TYPE.error("has space").is_some());
        assert!(EVENT_TYPE.error(&"a".repeat(129)).is_some());
        assert_eq!(EVENT_TYPE.error(&"a".repeat(128)), None);
    }

    #[test]
    fn aggregate_names() {
        assert_eq!(AGGREGATE_NAME.error("bank_account"), None);
        assert!(AGGREGATE_NAME.error("bank:account").is_some());
        assert!(AGGREGATE_NAME.error("_x").is_some());
        assert!(AGGREGATE_NAME.error(&"a".repeat(65)).is_some());
    }

    #[test]
    fn process_names_are_projection_names() {
        assert_eq!(PROCESS_NAME.error("transfer"), None);
        assert_eq!(PROCESS_NAME.error("order_fulfilment_2"), None);
        assert_eq!(PROCESS_NAME.error(&"a".repeat(48)), None);
        assert_eq!(
            PROCESS_NAME.error("Transfer").as_deref(),
            Some(
                "invalid process manager name \"Transfer\": it may only contain lowercase ASCII letters, digits and `_`"
            )
        );
        for invalid in [
            "",
            "2fa",
            "_x",
            "bank-transfer",
            "bank.transfer",
            "caf\u{e9}",
        ] {
            assert!(PROCESS_NAME.error(invalid).is_some(), "{invalid:?}");
        }
        assert!(PROCESS_NAME.error(&"a".repeat(49)).is_some());
    }

    #[test]
    fn accepts_a_contiguous_chain() {
        let errors = event_errors(parse_quote! {
            enum E {
                #[foldline(version = 3, upcast(v1 = A, v2 = B))]
                A { x: u8 },
                #[foldline(version = 3, upcast(v2 = B))]
                B(u8),
                C,
            }
        });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn reports_a_gap_and_a_version_not_older() {
        let errors = event_errors(parse_quote! {
            enum E {
                #[foldline(version = 4, upcast(v1 = A, v3 = B, v4 = C))]
                A { x: u8 },
            }
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("`v4` is not older"), "{errors:?}");
        assert!(
            errors[1].starts_with("missing upcaster for v2"),
            "{errors:?}"
        );
    }

    #[test]
    fn reports_duplicate_type_names_and_bad_shapes() {
        let errors = event_errors(parse_quote! {
            enum E<T> {
                #[foldline(rename = "B")]
                A,
                B(u8, T),
            }
        });
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("generic"));
        assert!(errors[1].contains("several unnamed fields"));
        assert!(errors[2].starts_with("duplicate event type name \"B\""));
    }
}
