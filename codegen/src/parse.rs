//! Parsing: the attribute's arguments, and the `#[weft(...)]` attributes on methods, into
//! syntax; no judgement yet.

use crate::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, LitStr, Path};

/// The arguments of `#[service(...)]`, each with the span to blame if it turns out wrong.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) package: Option<(String, Span)>,
    pub(crate) name: Option<(String, Span)>,
    pub(crate) krate: Option<Path>,
    pub(crate) codec: Option<Path>,
}

const KEYS: &str = "`package = \"…\"`, `name = \"…\"`, `codec = Path` and `crate = \"…\"`";

/// Parses the attribute arguments; every unknown or repeated key is an error and parsing goes on.
pub(crate) fn args(cx: &Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("package") {
            let lit = string(&meta)?;
            set(cx, &meta, &mut args.package, (lit.value(), lit.span()));
        } else if meta.path.is_ident("name") {
            let lit = string(&meta)?;
            set(cx, &meta, &mut args.name, (lit.value(), lit.span()));
        } else if meta.path.is_ident("crate") {
            let lit = string(&meta)?;
            match lit.parse::<Path>() {
                Ok(path) => set(cx, &meta, &mut args.krate, path),
                Err(_) => cx.error_spanned_by(
                    &lit,
                    "`crate` takes the path of the weft crate as a string: write `crate = \"::weft\"`",
                ),
            }
        } else if meta.path.is_ident("codec") {
            let value = meta.value()?;
            // Accept `codec = weft::BytesCodec` and, for symmetry with `crate`, a string.
            let path = if value.peek(LitStr) { value.parse::<LitStr>()?.parse()? } else { value.parse::<Path>()? };
            set(cx, &meta, &mut args.codec, path);
        } else {
            let key = quote::ToTokens::to_token_stream(&meta.path).to_string().replace(" ", "");
            cx.error_spanned_by(&meta.path, format!("unknown attribute `{key}`; `#[service]` takes {KEYS}"));
            skip_value(&meta)?;
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(syn::Error::new(e.span(), format!("{e}; `#[service]` takes {KEYS}")));
    }
    args
}

fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let value = meta.value()?;
    value.parse::<LitStr>().map_err(|e| {
        let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        syn::Error::new(e.span(), format!("`{key}` takes a string: write `{key} = \"…\"`"))
    })
}

fn set<T>(cx: &Ctxt, meta: &ParseNestedMeta<'_>, slot: &mut Option<T>, value: T) {
    if slot.is_some() {
        let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        cx.error_spanned_by(&meta.path, format!("`{key}` is given twice; keep one"));
    } else {
        *slot = Some(value);
    }
}

/// What a method's `#[weft(...)]` attributes say, each key with the span to blame if it turns
/// out wrong.
#[derive(Debug, Default)]
pub(crate) struct MethodArgs {
    /// `#[weft(idempotent)]`: the span of `idempotent`.
    pub(crate) idempotent: Option<Span>,
}

const METHOD_KEYS: &str = "`idempotent`";

/// Whether an attribute is one of Weft's own on a method, `#[weft(...)]`, which the macro
/// consumes rather than forwards.
pub(crate) fn is_weft_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("weft")
}

/// Parses every `#[weft(...)]` among a method's attributes; an unknown, repeated or malformed
/// key is an error and parsing goes on. The other attributes are not looked at.
pub(crate) fn method_args(cx: &Ctxt, attrs: &[Attribute]) -> MethodArgs {
    let mut args = MethodArgs::default();
    for attr in attrs.iter().filter(|a| is_weft_attr(a)) {
        if !matches!(attr.meta, syn::Meta::List(_)) {
            cx.error_spanned_by(
                attr,
                format!("`#[weft]` on a method lists its keys in parentheses: write `#[weft(idempotent)]`; the keys are {METHOD_KEYS}"),
            );
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("idempotent") {
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`idempotent` takes no value: write `#[weft(idempotent)]`, or remove it if the method is not idempotent",
                    );
                    skip_value(&meta)?;
                } else {
                    set(cx, &meta, &mut args.idempotent, syn::spanned::Spanned::span(&meta.path));
                }
            } else {
                let key = quote::ToTokens::to_token_stream(&meta.path).to_string().replace(" ", "");
                cx.error_spanned_by(&meta.path, format!("unknown key `{key}`; `#[weft(…)]` on a method takes {METHOD_KEYS}"));
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(syn::Error::new(e.span(), format!("{e}; `#[weft(…)]` on a method takes {METHOD_KEYS}")));
        }
    }
    args
}

/// Skips a key's value (`= expr` or `(...)`), so that the keys after it are still checked.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
        meta.parse_nested_meta(|inner| {
            inner.input.parse::<TokenStream>()?;
            Ok(())
        })?;
    }
    Ok(())
}
