//! [`Context`]: what a handler knows about the call it serves.

use crate::Call;
use crate::frame::metadata::{AsMetadataKey, CompositeMetadata};
use bytes::Bytes;

/// The call a handler is serving: its route, the metadata the caller attached, and whether the
/// caller has cancelled.
///
/// A service method receives it when its first parameter has type `Context`:
///
/// ```
/// use weft::{Context, Status};
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct Ping {}
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct Pong {}
///
/// #[weft::service]
/// pub trait Pinger {
///     async fn ping(&self, ctx: Context, ping: Ping) -> Result<Pong, Status>;
/// }
/// ```
///
/// It is cheap to clone; move a clone into work you spawn and have that work stop when
/// [`cancelled`](Context::cancelled) resolves. The handler's own future needs no such care: it
/// is dropped when the caller cancels.
#[derive(Clone, Debug)]
pub struct Context {
    call: Call,
}

impl Context {
    /// The context of `call`. Generated servers make one per call; build one yourself to call
    /// a service implementation directly, e.g. in a unit test:
    /// `Context::new(Call::new("greet.Greeter/SayHello"))`.
    pub fn new(call: Call) -> Context {
        Context { call }
    }

    /// The route the caller named, e.g. `greet.Greeter/SayHello`.
    pub fn route(&self) -> &str {
        self.call.route()
    }

    /// Every composite metadata entry the caller sent (the routing entry included), in wire
    /// order. Read an entry by its key with [`get`](CompositeMetadata::get) or
    /// [`get_str`](CompositeMetadata::get_str):
    ///
    /// ```
    /// use weft::{Context, Status};
    /// # #[derive(Clone, PartialEq, prost::Message)] pub struct Ping {}
    /// # #[derive(Clone, PartialEq, prost::Message)] pub struct Pong {}
    /// # #[weft::service]
    /// # pub trait Pinger { async fn ping(&self, ctx: Context, ping: Ping) -> Result<Pong, Status>; }
    /// # struct MyPinger;
    ///
    /// impl Pinger for MyPinger {
    ///     async fn ping(&self, ctx: Context, _ping: Ping) -> Result<Pong, Status> {
    ///         let Some(user) = ctx.metadata().get_str("x-user-id") else {
    ///             return Err(Status::unauthenticated("no x-user-id"));
    ///         };
    ///         println!("ping from {user}");
    ///         Ok(Pong {})
    ///     }
    /// }
    /// ```
    pub fn metadata(&self) -> &CompositeMetadata {
        self.call.metadata()
    }

    /// The content of the first metadata entry named by `key` (a string or a
    /// [`MimeType`](crate::MimeType)), if the caller sent one: `ctx.metadata().get(key)`.
    ///
    /// A client attaches entries with [`Request::with_metadata`](crate::Request::with_metadata);
    /// [`CompositeMetadata::get`] says how keys compare (by meaning: a well-known type's name
    /// finds the entry sent under its id, and case does not matter).
    ///
    /// ```
    /// use weft::{Call, Context};
    ///
    /// let ctx = Context::new(Call::new("greet.Greeter/SayHello").with_metadata("x-user-id", "42"));
    /// assert_eq!(ctx.metadata_entry("x-user-id").map(|v| &v[..]), Some(&b"42"[..]));
    /// assert_eq!(ctx.metadata().get_str("x-user-id"), Some("42"));
    /// ```
    pub fn metadata_entry(&self, key: impl AsMetadataKey) -> Option<&Bytes> {
        self.metadata().get(key)
    }

    /// Whether the caller cancelled this call (or the connection went away).
    pub fn is_cancelled(&self) -> bool {
        self.call.is_cancelled()
    }

    /// Resolves when the caller cancels this call or the connection goes away.
    pub async fn cancelled(&self) {
        self.call.cancelled().await
    }

    /// When the caller stops waiting, if it set a deadline: the time left it sent
    /// ([`TIMEOUT_MIME`](crate::TIMEOUT_MIME)), counted from when the request arrived. At the
    /// deadline the handler is stopped (its future or stream is dropped) and the caller gets
    /// `DEADLINE_EXCEEDED`; work spawned from the handler should stop then too. A call on to
    /// another service takes what is left with [`Request::within`](crate::Request::within).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.call.deadline()
    }

    /// What is left of the [`deadline`](Context::deadline), if the caller set one (zero once it
    /// has passed).
    pub fn remaining(&self) -> Option<std::time::Duration> {
        self.call.remaining()
    }

    /// A client for calling back the peer that made this call, over the same connection:
    /// wrap it in the generated client of a service the peer serves (a client serves services
    /// with [`ClientBuilder::add_service`](crate::ClientBuilder::add_service)). `None` for a
    /// context made by hand ([`Context::new`]). See [`Call::peer`].
    pub fn peer(&self) -> Option<&crate::Client> {
        self.call.peer()
    }

    /// The credentials this request presented itself (RSocket's Authentication extension, see
    /// [`Request::with_credentials`](crate::Request::with_credentials)); `None` if it
    /// presented none, or none that decode. The connection's own, from SETUP, are the
    /// server's [`authenticate`](crate::ServerBuilder::authenticate) hook's to check; what it
    /// made of them is [`principal`](Context::principal).
    pub fn credentials(&self) -> Option<crate::Credentials> {
        let content = self.metadata().get(crate::frame::auth::AUTHENTICATION_MIME)?;
        crate::Credentials::decode(content).ok()
    }

    /// What the server's [`authenticate`](crate::ServerBuilder::authenticate) hook made of
    /// the connection's SETUP, if it is a `P`: the caller's identity, for every request of
    /// the connection. See [`Call::principal`].
    pub fn principal<P: std::any::Any + Send + Sync>(&self) -> Option<&P> {
        self.call.principal()
    }

    /// The caller's address, over TCP (plain, TLS or WebSocket). See [`Call::remote_addr`].
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.call.remote_addr()
    }

    /// The certificate chain the caller presented in its TLS handshake (DER, its own
    /// certificate first), on a server that asks for one (mutual TLS). See
    /// [`Call::peer_certificates`].
    pub fn peer_certificates(&self) -> Option<&[bytes::Bytes]> {
        self.call.peer_certificates()
    }

    /// The payload-level call.
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The payload-level call, by value.
    pub fn into_call(self) -> Call {
        self.call
    }
}

impl From<Call> for Context {
    fn from(call: Call) -> Context {
        Context::new(call)
    }
}
