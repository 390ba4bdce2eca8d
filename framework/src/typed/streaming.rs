//! [`Streaming`]: a typed stream of messages arriving from the peer.

use super::codec::CodecError;
use crate::{BoxStream, PayloadStream, Status};
use bytes::Bytes;
use futures_core::Stream;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

/// A stream of messages from the peer: the caller's messages as a channel or client-streaming
/// handler sees them, or the responses a client receives from a request/stream or channel
/// method.
///
/// It yields `Ok(message)` for each message and ends after the last one. An `Err` ends it too:
/// the peer's error (with its code), or a message that did not decode
/// (`INVALID_ARGUMENT` on the server, where the caller sent it; `INTERNAL` on the client, where
/// the server did). Nothing follows an `Err`.
///
/// Read it with [`message`](Streaming::message), or as a [`Stream`] with any stream
/// combinator library. Messages are requested from the peer as they are read (RSocket
/// `REQUEST_N`), so a slow reader slows the sender. Dropping it before the end cancels the
/// peer's side of the stream.
///
/// To call a service implementation directly (in a unit test, say), build one from messages
/// with [`from_messages`](Streaming::from_messages) or from any stream with
/// [`from_stream`](Streaming::from_stream).
pub struct Streaming<T> {
    source: Source<T>,
    outbound_error: Option<ErrorSlot>,
    /// An error that ended the stream after messages [`recv_many`](Streaming::recv_many)
    /// handed out in the same call: the next read's.
    held: Option<Status>,
    done: bool,
}

enum Source<T> {
    /// A connection's stream, held as it is rather than boxed: every message passes here.
    Payloads {
        payloads: PayloadStream,
        decode: fn(Bytes) -> Result<T, CodecError>,
        side: Side,
        route: &'static str,
    },
    Messages(BoxStream<'static, Result<T, Status>>),
}

/// Which end is decoding, which picks the status code of a decode failure.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    /// A server decoding its caller's messages: the caller sent a bad request.
    Server,
    /// A client decoding responses: the server broke the contract.
    Client,
}

/// Where the client's outbound encoder leaves the first encode failure, so that the response
/// stream can report it.
pub(crate) type ErrorSlot = Arc<Mutex<Option<Status>>>;

impl<T> Streaming<T> {
    /// A stream of messages decoded from payloads with `decode`.
    pub(crate) fn decoding(
        payloads: PayloadStream,
        decode: fn(Bytes) -> Result<T, CodecError>,
        side: Side,
        route: &'static str,
    ) -> Streaming<T> {
        Streaming {
            source: Source::Payloads { payloads, decode, side, route },
            outbound_error: None,
            held: None,
            done: false,
        }
    }

    pub(crate) fn with_outbound_error(mut self, slot: ErrorSlot) -> Streaming<T> {
        self.outbound_error = Some(slot);
        self
    }

    /// A stream that yields whatever `stream` yields.
    pub fn from_stream<S>(stream: S) -> Streaming<T>
    where
        S: Stream<Item = Result<T, Status>> + Send + 'static,
    {
        Streaming { source: Source::Messages(Box::pin(stream)), outbound_error: None, held: None, done: false }
    }

    /// A stream that yields each of `messages`, then ends.
    ///
    /// ```
    /// # futures_util::FutureExt::now_or_never(async {
    /// let mut numbers = weft::Streaming::from_messages(vec![1, 2]);
    /// assert_eq!(numbers.message().await, Ok(Some(1)));
    /// assert_eq!(numbers.message().await, Ok(Some(2)));
    /// assert_eq!(numbers.message().await, Ok(None));
    /// # }).unwrap();
    /// ```
    pub fn from_messages<I>(messages: I) -> Streaming<T>
    where
        T: 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Streaming::from_stream(futures_util::stream::iter(messages.into_iter().map(Ok)))
    }

    /// The next message: `Ok(Some(message))`, `Ok(None)` at the end, or the error that ended
    /// the stream.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await.transpose()
    }

    /// Waits for the next message, then appends to `buffer` it and every message that has
    /// arrived after it, up to `limit` in all, and returns how many it appended: 0 only at
    /// the end of the stream (or with a `limit` of 0). An error that ended the stream is
    /// returned on its own, after the messages before it (by this call if none were
    /// appended, else by the next).
    ///
    /// The way to read a stream of many small messages: messages arrive from the peer many to
    /// a read, and taking all that are there at once saves a wake-up and a poll of the stream
    /// for every message (see BENCHMARKS.md). As [`message`](Streaming::message), it requests
    /// more from the peer as messages are taken. Named after tokio's `mpsc::Receiver::recv_many`,
    /// which it resembles.
    ///
    /// ```
    /// # futures_util::FutureExt::now_or_never(async {
    /// let mut numbers = weft::Streaming::from_messages(1..=5);
    /// let mut batch = Vec::new();
    /// let mut total = 0;
    /// while numbers.recv_many(&mut batch, 64).await? > 0 {
    ///     total += batch.drain(..).sum::<i32>();
    /// }
    /// assert_eq!(total, 15);
    /// # Ok::<(), weft::Status>(())
    /// # }).unwrap().unwrap();
    /// ```
    pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> Result<usize, Status> {
        std::future::poll_fn(|cx| self.poll_recv_many(cx, buffer, limit)).await
    }

    fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buffer: &mut Vec<T>,
        limit: usize,
    ) -> Poll<Result<usize, Status>> {
        if limit == 0 {
            return Poll::Ready(Ok(0));
        }
        // The first message as `poll_next` reads one: it may wait.
        match Pin::new(&mut *self).poll_next(cx) {
            Poll::Ready(Some(Ok(message))) => buffer.push(message),
            Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
            Poll::Ready(None) => return Poll::Ready(Ok(0)),
            Poll::Pending => return Poll::Pending,
        }
        let mut taken = 1;
        // Then, from a connection, what has arrived, straight from its queue: no wait, and
        // none of `poll_next`'s checks a message (an error or the end is the next read's).
        if let Source::Payloads { payloads, decode, side, route } = &mut self.source {
            while taken < limit {
                let status = match payloads.take_ready() {
                    Some(Ok(payload)) => match decode(payload.data) {
                        Ok(message) => {
                            buffer.push(message);
                            taken += 1;
                            continue;
                        }
                        Err(e) => decode_status(*side, route, &e),
                    },
                    Some(Err(status)) => status,
                    None => break,
                };
                self.done = true;
                self.held = Some(status);
                break;
            }
            return Poll::Ready(Ok(taken));
        }
        while taken < limit {
            // Past the first message, only what is there already: a `Pending` ends the batch
            // (the waker it registered may wake the task once more, for nothing).
            match Pin::new(&mut *self).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    buffer.push(message);
                    taken += 1;
                }
                Poll::Ready(Some(Err(status))) => {
                    self.held = Some(status);
                    break;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn finish(&mut self, item: Option<Result<T, Status>>) -> Poll<Option<Result<T, Status>>> {
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        Poll::Ready(item)
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (a boxed stream, a `PayloadStream`, fn pointers), so
        // Streaming<T> is too.
        let this = self.get_mut();
        // (Ended already, by this error, which `recv_many` held back for this read.)
        if let Some(status) = this.held.take() {
            return Poll::Ready(Some(Err(status)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(status) = this.outbound_error.as_ref().and_then(take_error) {
            return this.finish(Some(Err(status)));
        }
        let item = match &mut this.source {
            Source::Messages(messages) => ready!(messages.as_mut().poll_next(cx)),
            Source::Payloads { payloads, decode, side, route } => match ready!(Pin::new(payloads).poll_next(cx)) {
                // Nearly every item: a message that decodes, which ends nothing.
                Some(Ok(payload)) => match decode(payload.data) {
                    Ok(message) => return Poll::Ready(Some(Ok(message))),
                    Err(e) => Some(Err(decode_status(*side, route, &e))),
                },
                Some(Err(status)) => Some(Err(status)),
                None => None,
            },
        };
        // A request encode failure makes the client end its outbound stream; if the server then
        // ends its side normally, the failure is still what the caller must hear about.
        if item.is_none()
            && let Some(status) = this.outbound_error.as_ref().and_then(take_error)
        {
            return this.finish(Some(Err(status)));
        }
        this.finish(item)
    }
}

fn take_error(slot: &ErrorSlot) -> Option<Status> {
    crate::rt::sync::lock(slot).take()
}

fn decode_status(side: Side, route: &str, error: &CodecError) -> Status {
    match side {
        Side::Server => Status::invalid_argument(format!("could not decode a request message of `{route}`: {error}")),
        Side::Client => Status::internal(format!("could not decode a response message of `{route}`: {error}")),
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Streaming");
        if let Source::Payloads { route, side, .. } = &self.source {
            d.field("route", route).field("side", side);
        }
        d.field("done", &self.done).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payload;
    use futures_util::FutureExt;

    fn decode_u8(data: Bytes) -> Result<u8, CodecError> {
        match *data {
            [b] => Ok(b),
            _ => Err("expected one byte".into()),
        }
    }

    fn payloads(items: Vec<Result<&'static [u8], Status>>) -> PayloadStream {
        crate::rt::stream::from_items(items.into_iter().map(|i| i.map(|d| Payload::new(Bytes::from_static(d)))))
    }

    #[test]
    fn recv_many_takes_what_has_arrived_and_holds_an_error_back_for_the_next_read() {
        let items = vec![Ok(&b"\x01"[..]), Ok(b"\x02"), Ok(b"\x03"), Err(Status::unavailable("gone"))];
        let mut s = Streaming::decoding(payloads(items), decode_u8, Side::Client, "a/B");
        async move {
            let mut batch = Vec::new();
            assert_eq!(s.recv_many(&mut batch, 2).await, Ok(2), "up to the limit");
            assert_eq!(s.recv_many(&mut batch, 10).await, Ok(1), "the rest, without the error after it");
            assert_eq!(batch, [1, 2, 3]);
            let error = s.recv_many(&mut batch, 10).await.unwrap_err();
            assert_eq!(error.code(), crate::Code::Unavailable);
            assert_eq!(s.recv_many(&mut batch, 10).await, Ok(0), "nothing after the error");
            assert_eq!(s.message().await, Ok(None));
            // A message that does not decode ends the stream as `message` would end it.
            let mut bad = Streaming::decoding(payloads(vec![Ok(b"\x01"), Ok(b"xx")]), decode_u8, Side::Client, "a/B");
            let mut batch = Vec::new();
            assert_eq!(bad.recv_many(&mut batch, 10).await, Ok(1));
            assert_eq!(bad.message().await.unwrap_err().code(), crate::Code::Internal);
            assert_eq!(bad.recv_many(&mut batch, 0).await, Ok(0));
        }
        .now_or_never()
        .unwrap();
    }

    #[test]
    fn recv_many_waits_for_a_first_message_and_not_for_more() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<u8, Status>>();
        let mut s = Streaming::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let mut batch = Vec::new();
        assert!(s.recv_many(&mut batch, 10).now_or_never().is_none(), "nothing yet: it waits");
        tx.send(Ok(1)).unwrap();
        tx.send(Ok(2)).unwrap();
        assert_eq!(s.recv_many(&mut batch, 10).now_or_never(), Some(Ok(2)), "what is there, without waiting for more");
        tx.send(Ok(3)).unwrap();
        drop(tx);
        assert_eq!(s.recv_many(&mut batch, 10).now_or_never(), Some(Ok(1)));
        assert_eq!(s.recv_many(&mut batch, 10).now_or_never(), Some(Ok(0)), "the end");
        assert_eq!(batch, [1, 2, 3]);
    }

    #[test]
    fn decodes_then_ends() {
        let mut s = Streaming::decoding(payloads(vec![Ok(b"\x01"), Ok(b"\x02")]), decode_u8, Side::Client, "a/B");
        async move {
            assert_eq!(s.message().await, Ok(Some(1)));
            assert_eq!(s.message().await, Ok(Some(2)));
            assert_eq!(s.message().await, Ok(None));
        }
        .now_or_never()
        .unwrap();
    }

    #[test]
    fn a_decode_failure_has_the_sides_code_and_ends_the_stream() {
        for (side, code) in [(Side::Server, crate::Code::InvalidArgument), (Side::Client, crate::Code::Internal)] {
            let mut s = Streaming::decoding(payloads(vec![Ok(b"xx"), Ok(b"\x01")]), decode_u8, side, "a/B");
            async move {
                let err = s.message().await.unwrap_err();
                assert_eq!(err.code(), code);
                assert!(err.message().contains("`a/B`"), "{err}");
                assert_eq!(s.message().await, Ok(None));
            }
            .now_or_never()
            .unwrap();
        }
    }

    #[test]
    fn an_outbound_encode_failure_is_reported_before_the_end() {
        let slot = ErrorSlot::default();
        let mut s =
            Streaming::decoding(payloads(vec![]), decode_u8, Side::Client, "a/B").with_outbound_error(slot.clone());
        *slot.lock().unwrap() = Some(Status::internal("could not encode"));
        async move {
            assert_eq!(s.message().await, Err(Status::internal("could not encode")));
            assert_eq!(s.message().await, Ok(None));
        }
        .now_or_never()
        .unwrap();
    }
}
