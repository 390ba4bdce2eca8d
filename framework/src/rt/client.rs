use super::drive::Drive;
use super::driver::{self, Command, Control, Driver, Handles, Inbound, Opened};
use super::inbox;
use super::reply;
use super::server::{NoHandler, RouteHash};
use super::transport::Transport;
use crate::conn::{Connection, Kind};
use crate::frame::metadata::{CompositeMetadata, well_known};
use crate::{Call, Config, Handler, Payload, PayloadStream, Responses, Status};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A handle for making requests on one connection. Cheap to clone; every clone shares the
/// connection, and many calls run on it at once. The connection closes when the last clone
/// and the last stream obtained from it are dropped, or on [`Client::close`].
///
/// ```
/// # async fn demo() -> Result<(), weft::Status> {
/// use weft::{Call, Client};
///
/// let client = Client::connect("127.0.0.1:7878").await?;
/// let reply = client.request_response(Call::new("echo.Echo/Unary"), "hi".into()).await?;
/// println!("{:?}", reply.data);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    commands: inbox::Sender,
    handles: Handles,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("closed", &self.handles.closed.borrow().is_some()).finish()
    }
}

impl Client {
    /// Connects over TCP with the default [`Config`].
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Result<Client, Status> {
        Client::connect_with(addr, Config::default()).await
    }

    /// Connects over TCP with `config`.
    pub async fn connect_with(addr: impl tokio::net::ToSocketAddrs, config: Config) -> Result<Client, Status> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect: {e}")))?;
        Ok(Client::over(stream, config))
    }

    /// Starts the client side of a connection over any [`Transport`] (SETUP is sent at once).
    /// Must be called within a tokio runtime: the connection's driver is spawned on it.
    pub fn over<T: Transport>(transport: T, config: Config) -> Client {
        Client::over_with_handler(transport, config, NoHandler)
    }

    /// Like [`Client::over`], and answers the server's requests on this connection with
    /// `handler` (RSocket connections carry requests both ways; a server handler reaches this
    /// side through [`Call::peer`]).
    pub fn over_with_handler<T: Transport>(transport: T, config: Config, handler: impl Handler) -> Client {
        let conn = Connection::client(config, tokio::time::Instant::now().into_std());
        let drive = Drive::new();
        let (driver, commands, handles) =
            Driver::new(conn, transport, Arc::new(handler), None, None, Some(drive.clone()));
        drive.start(driver.run());
        Client { commands, handles }
    }

    pub(crate) fn from_parts(commands: inbox::Sender, handles: Handles) -> Client {
        Client { commands, handles }
    }

    /// Request/response: one request, one response.
    pub async fn request_response(&self, call: Call, data: Bytes) -> Result<Payload, Status> {
        let metadata = request_metadata(call)?;
        // The caller waits for the answer alone (not first for the stream id): one wake-up
        // per call. Dropping `reply` (the caller gave up) cancels the stream.
        let (tx, mut reply) = reply::slot(&self.handles.inbox);
        if let Some(drive) = &self.handles.drive {
            reply = reply.helped_by(drive, &self.handles.unary_waiting);
        }
        let command = Command::Open {
            kind: Kind::RequestResponse,
            metadata,
            data,
            complete: false,
            inbound: Some(Inbound::Single(tx)),
            outbound: None,
            opened: Opened::Slot,
        };
        if self.commands.send(command).await.is_err() {
            return Err(self.closed_status());
        }
        reply.await.unwrap_or_else(|| Err(self.closed_status()))
    }

    /// Fire-and-forget: resolves once the request is queued for writing. No reply comes.
    pub async fn fire_and_forget(&self, call: Call, data: Bytes) -> Result<(), Status> {
        self.open(Kind::FireAndForget, call, data, false, None, None).await.map(drop)
    }

    /// Request/stream: one request, a stream of responses.
    pub async fn request_stream(&self, call: Call, data: Bytes) -> Result<PayloadStream, Status> {
        let (inlet, mut stream) = super::stream::inbound(&self.handles);
        stream.set_id(self.open(Kind::RequestStream, call, data, false, Some(Inbound::Many(inlet)), None).await?);
        Ok(stream)
    }

    /// Channel: a stream of messages each way.
    ///
    /// The first item of `messages` rides in the REQUEST_CHANNEL frame, so this waits for it;
    /// if `messages` ends before yielding one, the channel opens with an empty first message
    /// that is also the last (RSocket has no channel without a first message). Later items are
    /// sent as the responder grants credit: out of credit, `messages` is polled once more (to
    /// learn whether it has ended, which needs no credit), and a message it yields then waits
    /// for the responder's next grant.
    pub async fn request_channel<S>(&self, call: Call, messages: S) -> Result<PayloadStream, Status>
    where
        S: futures_core::Stream<Item = Payload> + Send + 'static,
    {
        let mut messages = Box::pin(messages);
        let (first, complete) = match messages.next().await {
            Some(first) => (first, false),
            None => (Payload::default(), true),
        };
        if !first.metadata.is_empty() {
            // The first message's metadata slot holds the call's composite metadata.
            return Err(Status::invalid_argument("the first message of a channel cannot carry its own metadata"));
        }
        self.open_channel(call, first.data, complete, Responses::new(messages.map(Ok))).await
    }

    /// A channel whose first message is `first` (and the last, if `complete`), the others
    /// coming from `rest`.
    pub(crate) async fn open_channel(
        &self,
        call: Call,
        first: Bytes,
        complete: bool,
        rest: Responses,
    ) -> Result<PayloadStream, Status> {
        let (inlet, mut stream) = super::stream::inbound(&self.handles);
        let inbound = Some(Inbound::Many(inlet));
        stream.set_id(self.open(Kind::Channel, call, first, complete, inbound, Some(rest)).await?);
        Ok(stream)
    }

    /// Closes the connection: in-flight calls fail with `UNAVAILABLE`.
    pub fn close(&self) {
        self.handles.inbox.control(Control::Close { graceful: false });
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        // A driver that ended without saying why (it panicked) dropped the sender.
        self.handles.closed.borrow().is_some() || self.handles.closed.has_changed().is_err()
    }

    /// Resolves when the connection closes, with the reason.
    pub async fn closed(&self) -> String {
        let mut rx = self.handles.closed.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "the connection is closed".to_owned();
            }
        }
    }

    fn closed_status(&self) -> Status {
        Status::unavailable(driver::closed_reason(&self.handles))
    }

    async fn open(
        &self,
        kind: Kind,
        call: Call,
        data: Bytes,
        complete: bool,
        inbound: Option<Inbound>,
        outbound: Option<Responses>,
    ) -> Result<u32, Status> {
        let metadata = request_metadata(call)?;
        let (opened, rx) = oneshot::channel();
        let command =
            Command::Open { kind, metadata, data, complete, inbound, outbound, opened: Opened::Reply(opened) };
        if self.commands.send(command).await.is_err() {
            return Err(self.closed_status());
        }
        rx.await.unwrap_or_else(|_| Err(self.closed_status()))
    }
}

/// Encodes a call's composite metadata: the route first, then the call's own entries.
fn request_metadata(call: Call) -> Result<Bytes, Status> {
    // Every call of a generated client without metadata: no need to take the call apart.
    if let Some(route) = call.static_route_alone() {
        check_route(route)?;
        return Ok(static_route_metadata(route));
    }
    let (route, extra) = call.into_parts();
    check_route(&route)?;
    // The composite encoder leaves out entries it cannot write; a caller must hear about it.
    for entry in &extra.entries {
        entry.validate().map_err(|e| Status::invalid_argument(format!("call metadata for `{route}`: {e}")))?;
    }
    Ok(encode_request_metadata(&route, &extra))
}

/// A route fits the routing tag's length field: 1 to 255 bytes.
fn check_route(route: &str) -> Result<(), Status> {
    if route.is_empty() || route.len() > 255 {
        return Err(Status::invalid_argument(format!(
            "a route must be 1 to 255 bytes long, `{route}` is {}",
            route.len()
        )));
    }
    Ok(())
}

/// The routing entry for `route` (1 to 255 bytes), then `extra`'s entries. Written by hand
/// because every request carries it: one well-known routing entry (id 0x7E with the high bit
/// set, a 24-bit length, then one length-prefixed tag).
fn encode_request_metadata(route: &str, extra: &CompositeMetadata) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + route.len() + extra.encoded_len());
    out.put_u8(0x80 | well_known::ROUTING);
    out.put_uint(1 + route.len() as u64, 3);
    out.put_u8(route.len() as u8);
    out.put_slice(route.as_bytes());
    extra.encode(&mut out);
    out.freeze()
}

/// The request metadata of a call to a route (checked: 1 to 255 bytes) known at compile time
/// with no other entries (every call of a generated client without metadata): always the same
/// bytes, so they are written once per route, kept for the life of the program, and shared.
///
/// Every generated call asks for them, so the common case is a few instructions: each thread
/// remembers the routes it used last in a small table indexed by the route's address (no
/// hashing of the route's text), and the bytes are static (a clone of them is a copy of a
/// pointer, not a reference count).
fn static_route_metadata(route: &'static str) -> Bytes {
    type Slot = Option<(&'static str, &'static [u8])>;
    thread_local! {
        static RECENT: [std::cell::Cell<Slot>; 8] = const { [const { std::cell::Cell::new(None) }; 8] };
    }
    let slot = (route.as_ptr() as usize >> 3) % 8;
    RECENT.with(|recent| {
        // The same address and length: the same `&'static str`, so the same text.
        if let Some((cached, encoded)) = recent[slot].get()
            && std::ptr::eq(cached, route)
        {
            return Bytes::from_static(encoded);
        }
        let encoded = encoded_static_route(route);
        recent[slot].set(Some((route, encoded)));
        Bytes::from_static(encoded)
    })
}

/// The process-wide table behind [`static_route_metadata`]. Keys are routes compiled into the
/// program, so it is bounded by them (its bytes are leaked on purpose: they live as long as
/// the program), and no peer chooses what is hashed.
fn encoded_static_route(route: &'static str) -> &'static [u8] {
    static ROUTES: std::sync::Mutex<Option<HashMap<&'static str, &'static [u8], RouteHash>>> =
        std::sync::Mutex::new(None);
    let mut routes = super::lock(&ROUTES);
    routes.get_or_insert_with(HashMap::default).entry(route).or_insert_with(|| {
        let encoded = encode_request_metadata(route, &CompositeMetadata::default());
        Box::leak(encoded.to_vec().into_boxed_slice())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::metadata::MimeType;

    #[test]
    fn request_metadata_is_the_route_then_the_calls_entries() {
        let call = Call::new("echo.Echo/Unary").with_metadata(MimeType::Custom("application/x.trace".into()), "t1");
        let decoded = CompositeMetadata::decode(request_metadata(call).unwrap()).unwrap();
        assert_eq!(decoded.routing().unwrap().unwrap().tags, ["echo.Echo/Unary"]);
        assert_eq!(decoded.entries.len(), 2);
        assert_eq!(decoded.entries[1].mime, MimeType::Custom("application/x.trace".into()));
        assert_eq!(&decoded.entries[1].content[..], b"t1");
    }

    #[test]
    fn static_routes_are_encoded_once_and_as_any_other() {
        let route: &'static str = "echo.Echo/Static";
        let a = request_metadata(Call::for_route(route)).unwrap();
        let b = request_metadata(Call::for_route(route)).unwrap();
        assert_eq!(a, request_metadata(Call::new(route)).unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the second call shares the first's bytes");
        let long: &'static str = Box::leak("x".repeat(256).into_boxed_str());
        assert!(request_metadata(Call::for_route(long)).is_err());
        let with_entry = Call::for_route(route).with_metadata(MimeType::Custom("application/x.t".into()), "v");
        let decoded = CompositeMetadata::decode(request_metadata(with_entry).unwrap()).unwrap();
        assert_eq!(decoded.entries.len(), 2);
    }

    #[test]
    fn static_routes_sharing_a_slot_or_an_address_keep_their_own_bytes() {
        // More routes than the per-thread table has slots, so some share one; and two routes
        // at the same address with different lengths.
        let mut routes: Vec<&'static str> =
            (0..20).map(|i| &*Box::leak(format!("echo.Echo/Method{i}").into_boxed_str())).collect();
        let long: &'static str = Box::leak("echo.Echo/LongerName".to_owned().into_boxed_str());
        routes.extend([long, &long[..14]]);
        for _ in 0..2 {
            for route in &routes {
                let metadata = request_metadata(Call::for_route(route)).unwrap();
                assert_eq!(metadata, request_metadata(Call::new(*route)).unwrap(), "{route}");
            }
        }
    }

    #[test]
    fn unwritable_routes_and_metadata_are_refused() {
        assert!(request_metadata(Call::new("")).is_err());
        assert!(request_metadata(Call::new("x".repeat(256))).is_err());
        let bad = Call::new("a/B").with_metadata(MimeType::Custom("not ascii: é".into()), "x");
        assert_eq!(request_metadata(bad).unwrap_err().code(), crate::Code::InvalidArgument);
    }
}
