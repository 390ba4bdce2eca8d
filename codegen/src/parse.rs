//! Parsing: the attribute's arguments and the annotated item, into syntax; no judgement yet.

use crate::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{LitStr, Path};

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
            // Skip the value so that the keys after it are still checked.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                meta.parse_nested_meta(|inner| {
                    inner.input.parse::<TokenStream>()?;
                    Ok(())
                })?;
            }
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
