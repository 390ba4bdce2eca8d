//! The reader's end of a stream's inbound queue: [`PayloadStream`], which reports what it
//! consumed so that credit goes back to the peer.

use super::command::Control;
use super::handles::Handles;
use super::queue::{Inlet, Item, Shared};
use crate::{Payload, Status};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A new inbound queue: the driver's end and the reader's, which learns its stream id with
/// [`PayloadStream::set_id`] (until then, dropping it cancels nothing).
pub(crate) fn inbound(handles: &Handles) -> (Inlet, PayloadStream) {
    let (inlet, shared) = super::queue::queue(handles.credit_batch);
    let stream = PayloadStream {
        id: 0,
        shared,
        local: VecDeque::new(),
        batch: handles.credit_batch,
        handles: handles.clone(),
        unacked: 0,
        unacked_bytes: 0,
        closed: false,
        done: false,
        expiry: None,
    };
    (inlet, stream)
}

/// A stream that yields `items`, then ends, on a connection that is not there (for unit tests
/// of what reads one).
#[cfg(test)]
pub(crate) fn from_items(items: impl IntoIterator<Item = Item>) -> PayloadStream {
    let (inbox, _) = super::inbox::Inbox::new();
    let (_, closed) = tokio::sync::watch::channel(None);
    let (inlet, stream) = inbound(&Handles::new(inbox, &crate::Config::default(), closed, None, Default::default()));
    for item in items {
        inlet.push(item);
    }
    stream
}

/// A stream of payloads arriving on one RSocket stream: the responses to a request/stream or
/// channel, or — as a channel's responder sees them — the requester's messages.
///
/// Credit (`REQUEST_N`) goes back to the peer as items are consumed, in batches of half the
/// window, so a slow reader slows the sender and at most a window of messages is buffered.
/// Dropping it before the end cancels the stream (as a channel's responder: stops reading the
/// requester's messages).
pub struct PayloadStream {
    id: u32,
    shared: Arc<Mutex<Shared>>,
    /// Items taken from the queue in one go and not yet yielded.
    local: VecDeque<Item>,
    /// The report size last read from the queue.
    batch: u32,
    handles: Handles,
    /// Messages consumed and not yet reported, and their bytes.
    unacked: u32,
    unacked_bytes: u64,
    /// The driver's end is gone: once `local` is empty, the stream is over.
    closed: bool,
    done: bool,
    /// The call's deadline, on a requester's stream that has one.
    expiry: Option<Box<Expiry>>,
}

/// A stream's deadline, and its route for the status.
struct Expiry {
    sleep: Pin<Box<tokio::time::Sleep>>,
    route: String,
}

impl PayloadStream {
    /// The RSocket stream id.
    pub fn stream_id(&self) -> u32 {
        self.id
    }

    pub(crate) fn set_id(&mut self, id: u32) {
        self.id = id;
    }

    /// Ends the stream at `deadline` with `DEADLINE_EXCEEDED`, cancelling it.
    pub(crate) fn set_deadline(&mut self, deadline: tokio::time::Instant, route: String) {
        self.expiry = Some(Box::new(Expiry { sleep: Box::pin(tokio::time::sleep_until(deadline)), route }));
    }

    /// The deadline's status if it has passed: the stream is then over, and cancelled.
    #[cold]
    fn poll_expiry(&mut self, cx: &mut Context<'_>) -> Option<Item> {
        let expiry = self.expiry.as_mut()?;
        std::future::Future::poll(expiry.sleep.as_mut(), cx).is_ready().then(|| {
            let route = self.expiry.take().map(|expiry| expiry.route).unwrap_or_default();
            self.done = true;
            self.local.clear();
            if self.id != 0 {
                self.handles.inbox.control(Control::Cancel(self.id));
            }
            Err(super::deadline::exceeded(&route))
        })
    }

    /// Refills `local` from the queue; false if nothing was there. Then, unless the queue is
    /// closed, `cx`'s waker is registered; without `cx`, none is (and one registered before
    /// is taken out).
    fn refill(&mut self, cx: Option<&Context<'_>>) -> bool {
        (self.batch, self.closed) = Shared::take_all(&self.shared, &mut self.local, cx);
        !self.local.is_empty()
    }

    /// Refills `local`, first running the connection's driver here if it can (see
    /// [`super::assist`]) when nothing is queued; false if nothing came (the waker is then
    /// registered, unless the queue is closed).
    fn fill(&mut self, cx: &Context<'_>) -> bool {
        if self.handles.assist.is_some() {
            // Without our waker in the queue, what this poll of the driver delivers does not
            // wake us: it is found by looking again.
            if self.refill(None) {
                return true;
            }
            if let Some(assist) = &self.handles.assist
                && !self.closed
            {
                assist.help(cx);
            }
        }
        self.refill(Some(cx))
    }
}

impl fmt::Debug for PayloadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadStream").field("stream_id", &self.id).field("done", &self.done).finish()
    }
}

impl PayloadStream {
    /// The item after `local` ran dry: refilled from the queue (running the driver first if it
    /// can), or the end.
    #[inline(never)]
    fn poll_refill(&mut self, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Looked at once a refill, not once a message: the messages already taken in are
        // delivered first.
        if self.expiry.is_some()
            && let Some(expired) = self.poll_expiry(cx)
        {
            return Poll::Ready(Some(expired));
        }
        if !self.fill(cx) {
            if self.closed {
                self.done = true;
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
        Poll::Ready(self.yield_front())
    }

    /// The next item if one has arrived, without waiting (no waker is registered, and one
    /// registered before is taken out) and without running the driver: for a reader taking a
    /// batch after its first item. `None` when nothing is there now, or at the end (which the
    /// next poll then reports).
    #[inline]
    pub(crate) fn take_ready(&mut self) -> Option<Item> {
        if self.local.is_empty() && (self.done || !self.refill(None)) {
            return None;
        }
        self.yield_front()
    }

    /// The front of `local`, counted as consumed (an error ends the stream).
    #[inline]
    fn yield_front(&mut self) -> Option<Item> {
        let item = self.local.pop_front();
        match &item {
            Some(Ok(payload)) => {
                self.unacked += 1;
                self.unacked_bytes += (payload.metadata.len() + payload.data.len()) as u64;
                if self.unacked >= self.batch || self.unacked_bytes >= self.handles.report_bytes {
                    self.report();
                }
            }
            Some(Err(_)) | None => {
                // Nothing follows the end (see `poll_next`).
                self.done = true;
                self.local.clear();
            }
        }
        item
    }

    /// Tells the driver how many messages were consumed, so that it grants more credit, and
    /// their bytes, so that they no longer count as unread.
    #[cold]
    fn report(&mut self) {
        let n = std::mem::take(&mut self.unacked);
        let bytes = std::mem::take(&mut self.unacked_bytes);
        self.handles.inbox.control(Control::Consumed(self.id, n, bytes));
    }
}

impl futures_core::Stream for PayloadStream {
    type Item = Result<Payload, Status>;

    // Inlined, with the refill out of line: every message of a stream passes here, from a
    // caller compiled in the user's crate (the typed layer's `Streaming`).
    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `local` holds nothing once the stream is done: `done` is set only by what emptied it
        // or found it empty, and nothing refills it after.
        if self.local.is_empty() {
            return self.poll_refill(cx);
        }
        Poll::Ready(self.yield_front())
    }
}

impl futures_core::FusedStream for PayloadStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for PayloadStream {
    fn drop(&mut self) {
        // Stream 0 is no stream: the request was never opened.
        if !self.done && self.id != 0 {
            self.handles.inbox.control(Control::Cancel(self.id));
        }
    }
}
