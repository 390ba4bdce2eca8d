use super::driver::{Control, Handles};
use crate::{Payload, Status};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A stream of payloads arriving on one RSocket stream: the responses to a request/stream or
/// channel, or — as a channel's responder sees them — the requester's messages.
///
/// Credit (`REQUEST_N`) goes back to the peer as items are consumed, in batches of half the
/// window, so a slow reader slows the sender and at most a window of messages is buffered.
/// Dropping it before the end cancels the stream (as a channel's responder: stops reading the
/// requester's messages).
pub struct PayloadStream {
    id: u32,
    rx: mpsc::Receiver<Result<Payload, Status>>,
    handles: Handles,
    unacked: u32,
    done: bool,
}

impl PayloadStream {
    pub(crate) fn new(id: u32, rx: mpsc::Receiver<Result<Payload, Status>>, handles: Handles) -> PayloadStream {
        PayloadStream { id, rx, handles, unacked: 0, done: false }
    }

    /// The RSocket stream id.
    pub fn stream_id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for PayloadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadStream").field("stream_id", &self.id).field("done", &self.done).finish()
    }
}

impl futures_core::Stream for PayloadStream {
    type Item = Result<Payload, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(self.rx.poll_recv(cx));
        match &item {
            Some(Ok(_)) => {
                self.unacked += 1;
                if self.unacked >= self.handles.credit_batch {
                    let n = std::mem::take(&mut self.unacked);
                    let _ = self.handles.control.send(Control::Consumed(self.id, n));
                }
            }
            Some(Err(_)) | None => self.done = true,
        }
        Poll::Ready(item)
    }
}

impl futures_core::FusedStream for PayloadStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl Drop for PayloadStream {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.handles.control.send(Control::Cancel(self.id));
        }
    }
}
