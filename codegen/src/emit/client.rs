//! `{Service}Client`: a struct around the connection handle, one async method per service
//! method, each a single call into `__private`.

use super::{Parts, client_ident, codec, docs, forwarded, impl_attrs, private};
use crate::model::{Method, Model, Service};
use proc_macro2::TokenStream;
use quote::quote;

pub(super) fn client(service: &Service, parts: Parts) -> TokenStream {
    let p = private(service);
    let vis = &service.vis;
    let ident = client_ident(service);
    let trait_ident = &service.ident;
    let attrs: Vec<_> = forwarded(&service.attrs).collect();
    let impl_attrs = impl_attrs(&service.attrs);
    let own_attrs = &service.client_attrs;
    let doc = if parts.server {
        format!(" A client for the `{}` service: one method per method of [`{trait_ident}`].", service.full_name())
    } else {
        format!(" A client for the `{}` service: one method per method of the service.", service.full_name())
    };
    let methods = service.methods.iter().map(|m| method(service, m));
    let codec = codec(service);
    let name = ident.to_string();
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = " Cheap to clone: every clone calls over the same connection, and calls run concurrently."]
        #(#attrs)*
        #(#own_attrs)*
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #ident {
            client: #p::Client,
            data_mime: #p::DataMimeCheck,
        }

        #impl_attrs
        impl #ident {
            /// A client that calls the service over `client`'s connection.
            ///
            /// The connection's SETUP must have announced the data MIME type of the service's
            /// codec (see `weft::DataMime`); otherwise every call fails with
            /// `FAILED_PRECONDITION`, and sends nothing.
            #vis fn new(client: #p::Client) -> Self {
                let data_mime = #p::DataMimeCheck::new(&client, #name, <#codec as #p::DataMime>::MIME);
                Self { client, data_mime }
            }

            /// Connects to the server at `addr` over TCP, as `Client::connect` does, announcing
            /// the data MIME type of the service's codec in SETUP, and returns a client that
            /// calls the service over that connection.
            #vis async fn connect(addr: impl #p::ToSocketAddrs) -> ::core::result::Result<Self, #p::Error> {
                #p::Client::builder().data_mime(<#codec as #p::DataMime>::MIME).connect(addr).await.map(Self::new)
            }

            /// The connection handle this client calls over.
            #vis fn inner(&self) -> &#p::Client {
                &self.client
            }

            #(#methods)*
        }

        #impl_attrs
        impl ::core::convert::From<#p::Client> for #ident {
            fn from(client: #p::Client) -> Self {
                Self::new(client)
            }
        }
    }
}

fn method(service: &Service, method: &Method) -> TokenStream {
    let body = match method.model {
        Model::RequestResponse => request_response(service, method),
        Model::FireAndForget => fire_and_forget(service, method),
        Model::RequestStream => request_stream(service, method),
        Model::Channel => channel(service, method),
        Model::ClientStreaming => client_streaming(service, method),
    };
    let docs = docs(&method.docs);
    let attrs = forwarded(&method.attrs);
    let route = service.route(method);
    let idempotent = if method.idempotent { " Idempotent: may be retried." } else { "" };
    let call_doc = format!(" Calls `{route}` ({}).{idempotent}", method.model.describe());
    quote! {
        #docs
        #[doc = ""]
        #[doc = #call_doc]
        #(#attrs)*
        #body
    }
}

fn request_response(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, vis, route) = (private(service), codec(service), &service.vis, method_route(service, method));
    let Method { ident, request, response, .. } = method;
    quote! {
        #vis async fn #ident(&self, request: impl #p::IntoRequest<#request>)
            -> ::core::result::Result<#response, #p::Status>
        {
            #p::call_unary::<#codec, #request, #response>(self.data_mime.client(&self.client)?, #route, #p::IntoRequest::into_request(request)).await
        }
    }
}

fn fire_and_forget(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, vis, route) = (private(service), codec(service), &service.vis, method_route(service, method));
    let Method { ident, request, .. } = method;
    quote! {
        #[doc = ""]
        /// Resolves once the request is handed to the connection; the server sends no answer.
        #vis async fn #ident(&self, request: impl #p::IntoRequest<#request>)
            -> ::core::result::Result<(), #p::Status>
        {
            #p::call_fire_and_forget::<#codec, #request>(self.data_mime.client(&self.client)?, #route, #p::IntoRequest::into_request(request)).await
        }
    }
}

fn request_stream(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, vis, route) = (private(service), codec(service), &service.vis, method_route(service, method));
    let Method { ident, request, response, .. } = method;
    quote! {
        #vis async fn #ident(&self, request: impl #p::IntoRequest<#request>)
            -> ::core::result::Result<#p::Streaming<#response>, #p::Status>
        {
            #p::call_stream::<#codec, #request, #response>(self.data_mime.client(&self.client)?, #route, #p::IntoRequest::into_request(request)).await
        }
    }
}

fn channel(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, vis, route) = (private(service), codec(service), &service.vis, method_route(service, method));
    let Method { ident, request, response, .. } = method;
    quote! {
        #[doc = ""]
        /// The call starts once `requests` yields its first message or ends; if it ends
        /// first, the server's method sees an empty request stream.
        #vis async fn #ident(&self, requests: impl #p::IntoStreamingRequest<Message = #request>)
            -> ::core::result::Result<#p::Streaming<#response>, #p::Status>
        {
            #p::call_channel::<#codec, #request, #response, _>(
                self.data_mime.client(&self.client)?,
                #route,
                #p::IntoStreamingRequest::into_streaming_request(requests),
            )
            .await
        }
    }
}

fn client_streaming(service: &Service, method: &Method) -> TokenStream {
    let (p, codec, vis, route) = (private(service), codec(service), &service.vis, method_route(service, method));
    let Method { ident, request, response, .. } = method;
    quote! {
        #[doc = ""]
        /// The call starts once `requests` yields its first message or ends; if it ends
        /// first, the server's method sees an empty request stream.
        #vis async fn #ident(&self, requests: impl #p::IntoStreamingRequest<Message = #request>)
            -> ::core::result::Result<#response, #p::Status>
        {
            #p::call_client_streaming::<#codec, #request, #response, _>(
                self.data_mime.client(&self.client)?,
                #route,
                #p::IntoStreamingRequest::into_streaming_request(requests),
            )
            .await
        }
    }
}

/// The method's route for the call functions, with its request metadata written now (see
/// `Service::request_metadata`): `MethodRoute::new("pkg.Svc/Method", b"…")`, and for an
/// idempotent method `.idempotent()` after it, the mark the client reads to retry and hedge.
fn method_route(service: &Service, method: &Method) -> TokenStream {
    let p = private(service);
    let route = service.route(method);
    let metadata = proc_macro2::Literal::byte_string(&service.request_metadata(method));
    let idempotent = method.idempotent.then(|| quote!(.idempotent()));
    quote!(#p::MethodRoute::new(#route, #metadata) #idempotent)
}
