use crate::{Payload, Status};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A stream of payloads arriving on one RSocket stream: responses to a request/stream or
/// channel, or the requester's messages on a channel, as its responder sees them.
///
/// Credit (`REQUEST_N`) is granted to the peer as items are consumed, so a slow reader slows
/// the sender and memory stays bounded. Dropping it before the end cancels the stream.
#[derive(Debug)]
pub struct PayloadStream {
    _todo: (),
}

impl futures_core::Stream for PayloadStream {
    type Item = Result<Payload, Status>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        todo!()
    }
}
