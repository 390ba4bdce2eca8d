//! `{Service}Server<T>`: holds the implementation in an `Arc`, has a private function per
//! method that serves a call of it, and implements `Service` (the routes, and that function
//! for each, which is what a server's route table dispatches to) and `Handler` (one `match` on
//! the route per RSocket request type, calling the same functions, for direct callers).

use super::{cfgs, codec, forwarded, impl_attrs, private, server_ident};
use crate::model::{Method, Model, Service};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

pub(super) fn server(service: &Service) -> TokenStream {
    let p = private(service);
    let vis = &service.vis;
    let ident = server_ident(service);
    let trait_ident = &service.ident;
    let attrs: Vec<_> = forwarded(&service.attrs).collect();
    let impl_attrs = impl_attrs(&service.attrs);
    // The functions that serve the methods, and the dispatch, name every method, deprecated or
    // not: their impls always allow `deprecated`.
    let service_cfgs: Vec<_> = cfgs(&service.attrs).collect();
    let own_attrs = &service.server_attrs;
    let doc = format!(
        " Serves the `{}` service by calling an implementation of [`{trait_ident}`]; add it to a server with `Server::builder().add_service(…)`.",
        service.full_name()
    );
    let name = ident.to_string();
    let routes = service.methods.iter().map(|m| {
        let cfgs = cfgs(&m.attrs);
        let route = service.route(m);
        quote!(#(#cfgs)* #route)
    });
    let serve_fns = service.methods.iter().map(|m| serve_fn(service, m));
    let registrations = service.methods.iter().map(|m| register(service, m));
    let codec = codec(service);
    let request_response = handler_method(service, &[Model::RequestResponse]);
    let fire_and_forget = handler_method(service, &[Model::FireAndForget]);
    let request_stream = handler_method(service, &[Model::RequestStream]);
    let request_channel = handler_method(service, &[Model::Channel, Model::ClientStreaming]);
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = " Cheap to clone: clones share the implementation."]
        #(#attrs)*
        #(#own_attrs)*
        #vis struct #ident<T> {
            inner: ::std::sync::Arc<T>,
        }

        #impl_attrs
        impl<T> #ident<T> {
            /// Serves `service`.
            #vis fn new(service: T) -> Self {
                Self::from_arc(::std::sync::Arc::new(service))
            }

            /// Serves a shared `service`.
            #vis fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                Self { inner: service }
            }

            /// The implementation.
            #vis fn inner(&self) -> &::std::sync::Arc<T> {
                &self.inner
            }
        }

        #impl_attrs
        impl<T> ::core::clone::Clone for #ident<T> {
            fn clone(&self) -> Self {
                Self { inner: <::std::sync::Arc<T> as ::core::clone::Clone>::clone(&self.inner) }
            }
        }

        #impl_attrs
        impl<T> ::core::fmt::Debug for #ident<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name).finish_non_exhaustive()
            }
        }

        #(#service_cfgs)*
        #[allow(deprecated)]
        impl<T: #trait_ident> #ident<T> {
            #(#serve_fns)*
        }

        #(#service_cfgs)*
        #[allow(deprecated)]
        impl<T: #trait_ident> #p::Handler for #ident<T> {
            #request_response
            #fire_and_forget
            #request_stream
            #request_channel
        }

        #impl_attrs
        impl<T: #trait_ident> #p::Service for #ident<T> {
            fn routes(&self) -> &'static [&'static str] {
                &[#(#routes),*]
            }

            fn __register(self, table: &mut #p::MethodTable) {
                table.data_mime(<#codec as #p::DataMime>::MIME);
                #(#registrations)*
            }
        }
    }
}

/// One `Handler` method: a `match` on the route over the methods of `models`.
fn handler_method(service: &Service, models: &[Model]) -> TokenStream {
    let p = private(service);
    let methods: Vec<_> = service.methods.iter().filter(|m| models.contains(&m.model)).collect();
    let (signature, reject, words, input) = match models[0] {
        Model::RequestResponse => (
            quote! {
                fn request_response(&self, call: #p::Call, data: #p::Bytes) -> #p::Response
            },
            quote!(#p::reject_unary),
            "request/response",
            quote!(data),
        ),
        Model::FireAndForget => (
            quote!(fn fire_and_forget(&self, call: #p::Call, data: #p::Bytes) -> #p::BoxFuture<'static, ()>),
            quote!(),
            "fire-and-forget",
            quote!(data),
        ),
        Model::RequestStream => (
            quote! {
                fn request_stream(&self, call: #p::Call, data: #p::Bytes)
                    -> #p::Responses
            },
            quote!(#p::reject_stream),
            "request/stream",
            quote!(data),
        ),
        Model::Channel | Model::ClientStreaming => (
            quote! {
                fn request_channel(&self, call: #p::Call, messages: #p::PayloadStream)
                    -> #p::Responses
            },
            quote!(#p::reject_stream),
            "channel",
            quote!(messages),
        ),
    };
    let otherwise = if models[0] == Model::FireAndForget {
        // Nobody to answer.
        quote!(#p::ignore())
    } else {
        quote!(#reject(#p::not_served(&call, #p::Service::routes(self), #words)))
    };
    if methods.is_empty() {
        let unused = if models[0] == Model::FireAndForget { quote!((call, #input)) } else { quote!(#input) };
        return quote!(#signature { let _ = #unused; #otherwise });
    }
    let arms = methods.iter().map(|m| arm(service, m));
    quote! {
        #signature {
            match call.route() {
                #(#arms)*
                _ => #otherwise,
            }
        }
    }
}

/// The private function that serves a call of `method`, e.g. `__serve_say_hello`.
fn serve_ident(method: &Method) -> syn::Ident {
    format_ident!("__serve_{}", method.ident.unraw())
}

/// `fn __serve_{method}(service, call, data) -> Response` (or the model's input and output):
/// what the route table and the `Handler`'s `match` both call.
fn serve_fn(service: &Service, method: &Method) -> TokenStream {
    let p = private(service);
    let body = match method.model {
        Model::RequestResponse => request_response(service, method),
        Model::FireAndForget => fire_and_forget(service, method),
        Model::RequestStream => request_stream(service, method),
        Model::Channel => channel(service, method),
        Model::ClientStreaming => client_streaming(service, method),
    };
    let (input, output) = match method.model {
        Model::RequestResponse => (quote!(data: #p::Bytes), quote!(#p::Response)),
        Model::FireAndForget => (quote!(data: #p::Bytes), quote!(#p::BoxFuture<'static, ()>)),
        Model::RequestStream => (quote!(data: #p::Bytes), quote!(#p::Responses)),
        Model::Channel | Model::ClientStreaming => (quote!(messages: #p::PayloadStream), quote!(#p::Responses)),
    };
    let cfgs = cfgs(&method.attrs);
    let ident = serve_ident(method);
    let doc = format!(" Serves a call of `{}` with the implementation.", service.route(method));
    quote! {
        #[doc = #doc]
        #(#cfgs)*
        fn #ident(service: &::std::sync::Arc<T>, call: #p::Call, #input) -> #output {
            let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
            #body
        }
    }
}

/// `table.unary(route, &self.inner, Self::__serve_{method});`, or the model's.
fn register(service: &Service, method: &Method) -> TokenStream {
    let add = match method.model {
        Model::RequestResponse => quote!(unary),
        Model::FireAndForget => quote!(fire_and_forget),
        Model::RequestStream => quote!(stream),
        Model::Channel | Model::ClientStreaming => quote!(channel),
    };
    let cfgs = cfgs(&method.attrs);
    let route = service.route(method);
    let ident = serve_ident(method);
    quote! {
        #(#cfgs)*
        table.#add(#route, &self.inner, Self::#ident);
    }
}

fn arm(service: &Service, method: &Method) -> TokenStream {
    let input = if method.model.streams_requests() { quote!(messages) } else { quote!(data) };
    let cfgs = cfgs(&method.attrs);
    let route = service.route(method);
    let ident = serve_ident(method);
    quote! {
        #(#cfgs)*
        #route => Self::#ident(&self.inner, call, #input),
    }
}

/// `move |ctx, request| async move { <T as Trait>::method(&*service, [ctx,] request).await }`
///
/// A response stream is boxed inside the block: its `impl Stream` type names the borrow of
/// `service`, which the block owns, so it cannot leave the block as it is.
fn handler(service: &Service, method: &Method) -> TokenStream {
    let p = private(service);
    let trait_ident = &service.ident;
    let ident = &method.ident;
    let (ctx_param, ctx_arg) = match method.context_ident {
        Some(_) => (quote!(ctx), quote!(ctx,)),
        None => (quote!(_), quote!()),
    };
    let call = quote!(<T as #trait_ident>::#ident(&*service, #ctx_arg request).await);
    let body = if method.model.streams_responses() {
        quote!(::core::result::Result::map(#call, #p::box_stream))
    } else {
        call
    };
    quote!(move |#ctx_param, request| async move { #body })
}

fn request_response(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, route, handler) =
        (private(service), codec(service), service.route(method), handler(service, method));
    let Method { request, response, .. } = method;
    quote!(#p::serve_unary::<#codec, #request, #response, _, _>(call, data, #route, #handler))
}

fn fire_and_forget(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, route, handler) =
        (private(service), codec(service), service.route(method), handler(service, method));
    let request = &method.request;
    quote!(#p::serve_fire_and_forget::<#codec, #request, _, _>(call, data, #route, #handler))
}

fn request_stream(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, route, handler) =
        (private(service), codec(service), service.route(method), handler(service, method));
    let Method { request, response, .. } = method;
    quote!(#p::serve_stream::<#codec, #request, #response, _, _>(call, data, #route, #handler))
}

fn channel(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, route, handler) =
        (private(service), codec(service), service.route(method), handler(service, method));
    let Method { request, response, .. } = method;
    quote!(#p::serve_channel::<#codec, #request, #response, _, _>(call, messages, #route, #handler))
}

fn client_streaming(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, route, handler) =
        (private(service), codec(service), service.route(method), handler(service, method));
    let Method { request, response, .. } = method;
    quote!(#p::serve_client_streaming::<#codec, #request, #response, _, _>(call, messages, #route, #handler))
}
