//! What a handler answers with: [`Response`] to a request/response, [`Responses`] to a
//! request/stream or a channel.

use crate::{BoxFuture, BoxStream, Payload, Status};
use bytes::BytesMut;
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The answer a request/response [`Handler`](crate::Handler) gives: a future of one payload or
/// an error (sent as an ERROR frame).
///
/// A hand-written handler makes one from any such future, with [`Response::new`] (or `.into()`
/// from a [`BoxFuture`]), or from a result at hand with [`Response::ready`]. Generated servers
/// make theirs so that the answer is encoded straight into the connection's write buffer.
/// Either way it is itself a future of the payload.
///
/// ```
/// use weft::{Payload, Response, Status};
///
/// let response = Response::new(async { Ok::<_, Status>(Payload::new("pong")) });
/// # futures_util::FutureExt::now_or_never(async {
/// assert_eq!(response.await.unwrap(), Payload::new("pong"));
/// # });
/// ```
pub struct Response(pub(crate) Answer);

/// Where a [`Response`]'s answer comes from.
pub(crate) enum Answer {
    /// A payload, copied into the write buffer.
    Payload(BoxFuture<'static, Result<Payload, Status>>),
    /// A message that encodes itself into the write buffer.
    Encoded(Pin<Box<dyn EncodeOne>>),
}

/// A future of one message that can also write its encoding into a buffer (generated servers'
/// answers).
pub(crate) trait EncodeOne: Future<Output = Result<Payload, Status>> + Send {
    /// [`poll`](Future::poll), appending the message's encoding to `out` instead of returning
    /// it. On anything but `Ready(Ok(()))` the caller drops what was appended.
    fn poll_encode(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Result<(), Status>>;
}

impl Response {
    /// The answer `future` resolves to.
    pub fn new<F>(future: F) -> Response
    where
        F: Future<Output = Result<Payload, Status>> + Send + 'static,
    {
        Response(Answer::Payload(Box::pin(future)))
    }

    /// An answer at hand.
    pub fn ready(result: Result<Payload, Status>) -> Response {
        Response::new(std::future::ready(result))
    }

    pub(crate) fn encoded(future: impl EncodeOne + 'static) -> Response {
        Response(Answer::Encoded(Box::pin(future)))
    }
}

impl From<BoxFuture<'static, Result<Payload, Status>>> for Response {
    fn from(future: BoxFuture<'static, Result<Payload, Status>>) -> Response {
        Response(Answer::Payload(future))
    }
}

impl Future for Response {
    type Output = Result<Payload, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Answer::Payload(future) => future.as_mut().poll(cx),
            Answer::Encoded(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.0 {
            Answer::Payload(_) => "payload",
            Answer::Encoded(_) => "encoded",
        };
        f.debug_tuple("Response").field(&source).finish()
    }
}

/// The messages a request/stream or channel [`Handler`](crate::Handler) sends back, in order;
/// an `Err` is the last, sent as an ERROR frame, as an RSocket stream ends on an error.
///
/// A hand-written handler makes one from any stream of payloads, with [`Responses::new`] (or
/// `.into()` from a [`BoxStream`]). Generated servers make theirs so that each message is
/// encoded straight into the connection's write buffer, neither built apart nor copied.
/// Either way it is itself a stream of payloads, so a handler can wrap another's.
///
/// ```
/// use futures_util::StreamExt;
/// use weft::{Payload, Responses, Status};
///
/// let words = ["one", "two"].map(|w| Ok::<_, Status>(Payload::new(w)));
/// let mut responses = Responses::new(futures_util::stream::iter(words));
/// # futures_util::FutureExt::now_or_never(async {
/// assert_eq!(responses.next().await.unwrap().unwrap(), Payload::new("one"));
/// # });
/// ```
pub struct Responses(pub(crate) Source);

/// Where a [`Responses`]' messages come from.
pub(crate) enum Source {
    /// Payloads, copied into the write buffer.
    Payloads(BoxStream<'static, Result<Payload, Status>>),
    /// Messages that encode themselves into the write buffer.
    Encoded(Pin<Box<dyn Encode>>),
}

/// A stream of messages that can also write each one's encoding into a buffer (generated
/// servers' response streams).
pub(crate) trait Encode: Stream<Item = Result<Payload, Status>> + Send {
    /// [`poll_next`](Stream::poll_next), appending the message's encoding to `out` instead of
    /// returning it. On anything but `Ready(Some(Ok(())))` the caller drops what was appended.
    fn poll_encode(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Option<Result<(), Status>>>;
}

impl Responses {
    /// The messages of `stream`.
    pub fn new<S>(stream: S) -> Responses
    where
        S: Stream<Item = Result<Payload, Status>> + Send + 'static,
    {
        Responses(Source::Payloads(Box::pin(stream)))
    }

    /// One message, or an error, and the end.
    pub fn once(result: Result<Payload, Status>) -> Responses {
        Responses::new(futures_util::stream::once(std::future::ready(result)))
    }

    pub(crate) fn encoded(stream: impl Encode + 'static) -> Responses {
        Responses(Source::Encoded(Box::pin(stream)))
    }
}

impl From<BoxStream<'static, Result<Payload, Status>>> for Responses {
    fn from(stream: BoxStream<'static, Result<Payload, Status>>) -> Responses {
        Responses(Source::Payloads(stream))
    }
}

impl Stream for Responses {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.get_mut().0 {
            Source::Payloads(stream) => stream.as_mut().poll_next(cx),
            Source::Encoded(stream) => stream.as_mut().poll_next(cx),
        }
    }
}

impl fmt::Debug for Responses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.0 {
            Source::Payloads(_) => "payloads",
            Source::Encoded(_) => "encoded",
        };
        f.debug_tuple("Responses").field(&source).finish()
    }
}
