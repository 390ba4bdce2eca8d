//! A TCP stream that a test (or a load generator) cuts from outside, to leave a server the
//! way a vanished peer does: without the RSocket close. Shared by the churn and load tests and
//! by `examples/churn_load.rs`, which includes this file.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that can be cut from outside: once cut, every read and write fails, so the
/// client's driver ends at once and drops the socket without the RSocket close.
pub(crate) struct Cuttable {
    stream: TcpStream,
    cut: Arc<Cut>,
}

impl Cuttable {
    /// `stream`, cut by `cut`.
    pub(crate) fn new(stream: TcpStream, cut: Arc<Cut>) -> Cuttable {
        Cuttable { stream, cut }
    }
}

/// The switch of a [`Cuttable`].
#[derive(Default)]
pub(crate) struct Cut {
    done: AtomicBool,
    /// The driver, waiting on the socket: the cut wakes it.
    reader: Mutex<Option<Waker>>,
}

impl Cut {
    /// Cuts: every read and write from now on fails, and a waiting read wakes to fail.
    pub(crate) fn cut(&self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            waker.wake();
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.done.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "cut"));
        }
        Ok(())
    }
}

impl AsyncRead for Cuttable {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.cut.check()?;
        *self.cut.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Again: a cut between the first look and the waker's registration would go unseen.
        self.cut.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Cuttable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.cut.check()?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.cut.check()?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A cut connection is dropped, not shut down.
        self.cut.check()?;
        Poll::Ready(Ok(()))
    }
}
