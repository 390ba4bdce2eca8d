//! The service model: what every front-end (the `#[service]` trait, `.proto` files) produces
//! and the emitter consumes.
//!
//! It holds Rust syntax only where Rust code comes from the user (message types, attributes,
//! default bodies); names and routes are plain data, so a front-end that reads no Rust can fill
//! it in.

use crate::ctxt::Ctxt;
use proc_macro2::{Ident, Span};
use std::collections::HashMap;
use syn::{Attribute, Block, Path, Type, TypeParamBound, Visibility};

/// One service.
#[derive(Debug, Clone)]
pub struct Service {
    /// The Rust name of the server trait, e.g. `Greeter`; the client is `{ident}Client` and the
    /// server `{ident}Server`.
    pub ident: Ident,
    /// The service's name in routes, e.g. `Greeter`.
    pub name: String,
    /// The package, e.g. `greet`; routes are `{package}.{name}/{Method}`, or `{name}/{Method}`
    /// without one.
    pub package: Option<String>,
    /// Visibility of every generated item.
    pub vis: Visibility,
    /// Doc lines (without the leading `///`), from the trait or the `.proto` comments.
    pub docs: Vec<String>,
    /// Other attributes of the trait; `cfg` and `deprecated` among them are forwarded to every
    /// generated item, the rest stay on the trait.
    pub attrs: Vec<Attribute>,
    /// Extra attributes for the `{Service}Client` struct only (the `.proto` builder's
    /// `client_attribute`).
    pub client_attrs: Vec<Attribute>,
    /// Extra attributes for the `{Service}Server` struct only (the `.proto` builder's
    /// `server_attribute`).
    pub server_attrs: Vec<Attribute>,
    /// Supertraits the user asked for, besides the `Send + Sync + 'static` Weft adds.
    pub supertraits: Vec<TypeParamBound>,
    /// Path of the runtime crate, `::weft` unless overridden with `crate = "…"`.
    pub krate: Path,
    /// The codec type; `None` means `ProstCodec`.
    pub codec: Option<Path>,
    /// The methods, in declaration order.
    pub methods: Vec<Method>,
}

/// One method of a service.
#[derive(Debug, Clone)]
pub struct Method {
    /// The Rust name, e.g. `say_hello`.
    pub ident: Ident,
    /// The name in routes, e.g. `SayHello` (see [`pascal_case`]).
    pub name: String,
    /// How it is called.
    pub model: Model,
    /// The request message type (for streaming requests: the type of each message).
    pub request: Type,
    /// The response message type (for streaming responses: the type of each message; for
    /// fire-and-forget: `()`, unused).
    pub response: Type,
    /// The name of the request parameter in the server trait.
    pub request_ident: Ident,
    /// The name of the [`Context`] parameter in the server trait, if the handler takes one.
    ///
    /// [`Context`]: https://docs.rs/weft/latest/weft/struct.Context.html
    pub context_ident: Option<Ident>,
    /// Doc lines.
    pub docs: Vec<String>,
    /// Other attributes; `cfg` and `deprecated` are forwarded to everything generated for the
    /// method, the rest stay on the trait method. (Weft's own `#[weft(...)]` is not among them:
    /// the front-end reads it into fields such as [`Method::idempotent`].)
    pub attrs: Vec<Attribute>,
    /// The server trait method's parameter and return types as the front-end spelled them, if
    /// it did (the trait front-end does, so that the user's imports of `Status`, `Streaming`
    /// and `Context` stay used); otherwise the emitter spells them through `__private`.
    pub spelled: Option<Spelled>,
    /// A default body for the trait method, if the user wrote one.
    pub default_body: Option<Block>,
    /// Whether the method is idempotent (`#[weft(idempotent)]`, `option (weft.idempotent) =
    /// true;` or `option idempotency_level = IDEMPOTENT;`): its calls may be sent more than
    /// once, so the client may retry and hedge them. Never set for a method that takes a stream
    /// of requests ([`Model::streams_requests`]), which cannot be replayed.
    pub idempotent: bool,
    /// Where the method was declared, for errors.
    pub span: Span,
}

/// Types of a server trait method as written by the user.
#[derive(Debug, Clone)]
pub struct Spelled {
    /// The context parameter's type, if there is one.
    pub context: Option<Type>,
    /// The request parameter's type, e.g. `Streaming<Chunk>`.
    pub request: Type,
    /// The output type, `()` for fire-and-forget; a response stream's `impl Stream` carries
    /// `Send + 'static`.
    pub output: Type,
}

/// The RSocket interaction model a method uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// One request, one response: REQUEST_RESPONSE.
    RequestResponse,
    /// One request, no response: REQUEST_FNF.
    FireAndForget,
    /// One request, a stream of responses: REQUEST_STREAM.
    RequestStream,
    /// A stream each way: REQUEST_CHANNEL.
    Channel,
    /// A stream of requests, one response: REQUEST_CHANNEL answered by exactly one PAYLOAD.
    ClientStreaming,
}

impl Model {
    /// The model's name in words, as used in docs and errors.
    pub fn describe(self) -> &'static str {
        match self {
            Model::RequestResponse => "request/response",
            Model::FireAndForget => "fire-and-forget",
            Model::RequestStream => "request/stream",
            Model::Channel => "channel",
            Model::ClientStreaming => "client streaming",
        }
    }

    /// Whether the caller sends a stream of messages.
    pub fn streams_requests(self) -> bool {
        matches!(self, Model::Channel | Model::ClientStreaming)
    }

    /// Whether the server answers with a stream of messages.
    pub fn streams_responses(self) -> bool {
        matches!(self, Model::RequestStream | Model::Channel)
    }
}

impl Service {
    /// The fully qualified service name, `{package}.{name}` or `{name}`.
    pub fn full_name(&self) -> String {
        match &self.package {
            Some(package) => format!("{package}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The route of `method`, e.g. `greet.Greeter/SayHello`.
    pub fn route(&self, method: &Method) -> String {
        format!("{}/{}", self.full_name(), method.name)
    }

    /// The request metadata of a call to `method` with no metadata of its own: composite
    /// metadata holding the routing entry alone (the well-known `message/x.rsocket.routing.v0`
    /// id 0x7E with the high bit set, a 24-bit length, one tag with its 8-bit length). Written
    /// at compile time, so that a generated call encodes nothing of it at run time. The route
    /// is 1 to 255 bytes long ([`Service::check_routes`]).
    pub fn request_metadata(&self, method: &Method) -> Vec<u8> {
        let route = self.route(method);
        let tag = u8::try_from(route.len()).unwrap_or(u8::MAX);
        let len = 1 + u32::from(tag);
        let mut out = vec![0x80 | 0x7E];
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(tag);
        out.extend_from_slice(&route.as_bytes()[..usize::from(tag)]);
        out
    }

    /// Reports routes that RSocket's routing metadata cannot carry (a tag holds at most 255
    /// bytes), and methods whose routes are the same: a server could not tell them apart.
    pub fn check_routes(&self, cx: &Ctxt) {
        let mut seen: HashMap<String, &Method> = HashMap::new();
        for method in &self.methods {
            let route = self.route(method);
            if route.len() > 255 {
                let shown: String = route.chars().take(48).collect();
                cx.error_at(
                    method.ident.span(),
                    format!(
                        "this method's route (`{shown}…`) is {} bytes long; a route travels as an RSocket routing tag, \
                         which holds at most 255 bytes: shorten the package, the service or the method name",
                        route.len()
                    ),
                );
            }
            if let Some(first) = seen.get(&route) {
                cx.error_at(
                    method.ident.span(),
                    format!(
                        "`{}` has the route `{route}`, which `{}` already has; rename one of them \
                         (routes use the method name in PascalCase, so they must differ by more than underscores and case)",
                        method.ident, first.ident
                    ),
                );
            } else {
                seen.insert(route, method);
            }
        }
    }
}

/// A method name in routes: the Rust name in PascalCase (`say_hello` → `SayHello`), with any
/// `r#` removed. Names written in PascalCase already (as in `.proto` files) are unchanged.
pub fn pascal_case(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Names the generated client defines itself (`{Service}Client::new`, `::connect`, `::inner`),
/// which no service method may take. The trait macro rejects them; the `.proto` front-end,
/// which cannot ask for a rename, appends `_` (`rpc New` → `new_`).
pub const RESERVED_CLIENT_NAMES: [&str; 3] = ["new", "connect", "inner"];

/// Whether an attribute follows a method or service onto everything generated for it.
pub fn is_forwarded(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") || attr.path().is_ident("deprecated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_of_rust_and_proto_names() {
        for (rust, route) in [
            ("say_hello", "SayHello"),
            ("list", "List"),
            ("r#type", "Type"),
            ("get_v2", "GetV2"),
            ("SayHello", "SayHello"),
            ("sayHello", "SayHello"),
            ("_private", "Private"),
        ] {
            assert_eq!(pascal_case(rust), route, "{rust}");
        }
    }
}
