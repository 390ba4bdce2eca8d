//! RSocket over WebSocket: RSocket's WebSocket transport carries each frame in one binary
//! message, without the 24-bit length prefix of stream transports.
//!
//! The runtime reads and writes length-prefixed frames on a byte stream (see
//! [`Transport`]), so the WebSocket fits as an adapter rather than a second framing path
//! through the driver: its read half hands out each binary message behind the length it
//! would have had on TCP, and its write half takes the driver's length-prefixed bytes apart
//! and sends each frame as a message. That costs one copy of each frame on either side, next
//! to the WebSocket's own framing and (from a client) masking. As over TCP, a read hands out
//! every message that is ready (as many as the reader's buffer takes), and the frames of one
//! write go out together when the writer is flushed: the driver's turn, with its one write,
//! covers a burst of frames, not each one.
//!
//! What is not RSocket is refused with a WebSocket close the peer can read: a text message
//! (close code 1003, "unsupported data"), a message larger than the connection's largest frame
//! (1009, "message too big"). A server answers a request that is not a WebSocket handshake
//! with an HTTP `400 Bad Request` that says why, and one for another path with `404 Not Found`.

use super::sync::lock;
use super::transport::Transport;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, StreamExt};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

/// The largest frame a 24-bit length prefix can announce: no message above it can be handed
/// to the runtime, whatever the connection's own limit.
const MAX_PREFIXED: usize = 0xFF_FFFF;

/// An RSocket connection over a WebSocket on any byte stream `S` (a `TcpStream`, a TLS
/// stream): a [`Transport`] for
/// [`ClientBuilder::connect_over`](crate::ClientBuilder::connect_over) and
/// [`Server::serve_connection`](crate::Server::serve_connection), made by the client's or the
/// server's handshake. [`Client::connect_websocket`](crate::Client::connect_websocket) and
/// [`Server::bind_websocket`](crate::Server::bind_websocket) do it all over TCP.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use weft::{Client, Config, WebSocket};
///
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:7878").await?;
/// let transport = WebSocket::connect(tcp, "ws://127.0.0.1:7878/rsocket", &Config::default()).await?;
/// let client = Client::builder().connect_over(transport).await?;
/// # drop(client);
/// # Ok(()) }
/// ```
pub struct WebSocket<S> {
    socket: WebSocketStream<S>,
}

impl<S> fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

/// tungstenite's limits for a connection whose largest frame is `max_frame_size`: a message
/// is one frame, and no larger frame is read into memory.
fn ws_config(max_frame_size: usize) -> WebSocketConfig {
    let max = max_frame_size.min(MAX_PREFIXED);
    WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max))
}

fn ws_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S> WebSocket<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    /// The client's handshake over `stream`, for `url` (`ws://host:port/path`, or `wss://…`
    /// over a TLS stream), with the limits of `config` (its largest frame).
    pub async fn connect(stream: S, url: &str, config: &crate::Config) -> io::Result<WebSocket<S>> {
        let limits = ws_config(config.max_frame_size);
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(limits)).await.map_err(ws_error)?;
        Ok(WebSocket { socket })
    }

    /// The server's handshake over `stream`: accepts a WebSocket upgrade on `path` (any path if
    /// `None`), with the limits of `config` (its largest frame). A request that is not a
    /// WebSocket handshake is answered `400 Bad Request`, one for another path `404 Not
    /// Found`, each saying why, and the error is returned.
    pub async fn accept(stream: S, path: Option<&str>, config: &crate::Config) -> io::Result<WebSocket<S>> {
        Ok(Self::accept_from(stream, path, None, config).await?.0)
    }

    /// [`accept`](WebSocket::accept), also refusing with `403 Forbidden` a handshake whose
    /// `Origin` is not one of `origins` (when given; lower-case), and returning the handshake's
    /// `Origin`, if it had one.
    pub(crate) async fn accept_from(
        mut stream: S,
        path: Option<&str>,
        origins: Option<&[String]>,
        config: &crate::Config,
    ) -> io::Result<(WebSocket<S>, Option<String>)> {
        let limits = ws_config(config.max_frame_size);
        let mut origin = None;
        // (The error type is tungstenite's, an HTTP response, as its callback takes it.)
        #[allow(clippy::result_large_err)]
        let check = |request: &tungstenite::handshake::server::Request, response| {
            use tungstenite::handshake::server::ErrorResponse;
            use tungstenite::http::StatusCode;
            let refuse = |status, why: String| {
                let mut refusal = ErrorResponse::new(Some(why));
                *refusal.status_mut() = status;
                Err(refusal)
            };
            if let Some(path) = path
                && request.uri().path() != path
            {
                let why = format!(
                    "no RSocket endpoint at {}: this server serves WebSocket on {path}\n",
                    request.uri().path()
                );
                return refuse(StatusCode::NOT_FOUND, why);
            }
            // Only browsers send `Origin`, and they always do, naming the page's site: a
            // handshake without one is a program's, which a browser page cannot pose as.
            let sent =
                request.headers().get("origin").map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            if let (Some(origins), Some(sent)) = (origins, &sent)
                && !origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(sent))
            {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!("origin {sent} may not open a WebSocket to this server\n"),
                );
            }
            origin = sent;
            Ok(response)
        };
        // The handshake borrows the stream, so that a request that is no handshake at all
        // (which tungstenite refuses without answering) can still be answered; it leaves
        // nothing unread behind (a server refuses bytes after the request), so the WebSocket
        // starts afresh on the stream itself.
        let handshake = tokio_tungstenite::accept_hdr_async_with_config(&mut stream, check, Some(limits)).await;
        match handshake {
            Ok(_) => {}
            // Answered already (a refused path), or the stream failed.
            Err(error @ (tungstenite::Error::Http(_) | tungstenite::Error::Io(_))) => return Err(ws_error(error)),
            // Refused before anything was answered: no HTTP, or no upgrade.
            Err(error) => {
                let body = format!("not a WebSocket handshake: {error}\n");
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, body.trim_end().to_owned()));
            }
        }
        let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(limits)).await;
        Ok((WebSocket { socket }, origin))
    }
}

impl<S> Transport for WebSocket<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Reader = WebSocketReader<S>;
    type Writer = WebSocketWriter<S>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        let (sink, messages) = self.socket.split();
        let refusal = Arc::new(Mutex::new(None));
        let reader = WebSocketReader {
            messages,
            head: [0; 3],
            head_at: 3,
            body: Bytes::new(),
            end: None,
            refusal: refusal.clone(),
        };
        let writer = WebSocketWriter { sink, pending: BytesMut::new(), refusal, refused: false };
        (reader, writer)
    }
}

/// Why the reader refused the peer, for the writer to send as the close (the halves are
/// apart, and only the writer can send).
type Refusal = Arc<Mutex<Option<CloseFrame>>>;

/// The read half of a [`WebSocket`]: each binary message, behind its length.
pub struct WebSocketReader<S> {
    messages: SplitStream<WebSocketStream<S>>,
    /// The length of the message in hand, as a 24-bit prefix, and how much of it is out.
    head: [u8; 3],
    head_at: usize,
    /// What is left of the message in hand.
    body: Bytes,
    /// How the messages ended, met by a read that had gathered messages before it: for the
    /// next read to tell.
    end: Option<io::Result<()>>,
    refusal: Refusal,
}

impl<S> fmt::Debug for WebSocketReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReader").finish_non_exhaustive()
    }
}

impl<S> WebSocketReader<S> {
    /// Refuses the peer: the writer closes with `code` and `reason`, and the read fails with
    /// `reason`.
    fn refuse(&self, code: CloseCode, reason: &str) -> io::Error {
        *lock(&self.refusal) = Some(CloseFrame { code, reason: reason.into() });
        io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
    }
}

impl<S> AsyncRead for WebSocketReader<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Everything that is ready, as a read of TCP hands over everything that has arrived: the
    /// rest of the message in hand, then every message tungstenite has ready (read ahead into
    /// its buffer, or on the socket now), each behind its length, until the caller's buffer is
    /// full or no message is ready. A message that does not fit is kept for the next read. How
    /// the messages end (the peer's close, a refusal, an error), met after some of them, is
    /// told by the next read, once they are handed over.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        loop {
            if this.head_at < 3 || !this.body.is_empty() {
                let head = (3 - this.head_at).min(buf.remaining());
                buf.put_slice(&this.head[this.head_at..this.head_at + head]);
                this.head_at += head;
                let body = this.body.len().min(buf.remaining());
                buf.put_slice(&this.body[..body]);
                this.body.advance(body);
            }
            // (The caller's buffer bounds what one read gathers.)
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let got = buf.filled().len() > start;
            // (Kept only behind messages, which are all out by now.)
            if let Some(end) = this.end.take() {
                return Poll::Ready(end);
            }
            let message = match this.messages.poll_next_unpin(cx) {
                Poll::Ready(message) => message,
                // What was gathered goes now; the stream wakes the caller when more comes.
                Poll::Pending if got => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            };
            let end = match message {
                Some(Ok(Message::Binary(frame))) => {
                    // (tungstenite enforces the connection's limit; this one is the prefix's.)
                    if frame.len() > MAX_PREFIXED {
                        Err(this.refuse(CloseCode::Size, "a message larger than an RSocket frame"))
                    } else {
                        let len = frame.len() as u32;
                        this.head = [(len >> 16) as u8, (len >> 8) as u8, len as u8];
                        this.head_at = 0;
                        this.body = frame;
                        continue;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    let reason = "RSocket over WebSocket takes binary messages, one frame each; this was text";
                    Err(this.refuse(CloseCode::Unsupported, reason))
                }
                // The peer closed (tungstenite answers its close): the end of the stream.
                Some(Ok(Message::Close(_))) | None => Ok(()),
                // Pings are answered by tungstenite; pongs and raw frames carry nothing here.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(tungstenite::Error::Capacity(error))) => {
                    Err(this.refuse(CloseCode::Size, &format!("message too big: {error}")))
                }
                Some(Err(error)) => Err(ws_error(error)),
            };
            if !got {
                return Poll::Ready(end);
            }
            // The messages before it go first.
            this.end = Some(end);
            return Poll::Ready(Ok(()));
        }
    }
}

/// The write half of a [`WebSocket`]: each length-prefixed frame the runtime writes, as one
/// binary message.
pub struct WebSocketWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// What was written and not yet sent: the start of a frame.
    pending: BytesMut,
    refusal: Refusal,
    /// The refusal's close has been sent.
    refused: bool,
}

impl<S> fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketWriter").field("pending", &self.pending.len()).finish_non_exhaustive()
    }
}

impl<S> WebSocketWriter<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Hands every whole frame in `pending` to the WebSocket, as the sink takes them.
    fn poll_send_frames(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending.len() >= 3 {
            let len =
                usize::from(self.pending[0]) << 16 | usize::from(self.pending[1]) << 8 | usize::from(self.pending[2]);
            if self.pending.len() < 3 + len {
                break;
            }
            ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(ws_error)?;
            self.pending.advance(3);
            let frame = self.pending.split_to(len).freeze();
            Pin::new(&mut self.sink).start_send(Message::Binary(frame)).map_err(ws_error)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncWrite for WebSocketWriter<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was taken before goes first: a sink that takes no more holds the writer back.
        ready!(this.poll_send_frames(cx))?;
        this.pending.extend_from_slice(buf);
        // Taken, whether or not the sink takes its frames now (the next write or flush sends
        // them).
        if let Poll::Ready(Err(error)) = this.poll_send_frames(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_frames(cx))?;
        Pin::new(&mut this.sink).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Frames written before the end still go (the last ERROR frame, say); then the close,
        // with the reader's refusal if it refused the peer.
        ready!(this.poll_send_frames(cx))?;
        if !this.refused {
            let refusal = lock(&this.refusal).clone();
            if let Some(refusal) = refusal {
                ready!(Pin::new(&mut this.sink).poll_ready(cx)).map_err(ws_error)?;
                Pin::new(&mut this.sink).start_send(Message::Close(Some(refusal))).map_err(ws_error)?;
            }
            this.refused = true;
        }
        Pin::new(&mut this.sink).poll_close(cx).map_err(ws_error)
    }
}
