//! The floor: tokio TCP with length-prefixed frames and no RPC layer.
//!
//! A frame is `[u32 length, big-endian][u8 kind][body]`, the length counting kind and body.
//! Kinds: 0 echo (the server sends the frame back), 1 stream request (body: u64 count, u32
//! size; the server answers with `count` frames of kind 2), 2 stream item, 3 stream request
//! for a diagnostic floor (as 1, each item a prost-encoded `Msg`; see [`prost_stream`]).
//!
//! Raw TCP has no multiplexing, so: one call in flight uses the socket directly; many calls in
//! flight share one connection through a writer task and a reader task that match replies to
//! callers in order; a stream is a connection of its own; and there is no stream to hold open
//! (the scale-streams workload does not apply).

use crate::common::Result;
use crate::runner::System;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

const ECHO: u8 = 0;
const STREAM: u8 = 1;
const ITEM: u8 = 2;
const PROST_STREAM: u8 = 3;
/// No frame the benchmark sends is larger; anything longer is a bug or an attack.
const MAX_FRAME: usize = 1 << 20;

pub async fn serve(listener: TcpListener) -> Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = connection(socket).await;
        });
    }
}

async fn connection(mut socket: TcpStream) -> Result<()> {
    let (r, w) = socket.split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut body = Vec::new();
    loop {
        let len = r.read_u32().await? as usize;
        if len == 0 || len > MAX_FRAME {
            return Err("bad frame length".into());
        }
        let kind = r.read_u8().await?;
        body.resize(len - 1, 0);
        r.read_exact(&mut body).await?;
        match kind {
            ECHO => {
                w.write_u32(len as u32).await?;
                w.write_u8(ECHO).await?;
                w.write_all(&body).await?;
                // Flush once no further request is already buffered: replies to pipelined
                // requests leave in one write.
                if r.buffer().is_empty() {
                    w.flush().await?;
                }
            }
            STREAM if body.len() == 12 => {
                let count = u64::from_be_bytes(body[..8].try_into()?);
                let size = u32::from_be_bytes(body[8..].try_into()?) as usize;
                let item = vec![0xA5u8; size.min(MAX_FRAME - 1)];
                for _ in 0..count {
                    // The socket's own buffer is the only flow control: writes wait when full.
                    w.write_u32(item.len() as u32 + 1).await?;
                    w.write_u8(ITEM).await?;
                    w.write_all(&item).await?;
                }
                w.flush().await?;
            }
            PROST_STREAM if body.len() == 12 => {
                let count = u64::from_be_bytes(body[..8].try_into()?);
                let size = u32::from_be_bytes(body[8..].try_into()?);
                prost_stream(&mut w, count, size).await?;
            }
            _ => return Err("bad frame kind".into()),
        }
    }
}

/// A diagnostic floor for protobuf streams (`WEFT_BENCH_RAW_PROST` set for the client, as the
/// orchestrator's children inherit it; the published table runs without): the messages the RPC
/// systems' servers stream (`produce`), each prost-encoded into a frame of its own and written
/// 16 KiB at a time, which the client decodes one by one. What any RPC system that hands out
/// decoded messages pays at least.
async fn prost_stream<W: AsyncWriteExt + Unpin>(w: &mut W, count: u64, size: u32) -> Result<()> {
    use futures_util::StreamExt;
    use prost::Message;
    let mut items = crate::messages::produce::<()>(crate::messages::StreamReq { count, size, hold: false });
    let mut buf = bytes::BytesMut::with_capacity(32 * 1024);
    while let Some(Ok(msg)) = items.next().await {
        let at = buf.len();
        bytes::BufMut::put_slice(&mut buf, &[0, 0, 0, 0, ITEM]);
        msg.encode_raw(&mut buf);
        let len = (buf.len() - at - 4) as u32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        if buf.len() >= 16 * 1024 {
            w.write_all(&buf).await?;
            buf.clear();
        }
    }
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, body: &mut Vec<u8>) -> Result<u8> {
    let len = r.read_u32().await? as usize;
    if len == 0 || len > MAX_FRAME {
        return Err("bad frame length".into());
    }
    let kind = r.read_u8().await?;
    body.resize(len - 1, 0);
    r.read_exact(body).await?;
    Ok(kind)
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + body.len());
    f.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    f.push(kind);
    f.extend_from_slice(body);
    f
}

async fn dial(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

struct Direct {
    socket: BufReader<TcpStream>,
    body: Vec<u8>,
}

pub struct Inner {
    addr: SocketAddr,
    /// The connection for one call at a time; taken out for the duration of a call.
    direct: RefCell<Option<Direct>>,
}

/// A second connection, shared by many tasks (see [`pipe`]).
pub type Pipe = mpsc::Sender<(Bytes, oneshot::Sender<()>)>;

pub struct Raw;

/// A raw stream: its own connection, read frame by frame.
pub enum Stream {
    /// Items of kind 2, their bodies read into the `Vec`.
    Plain(BufReader<TcpStream>, Vec<u8>),
    /// The diagnostic floor's items (see [`prost_stream`]), decoded from the buffer.
    Prost(TcpStream, bytes::BytesMut),
}

impl System for Raw {
    type Conn = Rc<Inner>;
    type Stream = Stream;
    type Chan = Rc<Inner>;

    async fn connect(addr: SocketAddr) -> Result<Self::Conn> {
        let socket = BufReader::new(dial(addr).await?);
        Ok(Rc::new(Inner { addr, direct: RefCell::new(Some(Direct { socket, body: Vec::new() })) }))
    }

    async fn unary(conn: &Self::Conn, data: Bytes) -> Result<()> {
        let mut d = conn.direct.borrow_mut().take().ok_or("the direct connection is in use")?;
        d.socket.get_mut().write_all(&frame(ECHO, &data)).await?;
        read_frame(&mut d.socket, &mut d.body).await?;
        *conn.direct.borrow_mut() = Some(d);
        Ok(())
    }

    type Shared = Pipe;

    async fn shared(conn: &Self::Conn) -> Result<Self::Shared> {
        pipe(conn.addr).await
    }

    async fn connect_shared(addr: SocketAddr) -> Result<Self::Shared> {
        pipe(addr).await
    }

    async fn unary_shared(pipe: &Self::Shared, data: Bytes) -> Result<()> {
        let (done, rx) = oneshot::channel();
        pipe.send((data, done)).await.map_err(|_| "the pipelined connection closed")?;
        rx.await.map_err(|_| "the pipelined connection closed")?;
        Ok(())
    }

    async fn stream(conn: &Self::Conn, count: u64, size: usize, hold: bool) -> Result<Self::Stream> {
        if hold {
            return Err("raw TCP has no streams to hold open".into());
        }
        let prost = std::env::var_os("WEFT_BENCH_RAW_PROST").is_some();
        let mut socket = dial(conn.addr).await?;
        let mut body = count.to_be_bytes().to_vec();
        body.extend_from_slice(&(size as u32).to_be_bytes());
        socket.write_all(&frame(if prost { PROST_STREAM } else { STREAM }, &body)).await?;
        Ok(match prost {
            true => Stream::Prost(socket, bytes::BytesMut::with_capacity(64 * 1024)),
            false => Stream::Plain(BufReader::with_capacity(64 * 1024, socket), Vec::new()),
        })
    }

    async fn next(stream: &mut Self::Stream) -> Result<bool> {
        let (socket, body) = match stream {
            Stream::Plain(socket, body) => (socket, body),
            Stream::Prost(socket, buf) => return next_prost(socket, buf).await,
        };
        match read_frame(socket, body).await {
            Ok(ITEM) => Ok(true),
            Ok(_) => Err("unexpected frame in a stream".into()),
            Err(e) => match e.downcast_ref::<std::io::Error>() {
                Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
                _ => Err(e),
            },
        }
    }

    async fn channel(conn: &Self::Conn, data: Bytes) -> Result<Self::Chan> {
        Raw::unary(conn, data).await?;
        Ok(conn.clone())
    }

    async fn ping(chan: &mut Self::Chan, data: Bytes) -> Result<()> {
        Raw::unary(chan, data).await
    }
}

/// Opens the shared connection: a writer task coalesces queued requests into one write, a
/// reader task hands each reply to the oldest waiting caller (the server answers in order).
/// Both are runtime tasks, as an RPC library's connection tasks are.
/// The next item of the diagnostic floor's stream (see [`prost_stream`]), decoded from its
/// frame's bytes without a copy, as the RPC systems' clients decode theirs; `false` at the end.
async fn next_prost(socket: &mut TcpStream, buf: &mut bytes::BytesMut) -> Result<bool> {
    use prost::Message;
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into()?) as usize;
            if len == 0 || len > MAX_FRAME {
                return Err("bad frame length".into());
            }
            if buf.len() >= 4 + len {
                bytes::Buf::advance(buf, 5);
                let data = buf.split_to(len - 1).freeze();
                let msg = crate::messages::Msg::decode(data)?;
                std::hint::black_box(&msg);
                return Ok(true);
            }
        }
        buf.reserve(64 * 1024);
        if socket.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
}

async fn pipe(addr: SocketAddr) -> Result<Pipe> {
    let (r, w) = dial(addr).await?.into_split();
    let (tx, mut rx) = mpsc::channel::<(Bytes, oneshot::Sender<()>)>(1024);
    let waiting: Arc<Mutex<VecDeque<oneshot::Sender<()>>>> = Arc::default();
    let queue = waiting.clone();
    let wait = move |done| queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(done);
    tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(64 * 1024, w);
        while let Some((data, done)) = rx.recv().await {
            wait(done);
            w.write_all(&frame(ECHO, &data)).await?;
            while let Ok((data, done)) = rx.try_recv() {
                wait(done);
                w.write_all(&frame(ECHO, &data)).await?;
            }
            w.flush().await?;
        }
        Ok::<_, crate::common::Error>(())
    });
    tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let mut body = Vec::new();
        loop {
            read_frame(&mut r, &mut body).await?;
            let done = waiting.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
            let _ = done.ok_or("a reply nobody asked for")?.send(());
        }
        #[allow(unreachable_code)]
        Ok::<_, crate::common::Error>(())
    });
    Ok(tx)
}
