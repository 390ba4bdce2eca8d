//! The streams this side sends (a responder's streams, a channel requester's messages):
//! **producers**, polled by the driver itself while the peer has granted credit and the write
//! buffer has room.

use super::{Attached, Driver};
use crate::conn::{CommandError, Connection};
use crate::frame::length;
use crate::frame::{ErrorCode, HEADER_SIZE};
use crate::rt::inbox::ReadyFlag;
use crate::rt::responses::Responses;
use crate::rt::transport::Transport;
use crate::rt::unwind;
use crate::{Payload, Status};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::task::{Poll, Waker};

/// What a panic in a producer's stream is blamed on, in the status the call ends with (see
/// [`unwind`]).
const STREAM: &str = "the stream of messages";
/// Messages taken from one producer in a turn before the others get theirs, so that one busy
/// stream cannot starve the rest of the connection.
const PRODUCER_BATCH: usize = 64;
/// ... and at most about this many bytes of them, so a turn never takes much more than one
/// large message.
const PRODUCER_BATCH_BYTES: usize = 64 * 1024;
/// Producers get turn after turn until this many bytes wait to be written: one turn of a stream
/// of small messages (64 of 16 bytes) makes a small write, and each write costs a system call
/// on each side. A stream of 16-byte messages across two cores wrote ~2.8 KB at a time, where
/// raw TCP writes ~8 KB and tonic ~15 KB.
const PRODUCERS_WRITE: usize = 16 * 1024;

/// How a producer's stream ended.
enum End {
    Complete,
    Error(Status),
}

/// A stream of messages this side sends, polled by the driver. Its credit is the connection's
/// (counted once, there): a turn reads it when it starts.
pub(super) struct Producer {
    stream: Responses,
    /// The last turn ended for want of credit: the peer's next REQUEST_N makes it runnable.
    wants_credit: bool,
    /// A message polled while there was no credit for it (see `Driver::run_producer`): its
    /// body, and whether that carries metadata; sent first once credit comes. The stream is
    /// not polled again meanwhile, so a producer holds at most this one message beyond what
    /// its peer asked for.
    ahead: Option<(Bytes, bool)>,
    /// Wakes the driver with this producer marked ready.
    waker: Waker,
    flag: Arc<ReadyFlag>,
}

impl Producer {
    /// The peer granted more messages: true if the producer sat idle for want of credit
    /// (perhaps holding a message for it), and must be made runnable.
    pub(super) fn granted(&mut self) -> bool {
        std::mem::take(&mut self.wants_credit)
    }
}

impl<T: Transport> Driver<T> {
    /// A producer for stream `id`; it is polled on the next turn, with no credit too (a stream
    /// that ends at once must complete: see `run_producer`).
    pub(super) fn producer(&mut self, id: u32, stream: Responses) -> Box<Producer> {
        let (waker, flag) = self.inbox.producer_waker(id);
        self.runnable.push(id);
        Box::new(Producer { stream, wants_credit: false, ahead: None, waker, flag })
    }

    /// Gives each runnable producer a turn, while the write buffer has room; round after
    /// round, until a write's worth ([`PRODUCERS_WRITE`]) waits or no producer is left with
    /// messages ready and credit.
    pub(super) fn run_producers(&mut self, wbuf: &mut BytesMut, max_buffered: usize) {
        let enough = PRODUCERS_WRITE.min(max_buffered);
        loop {
            let mut runnable = std::mem::take(&mut self.runnable);
            let mut turns = 0;
            for &id in &runnable {
                turns += 1;
                self.run_producer(id, wbuf);
                self.flush_transmit(wbuf);
                if wbuf.len() >= max_buffered {
                    break;
                }
            }
            // Those that had no turn keep their place, ahead of any queued meanwhile.
            runnable.drain(..turns);
            runnable.append(&mut self.runnable);
            self.runnable = runnable;
            // Only a producer that used up its turn is queued again, so every round that goes
            // on wrote at least a batch of messages: the loop ends.
            if self.runnable.is_empty() || wbuf.len() >= enough {
                return;
            }
        }
    }

    /// One turn of producer `id`: takes messages from its stream while it has credit and they
    /// are ready, up to a batch, and sends them.
    ///
    /// Out of credit, the stream is still polled once (unless a message already waits in
    /// [`Producer::ahead`]): the peer owes no credit for the stream's end (a PAYLOAD with C
    /// alone, or an ERROR), so a requester that grants exactly the messages it expects must
    /// still see the stream complete, and only a poll can tell that it has. A message that
    /// poll yields waits in `ahead`, one per stream at most, until credit comes.
    pub(super) fn run_producer(&mut self, id: u32, wbuf: &mut BytesMut) {
        // The turn's credit: what the connection counts, spent here as messages go.
        let Some((att, credit)) = self.conn.producing(id) else { return };
        // Out of the stream's record for the turn, which calls on the connection that holds
        // the record; put back unless the stream ended.
        let Some(mut producer) = att.producer.take() else { return };
        match self.producer_turn(id, &mut producer, credit, wbuf) {
            None => {
                if let Some(att) = self.conn.attachment(id) {
                    att.producer = Some(producer);
                }
            }
            Some(end) => {
                drop(producer);
                self.producer_ended(id, end);
            }
        }
    }

    /// The turn of [`run_producer`](Driver::run_producer), with `credit` to spend: how the
    /// stream ended, if it did.
    fn producer_turn(&mut self, id: u32, producer: &mut Producer, mut credit: u64, wbuf: &mut BytesMut) -> Option<End> {
        if credit == 0 && producer.ahead.is_some() {
            // Nothing can go until the peer grants more; its REQUEST_N makes this runnable.
            // But a deadline that passes meanwhile ends the stream now (an ERROR needs no
            // credit): its timer wakes this producer, and is looked at without a poll for
            // another message.
            producer.flag.clear();
            let mut cx = std::task::Context::from_waker(&producer.waker);
            if let Poll::Ready(status) = producer.stream.0.as_mut().poll_cut(&mut cx) {
                producer.ahead = None;
                return Some(End::Error(status));
            }
            producer.wants_credit = true;
            return None;
        }
        // Cleared before polling, so a wake-up during the poll marks it ready again.
        producer.flag.clear();
        let mut cx = std::task::Context::from_waker(&producer.waker);
        let (mut taken, mut size) = (0, 0);
        let ahead = producer.ahead.take();
        let stream = &mut producer.stream.0;
        // Each message is written into `wbuf` behind its frame's prefix and head; the last one
        // written there this turn gets (C) if the next poll ends the stream.
        let mut last = None;
        if let Some((body, metadata)) = ahead {
            let start = length::begin_with(wbuf, HEADER_SIZE);
            wbuf.extend_from_slice(&body);
            credit -= 1;
            taken += 1;
            size += body.len();
            last = finish_framed(&mut self.conn, id, start, wbuf, metadata);
        }
        // Where the message being written starts, while it is: a panic in its encoding leaves
        // half of it in the buffer, cut off after the guard.
        // (A cell: written in the guarded turn, read after it unwound.)
        let encoding = std::cell::Cell::new(None);
        // One guard for the turn, not one a message: a guard is a call the message's poll
        // cannot be inlined through.
        let turn = unwind::guard(|| {
            // The turn's counts are the closure's own, not borrowed from outside it: kept in
            // registers across the loop.
            let (mut taken, mut size, mut last) = (taken, size, last);
            // The stream, looked up once for the turn's messages; a message that cannot go that
            // way goes through `finish_message`, which says why.
            let mut in_place = self.conn.messages_in_place(id);
            let end = loop {
                let probe = credit == 0;
                if !probe && turn_is_over(&mut self.runnable, id, credit, taken, size) {
                    break None;
                }
                let start = length::begin_with(wbuf, HEADER_SIZE);
                let frame = start + length::PREFIX_SIZE;
                encoding.set(Some(start));
                let polled = stream.as_mut().poll_encode(&mut cx, wbuf);
                encoding.set(None);
                let metadata = match polled {
                    Poll::Ready(Some(Ok(metadata))) => metadata,
                    Poll::Ready(Some(Err(status))) => {
                        wbuf.truncate(start);
                        break Some(End::Error(status));
                    }
                    Poll::Ready(None) => {
                        wbuf.truncate(start);
                        break Some(End::Complete);
                    }
                    Poll::Pending => {
                        wbuf.truncate(start);
                        break None;
                    }
                };
                if probe {
                    // Rare (the stream had a message ready beyond the peer's credit): a copy,
                    // so that the write buffer holds only what may be written.
                    producer.ahead = Some((Bytes::copy_from_slice(&wbuf[frame + HEADER_SIZE..]), metadata));
                    wbuf.truncate(start);
                    break None;
                }
                credit -= 1;
                taken += 1;
                size += wbuf.len() - start;
                if in_place.as_mut().is_some_and(|run| run.finish(frame, wbuf, metadata)) {
                    length::seal_frame(wbuf, start);
                    last = Some(frame);
                    continue;
                }
                last = finish_framed(&mut self.conn, id, start, wbuf, metadata);
                in_place = self.conn.messages_in_place(id);
            };
            (end, last)
        });
        let (end, last) = turn.unwrap_or_else(|panicked| {
            if let Some(start) = encoding.get() {
                wbuf.truncate(start);
            }
            (Some(End::Error(panicked.status(STREAM))), None)
        });
        if let Some(End::Complete) = end {
            match last {
                Some(frame) => self.conn.complete_in_place(id, frame, wbuf),
                None => sent(self.conn.send_complete(id)),
            }
        }
        // Out of credit, and not ended: the peer's next grant makes it runnable again.
        producer.wants_credit = end.is_none() && credit == 0;
        end
    }

    /// A producer's stream ended (its (C) or ERROR is queued or written already, or the
    /// stream failed).
    fn producer_ended(&mut self, id: u32, end: End) {
        if let End::Error(status) = end {
            self.send_status(id, &status);
            // A requester's own stream failed (its outbound half of a channel): the call is
            // over, and its reader learns why.
            if self.conn.is_local_id(id)
                && let Some(att) = self.conn.release(id)
            {
                return att.fail(status);
            }
        }
        if let Some(att) = self.conn.attachment(id) {
            // The stream ended on its own: nothing to stop, nobody cancelled.
            att.cancel = None;
        }
        self.reap(id);
    }

    /// Sends a request/response's outcome. The stream may be gone (cancelled meanwhile); then
    /// there is nobody to answer.
    pub(super) fn answer(&mut self, id: u32, result: Result<Payload, Status>, wbuf: &mut BytesMut) {
        match result {
            Ok(payload) => {
                sent(send_framed(&mut self.conn, id, payload, true, wbuf));
            }
            Err(status) => self.send_status(id, &status),
        }
    }

    /// Ends a stream with `status` as an APPLICATION_ERROR (see [`crate::Status`] for the text).
    pub(super) fn send_status(&mut self, id: u32, status: &Status) {
        sent(self.conn.send_error(id, ErrorCode::APPLICATION_ERROR, &status.to_wire()));
    }
}

/// Whether a producer's turn is over, having taken `taken` messages of `size` bytes with
/// `credit` left: out of credit, or at its batch's bounds. A producer stopped by its bounds
/// with credit left is queued for another turn, after the others had theirs.
#[inline]
fn turn_is_over(runnable: &mut Vec<u32>, id: u32, credit: u64, taken: usize, size: usize) -> bool {
    if credit > 0 && taken < PRODUCER_BATCH && size < PRODUCER_BATCH_BYTES {
        return false;
    }
    if credit > 0 {
        runnable.push(id);
    }
    true
}

/// Sends the message written in place behind the prefix at `start` (its frame after the
/// prefix) as [`Connection::finish_message`] does, and seals the prefix (nothing is left to
/// seal if the message went to the queue instead). Where the frame stayed in place with the
/// stream open, returns where it starts, so that it can still be made the stream's last.
// Always inlined: called once a message, in the producer's loop (measured: ~15 instructions a
// message when the compiler chose not to).
#[inline(always)]
fn finish_framed(
    conn: &mut Connection<Attached>,
    id: u32,
    start: usize,
    wbuf: &mut BytesMut,
    metadata: bool,
) -> Option<usize> {
    let frame = start + length::PREFIX_SIZE;
    let last = match conn.finish_message(id, frame, wbuf, metadata) {
        Ok(true) => Some(frame),
        other => {
            sent(other);
            None
        }
    };
    length::seal(wbuf, start);
    last
}

/// Sends a message on stream `id` as [`Connection::send_next_into`] does, framed: written in
/// place behind its length prefix, or queued (then nothing of it is left in `wbuf`).
fn send_framed(
    conn: &mut Connection<Attached>,
    id: u32,
    payload: Payload,
    complete: bool,
    wbuf: &mut BytesMut,
) -> Result<(), CommandError> {
    let start = length::begin(wbuf);
    let sent = conn.send_next_into(id, payload.metadata, payload.data, complete, wbuf);
    length::seal(wbuf, start);
    sent
}

/// What the connection answers to a message or an end this side sends: it went, or its stream
/// is gone (the peer cancelled it, or the connection closed, before the driver learned of it),
/// and then there is nobody to send it to. Never for want of credit: a producer spends the
/// connection's own count of it.
pub(super) fn sent<T>(result: Result<T, CommandError>) {
    debug_assert!(
        !matches!(result, Err(CommandError::NoCredit(_))),
        "a message beyond the credit the connection counts"
    );
}
