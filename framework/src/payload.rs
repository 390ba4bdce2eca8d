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
}

impl MethodRoute {
    /// `route` (1 to 255 bytes) and its request metadata, as `weft-codegen` writes them.
    pub const fn new(route: &'static str, metadata: &'static [u8]) -> MethodRoute {
        MethodRoute { route, metadata }
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
        Call::requester(Route::Static(route))
    }

    fn requester(route: Route) -> Call {
        Call { route, metadata: Metadata::Built(CompositeMetadata::default()), cancel: None, peer: None }
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

    /// A served call: `route` was found in `metadata`, a composite block that
    /// `CompositeMetadata::decode_route` accepted.
    pub(crate) fn received(route: Arc<str>, metadata: Bytes, cancel: CancelSignal, peer: crate::Client) -> Call {
        Call {
            route: Route::Shared(route),
            metadata: Metadata::Received { block: metadata, entries: OnceLock::new() },
            cancel: Some(cancel),
            peer: Some(peer),
        }
    }

    /// The request metadata written at compile time, if this is a generated client's call
    /// with no metadata of its own.
    pub(crate) fn static_request_metadata(&self) -> Option<&'static [u8]> {
        match (&self.route, &self.metadata) {
            (Route::Static(method), Metadata::Built(metadata)) if metadata.entries.is_empty() => Some(method.metadata),
            _ => None,
        }
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
