//! A stream's inbound queue: the driver's end ([`Inlet`]) and the state it shares with the
//! reader's end, [`PayloadStream`](super::stream::PayloadStream).

use super::sync::{lock, register_waker};
use crate::{Payload, Status};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

/// One item of a stream's inbound queue: a message, or the error that ends the stream.
pub(crate) type Item = Result<Payload, Status>;

/// A stream's inbound queue, between the driver (which pushes what the peer sent) and the
/// [`PayloadStream`](super::stream::PayloadStream) that reads it.
///
/// Not a channel: a channel costs a permit, a slot and a wake-up per message, and a stream of
/// small messages is dominated by that. Here the driver pushes under an uncontended lock and
/// wakes the reader only if it is waiting (the first push after the reader found the queue
/// empty takes its waker, so a whole read of the socket costs one wake-up), and the reader
/// takes everything queued at once by swapping buffers, so it locks once per batch.
///
/// There is no capacity: the queue is bounded by the credit the reader's side granted, in
/// messages, which the connection enforces before anything is delivered (a peer that sends
/// beyond its credit fails its stream instead), and in bytes by `Config::unread_limits`,
/// beyond which the driver stops reading. So the reader reports what it consumed in bytes too.
#[derive(Default)]
pub(crate) struct Shared {
    items: VecDeque<Item>,
    /// The driver's end is gone: after the queued items, the stream ends.
    closed: bool,
    /// The reader, waiting for an item.
    waker: Option<Waker>,
    /// How many consumed messages the reader reports to the driver at once; the driver raises
    /// it as the stream's credit window grows.
    batch: u32,
}

/// The driver's end of a stream's inbound queue. Dropping it ends the stream after the items
/// already queued.
pub(crate) struct Inlet(Arc<Mutex<Shared>>);

impl Inlet {
    /// Changes the queue with `change`, then wakes the reader if it waits (outside the lock).
    fn update(&self, change: impl FnOnce(&mut Shared)) {
        let waker = {
            let mut shared = lock(&self.0);
            change(&mut shared);
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues an item, waking the reader if it waits.
    pub(crate) fn push(&self, item: Item) {
        self.update(|shared| shared.items.push_back(item));
    }

    /// Queues all of `items` (leaving it empty), waking the reader if it waits.
    pub(crate) fn push_all(&self, items: &mut Vec<Item>) {
        self.update(|shared| shared.items.extend(items.drain(..)));
    }

    /// Sets how many consumed messages the reader reports at once.
    pub(crate) fn set_batch(&self, batch: u32) {
        lock(&self.0).batch = batch.max(1);
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        self.update(|shared| shared.closed = true);
    }
}

/// A new queue whose reader reports consumption in batches of `batch`: the driver's end, and
/// the state the reader's end holds.
pub(crate) fn queue(batch: u32) -> (Inlet, Arc<Mutex<Shared>>) {
    let shared = Arc::new(Mutex::new(Shared { batch, ..Shared::default() }));
    (Inlet(shared.clone()), shared)
}

impl Shared {
    /// The reader takes everything queued into `local` (which it has emptied), and learns the
    /// report size and whether the driver's end is gone. Then, if nothing was there and the
    /// queue is open, `cx`'s waker is registered; without `cx`, none is (and one registered
    /// before is taken out).
    pub(crate) fn take_all(queue: &Mutex<Shared>, local: &mut VecDeque<Item>, cx: Option<&Context<'_>>) -> (u32, bool) {
        let mut shared = lock(queue);
        std::mem::swap(local, &mut shared.items);
        let (batch, closed) = (shared.batch, shared.closed);
        if local.is_empty() {
            match cx {
                Some(cx) if !closed => register_waker(&mut shared.waker, cx),
                Some(_) => {}
                None => shared.waker = None,
            }
        }
        (batch, closed)
    }
}
