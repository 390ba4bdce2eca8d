//! Commands: what this side's application asks (open, send, complete, fail, cancel, report
//! consumed, close), and how a message is put in frames.

use super::*;

impl<A: Default> Connection<A> {
    /// Opens a stream: queues the request frame (fragmented if needed) and returns its id.
    ///
    /// `initial_n` is ignored: this side grants its configured window on streams and
    /// channels. For a channel, `data` is the first message and `complete` says it is also the
    /// last.
    pub fn open(&mut self, kind: Kind, metadata: Bytes, data: Bytes, complete: bool) -> Result<u32, CommandError> {
        let id = self.next_id()?;
        let head = self.request_head(kind, complete);
        self.push_fragmented(id, head.into(), frame::Payload { metadata: Some(metadata), data });
        self.opened(id, kind, complete);
        Ok(id)
    }

    /// [`open`](Connection::open), writing the request frame (as [`Frame::encode`] does, with
    /// no framing around it: that is the caller's) straight into `out` when nothing is queued for
    /// [`poll_transmit`](Connection::poll_transmit) and the request needs no fragmenting, as
    /// [`send_next_into`](Connection::send_next_into) does for messages; otherwise it is queued
    /// as usual. The order of frames is the same either way, provided `out` is where the caller
    /// writes what `poll_transmit` returns.
    pub(crate) fn open_into(
        &mut self,
        kind: Kind,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        out: &mut BytesMut,
    ) -> Result<u32, CommandError> {
        let head = self.request_head(kind, complete);
        // A request always carries metadata, and so its 3-byte length.
        if !self.writes_now(Head::from(head).extra_len() + 3 + metadata.len() + data.len()) {
            return self.open(kind, metadata, data, complete);
        }
        let id = self.next_id()?;
        frame::direct::encode_request(head, id, &metadata, &data, out);
        self.opened(id, kind, complete);
        Ok(id)
    }

    /// The request frame's head for a stream of `kind` this side opens, granting the
    /// configured window.
    pub(super) fn request_head(&self, kind: Kind, complete: bool) -> RequestHead {
        let initial_n = self.config.inbound_window;
        match kind {
            Kind::RequestResponse => RequestHead::Response,
            Kind::FireAndForget => RequestHead::FireAndForget,
            Kind::RequestStream => RequestHead::Stream { initial_n },
            Kind::Channel => RequestHead::Channel { initial_n, complete },
        }
    }

    /// Whether a frame whose body after the header is `body_len` bytes may be written straight
    /// into the caller's buffer: nothing is queued before it, and it needs no fragmenting.
    pub(super) fn writes_now(&self, body_len: usize) -> bool {
        self.transmit.is_empty() && self.fits_one_frame(body_len)
    }

    /// Whether a frame whose body after the header is `body_len` bytes needs no fragmenting.
    pub(super) fn fits_one_frame(&self, body_len: usize) -> bool {
        HEADER_SIZE + body_len <= self.config.effective_fragment_size()
    }

    /// The id for a new stream of this side's.
    pub(super) fn next_id(&mut self) -> Result<u32, CommandError> {
        if self.state != State::Open {
            return Err(CommandError::Closed);
        }
        let id = self.next_stream_id;
        if id > MAX_U31 {
            return Err(CommandError::StreamIdsExhausted);
        }
        self.next_stream_id = id.saturating_add(2);
        Ok(id)
    }

    /// Keeps the state of a stream this side just requested.
    pub(super) fn opened(&mut self, id: u32, kind: Kind, complete: bool) {
        if kind != Kind::FireAndForget {
            self.streams.insert(id, Stream::requester(kind, self.config.inbound_window, complete));
        }
    }

    /// Sends one message on a stream this side writes to; `complete` ends this direction.
    /// Spends one credit (a request/response answer needs none).
    pub fn send_next(&mut self, id: u32, metadata: Bytes, data: Bytes, complete: bool) -> Result<(), CommandError> {
        let complete = self.spend_credit(id, complete)?;
        let metadata = (!metadata.is_empty()).then_some(metadata);
        self.push_fragmented(id, Head::Payload { complete }, frame::Payload { metadata, data });
        if complete {
            self.after_end();
        }
        Ok(())
    }

    /// The accounting of sending one message on `id`: spends a credit (a request/response
    /// answer needs none, and always completes) and closes this direction if `complete`.
    /// Returns whether the message completes the direction. A stream whose both directions
    /// are then closed ends here, where it was found (one look-up for a message); the caller
    /// queues the message, then calls [`after_end`](Connection::after_end).
    pub(super) fn spend_credit(&mut self, id: u32, complete: bool) -> Result<bool, CommandError> {
        let stream = live(&mut self.streams, id).ok_or(CommandError::NoSuchStream(id))?;
        if stream.outbound != Half::Open {
            return Err(CommandError::NoSuchStream(id));
        }
        let complete = if stream.kind == Kind::RequestResponse {
            // Answer with N|C even when the data is empty: every implementation reads that.
            true
        } else {
            if stream.out_credit == 0 {
                return Err(CommandError::NoCredit(id));
            }
            stream.out_credit -= 1;
            complete
        };
        if complete {
            stream.outbound = Half::Closed;
            if stream.inbound == Half::Closed && end_record(stream, &mut self.tally, self.keep_ended) {
                self.streams.remove(&id);
            }
        }
        Ok(complete)
    }

    /// [`send_next`](Connection::send_next), writing the frame (as [`Frame::encode`] does, with
    /// no framing around it: that is the caller's) straight into `out` when nothing is queued for
    /// [`poll_transmit`](Connection::poll_transmit) and the message needs no fragmenting, so
    /// that a stream's messages skip the queue; otherwise the frames are queued as usual. The
    /// order of frames is the same either way, provided `out` is where the caller writes what
    /// `poll_transmit` returns.
    pub(crate) fn send_next_into(
        &mut self,
        id: u32,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        out: &mut BytesMut,
    ) -> Result<(), CommandError> {
        let metadata_len = if metadata.is_empty() { 0 } else { 3 + metadata.len() };
        if !self.writes_now(metadata_len + data.len()) {
            return self.send_next(id, metadata, data, complete);
        }
        let complete = self.spend_credit(id, complete)?;
        let metadata = (!metadata.is_empty()).then_some(&metadata[..]);
        frame::direct::encode_message(id, complete, metadata, &data, out);
        if complete {
            self.after_end();
        }
        Ok(())
    }

    /// Sends the message of stream `id` whose body was written into `out` after room for a
    /// frame header left at `start` (zeros, [`HEADER_SIZE`] of them, the bytes
    /// `frame::direct::begin_message` appends): its data, or with `metadata` its metadata and
    /// data as `frame::direct::put_body` writes them. As [`send_next_into`] would, but without
    /// the copy. Where it may go at once the head is filled in where it is; where it may not
    /// (frames are queued ahead of it, or it needs fragmenting) its data is taken back out of
    /// `out` and queued as [`send_next`] queues it. Returns whether it stayed in place with this
    /// side's direction still open, so that [`complete_in_place`] can still make it the
    /// stream's last (a request/response's answer completes at once). On an error nothing of it
    /// is left in `out`.
    ///
    /// [`send_next_into`]: Connection::send_next_into
    /// [`send_next`]: Connection::send_next
    /// [`complete_in_place`]: Connection::complete_in_place
    pub(crate) fn finish_message(
        &mut self,
        id: u32,
        start: usize,
        out: &mut BytesMut,
        metadata: bool,
    ) -> Result<bool, CommandError> {
        let data_start = start + HEADER_SIZE;
        if !self.writes_now(out.len() - data_start) {
            // Rare (a message too large for one frame): a copy beside its fragmenting is cheap.
            let (metadata, data) = frame::direct::split_body(&out[data_start..], metadata);
            out.truncate(start);
            return self.send_next(id, metadata, data, false).map(|()| false);
        }
        match self.spend_credit(id, false) {
            Ok(complete) => {
                // (A request/response's answer always completes.)
                frame::direct::finish_message(&mut out[start..], id, complete, metadata);
                if complete {
                    self.after_end();
                }
                Ok(!complete)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// [`finish_message`] for a run of messages of stream `id`, with the stream looked up once:
    /// `None` unless the stream may write its messages in place now (nothing queued for
    /// [`poll_transmit`](Connection::poll_transmit), its direction open, a request/stream or
    /// channel). The connection is borrowed meanwhile, so nothing can queue a frame ahead of the
    /// run's messages.
    ///
    /// [`finish_message`]: Connection::finish_message
    pub(crate) fn messages_in_place(&mut self, id: u32) -> Option<InPlace<'_>> {
        if !self.transmit.is_empty() {
            return None;
        }
        let max_data = self.config.effective_fragment_size().saturating_sub(HEADER_SIZE);
        let stream =
            live(&mut self.streams, id).filter(|s| s.outbound == Half::Open && s.kind != Kind::RequestResponse)?;
        Some(InPlace { id, credit: &mut stream.out_credit, max_data })
    }

    /// Ends this side's direction of stream `id` with the message [`finish_message`] left in
    /// place at `start` in `out` (still unwritten): sets its (C), instead of sending a COMPLETE
    /// frame after it.
    ///
    /// [`finish_message`]: Connection::finish_message
    pub(crate) fn complete_in_place(&mut self, id: u32, start: usize, out: &mut BytesMut) {
        let Some(stream) = live(&mut self.streams, id) else { return };
        if stream.outbound != Half::Open {
            return;
        }
        stream.outbound = Half::Closed;
        frame::direct::complete_message(&mut out[start..]);
        self.reap(id);
    }

    /// Completes this side's direction of a stream.
    pub fn send_complete(&mut self, id: u32) -> Result<(), CommandError> {
        let stream = live(&mut self.streams, id).ok_or(CommandError::NoSuchStream(id))?;
        if stream.outbound != Half::Open {
            return Err(CommandError::NoSuchStream(id));
        }
        stream.outbound = Half::Closed;
        if stream.kind == Kind::RequestResponse {
            // A request/response cannot complete without an answer: answer empty.
            self.transmit.push_back(payload_frame(id, true, true, frame::Payload::default()));
        } else {
            self.transmit.push_back(payload_frame(id, false, true, frame::Payload::default()));
        }
        self.reap(id);
        Ok(())
    }

    /// Ends a stream with an ERROR frame (a responder's failure, or a channel requester's).
    pub fn send_error(&mut self, id: u32, code: ErrorCode, message: &str) -> Result<(), CommandError> {
        if live_ref(&self.streams, id).is_none() {
            return Err(CommandError::NoSuchStream(id));
        }
        // The frame goes first: removing the last stream of a draining connection queues
        // the connection's own close after it.
        self.transmit.push_back(error_frame(id, code, message));
        self.remove_stream(id);
        Ok(())
    }

    /// Cancels: as requester, ends the stream (CANCEL); as a channel's responder, stops
    /// reading the requester's messages (CANCEL), keeping this side's direction open.
    /// Unknown streams are ignored, so a late cancel after completion is harmless.
    pub fn cancel(&mut self, id: u32) {
        let Some(stream) = live(&mut self.streams, id) else { return };
        match stream.role {
            Role::Requester => {
                self.transmit.push_back(Frame::Cancel(Cancel { stream_id: id }));
                self.remove_stream(id);
            }
            Role::Responder => {
                if stream.kind == Kind::Channel && stream.inbound == Half::Open {
                    stream.inbound = Half::Closed;
                    if let Some(r) = stream.reassembly.take() {
                        self.tally.reassembling -= r.len;
                    }
                    self.transmit.push_back(Frame::Cancel(Cancel { stream_id: id }));
                    self.reap(id);
                }
            }
        }
    }

    /// The application consumed `n` messages of stream `id`, of `bytes` in all: credit is
    /// granted back to the peer once a batch (half the window) has been consumed, with the
    /// window first reconsidered for the size of the messages received
    /// (`Config::inbound_window_growth`). The bytes count against `Config::unread_limits`
    /// until reported here (see [`accepts_input`](Connection::accepts_input)), so a reader
    /// reports before a quarter of the limit is read unreported, even short of a batch.
    pub fn consumed(&mut self, id: u32, n: u32, bytes: u64) {
        let Some(stream) = live(&mut self.streams, id) else { return };
        let bytes = bytes.min(stream.in_queued);
        stream.in_queued -= bytes;
        self.tally.unread -= bytes;
        self.unread_progress |= bytes > 0;
        if stream.inbound != Half::Open {
            return;
        }
        stream.in_unacked = stream.in_unacked.saturating_add(n);
        if stream.in_unacked < stream.credit_batch() {
            return;
        }
        let old = stream.in_window;
        // A smaller window is reached by granting back less than was consumed, so it cannot
        // shrink by more than that at once.
        let new =
            self.config.next_window(old, stream.in_bytes, stream.in_count).max(old.saturating_sub(stream.in_unacked));
        stream.in_window = new;
        stream.in_bytes = 0;
        stream.in_count = 0;
        let n = (u64::from(stream.in_unacked) + u64::from(new)).saturating_sub(u64::from(old)).min(u64::from(MAX_U31));
        stream.in_unacked = 0;
        if n > 0 {
            let n = n as u32;
            stream.grant(n);
            self.transmit.push_back(Frame::RequestN(RequestN { stream_id: id, n }));
        }
    }

    /// How many consumed messages of stream `id` make a batch worth reporting with
    /// [`consumed`](Connection::consumed): half its current window.
    pub fn credit_batch(&self, id: u32) -> u32 {
        live_ref(&self.streams, id).map_or(1, |s| s.credit_batch())
    }

    /// Closes the connection.
    ///
    /// `graceful`: ERROR\[CONNECTION_CLOSE\] goes out at once, new streams are refused either
    /// way, and the connection closes once the open streams end ("Sender or Receiver of this
    /// frame MUST wait for outstanding streams to terminate before closing the connection").
    /// Not graceful (or a grace period that ran out: the driver calls this again with
    /// `false`): the open streams are cut, which is a CONNECTION_ERROR; with none open it is
    /// a CONNECTION_CLOSE.
    pub fn close(&mut self, graceful: bool) {
        match self.state {
            State::Closed => {}
            _ if graceful => {
                if self.state != State::Draining {
                    self.push_connection_frame(error_frame(0, ErrorCode::CONNECTION_CLOSE, "closing"));
                }
                self.drain(CloseReason::Local);
            }
            _ if self.live_count() == 0 => {
                self.push_connection_frame(error_frame(0, ErrorCode::CONNECTION_CLOSE, "closing"));
                self.terminate(CloseReason::Local);
            }
            _ => {
                // This side chose to close: the reason is its own, not the peer's fault.
                let message = format!("closing: {} streams cut before they ended", self.live_count());
                self.send_connection_error(ErrorCode::CONNECTION_ERROR, &message);
                self.terminate(CloseReason::Local);
            }
        }
    }

    /// Refuses new streams from now on and closes once the open ones end, for `reason`.
    pub(super) fn drain(&mut self, reason: CloseReason) {
        if self.live_count() == 0 {
            return self.terminate(reason);
        }
        self.state = State::Draining;
        self.drain_reason.get_or_insert(reason);
    }

    /// Server: refuses the SETUP that [`Event::SetupAccepted`] reported (the layer above
    /// decides what it accepts: the protocol does not interpret MIME types), with
    /// ERROR\[`code`\] on stream 0, and closes. Nothing that came after the SETUP is acted on:
    /// the events it queued are dropped.
    pub fn reject_setup(&mut self, code: ErrorCode, message: &str) {
        if self.state == State::Closed {
            return;
        }
        self.events.clear();
        self.transmit.clear();
        self.connection_error(code, message);
    }

    /// Queues a request or PAYLOAD frame, split into fragments no larger than the configured
    /// fragment size (Protocol.md, "Fragmentation and Reassembly": metadata first, then
    /// data; follow-up fragments are PAYLOAD frames; C only on the last).
    pub(super) fn push_fragmented(&mut self, id: u32, head: Head, payload: frame::Payload) {
        if self.fits_one_frame(head.extra_len() + payload.encoded_len()) {
            self.transmit.push_back(head.frame(id, false, payload));
            return;
        }
        let limit = self.config.effective_fragment_size();
        let mut metadata = payload.metadata;
        let mut data = payload.data;
        let mut first = Some(head);
        loop {
            let header = HEADER_SIZE + first.as_ref().map_or(0, Head::extra_len);
            let mut room = limit - header;
            let md = match metadata.as_mut() {
                Some(m) => {
                    room -= 3;
                    let take = m.len().min(room);
                    room -= take;
                    let chunk = m.split_to(take);
                    if m.is_empty() {
                        metadata = None;
                    }
                    Some(chunk)
                }
                None => None,
            };
            let chunk = data.split_to(data.len().min(room));
            let last = metadata.is_none() && data.is_empty();
            let piece = frame::Payload { metadata: md, data: chunk };
            let frame = match first.take() {
                Some(h) => h.frame(id, !last, piece),
                None => {
                    let complete = last && head_completes(&head);
                    Frame::Payload(PayloadFrame { stream_id: id, follows: !last, complete, next: true, payload: piece })
                }
            };
            self.transmit.push_back(frame);
            if last {
                return;
            }
        }
    }
}

/// A stream's messages written in place, one after another, with the stream looked up once:
/// see [`Connection::messages_in_place`].
#[derive(Debug)]
pub(crate) struct InPlace<'a> {
    id: u32,
    credit: &'a mut u64,
    max_data: usize,
}

impl InPlace<'_> {
    /// [`Connection::finish_message`] for the message at `start` in `out`, if it can go in place
    /// as it is: it fits one frame and the stream has credit left. Then its head is filled in,
    /// a credit spent, and true returned; otherwise nothing changed, and the message is for
    /// `finish_message`, which says why it cannot go.
    #[inline(always)]
    pub(crate) fn finish(&mut self, start: usize, out: &mut BytesMut, metadata: bool) -> bool {
        if *self.credit == 0 || out.len() - start - HEADER_SIZE > self.max_data {
            return false;
        }
        *self.credit -= 1;
        frame::direct::finish_message(&mut out[start..], self.id, false, metadata);
        true
    }
}

/// Whether the frame a fragmented message started with carried (C).
pub(super) fn head_completes(head: &Head) -> bool {
    matches!(head, Head::Payload { complete: true } | Head::Channel { complete: true, .. })
}

/// The first frame of a (possibly fragmented) message.
#[derive(Clone, Copy, Debug)]
pub(super) enum Head {
    RequestResponse,
    Fnf,
    Stream { initial_n: u32 },
    Channel { initial_n: u32, complete: bool },
    Payload { complete: bool },
}

impl From<RequestHead> for Head {
    fn from(head: RequestHead) -> Head {
        match head {
            RequestHead::Response => Head::RequestResponse,
            RequestHead::FireAndForget => Head::Fnf,
            RequestHead::Stream { initial_n } => Head::Stream { initial_n },
            RequestHead::Channel { initial_n, complete } => Head::Channel { initial_n, complete },
        }
    }
}

impl Head {
    /// Bytes after the 6-byte header and before the payload.
    pub(super) fn extra_len(&self) -> usize {
        match self {
            Head::Stream { .. } | Head::Channel { .. } => 4,
            _ => 0,
        }
    }

    pub(super) fn frame(self, stream_id: u32, follows: bool, payload: frame::Payload) -> Frame {
        match self {
            Head::RequestResponse => Frame::RequestResponse(frame::Request { stream_id, follows, payload }),
            Head::Fnf => Frame::RequestFnf(frame::Request { stream_id, follows, payload }),
            Head::Stream { initial_n } => {
                Frame::RequestStream(RequestStream { stream_id, follows, initial_n, payload })
            }
            Head::Channel { initial_n, complete } => Frame::RequestChannel(RequestChannel {
                stream_id,
                follows,
                // C goes on the last fragment only.
                complete: complete && !follows,
                initial_n,
                payload,
            }),
            Head::Payload { complete } => {
                Frame::Payload(PayloadFrame { stream_id, follows, complete: complete && !follows, next: true, payload })
            }
        }
    }
}
