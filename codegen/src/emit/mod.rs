//! The emitter: the model in, Rust code out. The server trait is here; the client and the
//! server each have a module with one function per interaction model.
//!
//! Everything generated names the runtime by absolute path through `{crate}::__private` and the
//! standard library through `::core`/`::std`, so it works under `#![no_implicit_prelude]` and
//! with the crate renamed.

mod client;
mod server;

use crate::model::{self, Method, Model, Service};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Attribute;

/// Which parts of a service to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Parts {
    /// `{Service}Client`.
    pub client: bool,
    /// The server trait and `{Service}Server<T>`, which serves an implementation of it.
    pub server: bool,
}

impl Default for Parts {
    /// Both the client and the server, as the trait macro emits them.
    fn default() -> Parts {
        Parts { client: true, server: true }
    }
}

/// Emits the server trait, the client and the server of `service`.
pub fn service(service: &Service) -> TokenStream {
    service_parts(service, Parts::default())
}

/// Emits the `parts` of `service`: the client, or the server trait and the server, or all
/// three. Docs link only to items that exist.
pub fn service_parts(service: &Service, parts: Parts) -> TokenStream {
    let server_trait = parts.server.then(|| server_trait(service, parts));
    let client = parts.client.then(|| client::client(service, parts));
    let server = parts.server.then(|| server::server(service));
    quote! {
        #server_trait
        #client
        #server
    }
}

/// `::weft::__private`, or the override's.
fn private(service: &Service) -> TokenStream {
    let krate = &service.krate;
    quote!(#krate::__private)
}

fn codec(service: &Service) -> TokenStream {
    match &service.codec {
        Some(codec) => quote!(#codec),
        None => {
            let p = private(service);
            quote!(#p::ProstCodec)
        }
    }
}

fn docs(lines: &[String]) -> TokenStream {
    quote!(#(#[doc = #lines])*)
}

/// `cfg` and `deprecated` attributes, which follow an item onto everything generated for it.
fn forwarded(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| model::is_forwarded(a))
}

fn cfgs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg"))
}

/// The attributes of an `impl` block for a service's struct: its `cfg`s, and for a deprecated
/// service `#[allow(deprecated)]` instead of `#[deprecated]`, which rustc rejects on trait impls
/// (`useless_deprecated`) and which would not stop the impl's own uses from warning.
fn impl_attrs(attrs: &[Attribute]) -> TokenStream {
    let cfgs = cfgs(attrs);
    let allow = attrs.iter().any(|a| a.path().is_ident("deprecated")).then(|| quote!(#[allow(deprecated)]));
    quote!(#(#cfgs)* #allow)
}

fn client_ident(service: &Service) -> syn::Ident {
    format_ident!("{}Client", service.ident)
}

fn server_ident(service: &Service) -> syn::Ident {
    format_ident!("{}Server", service.ident)
}

/// The trait users implement: each method desugared from `async fn` to a function returning
/// `impl Future + Send`, because the server runs every call in a task of its own. An `impl`
/// may still write `async fn`.
fn server_trait(service: &Service, parts: Parts) -> TokenStream {
    let Service { ident, vis, attrs, supertraits, .. } = service;
    let docs = docs(&service.docs);
    let client = client_ident(service);
    let server = server_ident(service);
    let call = if parts.client { format!("; call it with [`{client}`]") } else { String::new() };
    let footer = format!(" Implement it and serve it with [`{server}`]{call}. Service `{}`.", service.full_name());
    let methods = service.methods.iter().map(|m| trait_method(service, m));
    quote! {
        #docs
        #[doc = ""]
        #[doc = #footer]
        #(#attrs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + 'static #(+ #supertraits)* {
            #(#methods)*
        }
    }
}

fn trait_method(service: &Service, method: &Method) -> TokenStream {
    let Method { ident, request_ident, attrs, .. } = method;
    let docs = docs(&method.docs);
    let idempotent =
        if method.idempotent { " Idempotent: may be retried, so one call may run it more than once." } else { "" };
    let route_doc = format!(" Route `{}` ({}).{idempotent}", service.route(method), method.model.describe());
    let (context, request, output) = match &method.spelled {
        Some(spelled) => {
            let context = spelled.context.as_ref().map(|ty| quote!(#ty));
            let (request, output) = (&spelled.request, &spelled.output);
            (context, quote!(#request), quote!(#output))
        }
        None => spell(service, method),
    };
    let context = method.context_ident.as_ref().zip(context).map(|(ctx, ty)| quote!(#ctx: #ty,));
    let body = match &method.default_body {
        Some(block) => quote!({ async move #block }),
        None => quote!(;),
    };
    quote! {
        #docs
        #[doc = ""]
        #[doc = #route_doc]
        #(#attrs)*
        fn #ident(&self, #context #request_ident: #request)
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        #body
    }
}

/// The context, request and output types of a trait method, spelled through `__private`.
fn spell(service: &Service, method: &Method) -> (Option<TokenStream>, TokenStream, TokenStream) {
    let p = private(service);
    let Method { request, response, .. } = method;
    let context = method.context_ident.as_ref().map(|_| quote!(#p::Context));
    let request = if method.model.streams_requests() { quote!(#p::Streaming<#request>) } else { quote!(#request) };
    let output = match method.model {
        Model::FireAndForget => quote!(()),
        Model::RequestResponse | Model::ClientStreaming => quote!(::core::result::Result<#response, #p::Status>),
        Model::RequestStream | Model::Channel => quote! {
            ::core::result::Result<
                impl #p::Stream<Item = ::core::result::Result<#response, #p::Status>> + ::core::marker::Send + 'static,
                #p::Status,
            >
        },
    };
    (context, request, output)
}
