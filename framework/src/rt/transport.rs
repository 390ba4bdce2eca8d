//! Transports: what carries RSocket frames.
//!
//! A [`Transport`] is a reliable, ordered byte stream split into a read half and a write half;
//! Weft puts the 24-bit frame length prefix on it (Protocol.md, "Framing Protocol Usage"). TCP
//! and an in-memory duplex ship with Weft; anything that is `AsyncRead + AsyncWrite` — a Unix
//! socket, a TLS stream — plugs in through [`Io`]. A message-oriented transport (WebSocket)
//! fits by writing each message's length before it on the read side and stripping it on the
//! write side.

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A byte-stream transport for one connection.
pub trait Transport: Send + 'static {
    /// The read half.
    type Reader: AsyncRead + Send + Unpin + 'static;
    /// The write half.
    type Writer: AsyncWrite + Send + Unpin + 'static;

    /// Splits the transport so reads and writes proceed independently: a connection must
    /// keep reading while a large write is blocked, or two peers writing at once deadlock.
    fn split(self) -> (Self::Reader, Self::Writer);
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        // Small frames (a request, a REQUEST_N) must not wait for Nagle's timer; writes are
        // already coalesced by the connection driver.
        let _ = self.set_nodelay(true);
        self.into_split()
    }
}

#[cfg(unix)]
impl Transport for tokio::net::UnixStream {
    type Reader = tokio::net::unix::OwnedReadHalf;
    type Writer = tokio::net::unix::OwnedWriteHalf;

    fn split(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl Transport for DuplexStream {
    type Reader = ReadHalf<DuplexStream>;
    type Writer = WriteHalf<DuplexStream>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// Adapts any `AsyncRead + AsyncWrite` byte stream (a Unix socket, a TLS stream) into a
/// [`Transport`].
#[derive(Debug)]
pub struct Io<T>(pub T);

impl<T> Transport for Io<T>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    type Reader = ReadHalf<T>;
    type Writer = WriteHalf<T>;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self.0)
    }
}
