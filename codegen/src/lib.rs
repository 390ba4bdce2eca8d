//! Weft's service model and code generator, shared by the `#[weft::service]` trait macro and
//! the `build.rs` API for `.proto` files (`configure()`, behind the `proto` feature).
//!
//! The pipeline has four stages, each a module:
//!
//! 1. **parse** — the attribute's arguments and the annotated trait, into syntax;
//! 2. **validate** — the rules of a service checked on that syntax, each broken rule recorded
//!    in a [`Ctxt`] on the offending tokens, and the trait lowered into…
//! 3. **[`model`]** — the service model: service, methods, interaction models, routes. Every
//!    front-end produces it; route collisions are checked here, for all front-ends;
//! 4. **[`emit`]** — the model into Rust: the server trait, `{Service}Client` and
//!    `{Service}Server<T>`.
//!
//! This crate depends on `proc-macro2`, `syn` and `quote` only, never on `proc_macro`, so the
//! macro, build scripts and plain unit tests share it.
//!
//! # `.proto` files
//!
//! With the `proto` feature, a second front-end reads `.proto` files from a build script:
//! protox parses them (no `protoc`), prost-build generates the messages, and each service is
//! lowered into the same model and emitted by the same emitter as a trait. The feature is off by
//! default so that the macro, which never needs it, builds quickly. See `configure()` and the
//! `proto` module for the mapping from `.proto` to Rust.

mod ctxt;
pub mod emit;
pub mod model;
mod parse;
#[cfg(feature = "proto")]
pub mod proto;
mod validate;

pub use ctxt::Ctxt;
/// prost-build, which generates the messages, for [`Builder::prost_config`].
#[cfg(feature = "proto")]
pub use prost_build;
#[cfg(feature = "proto")]
pub use proto::{Builder, Error, OPTIONS_PROTO, OPTIONS_PROTO_NAME, configure};

use proc_macro2::TokenStream;

/// Expands `#[weft::service(attr)] item`: the server trait, client and server, or, if the input
/// breaks a rule, the item as written plus one `compile_error!` per broken rule (so the IDE
/// keeps seeing the trait).
pub fn expand_service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = parse::args(&cx, attr);
    let trait_ = syn::parse2::<syn::ItemTrait>(item.clone());
    let service = match &trait_ {
        Ok(trait_) => Some(validate::service(&cx, args, trait_)),
        Err(e) => {
            cx.syn_error(syn::Error::new(
                e.span(),
                "`#[weft::service]` goes on a trait: write `#[weft::service] pub trait Greeter { … }`",
            ));
            None
        }
    };
    if let Some(service) = &service {
        service.check_routes(&cx);
    }
    match (cx.check(), service) {
        (Ok(()), Some(service)) => emit::service(&service),
        (Err(errors), _) => {
            let errors = ctxt::to_compile_errors(errors);
            let item = match trait_ {
                Ok(trait_) => without_weft_attrs(trait_).unwrap_or(item),
                Err(_) => item,
            };
            quote::quote!(#item #errors)
        }
        (Ok(()), None) => unreachable!("no service and no error"),
    }
}

/// The trait as written, less the `#[weft(...)]` attributes on its methods, which only the macro
/// understands (rustc would report each as an unknown attribute, on top of the macro's errors);
/// `None` if there are none, so that the trait is echoed token for token.
fn without_weft_attrs(mut trait_: syn::ItemTrait) -> Option<TokenStream> {
    let mut found = false;
    for item in &mut trait_.items {
        if let syn::TraitItem::Fn(f) = item {
            let before = f.attrs.len();
            f.attrs.retain(|a| !parse::is_weft_attr(a));
            found |= f.attrs.len() != before;
        }
    }
    found.then(|| quote::ToTokens::into_token_stream(trait_))
}
