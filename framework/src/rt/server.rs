use crate::{BoxFuture, BoxStream, Call, Client, Payload, PayloadStream, Status};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// Answers requests at the payload level. Generated servers implement it; so can hand-written
/// handlers. Every method has a default that answers `UNIMPLEMENTED`.
///
/// Returned futures and streams are `'static` because each call runs in its own task; they are
/// dropped when the requester cancels.
pub trait Handler: Send + Sync + 'static {
    /// Request/response.
    fn request_response(&self, call: Call, _data: Bytes) -> BoxFuture<'static, Result<Payload, Status>> {
        let status = unimplemented_route(&call);
        Box::pin(async move { Err(status) })
    }

    /// Fire-and-forget.
    fn fire_and_forget(&self, _call: Call, _data: Bytes) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// Request/stream.
    fn request_stream(&self, call: Call, _data: Bytes) -> BoxStream<'static, Result<Payload, Status>> {
        let status = unimplemented_route(&call);
        Box::pin(futures_util::stream::once(async move { Err(status) }))
    }

    /// Channel; `messages` yields the requester's messages, the first one included.
    fn request_channel(&self, call: Call, _messages: PayloadStream) -> BoxStream<'static, Result<Payload, Status>> {
        let status = unimplemented_route(&call);
        Box::pin(futures_util::stream::once(async move { Err(status) }))
    }
}

/// The status for a request to a route nobody serves.
pub fn unimplemented_route(call: &Call) -> Status {
    Status::unimplemented(format!("no method at route `{}`", call.route()))
}

/// A [`Handler`] that knows which routes it serves; what generated servers implement.
pub trait Service: Handler {
    /// The routes this service answers, e.g. `["greet.Greeter/SayHello", ...]`.
    fn routes(&self) -> &'static [&'static str];
}

/// Builds a [`Server`].
#[derive(Debug, Default)]
pub struct ServerBuilder {
    _todo: (),
}

impl ServerBuilder {
    /// Serves every route of `service`.
    pub fn add_service<S: Service>(self, _service: S) -> ServerBuilder {
        todo!()
    }

    /// Builds the server.
    pub fn build(self) -> Server {
        todo!()
    }
}

/// A set of services ready to serve connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Server {
    _todo: Arc<()>,
}

impl Server {
    /// Starts building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds a TCP listener and serves every connection it accepts, in a background task.
    pub async fn bind(&self, _addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<RunningServer> {
        todo!()
    }

    /// Serves one in-memory connection and returns a client for it: no sockets at all.
    pub async fn connect_in_memory(&self) -> Result<Client, Status> {
        todo!()
    }
}

/// A server accepting connections in the background.
#[derive(Debug)]
pub struct RunningServer {
    _todo: (),
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// Stops accepting, lets in-flight streams finish within the configured grace period, then
    /// closes every connection.
    pub async fn shutdown(self) {
        todo!()
    }
}
