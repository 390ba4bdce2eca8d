//! Deadlines: how a call's deadline travels to the responder (a composite metadata entry of
//! type [`TIMEOUT_MIME`]), and how either side holds a call to it.
//!
//! The entry carries the time left, not the instant: the two hosts' clocks need not agree. The
//! requester writes what is left when it sends the request (rounded up to the millisecond, so
//! that a call never claims less time than it has); the responder counts it from when the
//! request arrived, so its deadline is the requester's plus the time on the wire.

use crate::frame::metadata::CompositeMetadata;
use crate::rt::responses::{Encode, EncodeOne};
use crate::{Payload, Status};
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The MIME type of the composite metadata entry that carries a request's deadline, as the
/// time left in milliseconds, written as an ASCII decimal number (`"1500"`: 1.5 s).
///
/// [`Call::with_timeout`](crate::Call::with_timeout),
/// [`Request::with_timeout`](crate::Request::with_timeout) and
/// [`ClientBuilder::timeout`](crate::ClientBuilder::timeout) write it; a Weft responder reads
/// it, shows the deadline as [`Context::deadline`](crate::Context::deadline) and ends the
/// call at the deadline with `DEADLINE_EXCEEDED`. A requester in another language sets a
/// deadline by sending the entry itself.
///
/// ```
/// use weft::{Call, CompositeMetadata, TIMEOUT_MIME};
///
/// // What a requester in any language writes for a call with 1.5 s to go:
/// let mut metadata = CompositeMetadata::with_route("greet.Greeter/SayHello")?;
/// metadata.push(TIMEOUT_MIME, "1500")?;
/// # Ok::<(), weft::MetadataError>(())
/// ```
pub const TIMEOUT_MIME: &str = "application/x.weft.timeout";

/// The longest timeout the entry may carry: 20 digits would overflow, and no call waits for
/// a century.
const MAX_TIMEOUT_DIGITS: usize = 12;

/// The entry's content for `left`: milliseconds, rounded up.
pub(crate) fn encode_timeout(left: Duration) -> Bytes {
    let millis = left.as_nanos().div_ceil(1_000_000);
    Bytes::from(millis.to_string())
}

/// The timeout a request's metadata block carries, if it has the entry; an error status for
/// an entry that is not a decimal number of milliseconds.
pub(crate) fn read_timeout(block: &Bytes) -> Result<Option<Duration>, Status> {
    let Some(content) = CompositeMetadata::find_named(block, TIMEOUT_MIME) else { return Ok(None) };
    let digits = !content.is_empty() && content.len() <= MAX_TIMEOUT_DIGITS && content.iter().all(u8::is_ascii_digit);
    let millis = digits.then(|| std::str::from_utf8(&content).ok()?.parse::<u64>().ok()).flatten();
    match millis {
        Some(millis) => Ok(Some(Duration::from_millis(millis))),
        None => Err(Status::invalid_argument(format!(
            "the `{TIMEOUT_MIME}` entry must be the time left in milliseconds, 1 to {MAX_TIMEOUT_DIGITS} ASCII \
             digits, not {:?}",
            String::from_utf8_lossy(&content[..content.len().min(32)])
        ))),
    }
}

/// The status of a call whose deadline passed.
pub(crate) fn exceeded(route: &str) -> Status {
    Status::deadline_exceeded(format!("the deadline of `{route}` passed"))
}

/// What is left until `deadline`, if anything is.
pub(crate) fn left(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())
}

/// A responder's answer (a [`Response`](crate::Response)'s future or a
/// [`Responses`](crate::Responses) stream) held to the call's deadline: at the deadline it is
/// dropped, which cancels the handler, and the call ends with `DEADLINE_EXCEEDED`.
pub(crate) struct Deadlined<T: ?Sized> {
    inner: Pin<Box<T>>,
    sleep: Pin<Box<Sleep>>,
    route: std::sync::Arc<str>,
    expired: bool,
}

impl<T: ?Sized> Deadlined<T> {
    pub(crate) fn new(inner: Pin<Box<T>>, deadline: Instant, route: std::sync::Arc<str>) -> Deadlined<T> {
        Deadlined { inner, sleep: Box::pin(tokio::time::sleep_until(deadline)), route, expired: false }
    }

    /// Whether the deadline has passed (then the status to end with, once).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if self.expired || self.sleep.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.expired = true;
        Some(exceeded(&self.route))
    }
}

impl Future for Deadlined<dyn EncodeOne> {
    type Output = Result<Payload, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(answer) = this.inner.as_mut().poll(cx) {
            return Poll::Ready(answer);
        }
        match this.poll_expired(cx) {
            Some(status) => Poll::Ready(Err(status)),
            None => Poll::Pending,
        }
    }
}

impl EncodeOne for Deadlined<dyn EncodeOne> {
    fn poll_encode(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<Result<bool, Status>> {
        let this = self.get_mut();
        if let Poll::Ready(answer) = this.inner.as_mut().poll_encode(cx, out) {
            return Poll::Ready(answer);
        }
        match this.poll_expired(cx) {
            Some(status) => Poll::Ready(Err(status)),
            None => Poll::Pending,
        }
    }
}

impl futures_core::Stream for Deadlined<dyn Encode> {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Some(status) = this.poll_expired(cx) {
            return Poll::Ready(Some(Err(status)));
        }
        this.inner.as_mut().poll_next(cx)
    }
}

impl Encode for Deadlined<dyn Encode> {
    fn poll_encode(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut BytesMut,
    ) -> Poll<Option<Result<bool, Status>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        // The deadline first: a stream that always has a message ready is cut at it too.
        if let Some(status) = this.poll_expired(cx) {
            return Poll::Ready(Some(Err(status)));
        }
        this.inner.as_mut().poll_encode(cx, out)
    }

    fn poll_cut(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Status> {
        match self.get_mut().poll_expired(cx) {
            Some(status) => Poll::Ready(status),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(timeout: Option<&str>) -> Bytes {
        let mut metadata = CompositeMetadata::with_route("a.B/C").unwrap();
        metadata.push("x-other", "1").unwrap();
        if let Some(timeout) = timeout {
            metadata.push(TIMEOUT_MIME, timeout.to_owned()).unwrap();
        }
        metadata.to_bytes()
    }

    #[test]
    fn the_time_left_is_written_in_milliseconds_rounded_up() {
        assert_eq!(encode_timeout(Duration::from_millis(1500)), "1500");
        assert_eq!(encode_timeout(Duration::from_micros(1)), "1");
        assert_eq!(encode_timeout(Duration::from_micros(2_000_001)), "2001");
    }

    #[test]
    fn a_timeout_entry_is_read_and_a_malformed_one_refused() {
        assert_eq!(read_timeout(&block(None)), Ok(None));
        assert_eq!(read_timeout(&block(Some("250"))), Ok(Some(Duration::from_millis(250))));
        assert_eq!(read_timeout(&block(Some("0"))), Ok(Some(Duration::ZERO)));
        for bad in ["", "-5", "1.5", "12s", "9999999999999", " 1"] {
            let status = read_timeout(&block(Some(bad))).unwrap_err();
            assert_eq!(status.code(), crate::Code::InvalidArgument, "{bad:?}");
            assert!(status.message().contains(TIMEOUT_MIME), "{bad:?}: {status}");
        }
    }
}
