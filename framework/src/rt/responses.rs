//! What a handler answers with: [`Response`] to a request/response, [`Responses`] to a
//! request/stream or a channel.

use crate::frame::direct;
use crate::{BoxFuture, BoxStream, Payload, Status};
use bytes::BytesMut;
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

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
pub struct Response(pub(crate) Pin<Box<dyn EncodeOne>>);

/// A future of one message that can also write it into a buffer: the one representation of
/// an answer. Generated servers encode their message there; a payload is copied there
/// ([`PayloadAnswer`]).
pub(crate) trait EncodeOne: Future<Output = Result<Payload, Status>> + Send {
    /// [`poll`](Future::poll), appending the message's body (as a PAYLOAD frame carries it
    /// after its header, see `frame::direct::put_body`) to `out` instead of returning it:
    /// `Ok(true)` if it carries metadata. On anything but `Ready(Ok(_))` the caller drops what
    /// was appended.
    fn poll_encode(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Result<bool, Status>>;
}

pin_project_lite::pin_project! {
    /// A future of a payload as an answer.
    struct PayloadAnswer<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future<Output = Result<Payload, Status>>> Future for PayloadAnswer<F> {
    type Output = Result<Payload, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(cx)
    }
}

impl<F: Future<Output = Result<Payload, Status>> + Send> EncodeOne for PayloadAnswer<F> {
    fn poll_encode(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Result<bool, Status>> {
        let payload = ready!(self.project().future.poll(cx))?;
        Poll::Ready(Ok(direct::put_body(&payload.metadata, &payload.data, out)))
    }
}

impl Response {
    /// The answer `future` resolves to.
    pub fn new<F>(future: F) -> Response
    where
        F: Future<Output = Result<Payload, Status>> + Send + 'static,
    {
        Response(Box::pin(PayloadAnswer { future }))
    }

    /// An answer at hand.
    pub fn ready(result: Result<Payload, Status>) -> Response {
        Response::new(std::future::ready(result))
    }

    pub(crate) fn encoded(future: impl EncodeOne + 'static) -> Response {
        Response(Box::pin(future))
    }
}

impl From<BoxFuture<'static, Result<Payload, Status>>> for Response {
    fn from(future: BoxFuture<'static, Result<Payload, Status>>) -> Response {
        Response::new(future)
    }
}

impl Future for Response {
    type Output = Result<Payload, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response").finish_non_exhaustive()
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
pub struct Responses(pub(crate) Pin<Box<dyn Encode>>);

/// A stream of messages that can also write each one into a buffer: the one representation
/// of the messages a side sends. Generated servers and clients encode theirs there; payloads
/// are copied there ([`Payloads`]).
pub(crate) trait Encode: Stream<Item = Result<Payload, Status>> + Send {
    /// [`poll_next`](Stream::poll_next), appending the message's body (see
    /// [`EncodeOne::poll_encode`]) to `out` instead of returning it: `Some(Ok(true))` if it
    /// carries metadata. On anything but `Ready(Some(Ok(_)))` the caller drops what was
    /// appended.
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Option<Result<bool, Status>>>;

    /// Whether the stream must end now, with this status, although the driver holds off
    /// polling it (a message of it already waits for the peer's credit): a deadline that
    /// passed. Never, by default.
    fn poll_cut(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Status> {
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A stream of payloads as the messages a side sends.
    struct Payloads<S> {
        #[pin]
        stream: S,
    }
}

impl<S: Stream<Item = Result<Payload, Status>>> Stream for Payloads<S> {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().stream.poll_next(cx)
    }
}

impl<S: Stream<Item = Result<Payload, Status>> + Send> Encode for Payloads<S> {
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Option<Result<bool, Status>>> {
        Poll::Ready(match ready!(self.project().stream.poll_next(cx)) {
            Some(Ok(payload)) => Some(Ok(direct::put_body(&payload.metadata, &payload.data, out))),
            Some(Err(status)) => Some(Err(status)),
            None => None,
        })
    }
}

impl Responses {
    /// The messages of `stream`.
    pub fn new<S>(stream: S) -> Responses
    where
        S: Stream<Item = Result<Payload, Status>> + Send + 'static,
    {
        Responses(Box::pin(Payloads { stream }))
    }

    /// One message, or an error, and the end.
    pub fn once(result: Result<Payload, Status>) -> Responses {
        Responses::new(futures_util::stream::once(std::future::ready(result)))
    }

    pub(crate) fn encoded(stream: impl Encode + 'static) -> Responses {
        Responses(Box::pin(stream))
    }
}

impl From<BoxStream<'static, Result<Payload, Status>>> for Responses {
    fn from(stream: BoxStream<'static, Result<Payload, Status>>) -> Responses {
        Responses::new(stream)
    }
}

impl Stream for Responses {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Responses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responses").finish_non_exhaustive()
    }
}
