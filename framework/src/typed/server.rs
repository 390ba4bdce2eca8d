//! The server half of generated code: one function per interaction model.
//!
//! A generated server has a function per method that hands the call, its data and a closure
//! calling the user's method to the function here for the method's model; a server's route
//! table calls it (see `rt::methods`), and so does the generated `Handler`'s `match` on the
//! route. Decoding, the
//! [`Context`], encoding and error codes live here, once.

use super::NO_MESSAGES_MIME;
use super::codec::{Arena, Codec, CodecError};
use super::context::Context;
use super::streaming::{Side, Streaming};
use crate::rt::handler::wrong_model;
use crate::rt::responses::{Encode, EncodeOne};
use crate::{BoxFuture, BoxStream, Call, Payload, PayloadStream, Response, Responses, Status, unimplemented_route};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{self, Poll, ready};

fn decode_request<C: Codec<T>, T>(route: &str, data: Bytes) -> Result<T, Status> {
    C::decode(data).map_err(|e| Status::invalid_argument(format!("could not decode the request of `{route}`: {e}")))
}

/// One response message, encoded into a payload of its own (when it cannot be encoded in
/// place), in the buffer this thread's calls share.
fn encode_response<T>(
    encode: fn(T, &mut BytesMut) -> Result<(), CodecError>,
    route: &str,
    message: T,
) -> Result<Payload, Status> {
    Arena::encode_one_with(encode, message).map(Payload::new).map_err(|e| encode_status(route, &e))
}

fn encode_status(route: &str, error: &CodecError) -> Status {
    Status::internal(format!("could not encode a response message of `{route}`: {error}"))
}

/// Request/response.
pub fn serve_unary<C, Req, Resp, F, Fut>(call: Call, data: Bytes, route: &'static str, handler: F) -> Response
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Context, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let answer = async move {
        let request = decode_request::<C, Req>(route, data)?;
        handler(Context::new(call), request).await
    };
    Response::encoded(Unary { answer, encode: C::encode, route })
}

pin_project_lite::pin_project! {
    /// A request/response's answer: the handler's message once it has one, encoded straight
    /// into the write buffer when the driver asks ([`EncodeOne`]), else into a payload.
    struct Unary<Fut, Resp> {
        #[pin]
        answer: Fut,
        encode: fn(Resp, &mut BytesMut) -> Result<(), CodecError>,
        route: &'static str,
    }
}

impl<Fut, Resp> Future for Unary<Fut, Resp>
where
    Fut: Future<Output = Result<Resp, Status>>,
{
    type Output = Result<Payload, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let message = ready!(this.answer.poll(cx))?;
        Poll::Ready(encode_response(*this.encode, this.route, message))
    }
}

impl<Fut, Resp> EncodeOne for Unary<Fut, Resp>
where
    Fut: Future<Output = Result<Resp, Status>> + Send,
    Resp: Send,
{
    fn poll_encode(self: Pin<&mut Self>, cx: &mut task::Context<'_>, out: &mut BytesMut) -> Poll<Result<bool, Status>> {
        let this = self.project();
        let message = ready!(this.answer.poll(cx))?;
        // (Encoded messages carry no metadata.)
        Poll::Ready((this.encode)(message, out).map(|()| false).map_err(|e| encode_status(this.route, &e)))
    }
}

/// Fire-and-forget. A request that does not decode is dropped: there is nobody to tell.
pub fn serve_fire_and_forget<C, Req, F, Fut>(
    call: Call,
    data: Bytes,
    route: &'static str,
    handler: F,
) -> BoxFuture<'static, ()>
where
    C: Codec<Req>,
    Req: Send + 'static,
    F: FnOnce(Context, Req) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::pin(async move {
        if let Ok(request) = decode_request::<C, Req>(route, data) {
            handler(Context::new(call), request).await;
        }
    })
}

/// Request/stream.
///
/// The handler's stream arrives boxed: the generated closure boxes it inside its own `async`
/// block (with [`box_stream`]), because the trait method's `impl Stream` type names the borrow
/// of the service that the block owns and so cannot leave the block unboxed.
pub fn serve_stream<C, Req, Resp, F, Fut>(call: Call, data: Bytes, route: &'static str, handler: F) -> Responses
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Context, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<BoxStream<'static, Result<Resp, Status>>, Status>> + Send + 'static,
{
    let responses = async move {
        let request = decode_request::<C, Req>(route, data)?;
        handler(Context::new(call), request).await
    };
    Responses::encoded(Respond::new::<C>(responses, route))
}

/// Channel; the handler's stream arrives boxed, as for [`serve_stream`].
pub fn serve_channel<C, Req, Resp, F, Fut>(
    call: Call,
    messages: PayloadStream,
    route: &'static str,
    handler: F,
) -> Responses
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Context, Streaming<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<BoxStream<'static, Result<Resp, Status>>, Status>> + Send + 'static,
{
    let requests = match requests::<C, Req>(&call, messages, route) {
        Ok(requests) => requests,
        Err(status) => return reject_stream(status),
    };
    let responses = handler(Context::new(call), requests);
    Responses::encoded(Respond::new::<C>(responses, route))
}

/// Client streaming: a channel answered with exactly one message.
pub fn serve_client_streaming<C, Req, Resp, F, Fut>(
    call: Call,
    messages: PayloadStream,
    route: &'static str,
    handler: F,
) -> Responses
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: FnOnce(Context, Streaming<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let requests = match requests::<C, Req>(&call, messages, route) {
        Ok(requests) => requests,
        Err(status) => return reject_stream(status),
    };
    let response = handler(Context::new(call), requests);
    Responses::new(futures_util::stream::once(async move {
        encode_response(<C as Codec<Resp>>::encode, route, response.await?)
    }))
}

/// The caller's messages on a channel: every payload, the REQUEST_CHANNEL's first, unless the
/// call carries the no-messages entry ([`NO_MESSAGES_MIME`]), whose REQUEST_CHANNEL payload is
/// no message (the typed layer's wire conventions, see `typed`'s module doc). That payload
/// must then be empty: data there is a peer breaking the convention, and the call ends with
/// `INVALID_ARGUMENT`.
fn requests<C: Codec<Req>, Req>(
    call: &Call,
    mut messages: PayloadStream,
    route: &'static str,
) -> Result<Streaming<Req>, Status> {
    // Nearly every call: its metadata is the routing entry alone, which the check sees from
    // four bytes.
    if call.has_custom_entry(NO_MESSAGES_MIME) {
        // The runtime queues the REQUEST_CHANNEL payload before it calls the handler, so it is
        // there to take. (A stream from elsewhere, as a test calling the server directly may
        // pass, is read as it is.)
        match messages.take_ready() {
            Some(Ok(first)) if !first.data.is_empty() => {
                return Err(Status::invalid_argument(format!(
                    "`{route}`: the request carries the `{NO_MESSAGES_MIME}` metadata entry, which \
                     marks a request stream with no messages, and {} bytes of data in its \
                     REQUEST_CHANNEL payload; send the entry with empty data, or the first message \
                     without the entry",
                    first.data.len()
                )));
            }
            Some(Err(status)) => return Err(status),
            Some(Ok(_)) | None => {}
        }
    }
    Ok(Streaming::decoding(messages, <C as Codec<Req>>::decode, Side::Server, route))
}

/// The status for a call no method of this service answers with the interaction model it
/// arrived with: `UNIMPLEMENTED`, naming the model when the route exists under another one.
pub fn not_served(call: &Call, routes: &[&str], model: &str) -> Status {
    if routes.contains(&call.route()) { wrong_model(call, model) } else { unimplemented_route(call) }
}

/// Boxes a handler's response stream.
pub fn box_stream<S>(stream: S) -> BoxStream<'static, S::Item>
where
    S: Stream + Send + 'static,
{
    Box::pin(stream)
}

/// A request/response answered with `status`.
pub fn reject_unary(status: Status) -> Response {
    Response::ready(Err(status))
}

/// A stream answered with `status`.
pub fn reject_stream(status: Status) -> Responses {
    Responses::once(Err(status))
}

/// A fire-and-forget request nobody handles.
pub fn ignore() -> BoxFuture<'static, ()> {
    Box::pin(std::future::ready(()))
}

/// Awaits the handler, then encodes the messages of the stream it returned; the first `Err`
/// (the handler's, the stream's, or an encode failure) is the stream's last item, as an ERROR
/// frame ends an RSocket stream. The driver has it encode each message straight into the write
/// buffer ([`Encode`]); as a stream of payloads it encodes into an [`Arena`].
struct Respond<Fut, Resp> {
    state: State<Fut, Resp>,
    /// The codec's: straight into the write buffer, or into `arena`.
    encode: fn(Resp, &mut BytesMut) -> Result<(), CodecError>,
    arena: Arena,
    route: &'static str,
}

enum State<Fut, Resp> {
    Waiting(Pin<Box<Fut>>),
    Streaming(BoxStream<'static, Result<Resp, Status>>),
    Done,
}

impl<Fut, Resp> Respond<Fut, Resp>
where
    Fut: Future<Output = Result<BoxStream<'static, Result<Resp, Status>>, Status>>,
{
    fn new<C: Codec<Resp>>(responses: Fut, route: &'static str) -> Self {
        Respond { state: State::Waiting(Box::pin(responses)), encode: C::encode, arena: Arena::default(), route }
    }

    /// The handler's next message; after anything but a message, `None` for ever.
    // Always inlined: called once a message, and the caller's match on its result then folds
    // into this one's.
    #[inline(always)]
    fn poll_message(&mut self, cx: &mut task::Context<'_>) -> Poll<Option<Result<Resp, Status>>> {
        loop {
            match &mut self.state {
                State::Waiting(fut) => match ready!(fut.as_mut().poll(cx)) {
                    Ok(stream) => self.state = State::Streaming(stream),
                    Err(status) => {
                        self.state = State::Done;
                        return Poll::Ready(Some(Err(status)));
                    }
                },
                State::Streaming(stream) => {
                    let item = ready!(stream.as_mut().poll_next(cx));
                    if !matches!(item, Some(Ok(_))) {
                        self.state = State::Done;
                    }
                    return Poll::Ready(item);
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    /// An encode failure ends the stream with it.
    fn failed(&mut self, error: &CodecError) -> Status {
        self.state = State::Done;
        encode_status(self.route, error)
    }
}

impl<Fut, Resp> Stream for Respond<Fut, Resp>
where
    Fut: Future<Output = Result<BoxStream<'static, Result<Resp, Status>>, Status>>,
{
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Option<Self::Item>> {
        // Unpin: the future and the stream are boxed.
        let this = self.get_mut();
        Poll::Ready(match ready!(this.poll_message(cx)) {
            Some(Ok(message)) => Some(match this.arena.encode(this.encode, message) {
                Ok(data) => Ok(Payload::new(data)),
                Err(e) => Err(this.failed(&e)),
            }),
            Some(Err(status)) => Some(Err(status)),
            None => None,
        })
    }
}

impl<Fut, Resp> Encode for Respond<Fut, Resp>
where
    Fut: Future<Output = Result<BoxStream<'static, Result<Resp, Status>>, Status>> + Send,
    Resp: Send,
{
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Option<Result<bool, Status>>> {
        let this = self.get_mut();
        Poll::Ready(match ready!(this.poll_message(cx)) {
            Some(Ok(message)) => Some((this.encode)(message, out).map(|()| false).map_err(|e| this.failed(&e))),
            Some(Err(status)) => Some(Err(status)),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BytesCodec;
    use crate::frame::metadata::MimeType;
    use futures_util::{FutureExt, StreamExt};

    /// The caller's payloads, queued as the runtime queues a channel's.
    fn payloads(data: &[&'static [u8]]) -> PayloadStream {
        crate::rt::stream::from_items(data.iter().map(|d| Ok(Payload::new(Bytes::from_static(d)))))
    }

    fn marked() -> Call {
        Call::new("a.B/Sum").with_metadata(MimeType::custom(NO_MESSAGES_MIME).unwrap(), "")
    }

    /// A client-streaming method answering with how many messages it read, and the messages
    /// joined by `,`.
    fn serve(call: Call, messages: PayloadStream) -> Vec<Result<Payload, Status>> {
        let responses = serve_client_streaming::<BytesCodec, Bytes, Bytes, _, _>(
            call,
            messages,
            "a.B/Sum",
            |_, mut requests| async move {
                let mut read = Vec::new();
                while let Some(m) = requests.message().await? {
                    read.push(String::from_utf8_lossy(&m).into_owned());
                }
                Ok(Bytes::from(format!("{}:[{}]", read.len(), read.join(","))))
            },
        );
        responses.collect().now_or_never().expect("answered at once")
    }

    #[test]
    fn the_no_messages_entry_makes_an_empty_request_stream() {
        assert_eq!(serve(marked(), payloads(&[b""])), [Ok(Payload::new("0:[]"))]);
        // Without it, an empty payload is a message.
        assert_eq!(serve(Call::new("a.B/Sum"), payloads(&[b""])), [Ok(Payload::new("1:[]"))]);
        assert_eq!(serve(Call::new("a.B/Sum"), payloads(&[b"", b"x"])), [Ok(Payload::new("2:[,x]"))]);
        // Sent without (C)omplete, what follows is the request stream.
        assert_eq!(serve(marked(), payloads(&[b"", b"a", b"b"])), [Ok(Payload::new("2:[a,b]"))]);
    }

    #[test]
    fn the_no_messages_entry_with_data_ends_the_call_with_invalid_argument() {
        let answer = serve(marked(), payloads(&[b"abc", b"d"]));
        let [Err(status)] = &answer[..] else { panic!("{answer:?}") };
        assert_eq!(status.code(), crate::Code::InvalidArgument);
        assert!(status.message().contains("`a.B/Sum`") && status.message().contains(NO_MESSAGES_MIME), "{status}");
        assert!(status.message().contains("3 bytes"), "{status}");
        // A channel method, the same.
        let responses = serve_channel::<BytesCodec, Bytes, Bytes, _, _>(
            marked(),
            payloads(&[b"abc"]),
            "a.B/Chat",
            |_, requests| async move { Ok(box_stream(requests)) },
        );
        let answer: Vec<_> = responses.collect().now_or_never().expect("answered at once");
        assert!(matches!(&answer[..], [Err(s)] if s.code() == crate::Code::InvalidArgument), "{answer:?}");
    }
}
