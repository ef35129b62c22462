//! Parsing of `#[foldline(...)]` attributes, one set of keys per position and derive.
//!
//! Parsing never stops at the first problem: every error is recorded in the [`Ctxt`] and the
//! parser goes on with the next key, so that all of them are reported at once. A key given
//! twice is reported at its second occurrence; the first value is kept. Checks that look at
//! several attributes together live in `check.rs`.

use std::fmt;

use proc_macro2::{Span, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Lit, LitInt, LitStr, Token, Type};

use crate::ctxt::Ctxt;

/// An attribute key, matched against a meta's path.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

pub(crate) const FOLDLINE: Symbol = Symbol("foldline");
pub(crate) const CRATE: Symbol = Symbol("crate");
pub(crate) const RENAME: Symbol = Symbol("rename");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const UPCAST: Symbol = Symbol("upcast");
pub(crate) const ID: Symbol = Symbol("id");
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const COMMAND: Symbol = Symbol("command");
pub(crate) const EVENT: Symbol = Symbol("event");
pub(crate) const ERROR: Symbol = Symbol("error");
pub(crate) const SNAPSHOT: Symbol = Symbol("snapshot");
pub(crate) const EVERY: Symbol = Symbol("every");
pub(crate) const TIMEOUT: Symbol = Symbol("timeout");

impl PartialEq<Symbol> for syn::Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &syn::Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One attribute value: remembers whether it was already given, to report duplicates.
struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    seen: bool,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr {
            cx,
            name,
            seen: false,
            value: None,
        }
    }

    /// Sets the value, or reports a duplicate at `key` (the second occurrence's key).
    fn set(&mut self, key: &syn::Path, value: T) {
        self.set_opt(key, Some(value));
    }

    /// Like [`Attr::set`] for a value that may have failed to parse (already reported).
    fn set_opt(&mut self, key: &syn::Path, value: Option<T>) {
        if self.seen {
            self.cx
                .error_spanned_by(key, format!("duplicate foldline attribute `{}`", self.name));
        } else {
            self.seen = true;
            self.value = value;
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// An integer attribute value with the span of its literal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpannedInt<N> {
    pub(crate) value: N,
    pub(crate) span: Span,
}

/// Runs `parse_key` on every key of every `#[foldline(...)]` attribute in `attrs`.
///
/// `parse_key` returns `Ok(false)` for a key it does not know: that is reported with the list
/// of `expected` keys (and `hint`, if any) and its value skipped, so parsing goes on. An error
/// returned by `parse_key` is recorded and ends that one attribute.
fn parse_keys(
    cx: &Ctxt,
    attrs: &[Attribute],
    position: &str,
    expected: &[Symbol],
    hint: impl Fn(&syn::Path) -> Option<String>,
    mut parse_key: impl FnMut(&ParseNestedMeta<'_>) -> syn::Result<bool>,
) {
    for attr in attrs {
        if attr.path() != FOLDLINE {
            continue;
        }
        if let syn::Meta::Path(_) = attr.meta {
            cx.error_spanned_by(
                attr,
                format!(
                    "expected `#[foldline(...)]` with {}",
                    describe_expected(expected)
                ),
            );
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if parse_key(&meta)? {
                return Ok(());
            }
            let key = meta.path.clone();
            let shown = quote::quote!(#key).to_string().replace(' ', "");
            let mut msg = if expected.is_empty() {
                format!("unexpected foldline attribute `{shown}`: {position} take no `#[foldline]` attributes")
            } else {
                format!(
                    "unknown foldline attribute `{shown}` on {position}, expected {}",
                    describe_expected(expected)
                )
            };
            if let Some(hint) = hint(&key) {
                msg.push_str("; ");
                msg.push_str(&hint);
            }
            cx.error_spanned_by(&key, msg);
            skip_value(meta.input)
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
}

fn describe_expected(expected: &[Symbol]) -> String {
    match expected {
        [] => "no keys".to_owned(),
        [one] => format!("`{one}`"),
        _ => {
            let keys: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
            format!("one of {}", keys.join(", "))
        }
    }
}

/// Skips the tokens of an unknown key's value (`= ...` or `(...)`) up to the next comma.
fn skip_value(input: syn::parse::ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// Parses `key = "string"`; a value of another kind is reported and gives `None`.
fn parse_lit_str(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Symbol,
) -> syn::Result<Option<LitStr>> {
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some(lit)),
        other => {
            cx.error_spanned_by(
                other,
                format!("expected a string literal: `{key} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// Parses `key = <integer>` into `N`; anything else is reported and gives `None`.
fn parse_int<N>(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Symbol,
) -> syn::Result<Option<SpannedInt<N>>>
where
    N: std::str::FromStr,
    N::Err: fmt::Display,
{
    let expr: Expr = meta.value()?.parse()?;
    let lit: Option<&LitInt> = match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => Some(lit),
        _ => None,
    };
    match lit.map(|lit| (lit, lit.base10_parse::<N>())) {
        Some((lit, Ok(value))) => Ok(Some(SpannedInt {
            value,
            span: lit.span(),
        })),
        Some((lit, Err(_))) => {
            cx.error_spanned_by(
                lit,
                format!("`{key}` is out of range: expected a positive integer"),
            );
            Ok(None)
        }
        None => {
            cx.error_spanned_by(&expr, format!("expected an integer literal: `{key} = 1`"));
            Ok(None)
        }
    }
}

/// Parses `crate = "path::to::foldline"`.
fn parse_crate(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<syn::Path>> {
    let Some(lit) = parse_lit_str(cx, meta, CRATE)? else {
        return Ok(None);
    };
    match lit.parse::<syn::Path>() {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "expected a path to the foldline crate, found {:?}",
                    lit.value()
                ),
            );
            Ok(None)
        }
    }
}

/// Reports `key = ...` or `key(...)` on a key that takes no value.
fn parse_flag(cx: &Ctxt, meta: &ParseNestedMeta<'_>, key: Symbol) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        let start = meta.input.span();
        skip_value(meta.input)?;
        cx.error_at(
            start,
            format!("`{key}` takes no value: write `#[foldline({key})]`"),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// #[derive(DomainEvent)]

/// `#[foldline(...)]` on a `DomainEvent` enum.
pub(crate) struct EventContainer {
    pub(crate) krate: Option<syn::Path>,
}

/// `#[foldline(...)]` on one variant of a `DomainEvent` enum.
pub(crate) struct EventVariant {
    pub(crate) rename: Option<LitStr>,
    pub(crate) version: Option<SpannedInt<u32>>,
    pub(crate) upcast: Option<Upcast>,
}

/// `upcast(v1 = A, v2 = B)`.
pub(crate) struct Upcast {
    /// The `upcast` keyword, where errors about the list as a whole point.
    pub(crate) keyword: syn::Path,
    pub(crate) steps: Vec<UpcastStep>,
}

/// `vK = Type` in `upcast(...)`.
pub(crate) struct UpcastStep {
    /// The `vK` key.
    pub(crate) key: syn::Path,
    pub(crate) version: u32,
    pub(crate) ty: Type,
}

impl EventContainer {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate = Attr::none(cx, CRATE);
        parse_keys(cx, attrs, "an event enum", &[CRATE], no_hint, |meta| {
            if meta.path == CRATE {
                krate.set_opt(&meta.path, parse_crate(cx, meta)?);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        EventContainer { krate: krate.get() }
    }
}

impl EventVariant {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut rename = Attr::none(cx, RENAME);
        let mut version = Attr::none(cx, VERSION);
        let mut upcast = Attr::none(cx, UPCAST);
        parse_keys(
            cx,
            attrs,
            "an event variant",
            &[RENAME, VERSION, UPCAST],
            no_hint,
            |meta| {
                if meta.path == RENAME {
                    rename.set_opt(&meta.path, parse_lit_str(cx, meta, RENAME)?);
                } else if meta.path == VERSION {
                    version.set_opt(&meta.path, parse_int(cx, meta, VERSION)?);
                } else if meta.path == UPCAST {
                    let steps = parse_upcast_steps(cx, meta)?;
                    upcast.set(
                        &meta.path,
                        Upcast {
                            keyword: meta.path.clone(),
                            steps,
                        },
                    );
                } else {
                    return Ok(false);
                }
                Ok(true)
            },
        );
        EventVariant {
            rename: rename.get(),
            version: version.get(),
            upcast: upcast.get(),
        }
    }
}

/// Parses the `vK = Type, ...` list inside `upcast(...)`.
fn parse_upcast_steps(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<UpcastStep>> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            "expected a list of older versions: `upcast(v1 = DepositedV1, v2 = DepositedV2)`",
        );
        skip_value(meta.input)?;
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    meta.parse_nested_meta(|step| {
        let version = step
            .path
            .get_ident()
            .and_then(|ident| upcast_key_version(&ident.to_string()));
        match version {
            Some(version) => {
                let ty: Type = step.value()?.parse()?;
                steps.push(UpcastStep {
                    key: step.path.clone(),
                    version,
                    ty,
                });
            }
            None => {
                cx.error_spanned_by(
                    &step.path,
                    "expected `v<N> = Type` naming the payload type of an older schema version, e.g. `v1 = DepositedV1`",
                );
                skip_value(step.input)?;
            }
        }
        Ok(())
    })?;
    Ok(steps)
}

/// `"v12"` -> `Some(12)`.
pub(crate) fn upcast_key_version(key: &str) -> Option<u32> {
    let digits = key.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Positions that take no `#[foldline]` attribute at all (fields of events, of aggregates).
pub(crate) struct NoAttrs;

impl NoAttrs {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute], position: &str) -> Self {
        parse_keys(cx, attrs, position, &[], no_hint, |_| Ok(false));
        NoAttrs
    }
}

fn no_hint(_: &syn::Path) -> Option<String> {
    None
}

// ---------------------------------------------------------------------------------------------
// #[derive(Command)]

/// `#[foldline(...)]` on a `Command` enum or struct.
pub(crate) struct CommandContainer {
    pub(crate) krate: Option<syn::Path>,
    pub(crate) name: Option<LitStr>,
}

/// `#[foldline(...)]` on one variant of a `Command` enum.
pub(crate) struct CommandVariant {
    pub(crate) name: Option<LitStr>,
}

/// `#[foldline(...)]` on a field of a command.
pub(crate) struct CommandField {
    /// The `id` keyword, when the field is marked as the aggregate id.
    pub(crate) id: Option<syn::Path>,
}

fn id_belongs_on_a_field(key: &syn::Path) -> Option<String> {
    (key == ID).then(|| "`id` belongs on the field that holds the aggregate id".to_owned())
}

impl CommandContainer {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate = Attr::none(cx, CRATE);
        let mut name = Attr::none(cx, NAME);
        parse_keys(
            cx,
            attrs,
            "a command",
            &[CRATE, NAME],
            id_belongs_on_a_field,
            |meta| {
                if meta.path == CRATE {
                    krate.set_opt(&meta.path, parse_crate(cx, meta)?);
                } else if meta.path == NAME {
                    name.set_opt(&meta.path, parse_lit_str(cx, meta, NAME)?);
                } else {
                    return Ok(false);
                }
                Ok(true)
            },
        );
        CommandContainer {
            krate: krate.get(),
            name: name.get(),
        }
    }
}

impl CommandVariant {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut name = Attr::none(cx, NAME);
        parse_keys(
            cx,
            attrs,
            "a command variant",
            &[NAME],
            id_belongs_on_a_field,
            |meta| {
                if meta.path == NAME {
                    name.set_opt(&meta.path, parse_lit_str(cx, meta, NAME)?);
                } else {
                    return Ok(false);
                }
                Ok(true)
            },
        );
        CommandVariant { name: name.get() }
    }
}

impl CommandField {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut id = Attr::none(cx, ID);
        parse_keys(cx, attrs, "a command field", &[ID], no_hint, |meta| {
            if meta.path == ID {
                parse_flag(cx, meta, ID)?;
                id.set(&meta.path, meta.path.clone());
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        CommandField { id: id.get() }
    }
}

// ---------------------------------------------------------------------------------------------
// #[derive(Aggregate)]

/// `#[foldline(...)]` on an `Aggregate` struct.
pub(crate) struct AggregateContainer {
    pub(crate) krate: Option<syn::Path>,
    pub(crate) id: Option<Type>,
    pub(crate) command: Option<Type>,
    pub(crate) event: Option<Type>,
    pub(crate) error: Option<Type>,
    pub(crate) name: Option<LitStr>,
    pub(crate) snapshot: Option<Snapshot>,
}

/// `snapshot(every = N, version = V)`.
pub(crate) struct Snapshot {
    /// The `snapshot` keyword, where a missing `every` is reported.
    pub(crate) keyword: syn::Path,
    pub(crate) every: Option<SpannedInt<u64>>,
    pub(crate) version: Option<SpannedInt<u32>>,
}

/// The keys an aggregate takes, in the order the error message lists them.
pub(crate) const AGGREGATE_KEYS: &[Symbol] = &[ID, COMMAND, EVENT, ERROR, NAME, SNAPSHOT, CRATE];

impl AggregateContainer {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate = Attr::none(cx, CRATE);
        let mut id = Attr::none(cx, ID);
        let mut command = Attr::none(cx, COMMAND);
        let mut event = Attr::none(cx, EVENT);
        let mut error = Attr::none(cx, ERROR);
        let mut name = Attr::none(cx, NAME);
        let mut snapshot = Attr::none(cx, SNAPSHOT);
        parse_keys(cx, attrs, "an aggregate", AGGREGATE_KEYS, no_hint, |meta| {
            if meta.path == CRATE {
                krate.set_opt(&meta.path, parse_crate(cx, meta)?);
            } else if meta.path == ID {
                id.set(&meta.path, meta.value()?.parse()?);
            } else if meta.path == COMMAND {
                command.set(&meta.path, meta.value()?.parse()?);
            } else if meta.path == EVENT {
                event.set(&meta.path, meta.value()?.parse()?);
            } else if meta.path == ERROR {
                error.set(&meta.path, meta.value()?.parse()?);
            } else if meta.path == NAME {
                name.set_opt(&meta.path, parse_lit_str(cx, meta, NAME)?);
            } else if meta.path == SNAPSHOT {
                let parsed = parse_snapshot(cx, meta)?;
                snapshot.set(&meta.path, parsed);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        AggregateContainer {
            krate: krate.get(),
            id: id.get(),
            command: command.get(),
            event: event.get(),
            error: error.get(),
            name: name.get(),
            snapshot: snapshot.get(),
        }
    }
}

fn parse_snapshot(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Snapshot> {
    let mut every = Attr::none(cx, EVERY);
    let mut version = Attr::none(cx, VERSION);
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            if inner.path == EVERY {
                every.set_opt(&inner.path, parse_int(cx, &inner, EVERY)?);
            } else if inner.path == VERSION {
                version.set_opt(&inner.path, parse_int(cx, &inner, VERSION)?);
            } else {
                let key = &inner.path;
                cx.error_spanned_by(
                    key,
                    format!(
                        "unknown key `{}` in `snapshot(...)`, expected `every` or `version`",
                        quote::quote!(#key).to_string().replace(' ', "")
                    ),
                );
                skip_value(inner.input)?;
            }
            Ok(())
        })?;
    } else {
        skip_value(meta.input)?;
    }
    Ok(Snapshot {
        keyword: meta.path.clone(),
        every: every.get(),
        version: version.get(),
    })
}

// ---------------------------------------------------------------------------------------------
// #[derive(ProcessManager)]

/// `#[foldline(...)]` on a `ProcessManager` struct.
pub(crate) struct ProcessContainer {
    pub(crate) krate: Option<syn::Path>,
    pub(crate) name: Option<LitStr>,
    pub(crate) id: Option<Type>,
    pub(crate) event: Option<Type>,
    pub(crate) command: Option<Type>,
    pub(crate) timeout: Option<Type>,
    /// The keys written, even those whose value did not parse (an error already): a key
    /// written wrong is not reported missing as well.
    pub(crate) written: Vec<Symbol>,
}

/// The keys a process manager takes, in the order the error message lists them.
pub(crate) const PROCESS_KEYS: &[Symbol] = &[NAME, ID, EVENT, COMMAND, TIMEOUT, CRATE];

/// Keys an aggregate takes that a process manager does not, and why.
fn not_on_a_process(key: &syn::Path) -> Option<String> {
    if key == ERROR {
        Some("a process manager has no error type: a command an aggregate refuses comes back to `decide` as `Input::Refused`".to_owned())
    } else if key == SNAPSHOT {
        Some("a process manager takes no snapshots: an instance is rebuilt from the decisions in its stream".to_owned())
    } else {
        None
    }
}

impl ProcessContainer {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut krate = Attr::none(cx, CRATE);
        let mut name = Attr::none(cx, NAME);
        let mut id = Attr::none(cx, ID);
        let mut event = Attr::none(cx, EVENT);
        let mut command = Attr::none(cx, COMMAND);
        let mut timeout = Attr::none(cx, TIMEOUT);
        let mut written = Vec::new();
        parse_keys(
            cx,
            attrs,
            "a process manager",
            PROCESS_KEYS,
            not_on_a_process,
            |meta| {
                written.extend(PROCESS_KEYS.iter().filter(|&&key| meta.path == key));
                if meta.path == CRATE {
                    krate.set_opt(&meta.path, parse_crate(cx, meta)?);
                } else if meta.path == NAME {
                    name.set_opt(&meta.path, parse_lit_str(cx, meta, NAME)?);
                } else if meta.path == ID {
                    id.set(&meta.path, meta.value()?.parse()?);
                } else if meta.path == EVENT {
                    event.set(&meta.path, meta.value()?.parse()?);
                } else if meta.path == COMMAND {
                    command.set(&meta.path, meta.value()?.parse()?);
                } else if meta.path == TIMEOUT {
                    timeout.set(&meta.path, meta.value()?.parse()?);
                } else {
                    return Ok(false);
                }
                Ok(true)
            },
        );
        ProcessContainer {
            krate: krate.get(),
            name: name.get(),
            id: id.get(),
            event: event.get(),
            command: command.get(),
            timeout: timeout.get(),
            written,
        }
    }
}

impl EventVariant {
    /// The stored type name: `rename`, or the variant's name.
    pub(crate) fn type_name(&self, ident: &syn::Ident) -> String {
        match &self.rename {
            Some(lit) => lit.value(),
            None => syn::ext::IdentExt::unraw(ident).to_string(),
        }
    }

    /// The current schema version: `version`, or 1.
    pub(crate) fn current_version(&self) -> u32 {
        self.version.map_or(1, |v| v.value)
    }
}

impl AggregateContainer {
    /// The aggregate's name: `name`, or the struct's name in snake_case.
    pub(crate) fn name_or_default(&self, ident: &syn::Ident) -> String {
        match &self.name {
            Some(lit) => lit.value(),
            None => snake_case(&syn::ext::IdentExt::unraw(ident).to_string()),
        }
    }
}

/// `BankAccount` -> `bank_account`, `HTTPServer` -> `http_server`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(char::is_lowercase),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The span of `lit`, or of `fallback` when there is no literal (a default name).
pub(crate) fn span_of(lit: Option<&LitStr>, fallback: &impl Spanned) -> Span {
    lit.map_or_else(|| fallback.span(), LitStr::span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn errors(cx: Ctxt) -> Vec<String> {
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn parses_event_variant() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(
            #[foldline(rename = "account.deposited", version = 3, upcast(v1 = A, v2 = B))]
        )];
        let parsed = EventVariant::from_attrs(&cx, &attrs);
        assert!(errors(cx).is_empty());
        assert_eq!(parsed.rename.unwrap().value(), "account.deposited");
        assert_eq!(parsed.version.unwrap().value, 3);
        let versions: Vec<u32> = parsed
            .upcast
            .unwrap()
            .steps
            .iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(versions, [1, 2]);
    }

    #[test]
    fn reports_every_problem_and_keeps_going() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[foldline(version = 2, colour = "red", version = 3)]),
            parse_quote!(#[foldline(rename = 5, upcast(x1 = A))]),
        ];
        let parsed = EventVariant::from_attrs(&cx, &attrs);
        assert_eq!(parsed.version.unwrap().value, 2);
        assert_eq!(
            errors(cx),
            [
                "unknown foldline attribute `colour` on an event variant, expected one of `rename`, `version`, `upcast`",
                "duplicate foldline attribute `version`",
                "expected a string literal: `rename = \"...\"`",
                "expected `v<N> = Type` naming the payload type of an older schema version, e.g. `v1 = DepositedV1`",
            ]
        );
    }

    #[test]
    fn version_must_be_an_integer() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(#[foldline(version = "2")])];
        let parsed = EventVariant::from_attrs(&cx, &attrs);
        assert!(parsed.version.is_none());
        assert_eq!(errors(cx), ["expected an integer literal: `version = 1`"]);
    }

    #[test]
    fn parses_aggregate() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(
            #[foldline(id = Vec<u8>, command = C, event = E, error = X, name = "acc",
                       snapshot(every = 100, version = 2), crate = "my::fl")]
        )];
        let parsed = AggregateContainer::from_attrs(&cx, &attrs);
        assert!(errors(cx).is_empty());
        let snapshot = parsed.snapshot.unwrap();
        assert_eq!(snapshot.every.unwrap().value, 100);
        assert_eq!(snapshot.version.unwrap().value, 2);
        assert!(parsed.id.is_some() && parsed.krate.is_some());
    }

    #[test]
    fn parses_process_manager() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(
            #[foldline(name = "transfer", id = String, event = E, command = C, timeout = T,
                       crate = "my::fl")]
        )];
        let parsed = ProcessContainer::from_attrs(&cx, &attrs);
        assert!(errors(cx).is_empty());
        assert_eq!(parsed.name.unwrap().value(), "transfer");
        assert!(parsed.id.is_some() && parsed.event.is_some() && parsed.command.is_some());
        assert!(parsed.timeout.is_some() && parsed.krate.is_some());

        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(
            #[foldline(name = transfer, snapshot(every = 10), timeout = (), timeout = u8)]
        )];
        let parsed = ProcessContainer::from_attrs(&cx, &attrs);
        assert!(parsed.name.is_none());
        assert!(matches!(parsed.timeout, Some(Type::Tuple(_))));
        assert_eq!(
            errors(cx),
            [
                "expected a string literal: `name = \"...\"`",
                "unknown foldline attribute `snapshot` on a process manager, expected one of `name`, `id`, `event`, `command`, `timeout`, `crate`; a process manager takes no snapshots: an instance is rebuilt from the decisions in its stream",
                "duplicate foldline attribute `timeout`",
            ]
        );
    }

    #[test]
    fn id_flag_takes_no_value() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(#[foldline(id = true)])];
        let parsed = CommandField::from_attrs(&cx, &attrs);
        assert!(parsed.id.is_some());
        assert_eq!(errors(cx), ["`id` takes no value: write `#[foldline(id)]`"]);
    }

    #[test]
    fn hints_where_id_belongs() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(#[foldline(id)])];
        CommandVariant::from_attrs(&cx, &attrs);
        assert_eq!(
            errors(cx),
            [
                "unknown foldline attribute `id` on a command variant, expected `name`; `id` belongs on the field that holds the aggregate id"
            ]
        );
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Account2Fa"), "account2_fa");
        assert_eq!(snake_case("Already_Snake"), "already_snake");
    }

    #[test]
    fn upcast_keys() {
        assert_eq!(upcast_key_version("v1"), Some(1));
        assert_eq!(upcast_key_version("v12"), Some(12));
        assert_eq!(upcast_key_version("v"), None);
        assert_eq!(upcast_key_version("x1"), None);
        assert_eq!(upcast_key_version("v1a"), None);
    }
}
