//! Ends: how a stream ends (its record, and the connection's counts), and how the connection
//! does.

use super::*;

impl<A: Default> Connection<A> {
    /// Whether stream id `id` is one this side opens (its parity is this side's).
    pub(crate) fn is_local_id(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.side == Side::Client)
    }

    /// Ends a stream because of the peer's fault (see the module doc).
    pub(super) fn stream_protocol_error(&mut self, id: u32, message: String) {
        self.end_both_ways(id, ErrorCode::INVALID, message);
    }

    /// Ends live stream `id` for both sides: ERROR\[`code`\] to the peer where this side
    /// responds, CANCEL where it requested, and [`Event::Error`] to the application, unless it
    /// was told nothing of the stream yet (its request still being reassembled).
    fn end_both_ways(&mut self, id: u32, code: ErrorCode, message: String) {
        let Some(stream) = live_ref(&self.streams, id) else { return };
        let told = !stream.pending_request;
        if stream.role == Role::Responder {
            self.transmit.push_back(error_frame(id, code, &message));
        } else {
            self.transmit.push_back(Frame::Cancel(Cancel { stream_id: id }));
        }
        if told {
            self.events.push_back(Event::Error { stream_id: id, code, message });
        }
        self.remove_stream(id);
    }

    /// The connection holds more unread bytes than `Config::unread_limits` allows, and no
    /// reader made progress for the stall time: stream `id`, which holds the most, ends for
    /// both sides as resources exhausted. Not the peer's fault (its credit allowed what it
    /// sent), so not INVALID: the peer reads RESOURCE_EXHAUSTED in a Weft error text (or
    /// CANCEL, where it is the responder), and the local reader alike.
    pub(super) fn shed_unread(&mut self, id: u32) {
        let Some(stream) = live_ref(&self.streams, id) else { return };
        let message = format!(
            "RESOURCE_EXHAUSTED: stream {id} holds {} bytes received and not read for {} ms, beyond the \
             connection's limit of {} unread (Config::unread_limits)",
            stream.in_queued,
            self.config.unread_stall.as_millis(),
            self.config.max_unread_bytes
        );
        self.end_both_ways(id, ErrorCode::APPLICATION_ERROR, message);
    }

    /// Ends the connection for the peer's fault: ERROR\[`code`\] on stream 0, then close.
    pub(super) fn connection_error(&mut self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        self.send_connection_error(code, &message);
        self.terminate(CloseReason::ProtocolError { code, message });
    }

    /// Queues ERROR\[`code`\] on stream 0, the connection's last frame.
    pub(super) fn send_connection_error(&mut self, code: ErrorCode, message: &str) {
        // Every stream fails with the connection: what they had queued is not sent after the
        // ERROR that ends them.
        self.transmit.retain(|f| f.stream_id() == 0);
        self.push_connection_frame(error_frame(0, code, message));
    }

    /// Queues a frame of stream 0 ahead of queued stream frames, behind those of stream 0
    /// (SETUP first, then the others in order): "Frames with Stream ID 0 SHOULD have a
    /// higher priority [...] since all those frames may impact the performance of the system"
    /// (Negotiation). A KEEPALIVE answer stuck behind a large stream's frames could make the
    /// peer give up on the connection.
    pub(super) fn push_connection_frame(&mut self, frame: Frame) {
        let at = self.transmit.iter().position(|f| f.stream_id() != 0).unwrap_or(self.transmit.len());
        self.transmit.insert(at, frame);
    }

    pub(super) fn terminate(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.drain_reason = None;
        self.tally.reassembling = 0;
        self.reassembly_deadline = None;
        self.tally.unread = 0;
        self.unread_deadline = None;
        if self.keep_ended {
            // Kept for the runtime, which learns of the close after the events before it.
            for stream in self.streams.values_mut().filter(|s| !s.ended) {
                stream.reassembly = None;
                stream.end();
            }
            self.tally.ended = self.streams.len();
        } else {
            self.streams.clear();
        }
        self.tally.peer_streams = 0;
        self.next_keepalive = None;
        self.setup_deadline = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// Forgets stream `id`. The last stream of a draining connection closes it, so whatever
    /// the stream's end tells the application is queued before this is called.
    pub(super) fn remove_stream(&mut self, id: u32) {
        self.end_stream_if(id, |_| true);
    }

    /// Forgets a stream once both directions are closed.
    pub(super) fn reap(&mut self, id: u32) {
        self.end_stream_if(id, |s| s.inbound == Half::Closed && s.outbound == Half::Closed);
    }

    /// Ends live stream `id` if `done` says so (with one look-up), as
    /// [`remove_stream`](Connection::remove_stream) says.
    #[inline]
    pub(super) fn end_stream_if(&mut self, id: u32, done: impl FnOnce(&Stream<A>) -> bool) {
        let Entry::Occupied(mut entry) = self.streams.entry(id) else { return };
        let stream = entry.get_mut();
        if stream.ended || !done(stream) {
            return;
        }
        if end_record(stream, &mut self.tally, self.keep_ended) {
            entry.remove();
        }
        self.after_end();
    }

    /// After a stream ended: the last stream of a draining connection closes it.
    #[inline]
    pub(super) fn after_end(&mut self) {
        if self.state == State::Draining && self.live_count() == 0 {
            let reason = self.drain_reason.take().unwrap_or(CloseReason::Local);
            self.terminate(reason);
        }
    }
}

/// Ends `stream`'s record: its share of the connection's counts goes, and it is marked ended
/// if it is kept for the runtime (`keep`). Returns whether it must leave the map now instead
/// (not kept). What follows an end is the caller's: [`Connection::after_end`].
pub(super) fn end_record<A>(stream: &mut Stream<A>, tally: &mut Tally, keep: bool) -> bool {
    if let Some(r) = stream.reassembly.take() {
        tally.reassembling -= r.len;
    }
    // What its reader still holds is the application's now: a report of it finds no stream.
    tally.unread -= std::mem::take(&mut stream.in_queued);
    if stream.role == Role::Responder {
        tally.peer_streams -= 1;
    }
    // A request still being reassembled was never told to the runtime: nothing to keep.
    if keep && !stream.pending_request {
        stream.end();
        tally.ended += 1;
        false
    } else {
        true
    }
}

/// Stream `id`, if it is live (not ended and kept for the runtime).
#[inline]
pub(super) fn live<A>(streams: &mut IdMap<Stream<A>>, id: u32) -> Option<&mut Stream<A>> {
    streams.get_mut(&id).filter(|s| !s.ended)
}

/// [`live`], shared.
#[inline]
pub(super) fn live_ref<A>(streams: &IdMap<Stream<A>>, id: u32) -> Option<&Stream<A>> {
    streams.get(&id).filter(|s| !s.ended)
}
