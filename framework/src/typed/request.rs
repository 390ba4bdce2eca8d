//! [`Request`]: a message plus the metadata a client attaches to one call.

use crate::frame::metadata::{IntoMetadataKey, MetadataEntry};
use bytes::Bytes;

/// A request message (or a stream of them) with per-call metadata.
///
/// Every generated client method accepts either the bare message (or stream) or a `Request`
/// wrapping it, so metadata costs nothing when it is not used:
///
/// ```no_run
/// # use weft::Status;
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct HelloRequest {}
/// # #[derive(Clone, PartialEq, prost::Message)] pub struct HelloReply {}
/// # #[weft::service(package = "greet")]
/// # pub trait Greeter { async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status>; }
/// use weft::{MimeType, Request};
///
/// # async fn run(client: GreeterClient, tenant: String) -> Result<(), Box<dyn std::error::Error>> {
/// // Without metadata:
/// client.say_hello(HelloRequest {}).await?;
/// // With metadata entries, which the handler reads with `ctx.metadata().get_str("x-user-id")`:
/// let request = Request::new(HelloRequest {})
///     .with_metadata("x-user-id", "42")
///     .with_metadata("x-tenant", tenant);
/// client.say_hello(request).await?;
/// // A key made at run time is checked first:
/// let key = MimeType::try_from(format!("x-{}", "region"))?;
/// client.say_hello(Request::new(HelloRequest {}).with_metadata(key, "eu")).await?;
/// # Ok(()) }
/// ```
///
/// The entries travel in the request's composite metadata after the routing entry. Each is
/// named by a MIME type ([`MimeType`](crate::MimeType)): a literal key such as `"x-user-id"` is
/// written out as it is, a well-known type's name such as `"application/json"` as its one-byte
/// id.
#[derive(Clone, Debug, Default)]
pub struct Request<T> {
    message: T,
    metadata: Vec<MetadataEntry>,
    deadline: Option<tokio::time::Instant>,
}

impl<T> Request<T> {
    /// A request carrying `message` and no metadata.
    pub fn new(message: T) -> Request<T> {
        Request { message, metadata: Vec::new(), deadline: None }
    }

    /// Gives the call `timeout` from now, in place of its client's default: at the deadline
    /// the call fails with `DEADLINE_EXCEEDED` (a response stream yields it and ends), the
    /// server's handler is stopped, and a deadline already past fails the call before it is
    /// sent. See [`Call::with_deadline`](crate::Call::with_deadline).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft::Request;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let request = Request::new("message").with_timeout(Duration::from_millis(250));
    /// assert!(request.deadline().is_some());
    /// # }
    /// ```
    pub fn with_timeout(self, timeout: std::time::Duration) -> Request<T> {
        self.with_deadline(tokio::time::Instant::now() + timeout)
    }

    /// Sets the call's deadline (see [`with_timeout`](Request::with_timeout)).
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Request<T> {
        self.deadline = Some(deadline);
        self
    }

    /// Gives the call the deadline of the call `ctx` is handling, if it has one: a handler
    /// that calls another service passes on what is left of its own time, no more.
    ///
    /// ```no_run
    /// # use weft::{Context, Status};
    /// # #[derive(Clone, PartialEq, prost::Message)] pub struct Order {}
    /// # #[derive(Clone, PartialEq, prost::Message)] pub struct Receipt {}
    /// # #[weft::service(package = "pay")]
    /// # pub trait Payments { async fn charge(&self, order: Order) -> Result<Receipt, Status>; }
    /// use weft::Request;
    ///
    /// struct Shop {
    ///     payments: PaymentsClient,
    /// }
    ///
    /// impl Shop {
    ///     async fn checkout(&self, ctx: Context, order: Order) -> Result<Receipt, Status> {
    ///         // The payment call ends when the checkout's caller stops waiting.
    ///         self.payments.charge(Request::new(order).within(&ctx)).await
    ///     }
    /// }
    /// ```
    pub fn within(mut self, ctx: &crate::Context) -> Request<T> {
        if let Some(deadline) = ctx.deadline() {
            self.deadline = Some(deadline);
        }
        self
    }

    /// The call's deadline, if it was given one.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// Adds a composite metadata entry named by `key`: a literal such as `"x-user-id"`, or a
    /// [`MimeType`](crate::MimeType) (see [`IntoMetadataKey`]).
    ///
    /// ```
    /// use weft::Request;
    ///
    /// let request = Request::new("message").with_metadata("x-user-id", "42");
    /// assert_eq!(request.metadata()[0].mime.name(), Some("x-user-id"));
    /// ```
    ///
    /// # Panics
    ///
    /// If `key` is a literal that cannot be a key: empty, longer than 128 bytes, or not ASCII
    /// (see [`MimeType::from_static`](crate::MimeType::from_static)).
    #[track_caller]
    pub fn with_metadata(mut self, key: impl IntoMetadataKey, content: impl Into<Bytes>) -> Request<T> {
        self.metadata.push(MetadataEntry { mime: key.into_key(), content: content.into() });
        self
    }

    /// Presents `credentials` with this request alone (RSocket's Authentication extension, an
    /// entry of type `message/x.rsocket.authentication.v0`), whatever the connection
    /// presented in SETUP; the handler reads them with
    /// [`Context::credentials`](crate::Context::credentials).
    ///
    /// # Panics
    /// If the credentials have no encoding (see [`Credentials::encode`](crate::Credentials::encode)).
    pub fn with_credentials(self, credentials: crate::Credentials) -> Request<T> {
        self.with_metadata(crate::frame::auth::AUTHENTICATION_MIME, credentials.encode())
    }

    /// The metadata entries, in the order they will be sent.
    pub fn metadata(&self) -> &[MetadataEntry] {
        &self.metadata
    }

    /// The metadata entries, to add, change or remove some.
    pub fn metadata_mut(&mut self) -> &mut Vec<MetadataEntry> {
        &mut self.metadata
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message, dropping the metadata.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The message and the metadata (the deadline, if any, is left behind: read it first with
    /// [`deadline`](Request::deadline)).
    pub fn into_parts(self) -> (T, Vec<MetadataEntry>) {
        (self.message, self.metadata)
    }
}

/// A request message, bare or wrapped in a [`Request`]; what generated client methods accept
/// for methods that take one message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request message of type `{T}`",
    label = "expected `{T}` or `weft::Request<{T}>`"
)]
pub trait IntoRequest<T> {
    /// Wraps a bare message in a [`Request`] without metadata; returns a `Request` as it is.
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// A stream of request messages, bare or wrapped in a [`Request`]; what generated client
/// methods accept for channel and client-streaming methods.
///
/// Any `Stream<Item = Msg> + Send + 'static` will do, e.g.
/// `futures_util::stream::iter(vec![a, b, c])`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stream of request messages",
    label = "expected a `Stream<Item = Msg> + Send + 'static` or a `weft::Request` wrapping one",
    note = "`futures_util::stream::iter(vec![...])` turns a list of messages into such a stream"
)]
pub trait IntoStreamingRequest {
    /// The message type.
    type Message;
    /// The stream of messages.
    type Stream: futures_core::Stream<Item = Self::Message> + Send + 'static;

    /// Wraps a bare stream in a [`Request`] without metadata; returns a `Request` as it is.
    fn into_streaming_request(self) -> Request<Self::Stream>;
}

impl<S> IntoStreamingRequest for S
where
    S: futures_core::Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;

    fn into_streaming_request(self) -> Request<S> {
        Request::new(self)
    }
}

impl<S> IntoStreamingRequest for Request<S>
where
    S: futures_core::Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;

    fn into_streaming_request(self) -> Request<S> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MimeType;
    use crate::frame::metadata::well_known;

    #[test]
    fn literal_keys_are_attached_in_order_and_well_known_names_as_ids() {
        let request = Request::new(()).with_metadata("x-user-id", "42").with_metadata("Application/JSON", "{}");
        let keys: Vec<_> = request.metadata().iter().map(|e| e.mime.clone()).collect();
        assert_eq!(keys, [MimeType::Custom("x-user-id".into()), MimeType::WellKnown(well_known::JSON)]);
        assert_eq!(&request.metadata()[0].content[..], b"42");
    }

    #[test]
    #[should_panic(expected = "`x-é` is not ASCII; composite metadata writes out 1 to 128 ASCII bytes")]
    fn a_literal_that_cannot_be_a_key_panics_with_the_reason() {
        let _ = Request::new(()).with_metadata("x-é", "1");
    }
}
