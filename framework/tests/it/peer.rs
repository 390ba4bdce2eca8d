//! A raw RSocket peer over TCP, for tests that must speak the wire as other implementations do
//! (exact credit, frames out of order, hostile input) rather than as Weft's own client does.
//! Every read is bounded by a timeout, so a peer that waits for a frame that never comes fails
//! the test instead of hanging it.

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft::frame::length::{self, LengthDelimited};
use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata};
use weft::frame::{self, Frame, Setup, VERSION};

/// How long a read waits for a frame before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// One end of a raw connection.
pub(crate) struct Peer {
    socket: TcpStream,
    buf: BytesMut,
    framing: LengthDelimited,
}

/// What a read found.
#[derive(Debug)]
pub(crate) enum Read {
    /// A frame.
    Frame(Frame),
    /// The other side closed the connection.
    Closed,
    /// Nothing came within the time asked.
    Nothing,
}

impl Peer {
    /// Connects to `addr` and sends nothing yet.
    pub(crate) async fn connect(addr: SocketAddr) -> Peer {
        Peer::over(TcpStream::connect(addr).await.expect("connect"))
    }

    /// Connects to `addr` and sends SETUP, as a client.
    pub(crate) async fn setup(addr: SocketAddr) -> Peer {
        let mut peer = Peer::connect(addr).await;
        peer.send(&setup_frame()).await;
        peer
    }

    /// A peer over an accepted or connected socket.
    pub(crate) fn over(socket: TcpStream) -> Peer {
        Peer { socket, buf: BytesMut::new(), framing: LengthDelimited::new(frame::MAX_FRAME_SIZE) }
    }

    /// Writes `frame`, length-prefixed.
    pub(crate) async fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        length::encode_frame(frame, &mut out);
        self.send_raw(&out).await;
    }

    /// Writes `bytes` as they are.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("write to the server");
    }

    /// The next frame, waiting at most `wait`.
    pub(crate) async fn read_within(&mut self, wait: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.framing.decode_frame(&mut self.buf) {
                Ok(Some(frame)) => return Read::Frame(frame),
                Ok(None) => {}
                Err(e) => panic!("the other side sent a frame that does not decode: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.socket.read_buf(&mut self.buf)).await {
                Err(_) => return Read::Nothing,
                Ok(Ok(0) | Err(_)) => return Read::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame; fails the test if none comes within [`WAIT`] or the connection closes.
    pub(crate) async fn frame(&mut self) -> Frame {
        match self.read_within(WAIT).await {
            Read::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Frames until the other side closes (within [`WAIT`] of each other).
    pub(crate) async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.read_within(WAIT).await {
                Read::Frame(frame) => frames.push(frame),
                Read::Closed => return frames,
                Read::Nothing => panic!("the connection stayed open; frames so far: {frames:?}"),
            }
        }
    }

    /// Goes without the RSocket close: with a TCP RST if `rst` (a zero linger), else a plain
    /// close.
    pub(crate) fn vanish(self, rst: bool) {
        if rst {
            self.socket.set_zero_linger().expect("a zero linger");
        }
        drop(self);
    }

    /// Whether no frame arrives within `wait` (and the connection stays open).
    pub(crate) async fn quiet_for(&mut self, wait: Duration) -> Result<(), Read> {
        match self.read_within(wait).await {
            Read::Nothing => Ok(()),
            other => Err(other),
        }
    }
}

/// A client's SETUP as other implementations send it.
pub(crate) fn setup_frame() -> Frame {
    Frame::Setup(Setup {
        version: VERSION,
        keepalive_interval: 1000,
        max_lifetime: 30_000,
        resume_token: None,
        lease: false,
        metadata_mime: COMPOSITE_METADATA_MIME.into(),
        data_mime: "application/octet-stream".into(),
        payload: Default::default(),
    })
}

/// Request metadata naming `route`.
pub(crate) fn route(route: &str) -> Bytes {
    CompositeMetadata::with_route(route).expect("a valid route").to_bytes()
}
