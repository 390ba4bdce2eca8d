//! What answers the peer's requests: the [`Handler`] trait, and the statuses of requests no
//! handler serves.

use crate::{BoxFuture, Call, PayloadStream, Response, Responses, Status};
use bytes::Bytes;

/// Answers requests at the payload level. Generated servers implement it; so can hand-written
/// handlers. Every method has a default that answers `UNIMPLEMENTED`.
///
/// Returned futures and streams are `'static`: they outlive the call that made them, and are
/// dropped when the requester cancels. Where they run: a request/response or fire-and-forget
/// future is polled once on the connection's driver task and, if it is not ready then, spawned
/// as a task of its own; a stream (request/stream, channel) is polled by the driver task
/// itself, only while the requester has granted credit and the connection's write buffer has
/// room. So a stream's `poll_next` must not block the thread (blocking I/O, a long
/// computation): that would hold up every call on the connection. Do such work in a task (or
/// `tokio::task::spawn_blocking`) and yield its results through a channel.
///
/// A request/response answers with a [`Response`], a stream with [`Responses`]; both wrap any
/// future or stream of payloads.
///
/// When a connection closes, however its peer left, the futures and streams of its calls are
/// dropped, except a fire-and-forget handler's future that is still running: that one runs
/// on, and its [`Call::cancelled`] resolves.
///
/// A request's bytes (`data`, a channel's messages, the call's metadata) are slices of the
/// connection's read buffer, not copies. Keeping one beyond the call (as a key in a map, say)
/// keeps that whole buffer allocated, 64 KiB or more, even after the connection is gone: keep
/// a copy (`Bytes::copy_from_slice`) instead.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::StreamExt;
/// use weft::{Call, Handler, Payload, Response, Responses, Server, Status};
///
/// /// Answers `ping` with `pong`, and spells out what it is sent, a byte a message.
/// struct Pong;
///
/// impl Handler for Pong {
///     fn request_response(&self, _call: Call, data: Bytes) -> Response {
///         Response::ready(match &data[..] {
///             b"ping" => Ok(Payload::new("pong")),
///             _ => Err(Status::invalid_argument("say ping")),
///         })
///     }
///
///     fn request_stream(&self, _call: Call, data: Bytes) -> Responses {
///         let letters: Vec<_> = data.iter().map(|b| Ok(Payload::new(vec![*b]))).collect();
///         Responses::new(futures_util::stream::iter(letters))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Status> {
/// let server = Server::builder().add_handler(&["pong.Pong/Ping", "pong.Pong/Spell"], Pong).build();
/// let client = server.connect_in_memory().await?;
/// let answer = client.request_response(Call::new("pong.Pong/Ping"), Bytes::from("ping")).await?;
/// assert_eq!(answer.data, "pong");
/// let mut letters = client.request_stream(Call::new("pong.Pong/Spell"), Bytes::from("ab")).await?;
/// assert_eq!(letters.next().await.unwrap()?.data, "a");
/// assert_eq!(letters.next().await.unwrap()?.data, "b");
/// assert!(letters.next().await.is_none());
/// # Ok(())
/// # }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Request/response.
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        Response::ready(Err(unimplemented_route(&call)))
    }

    /// Fire-and-forget.
    fn fire_and_forget(&self, _call: Call, _data: Bytes) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// Request/stream.
    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        Responses::once(Err(unimplemented_route(&call)))
    }

    /// Channel; `messages` yields the requester's messages, the first one included.
    fn request_channel(&self, call: Call, _messages: PayloadStream) -> Responses {
        Responses::once(Err(unimplemented_route(&call)))
    }
}

/// The status for a request to a route nobody serves.
pub fn unimplemented_route(call: &Call) -> Status {
    Status::unimplemented(format!("no method at route `{}`", call.route()))
}

/// The status for a request to a route that is served, but under another interaction model
/// than `model`, the request's.
pub(crate) fn wrong_model(call: &Call, model: &str) -> Status {
    Status::unimplemented(format!(
        "`{}` is not a {model} method; call it with the interaction model its service declares",
        call.route()
    ))
}

/// The handler of a side that serves nothing (a plain client).
#[derive(Debug)]
pub(crate) struct NoHandler;

impl Handler for NoHandler {}
