//! Validation: checks the annotated trait against the rules of a service and lowers it into
//! the [model](crate::model). Every broken rule is recorded in the [`Ctxt`], on the offending
//! tokens, with a sentence saying what to write instead; lowering goes on past errors so that
//! one compile reports them all.

use crate::ctxt::Ctxt;
use crate::model::{self, Method, Model, Service, Spelled};
use crate::parse::{self, Args};
use proc_macro2::Span;
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ItemTrait, Pat, PathArguments, ReturnType, Signature, TraitItem, TraitItemFn, Type,
    TypeParamBound,
};

/// Names the generated client defines itself; a method may not take them.
const RESERVED: [&str; 3] = model::RESERVED_CLIENT_NAMES;

const RETURNS: &str = "a service method returns `Result<Response, Status>` (request/response, client streaming), \
     `Result<impl Stream<Item = Result<Response, Status>>, Status>` (request/stream, channel), or nothing (fire-and-forget)";

/// Lowers the trait into a service model; `None` only if nothing useful could be modelled.
pub(crate) fn service(cx: &Ctxt, args: Args, item: &ItemTrait) -> Service {
    if let Some(unsafety) = &item.unsafety {
        cx.error_spanned_by(unsafety, "a service trait cannot be `unsafe`: remove `unsafe`");
    }
    if let Some(auto) = &item.auto_token {
        cx.error_spanned_by(auto, "a service trait cannot be an auto trait: remove `auto`");
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &item.generics,
            "a service trait cannot be generic: its messages are fixed on the wire; remove the generic parameters and name concrete types",
        );
    }
    let (docs, attrs) = split_docs(&item.attrs);
    let krate: syn::Path = args.krate.unwrap_or_else(|| syn::parse_quote!(::weft));
    let names = WeftNames { krate: &krate };
    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => {
                if let Some(m) = method(cx, f, names) {
                    methods.push(m);
                }
            }
            other => cx.error_spanned_by(
                other,
                "a service trait holds only `async fn` methods; move this item out of the trait",
            ),
        }
    }
    if let Some((package, span)) = &args.package {
        check_name(cx, *span, "package", package, true);
    }
    if let Some((name, span)) = &args.name {
        check_name(cx, *span, "name", name, false);
    }
    Service {
        ident: item.ident.clone(),
        name: args.name.map_or_else(|| syn::ext::IdentExt::unraw(&item.ident).to_string(), |(n, _)| n),
        package: args.package.map(|(p, _)| p),
        vis: item.vis.clone(),
        docs,
        attrs,
        client_attrs: Vec::new(),
        server_attrs: Vec::new(),
        supertraits: item.supertraits.iter().cloned().collect(),
        krate,
        codec: args.codec,
        methods,
    }
}

/// A package (`greet`, `acme.greet.v1`) or a service name (`Greeter`) as it appears in routes.
fn check_name(cx: &Ctxt, span: Span, key: &str, value: &str, dots: bool) {
    let segment_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok = if dots { value.split('.').all(segment_ok) } else { segment_ok(value) };
    if !ok {
        let example = if dots { "package = \"acme.greet.v1\"" } else { "name = \"Greeter\"" };
        cx.error_at(
            span,
            format!("`{key}` is part of every route, so it may hold only letters, digits and underscores{}: write e.g. `{example}`",
                if dots { " in dot-separated parts" } else { "" }),
        );
    }
}

/// Splits `#[doc]` attributes (returned as lines) from the others.
fn split_docs(attrs: &[syn::Attribute]) -> (Vec<String>, Vec<syn::Attribute>) {
    let mut docs = Vec::new();
    let mut rest = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
        {
            docs.push(s.value());
        } else {
            rest.push(attr.clone());
        }
    }
    (docs, rest)
}

fn method(cx: &Ctxt, f: &TraitItemFn, names: WeftNames<'_>) -> Option<Method> {
    let sig = &f.sig;
    let errors_before = cx.error_count();
    let weft = parse::method_args(cx, &f.attrs);
    qualifiers(cx, sig);
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &sig.generics,
            "a service method cannot be generic: its request and response types are fixed on the wire; remove the generic parameters and name concrete types",
        );
    }
    if RESERVED.contains(&sig.ident.to_string().as_str()) {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "`{}` is taken by the generated client's own `{}` method; rename this method",
                sig.ident, sig.ident
            ),
        );
    }
    receiver(cx, sig);

    // Parameters after `self`: an optional `Context`, then exactly one message.
    let mut context_ident = None;
    let mut message: Option<(Ident, &Type)> = None;
    let mut rejected = false;
    let params: Vec<_> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .collect();
    for (i, arg) in params.iter().enumerate() {
        let Some(ident) = param_ident(cx, &arg.pat, f.default.is_some()) else {
            rejected = true;
            continue;
        };
        let context = names.of(&arg.ty, "Context");
        if context == Some(Named::Own) && i == 0 && params.len() > 1 {
            // Where Weft's `Context` goes, a type of the user's own called `Context` was surely
            // meant as Weft's; anywhere else it is a message like any other.
            cx.error_spanned_by(
                &arg.ty,
                format!(
                    "`{}` is not Weft's `Context` (that is `Context`, `weft::Context` or `::weft::Context`): \
                     for the call's context write `{ident}: weft::Context`; a type of your own named `Context` \
                     is a message like any other, so it cannot come before the request message",
                    path_text(&arg.ty)
                ),
            );
            rejected = true;
            continue;
        }
        if context == Some(Named::Weft) {
            if i == 0 {
                context_ident = Some(ident);
            } else {
                cx.error_spanned_by(
                    &arg.ty,
                    "the `Context` parameter comes first: write `async fn name(&self, ctx: Context, request: Request)`",
                );
            }
        } else if let Some((first, _)) = &message {
            cx.error_spanned_by(
                arg,
                format!(
                    "a service method takes exactly one request message, and `{first}` is already it; \
                     put `{first}` and `{ident}` together in one message type"
                ),
            );
        } else {
            message = Some((ident, &arg.ty));
        }
    }
    let Some((request_ident, request_ty)) = message else {
        if rejected {
            return None;
        }
        cx.error_spanned_by(
            &sig.inputs,
            "a service method takes one request message: add a parameter such as `request: HelloRequest` \
             (write `request: ()` for a method that needs no data)",
        );
        return None;
    };

    // `Streaming<T>` as the whole request type means the caller sends a stream.
    let streaming_request = streaming_arg(request_ty);
    let request = match streaming_request {
        Some(Ok(inner)) => inner.clone(),
        Some(Err(())) => {
            cx.error_spanned_by(request_ty, "`Streaming` takes one message type: write `Streaming<Message>`");
            return None;
        }
        None if matches!(request_ty, Type::ImplTrait(_) | Type::Reference(_) | Type::Infer(_)) => {
            cx.error_spanned_by(
                request_ty,
                "a request message is a concrete type taken by value: write `request: Message` (or `Streaming<Message>` for a stream)",
            );
            return None;
        }
        None => {
            forbid_streaming(
                cx,
                request_ty,
                "`Streaming` can only be the whole type of the request parameter: write `request: Streaming<Message>`",
            );
            request_ty.clone()
        }
    };

    let (model, response) = match returns(cx, &sig.output, names) {
        Returns::Nothing if streaming_request.is_some() => {
            cx.error_spanned_by(
                request_ty,
                "a method that receives `Streaming<…>` must answer: return `Result<Response, Status>` (client streaming) \
                 or `Result<impl Stream<Item = Result<Response, Status>>, Status>` (channel); a fire-and-forget method takes one message",
            );
            return None;
        }
        Returns::Nothing => (Model::FireAndForget, syn::parse_quote!(())),
        Returns::One(ty) if streaming_request.is_some() => (Model::ClientStreaming, ty),
        Returns::One(ty) => (Model::RequestResponse, ty),
        Returns::Stream(ty) if streaming_request.is_some() => (Model::Channel, ty),
        Returns::Stream(ty) => (Model::RequestStream, ty),
        Returns::Invalid => return None,
    };
    if let Some(span) = weft.idempotent
        && model.streams_requests()
    {
        cx.error_at(
            span,
            format!(
                "a method that takes a stream of requests cannot be retried (the stream cannot be replayed), \
                 and `{}` is a {} method: remove `#[weft(idempotent)]`; only request/response, fire-and-forget \
                 and request/stream methods can be marked idempotent",
                sig.ident,
                model.describe()
            ),
        );
    }

    let context_ty = sig.inputs.iter().nth(1).and_then(|arg| match arg {
        FnArg::Typed(t) if context_ident.is_some() => Some((*t.ty).clone()),
        _ => None,
    });
    let spelled = Spelled { context: context_ty, request: request_ty.clone(), output: spelled_output(&sig.output) };
    let (docs, mut attrs) = split_docs(&f.attrs);
    attrs.retain(|a| !parse::is_weft_attr(a));
    let default_body = f.default.as_ref().map(|body| rebind_mut_params(sig, body));
    if cx.error_count() > errors_before {
        // Keep the model of a broken method out of the service; the errors say why.
        return None;
    }
    Some(Method {
        name: model::pascal_case(&sig.ident.to_string()),
        ident: sig.ident.clone(),
        model,
        request,
        response,
        request_ident,
        context_ident,
        docs,
        attrs,
        spelled: Some(spelled),
        default_body,
        idempotent: weft.idempotent.is_some(),
        span: sig.span(),
    })
}

/// The output as written, with `Send + 'static` added to a response stream's `impl Stream`:
/// the server drives the stream in a task of its own, after the method has returned.
fn spelled_output(output: &ReturnType) -> Type {
    let ReturnType::Type(_, ty) = output else { return syn::parse_quote!(()) };
    let mut ty = (**ty).clone();
    if let Type::Path(p) = &mut ty
        && let Some(last) = p.path.segments.last_mut()
        && let PathArguments::AngleBracketed(a) = &mut last.arguments
        && let Some(GenericArgument::Type(Type::ImplTrait(it))) = a.args.first_mut()
    {
        let span = it.impl_token.span;
        let has = |it: &syn::TypeImplTrait, name: &str| {
            it.bounds.iter().any(|b| match b {
                TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == name),
                TypeParamBound::Lifetime(l) => l.ident == name,
                _ => false,
            })
        };
        if !has(it, "Send") {
            it.bounds.push(syn::parse_quote_spanned!(span=> ::core::marker::Send));
        }
        if !has(it, "static") {
            it.bounds.push(syn::parse_quote_spanned!(span=> 'static));
        }
    }
    ty
}

fn qualifiers(cx: &Ctxt, sig: &Signature) {
    if let Some(t) = &sig.constness {
        cx.error_spanned_by(t, "a service method cannot be `const`: write `async fn`");
    }
    if let Some(t) = &sig.unsafety {
        cx.error_spanned_by(t, "a service method cannot be `unsafe`: remove `unsafe`");
    }
    if let Some(t) = &sig.abi {
        cx.error_spanned_by(t, "a service method cannot have an ABI: remove the `extern`");
    }
    if let Some(t) = &sig.variadic {
        cx.error_spanned_by(t, "a service method cannot be variadic: take one request message");
    }
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, format!("a service method is asynchronous: write `async fn {}`", sig.ident));
    }
}

fn receiver(cx: &Ctxt, sig: &Signature) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) if r.mutability.is_some() && r.reference.is_some() => cx.error_spanned_by(
            r,
            "a service method takes `&self`, not `&mut self`: one implementation serves many calls at once; \
             write `&self` and keep mutable state behind a `Mutex` or atomics",
        ),
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(
            r,
            "a service method takes `&self`: one implementation serves many calls at once, so it cannot be \
             consumed or boxed per call; write `&self`",
        ),
        _ => cx.error_spanned_by(
            &sig.ident,
            format!("a service method takes `&self` first: write `async fn {}(&self, …)`", sig.ident),
        ),
    }
}

/// The name of a parameter; anything but a plain name (or `mut name` with a default body) is
/// an error.
fn param_ident(cx: &Ctxt, pat: &Pat, has_body: bool) -> Option<Ident> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() && (p.mutability.is_none() || has_body) => {
            Some(p.ident.clone())
        }
        _ => {
            cx.error_spanned_by(
                pat,
                "a service method parameter is a plain name: write `request: Message` and destructure it in the body",
            );
            None
        }
    }
}

/// The generated trait method's parameters are plain names; `mut x` in a default body becomes
/// `let mut x = x;`.
fn rebind_mut_params(sig: &Signature, body: &syn::Block) -> syn::Block {
    let rebinds = sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(t) => match &*t.pat {
            Pat::Ident(p) if p.mutability.is_some() => {
                let ident = &p.ident;
                Some(quote!(let mut #ident = #ident;))
            }
            _ => None,
        },
        FnArg::Receiver(_) => None,
    });
    let stmts = &body.stmts;
    syn::parse_quote!({ #(#rebinds)* #(#stmts)* })
}

/// How a trait names Weft's own types, so that a type of the user's own that shares a name
/// (`crate::Context`, `other::Status`) is not taken for one.
#[derive(Clone, Copy)]
struct WeftNames<'a> {
    /// The path of the weft crate: `::weft`, or the `crate = "…"` override.
    krate: &'a syn::Path,
}

/// What a path type whose last segment is one of Weft's type names is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Named {
    /// Weft's: the bare name (imported, or the user's own imported under it: a macro cannot
    /// tell, and rustc reports a mismatch), or a path to Weft's.
    Weft,
    /// Another type of that name: its path leads elsewhere (`crate::Context`, `my::Status`).
    Own,
}

impl WeftNames<'_> {
    /// Whether `ty` is Weft's type `name` (`Context`, `Status`), another type of that name, or
    /// (`None`) named otherwise. Weft's are the bare name and the paths to it through the weft
    /// crate (`weft::`, `::weft::`, or the `crate = "…"` path), `Context` also through
    /// `weft::typed::`, where it is defined.
    fn of(self, ty: &Type, name: &str) -> Option<Named> {
        let Type::Path(p) = ty else { return None };
        let segments: Vec<_> = p.path.segments.iter().collect();
        let (last, prefix) = segments.split_last()?;
        if p.qself.is_some() || last.ident != name {
            return None;
        }
        let idents: Vec<_> = prefix.iter().map(|s| s.ident.to_string()).collect();
        let krate: Vec<_> = self.krate.segments.iter().map(|s| s.ident.to_string()).collect();
        let module = |root: &[String]| {
            idents == root
                || (name == "Context"
                    && idents.len() == root.len() + 1
                    && idents[..root.len()] == *root
                    && idents[root.len()] == "typed")
        };
        let weft = idents.is_empty() || module(&["weft".to_owned()]) || module(&krate);
        let plain = prefix.iter().all(|s| s.arguments.is_none());
        Some(if weft && plain { Named::Weft } else { Named::Own })
    }

    /// Reports an error type that is not Weft's `Status`, on its tokens; `what` is the code
    /// to write instead, with `{S}` where the status type goes.
    fn check_status(self, cx: &Ctxt, err: &Type, what: &str) -> bool {
        match self.of(err, "Status") {
            Some(Named::Weft) => true,
            Some(Named::Own) => {
                cx.error_spanned_by(
                    err,
                    format!(
                        "`{}` is not Weft's `Status` (that is `Status`, `weft::Status` or `::weft::Status`); \
                         a service method fails with Weft's `Status`: write `{}`",
                        path_text(err),
                        what.replace("{S}", "weft::Status")
                    ),
                );
                false
            }
            None => {
                let what = what.replace("{S}", "Status");
                cx.error_spanned_by(err, format!("the error type of a service method is `Status`: write `{what}`"));
                false
            }
        }
    }
}

/// A path type as it is written (`crate::Context`), not as tokens print (`crate :: Context`).
fn path_text(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(" ::", "::").replace(":: ", "::")
}

fn is_last_segment(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name))
}

/// The type arguments of a path type's last segment, if it is called `name`.
fn args_of<'a>(ty: &'a Type, name: &str) -> Option<Vec<&'a GenericArgument>> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || last.ident != name {
        return None;
    }
    Some(match &last.arguments {
        PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        _ => Vec::new(),
    })
}

/// `Streaming<T>` → `Some(Ok(T))`; `Streaming` with other arguments → `Some(Err(()))`.
fn streaming_arg(ty: &Type) -> Option<Result<&Type, ()>> {
    let args = args_of(ty, "Streaming")?;
    match args.as_slice() {
        [GenericArgument::Type(inner)] => Some(Ok(inner)),
        _ => Some(Err(())),
    }
}

/// Reports `Streaming` anywhere inside `ty`. (A walk over the tokens: a syntax-tree visitor
/// would need syn's `visit` feature, which costs every build compile time for this one check.)
fn forbid_streaming(cx: &Ctxt, ty: &Type, message: &str) {
    fn find(tokens: proc_macro2::TokenStream) -> Option<proc_macro2::Ident> {
        tokens.into_iter().find_map(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) if i == "Streaming" => Some(i),
            proc_macro2::TokenTree::Group(g) => find(g.stream()),
            _ => None,
        })
    }
    if let Some(ident) = find(ty.to_token_stream()) {
        cx.error_spanned_by(ident, message);
    }
}

enum Returns {
    Nothing,
    One(Type),
    Stream(Type),
    Invalid,
}

fn returns(cx: &Ctxt, output: &ReturnType, names: WeftNames<'_>) -> Returns {
    let ty = match output {
        ReturnType::Default => return Returns::Nothing,
        ReturnType::Type(_, ty) => &**ty,
    };
    if matches!(ty, Type::Tuple(t) if t.elems.is_empty()) {
        return Returns::Nothing;
    }
    let Some((ok, err)) = result_of(ty) else {
        if is_last_segment(ty, "Streaming") {
            cx.error_spanned_by(ty, STREAMING_RETURNED);
        } else {
            cx.error_spanned_by(ty, RETURNS);
        }
        return Returns::Invalid;
    };
    if !names.check_status(cx, err, "Result<…, {S}>") {
        return Returns::Invalid;
    }
    if let Type::ImplTrait(it) = ok {
        return match stream_item(it) {
            Some(item) => match result_of(item) {
                Some((item, err)) if names.of(err, "Status").is_some() => {
                    let what = format!("impl Stream<Item = Result<{}, {{S}}>>", item.to_token_stream());
                    if !names.check_status(cx, err, &what) {
                        return Returns::Invalid;
                    }
                    forbid_streaming(cx, item, STREAMING_RETURNED);
                    Returns::Stream(item.clone())
                }
                _ => {
                    cx.error_spanned_by(
                        item,
                        format!(
                            "a response stream yields `Result<Response, Status>` so that it can end with an error: \
                             write `impl Stream<Item = Result<{}, Status>>`",
                            item.to_token_stream()
                        ),
                    );
                    Returns::Invalid
                }
            },
            None => {
                cx.error_spanned_by(
                    ok,
                    "a streaming response is `impl Stream<Item = Result<Response, Status>>`: write \
                     `Result<impl Stream<Item = Result<Response, Status>>, Status>`",
                );
                Returns::Invalid
            }
        };
    }
    if is_last_segment(ok, "Streaming") {
        cx.error_spanned_by(ok, STREAMING_RETURNED);
        return Returns::Invalid;
    }
    forbid_streaming(cx, ok, STREAMING_RETURNED);
    Returns::One(ok.clone())
}

const STREAMING_RETURNED: &str = "`Streaming` is what a server receives, not what it returns: to answer with a stream, \
     write `Result<impl Stream<Item = Result<Response, Status>>, Status>`";

fn result_of(ty: &Type) -> Option<(&Type, &Type)> {
    match args_of(ty, "Result")?.as_slice() {
        [GenericArgument::Type(ok), GenericArgument::Type(err)] => Some((ok, err)),
        _ => None,
    }
}

/// The `Item` of `impl Stream<Item = …> + …`.
fn stream_item(it: &syn::TypeImplTrait) -> Option<&Type> {
    it.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else { return None };
        let last = t.path.segments.last()?;
        if last.ident != "Stream" {
            return None;
        }
        let PathArguments::AngleBracketed(a) = &last.arguments else { return None };
        a.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(&assoc.ty),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(krate: &str, ty: &str, name: &str) -> Option<Named> {
        let krate: syn::Path = syn::parse_str(krate).unwrap();
        WeftNames { krate: &krate }.of(&syn::parse_str(ty).unwrap(), name)
    }

    #[test]
    fn weft_names_are_the_bare_name_and_the_paths_through_the_weft_crate() {
        for ty in ["Context", "weft::Context", "::weft::Context", "weft::typed::Context", "::weft::typed::Context"] {
            assert_eq!(of("::weft", ty, "Context"), Some(Named::Weft), "{ty}");
        }
        for ty in ["Status", "weft::Status", "::weft::Status"] {
            assert_eq!(of("::weft", ty, "Status"), Some(Named::Weft), "{ty}");
        }
        for ty in ["crate::Context", "my::Context", "self::Context", "weft::other::Context", "weft::typed::x::Context"]
        {
            assert_eq!(of("::weft", ty, "Context"), Some(Named::Own), "{ty}");
        }
        for ty in ["my::Status", "crate::Status", "weft::typed::Status", "weft2::Status", "weft<T>::Status"] {
            assert_eq!(of("::weft", ty, "Status"), Some(Named::Own), "{ty}");
        }
        for ty in ["Statuses", "weft::Code", "<T as Tr>::Status", "(Status,)", "&Status"] {
            assert_eq!(of("::weft", ty, "Status"), None, "{ty}");
        }
        // A re-exporting crate's path, as `crate = "…"` names it, with or without `::`.
        for ty in ["my_rpc::weft::Status", "::my_rpc::weft::Status", "weft::Status", "Status"] {
            assert_eq!(of("::my_rpc::weft", ty, "Status"), Some(Named::Weft), "{ty}");
        }
        assert_eq!(of("::my_rpc::weft", "my_rpc::weft::typed::Context", "Context"), Some(Named::Weft));
        assert_eq!(of("::my_rpc::weft", "my_rpc::Status", "Status"), Some(Named::Own));
    }
}
