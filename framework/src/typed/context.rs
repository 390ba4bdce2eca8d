//! [`Context`]: what a handler knows about the call it serves.

use crate::Call;
use crate::frame::metadata::{CompositeMetadata, MimeType};
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
    /// order.
    pub fn metadata(&self) -> &CompositeMetadata {
        self.call.metadata()
    }

    /// The content of the first metadata entry with MIME type `mime`, if the caller sent one.
    ///
    /// A client attaches entries with [`Request::with_metadata`](crate::Request::with_metadata).
    pub fn metadata_entry(&self, mime: &MimeType) -> Option<&Bytes> {
        self.metadata().entries.iter().find(|e| &e.mime == mime).map(|e| &e.content)
    }

    /// Whether the caller cancelled this call (or the connection went away).
    pub fn is_cancelled(&self) -> bool {
        self.call.is_cancelled()
    }

    /// Resolves when the caller cancels this call or the connection goes away.
    pub async fn cancelled(&self) {
        self.call.cancelled().await
    }

    /// A client for calling back the peer that made this call, over the same connection:
    /// wrap it in the generated client of a service the peer serves (a client serves services
    /// with [`ClientBuilder::add_service`](crate::ClientBuilder::add_service)). `None` for a
    /// context made by hand ([`Context::new`]). See [`Call::peer`].
    pub fn peer(&self) -> Option<&crate::Client> {
        self.call.peer()
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
