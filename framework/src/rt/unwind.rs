//! Panics in application code — a handler, the stream it returns, a caller's outbound stream,
//! a message's encoding — end the call they belong to, never the connection: the driver polls
//! such code on its own task, so a panic left to unwind there would fail every call on the
//! connection, and one in a handler's task would leave its caller waiting for an answer that
//! never comes. Each place that runs application code runs it through [`guard`] (or
//! [`CatchUnwind`] for a spawned future) and turns a panic into `INTERNAL` for that call.
//!
//! What is left after a panic is not touched again: the future or stream that panicked is
//! dropped with its call, so its state, whatever the panic left it in, is never observed.

use crate::Status;
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `f`, catching a panic.
#[inline]
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Panicked::from_payload)
}

/// A panic caught in application code, with its message.
#[derive(Debug)]
pub(crate) struct Panicked(String);

impl Panicked {
    fn from_payload(payload: Box<dyn Any + Send>) -> Panicked {
        let message = match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(payload) => {
                payload.downcast::<&'static str>().map_or_else(|_| "(no message)".to_owned(), |m| (*m).to_owned())
            }
        };
        Panicked(message)
    }

    /// The status the call ends with: `INTERNAL`, naming `what` panicked.
    pub(crate) fn status(&self, what: &str) -> Status {
        Status::internal(format!("{what} panicked: {}", self.0))
    }
}

pin_project_lite::pin_project! {
    /// A future whose panic is caught and returned, for a handler that runs as a task.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        future: F,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> CatchUnwind<F> {
        CatchUnwind { future }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match guard(|| future.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panicked) => Poll::Ready(Err(panicked)),
        }
    }
}
