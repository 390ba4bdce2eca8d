//! What requests and responses carry at the payload level.

use crate::frame::metadata::{CompositeMetadata, IntoMetadataKey, MetadataEntry};
use bytes::Bytes;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// A boxed, sendable future, as handlers return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, sendable stream, as handlers return them.
pub type BoxStream<'a, T> = Pin<Box<dyn futures_core::Stream<Item = T> + Send + 'a>>;

/// One message on a stream: metadata and data.
///
/// Empty and absent metadata are the same thing here: RSocket implementations disagree about
/// when they set the (M) flag, so Weft gives the difference no meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Per-message metadata; usually empty.
    pub metadata: Bytes,
    /// The message itself.
    pub data: Bytes,
}

impl Payload {
    /// A payload with data and no metadata.
    pub fn new(data: impl Into<Bytes>) -> Payload {
        Payload { metadata: Bytes::new(), data: data.into() }
    }
}

/// The head of a request: its route and its metadata.
///
/// On the requester side, build one with [`Call::new`] and add metadata entries with
/// [`Call::with_metadata`]; Weft writes the route as the first entry of the request's composite
/// metadata. On the responder side a handler receives the route and *all* entries the peer
/// sent, in order, and can learn that the requester cancelled.
#[derive(Clone, Debug)]
pub struct Call {
    route: Route,
    metadata: Metadata,
    /// Responder side only: nobody cancels a requester's own call head.
    cancel: Option<CancelSignal>,
    peer: Option<crate::Client>,
    /// When the call must be over: set by the requester, or read from the request's
    /// [`TIMEOUT_MIME`](crate::TIMEOUT_MIME) entry on arrival.
    deadline: Option<tokio::time::Instant>,
    /// Safe to send more than once (see [`Call::idempotent`]).
    idempotent: bool,
}

/// A generated client method's route, with the request metadata of a call that carries no
/// metadata of its own (the routing entry alone), both written at compile time by the code
/// generator, so that such a call encodes nothing of its route at run time. Not a public API:
/// generated code builds it through `weft::__private`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct MethodRoute {
    route: &'static str,
    metadata: &'static [u8],
    idempotent: bool,
}

impl MethodRoute {
    /// `route` (1 to 255 bytes) and its request metadata, as `weft-codegen` writes them.
    pub const fn new(route: &'static str, metadata: &'static [u8]) -> MethodRoute {
        MethodRoute { route, metadata, idempotent: false }
    }

    /// This route, of a method marked idempotent (`#[weft(idempotent)]`, or
    /// `option (weft.idempotent) = true;`): its calls may be retried (see
    /// [`Call::idempotent`]).
    pub const fn idempotent(self) -> MethodRoute {
        MethodRoute { idempotent: true, ..self }
    }

    /// The route.
    pub fn route(&self) -> &'static str {
        self.route
    }
}

/// Where a call's route lives: borrowed when generated code names it, so a typed call copies
/// nothing; shared between the calls of a connection that sent the same request metadata
/// (see the driver's `RouteCache`), so a served call copies nothing either.
#[derive(Clone, Debug)]
enum Route {
    Static(MethodRoute),
    Owned(String),
    Shared(Arc<str>),
}

/// A call's composite metadata. A served call keeps the block as it arrived (checked, see
/// `CompositeMetadata::decode_route`) and builds the entries only if a handler asks for them:
/// most handlers never do, and building them costs an allocation per request.
#[derive(Clone, Debug)]
enum Metadata {
    Built(CompositeMetadata),
    Received { block: Bytes, entries: OnceLock<CompositeMetadata> },
}

impl Call {
    /// A call to `route` (for example `greet.Greeter/SayHello`) without extra metadata.
    pub fn new(route: impl Into<String>) -> Call {
        Call::requester(Route::Owned(route.into()))
    }

    /// [`Call::new`] for a method of a generated client.
    pub(crate) fn for_method(route: MethodRoute) -> Call {
        let idempotent = route.idempotent;
        Call { idempotent, ..Call::requester(Route::Static(route)) }
    }

    fn requester(route: Route) -> Call {
        Call {
            route,
            metadata: Metadata::Built(CompositeMetadata::default()),
            cancel: None,
            peer: None,
            deadline: None,
            idempotent: false,
        }
    }

    /// Marks the call safe to send more than once: doing it twice has the effect of doing it
    /// once (a read, a put of a whole value). A client with a retry policy
    /// ([`ClientBuilder::retry`](crate::ClientBuilder::retry)) may then send it again when it
    /// fails with `UNAVAILABLE`, and hedge it; a call not marked is never sent twice unless
    /// the server certainly did not process it. Generated clients mark the calls of methods
    /// marked idempotent (`#[weft(idempotent)]`, or `option (weft.idempotent) = true;`).
    pub fn idempotent(mut self) -> Call {
        self.idempotent = true;
        self
    }

    /// Whether the call is marked idempotent ([`Call::idempotent`]).
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// Gives the call `timeout` from now: see [`with_deadline`](Call::with_deadline).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft::Call;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let call = Call::new("greet.Greeter/SayHello").with_timeout(Duration::from_secs(2));
    /// assert!(call.deadline().is_some());
    /// # }
    /// ```
    pub fn with_timeout(self, timeout: std::time::Duration) -> Call {
        self.with_deadline(tokio::time::Instant::now() + timeout)
    }

    /// Sets the call's deadline, in place of its client's default
    /// ([`ClientBuilder::timeout`](crate::ClientBuilder::timeout)). When it passes, the call
    /// fails with `DEADLINE_EXCEEDED` (a stream yields that error and ends) and is cancelled.
    /// The time left travels with the request ([`TIMEOUT_MIME`](crate::TIMEOUT_MIME)), so a
    /// Weft responder stops the handler at the deadline too. A call whose deadline has passed
    /// before it is sent fails without sending anything.
    ///
    /// A handler that calls on passes its own call's deadline along with
    /// `Call::new(route).with_deadline(deadline)` for `call.deadline()`, or
    /// [`Request::within`](crate::Request::within) on a typed client.
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Call {
        self.deadline = Some(deadline);
        self
    }

    /// When the call must be over: on the requester's side, the deadline it was given; on
    /// the responder's, the one the requester sent (its time left, counted from when the
    /// request arrived), if it sent one.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// What is left of the call's [`deadline`](Call::deadline), if it has one (zero once it
    /// has passed).
    pub fn remaining(&self) -> Option<std::time::Duration> {
        Some(self.deadline?.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// Adds a composite metadata entry named by `key`: a [`MimeType`](crate::MimeType), or a
    /// literal such as `"x-user-id"` (see [`IntoMetadataKey`]).
    ///
    /// ```
    /// use weft::Call;
    ///
    /// let call = Call::new("greet.Greeter/SayHello").with_metadata("x-user-id", "42");
    /// assert_eq!(call.metadata().get_str("x-user-id"), Some("42"));
    /// ```
    ///
    /// # Panics
    ///
    /// If `key` is a literal that cannot be a key (see
    /// [`MimeType::from_static`](crate::MimeType::from_static)).
    #[track_caller]
    pub fn with_metadata(mut self, key: impl IntoMetadataKey, content: impl Into<Bytes>) -> Call {
        let mime = key.into_key();
        self.metadata = Metadata::Built(self.metadata.into_built());
        if let Metadata::Built(metadata) = &mut self.metadata {
            metadata.entries.push(MetadataEntry { mime, content: content.into() });
        }
        self
    }

    /// The route.
    pub fn route(&self) -> &str {
        match &self.route {
            Route::Static(method) => method.route,
            Route::Owned(route) => route,
            Route::Shared(route) => route,
        }
    }

    /// The composite metadata: on the requester, the extra entries; on the responder, every
    /// entry the peer sent (the routing entry included), in wire order.
    pub fn metadata(&self) -> &CompositeMetadata {
        match &self.metadata {
            Metadata::Built(metadata) => metadata,
            Metadata::Received { block, entries } => entries.get_or_init(|| decode_checked(block)),
        }
    }

    /// Whether the requester cancelled this call (or the connection went away).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelSignal::is_cancelled)
    }

    /// Resolves when the requester cancels this call or the connection goes away. A
    /// request/response or stream handler's own future is dropped then anyway; this is for
    /// work it handed to other tasks. A fire-and-forget handler still running when its
    /// connection closes is not stopped (nobody waits for its outcome, and a requester may
    /// fire and close at once), so one that could wait long should watch this too.
    pub async fn cancelled(&self) {
        match &self.cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Responder side: a client for making requests back to the peer that sent this call, on
    /// the same connection (RSocket connections carry requests both ways).
    pub fn peer(&self) -> Option<&crate::Client> {
        self.peer.as_ref()
    }

    /// Responder side: what the server's [`authenticate`](crate::ServerBuilder::authenticate)
    /// hook made of the connection's SETUP (the caller's identity), if it is a `P`.
    pub fn principal<P: std::any::Any + Send + Sync>(&self) -> Option<&P> {
        self.peer.as_ref()?.principal()?.downcast_ref()
    }

    /// Responder side: the address of the peer that sent this call, when its connection came
    /// over TCP (plain, TLS or WebSocket); `None` in memory, over a transport of your own
    /// ([`Server::serve_connection`](crate::Server::serve_connection)), or on the requester
    /// side.
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer.as_ref()?.peer_info().addr
    }

    /// Responder side: the certificate chain the peer presented in its TLS handshake (DER,
    /// its own certificate first), on a server that asks for one (mutual TLS: see
    /// `ServerTls::with_client_auth`, feature `tls`); `None` otherwise.
    pub fn peer_certificates(&self) -> Option<&[Bytes]> {
        self.peer.as_ref()?.peer_info().certificates.as_deref()
    }

    /// A served call: `route` was found in `metadata`, a composite block that
    /// `CompositeMetadata::decode_route` accepted.
    pub(crate) fn received(route: Arc<str>, metadata: Bytes, cancel: CancelSignal, peer: crate::Client) -> Call {
        Call {
            route: Route::Shared(route),
            metadata: Metadata::Received { block: metadata, entries: OnceLock::new() },
            cancel: Some(cancel),
            peer: Some(peer),
            deadline: None,
            idempotent: false,
        }
    }

    /// Sets the deadline of a received call (read from its request by the driver).
    pub(crate) fn set_deadline(&mut self, deadline: Option<tokio::time::Instant>) {
        self.deadline = deadline;
    }

    /// The request metadata written at compile time, if this is a generated client's call
    /// with no metadata of its own.
    pub(crate) fn static_request_metadata(&self) -> Option<&'static [u8]> {
        match (&self.route, &self.metadata) {
            (Route::Static(method), Metadata::Built(metadata)) if metadata.entries.is_empty() => Some(method.metadata),
            _ => None,
        }
    }

    /// Whether the call's composite metadata has an entry whose MIME type is written out as
    /// `name` (compared ignoring ASCII case, as MIME types are).
    ///
    /// A received block that is one well-known entry alone, as nearly every request's is (its
    /// routing entry), has none: that is seen from its first four bytes, so the check costs
    /// such a call nothing. Any other block is decoded, once: the entries are kept for the
    /// handler (see [`Call::metadata`]).
    pub(crate) fn has_custom_entry(&self, name: &str) -> bool {
        if let Metadata::Received { block, entries } = &self.metadata
            && entries.get().is_none()
            && is_one_well_known_entry(block)
        {
            return false;
        }
        self.metadata().get(name).is_some()
    }

    /// The route (borrowed if it was named at compile time) and the metadata.
    pub(crate) fn into_parts(self) -> (Cow<'static, str>, CompositeMetadata) {
        let route = match self.route {
            Route::Static(method) => Cow::Borrowed(method.route),
            Route::Owned(route) => Cow::Owned(route),
            Route::Shared(route) => Cow::Owned(route.as_ref().to_owned()),
        };
        (route, self.metadata.into_built())
    }
}

impl Metadata {
    /// A received block that nothing has decoded yet.
    #[cfg(test)]
    fn is_received_undecoded(&self) -> bool {
        matches!(self, Metadata::Received { entries, .. } if entries.get().is_none())
    }

    fn into_built(self) -> CompositeMetadata {
        match self {
            Metadata::Built(metadata) => metadata,
            Metadata::Received { block, entries } => entries.into_inner().unwrap_or_else(|| decode_checked(&block)),
        }
    }
}

/// The entries of a request's block, read as leniently as its route was (see
/// `CompositeMetadata::decode_route`): what cannot be read is skipped, never fatal.
fn decode_checked(block: &Bytes) -> CompositeMetadata {
    CompositeMetadata::decode_lenient(block.clone())
}

/// Whether `block` is exactly one composite entry under a well-known MIME id: the id byte
/// (high bit set), a 24-bit content length, and that much content.
fn is_one_well_known_entry(block: &[u8]) -> bool {
    match *block {
        [id, a, b, c, ..] => id & 0x80 != 0 && 4 + u32::from_be_bytes([0, a, b, c]) as usize == block.len(),
        _ => false,
    }
}

/// A one-shot signal, fired when a call is cancelled.
#[derive(Clone, Debug, Default)]
pub(crate) struct CancelSignal(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    fired: AtomicBool,
    notify: Notify,
}

impl CancelSignal {
    pub(crate) fn fire(&self) {
        self.0.fired.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.fired.load(Ordering::Acquire)
    }

    /// Not fired, and this is the only handle: as good as a new one.
    pub(crate) fn is_unshared(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && !self.is_cancelled()
    }

    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::metadata::{CompositeMetadata, MimeType};

    /// A call as a server receives it, with `block` as its metadata.
    fn received(block: Bytes) -> Call {
        let (inbox, sender) = crate::rt::inbox::Inbox::new();
        let (_, closed) = tokio::sync::watch::channel(None);
        let handles =
            crate::rt::handles::Handles::new(inbox, &crate::Config::default(), closed, None, Default::default());
        let peer = crate::Client::from_parts(sender, handles);
        Call::received("a.B/C".into(), block, CancelSignal::default(), peer)
    }

    fn block(extra: &[(&str, &str)]) -> Bytes {
        let mut metadata = CompositeMetadata::with_route("a.B/C").unwrap();
        for (mime, content) in extra {
            metadata.push(MimeType::custom(*mime).unwrap(), content.to_string()).unwrap();
        }
        metadata.to_bytes()
    }

    #[test]
    fn a_custom_entry_is_found_by_its_name_in_any_case() {
        const NAME: &str = "application/x.weft.no-messages";
        let routing_alone = received(block(&[]));
        assert!(!routing_alone.has_custom_entry(NAME));
        assert!(routing_alone.metadata.is_received_undecoded(), "seen without decoding the block");
        assert!(received(block(&[(NAME, "")])).has_custom_entry(NAME));
        assert!(
            received(block(&[("application/x-trace", "t"), ("Application/X.Weft.No-Messages", "")]))
                .has_custom_entry(NAME)
        );
        assert!(!received(block(&[("application/x-trace", NAME)])).has_custom_entry(NAME), "content is not a name");
        // The block's framing is checked as `Call::metadata` checks it: an entry that runs past
        // the end is not there.
        let mut cut = block(&[(NAME, "xyz")]).to_vec();
        cut.pop();
        assert!(!received(cut.into()).has_custom_entry(NAME));
        assert!(!received(Bytes::new()).has_custom_entry(NAME));
        // A requester's call, as a test calling a server directly builds one.
        let built = Call::new("a.B/C").with_metadata(MimeType::custom(NAME).unwrap(), "");
        assert!(built.has_custom_entry(NAME));
        assert!(!Call::new("a.B/C").has_custom_entry(NAME));
    }

    #[test]
    fn one_well_known_entry_is_told_from_its_first_four_bytes() {
        assert!(is_one_well_known_entry(&block(&[])));
        assert!(is_one_well_known_entry(b"\xFE\x00\x00\x00"), "empty content");
        assert!(!is_one_well_known_entry(&block(&[("application/x-trace", "t")])), "a second entry");
        assert!(!is_one_well_known_entry(b"\xFE\x00\x00\x02x"), "content cut short");
        assert!(!is_one_well_known_entry(b"\x05text/\x00\x00\x00"), "a MIME type written out");
        assert!(!is_one_well_known_entry(b"\xFE\x00\x00"));
    }
}
