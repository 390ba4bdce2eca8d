//! The client half of generated code: one function per interaction model.
//!
//! Generated client methods are one line each: they convert their argument into a
//! [`Request`] and call the function for their model with the service's codec and the method's
//! route. Everything else (encoding, the call's metadata, decoding, error codes) lives here,
//! once.

use super::NO_MESSAGES_MIME;
use super::codec::{Arena, Codec, CodecError, speaks};
use super::request::Request;
use super::streaming::{ErrorSlot, Side, Streaming};
use crate::frame::metadata::{MetadataEntry, MimeType};
use crate::payload::MethodRoute;
use crate::rt::responses::Encode;
use crate::{Call, Client, Payload, Responses, Status};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

fn call_of(method: MethodRoute, metadata: Vec<MetadataEntry>, deadline: Option<tokio::time::Instant>) -> Call {
    let call = metadata.into_iter().fold(Call::for_method(method), |call, e| call.with_metadata(e.mime, e.content));
    match deadline {
        Some(deadline) => call.with_deadline(deadline),
        None => call,
    }
}

fn encode_status(route: &str, error: &CodecError) -> Status {
    Status::internal(format!("could not encode a request message for `{route}`: {error}"))
}

fn encode_request<C: Codec<T>, T>(route: &str, message: T) -> Result<Bytes, Status> {
    Arena::encode_one::<C, T>(message).map_err(|e| encode_status(route, &e))
}

fn decode_response<C: Codec<T>, T>(route: &str, data: Bytes) -> Result<T, Status> {
    C::decode(data).map_err(|e| Status::internal(format!("could not decode the response of `{route}`: {e}")))
}

/// Whether a generated client's connection carries its codec's data: decided once, when the
/// client is made (`{Service}Client::new`), and looked at by every call, before it encodes or
/// sends anything (one branch).
#[derive(Clone, Debug)]
pub struct DataMimeCheck(Option<Box<Status>>);

impl DataMimeCheck {
    /// The check of `client_name` (`GreeterClient`), whose codec sends data of the MIME type
    /// `codec`, over `client`.
    pub fn new(client: &Client, client_name: &'static str, codec: &'static str) -> DataMimeCheck {
        let announced = match client.data_mime() {
            Some(announced) if !speaks(codec, announced) => announced,
            // Matching, or not known (no handle exists before a server's SETUP): nothing to say.
            _ => return DataMimeCheck(None),
        };
        DataMimeCheck(Some(Box::new(Status::failed_precondition(format!(
            "`{client_name}` sends `{codec}` data, but its connection announced `{announced}` in SETUP; \
             connect with `{client_name}::connect`, which announces `{codec}`, or make the `Client` with \
             `Client::builder().data_mime(\"{codec}\")`"
        )))))
    }

    /// `client`, if its connection carries the codec's data; otherwise the status every call
    /// fails with.
    pub fn client<'a>(&self, client: &'a Client) -> Result<&'a Client, Status> {
        match &self.0 {
            None => Ok(client),
            Some(status) => Err(Status::clone(status)),
        }
    }
}

/// Request/response.
pub async fn call_unary<C, Req, Resp>(
    client: &Client,
    method: MethodRoute,
    request: Request<Req>,
) -> Result<Resp, Status>
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    let route = method.route();
    let deadline = request.deadline();
    let (message, metadata) = request.into_parts();
    let data = encode_request::<C, Req>(route, message)?;
    let response = client.request_response(call_of(method, metadata, deadline), data).await?;
    decode_response::<C, Resp>(route, response.data)
}

/// Fire-and-forget: resolves once the request is handed to the connection.
pub async fn call_fire_and_forget<C, Req>(
    client: &Client,
    method: MethodRoute,
    request: Request<Req>,
) -> Result<(), Status>
where
    C: Codec<Req>,
    Req: Send + 'static,
{
    let route = method.route();
    let deadline = request.deadline();
    let (message, metadata) = request.into_parts();
    let data = encode_request::<C, Req>(route, message)?;
    client.fire_and_forget(call_of(method, metadata, deadline), data).await
}

/// Request/stream.
pub async fn call_stream<C, Req, Resp>(
    client: &Client,
    method: MethodRoute,
    request: Request<Req>,
) -> Result<Streaming<Resp>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    let route = method.route();
    let deadline = request.deadline();
    let (message, metadata) = request.into_parts();
    let data = encode_request::<C, Req>(route, message)?;
    let responses = client.request_stream(call_of(method, metadata, deadline), data).await?;
    Ok(Streaming::decoding(responses, <C as Codec<Resp>>::decode, Side::Client, route))
}

/// Channel.
///
/// RSocket's REQUEST_CHANNEL frame carries the first request message, so the call starts once
/// the request stream has yielded one. A request stream that ends without any message is sent
/// as a REQUEST_CHANNEL that is also the last, with empty data and the no-messages entry
/// ([`NO_MESSAGES_MIME`](super::NO_MESSAGES_MIME)) in its metadata, which a Weft server reads as
/// an empty request stream (an empty payload alone would reach it as one default message).
pub async fn call_channel<C, Req, Resp, S>(
    client: &Client,
    method: MethodRoute,
    request: Request<S>,
) -> Result<Streaming<Resp>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    S: Stream<Item = Req> + Send + 'static,
{
    let route = method.route();
    let deadline = request.deadline();
    let (messages, metadata) = request.into_parts();
    let mut messages = Box::pin(messages);
    let first = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx));
    // The call's deadline bounds the wait for its first message too.
    let first = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, first).await.map_err(|_| {
            Status::deadline_exceeded(format!("the deadline of `{route}` passed before its first message"))
        })?,
        None => first.await,
    };
    let Some(first) = first else {
        let call =
            call_of(method, metadata, deadline).with_metadata(MimeType::Custom(NO_MESSAGES_MIME.into()), Bytes::new());
        let nothing_more = Responses::new(futures_util::stream::empty());
        let responses = client.open_channel(call, Bytes::new(), true, nothing_more).await?;
        return Ok(Streaming::decoding(responses, <C as Codec<Resp>>::decode, Side::Client, route));
    };
    let first = encode_request::<C, Req>(route, first)?;
    let slot = ErrorSlot::default();
    let rest = Encoder {
        rest: Some(messages),
        encode: <C as Codec<Req>>::encode,
        arena: Arena::default(),
        slot: slot.clone(),
        route,
    };
    let responses =
        client.open_channel(call_of(method, metadata, deadline), first, false, Responses::encoded(rest)).await?;
    Ok(Streaming::decoding(responses, <C as Codec<Resp>>::decode, Side::Client, route).with_outbound_error(slot))
}

/// Client streaming: a channel whose server answers exactly one message.
///
/// The first response is the answer; the response stream is then dropped (which cancels it, if
/// the server has not already completed it). No response at all is an `INTERNAL` error.
pub async fn call_client_streaming<C, Req, Resp, S>(
    client: &Client,
    method: MethodRoute,
    request: Request<S>,
) -> Result<Resp, Status>
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    S: Stream<Item = Req> + Send + 'static,
{
    let route = method.route();
    let mut responses = call_channel::<C, Req, Resp, S>(client, method, request).await?;
    responses.message().await?.ok_or_else(|| {
        Status::internal(format!(
            "`{route}` completed without a response; a client-streaming method answers exactly one message"
        ))
    })
}

/// Encodes the caller's messages after the first on their way out: straight into the write
/// buffer when the driver asks ([`Encode`]), else into an arena. An encode failure ends the
/// outbound stream (the server sees a normal end) and is parked in `slot`, where the response
/// stream picks it up and reports it to the caller.
struct Encoder<S, Req> {
    rest: Option<Pin<Box<S>>>,
    /// The codec's: straight into the write buffer, or into `arena`.
    encode: fn(Req, &mut BytesMut) -> Result<(), CodecError>,
    arena: Arena,
    slot: ErrorSlot,
    route: &'static str,
}

impl<S: Stream<Item = Req>, Req> Encoder<S, Req> {
    /// The caller's next message; `None` for ever once they end.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Req>> {
        let Some(rest) = self.rest.as_mut() else { return Poll::Ready(None) };
        let message = ready!(rest.as_mut().poll_next(cx));
        if message.is_none() {
            self.rest = None;
        }
        Poll::Ready(message)
    }

    /// Ends the outbound stream on an encode failure, keeping it for the caller.
    fn failed(&mut self, error: &CodecError) {
        *crate::rt::sync::lock(&self.slot) = Some(encode_status(self.route, error));
        self.rest = None;
    }
}

impl<S: Stream<Item = Req>, Req> Stream for Encoder<S, Req> {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Unpin: every field is boxed, a fn pointer or plain data.
        let this = self.get_mut();
        let Some(message) = ready!(this.poll_message(cx)) else { return Poll::Ready(None) };
        match this.arena.encode(this.encode, message) {
            Ok(data) => Poll::Ready(Some(Ok(Payload::new(data)))),
            Err(e) => {
                this.failed(&e);
                Poll::Ready(None)
            }
        }
    }
}

impl<S: Stream<Item = Req> + Send, Req: Send> Encode for Encoder<S, Req> {
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Option<Result<bool, Status>>> {
        let this = self.get_mut();
        let Some(message) = ready!(this.poll_message(cx)) else { return Poll::Ready(None) };
        match (this.encode)(message, out) {
            Ok(()) => Poll::Ready(Some(Ok(false))),
            Err(e) => {
                this.failed(&e);
                Poll::Ready(None)
            }
        }
    }
}
