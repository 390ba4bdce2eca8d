//! Input: what the peer sends (frames, as bytes or decoded), timers, and the transport's end.

use super::*;

impl<A: Default> Connection<A> {
    /// Timers: keepalive sending, max-lifetime and setup timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.deadline_epoch = self.deadline_epoch.wrapping_add(1);
        if let Some(deadline) = self.setup_deadline
            && now >= deadline
        {
            let message = format!("no SETUP within {} ms", self.server_settings.setup_timeout.as_millis());
            return self.connection_error(ErrorCode::INVALID_SETUP, message);
        }
        if self.state != State::AwaitingSetup && now >= self.last_received + self.max_lifetime {
            self.push_connection_frame(error_frame(
                0,
                ErrorCode::CONNECTION_ERROR,
                format!("no frame received for {} ms", self.max_lifetime.as_millis()),
            ));
            return self.terminate(CloseReason::KeepaliveTimeout(self.max_lifetime));
        }
        if self.reassembly_deadline.is_some_and(|d| now >= d) {
            self.expire_reassemblies(now);
        }
        self.check_unread(now);
        if let Some(at) = self.next_keepalive
            && now >= at
        {
            // The client sends KEEPALIVE every interval whatever other traffic there is: some
            // implementations close connections that send none even while busy.
            self.push_connection_frame(Frame::Keepalive(Keepalive {
                respond: true,
                last_received_position: 0,
                data: Bytes::new(),
            }));
            let next = at + self.keepalive_interval;
            self.next_keepalive = Some(if next <= now { now + self.keepalive_interval } else { next });
        }
    }

    /// A frame that failed to decode. See the module doc for which errors close what.
    pub fn handle_decode_error(&mut self, error: &DecodeError, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_received = now;
        match rules::decode_error(error, self.state) {
            Verdict::Ignore(_) => {}
            Verdict::Connection(code) => self.connection_error(code, error.to_string()),
            Verdict::Stream => {
                let stream_id = error.stream_id.unwrap_or(0);
                if live_ref(&self.streams, stream_id).is_some() {
                    self.stream_protocol_error(stream_id, error.to_string());
                } else if error.frame_type.is_some_and(FrameType::is_request) && !self.is_local_id(stream_id) {
                    // A malformed request: refuse that stream only.
                    self.transmit.push_back(error_frame(stream_id, ErrorCode::INVALID, error.to_string()));
                }
                // Anything else names a stream that does not exist: ignored, as for a valid
                // frame ("Receiving a PAYLOAD on an unknown Stream ID [...] MUST be ignored").
            }
        }
    }

    /// A frame read from the peer.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_received = now;
        if self.state == State::AwaitingSetup {
            return self.handle_setup_phase(frame);
        }
        if self.side == Side::Client && !matches!(frame, Frame::Error(ErrorFrame { stream_id: 0, .. })) {
            self.peer_confirmed = true;
        }
        match frame {
            // See `rules` for each.
            Frame::Setup(_) => rules::ignore(rules::SECOND_SETUP),
            Frame::Resume(_) | Frame::ResumeOk(_) | Frame::Lease(_) => rules::ignore(rules::NOT_NEGOTIATED),
            Frame::Ext(_) => rules::ignore(rules::EXTENSION),
            Frame::Keepalive(k) => {
                if k.respond {
                    // "Reception of a KEEPALIVE frame with the (R)espond flag set MUST cause a
                    // client or server to send back a KEEPALIVE with the (R)espond flag NOT
                    // set": ahead of queued stream data, so a busy stream cannot delay it.
                    self.push_connection_frame(Frame::Keepalive(Keepalive {
                        respond: false,
                        last_received_position: 0,
                        data: k.data,
                    }));
                }
            }
            Frame::MetadataPush(m) => self.events.push_back(Event::MetadataPush(m.metadata)),
            Frame::Error(e) => self.handle_error(e),
            Frame::RequestResponse(r) => self.request(RequestFrame::Response(r)),
            Frame::RequestFnf(r) => self.request(RequestFrame::Fnf(r)),
            Frame::RequestStream(r) => self.request(RequestFrame::Stream(r)),
            Frame::RequestChannel(r) => self.request(RequestFrame::Channel(r)),
            Frame::RequestN(r) => self.handle_request_n(r),
            Frame::Cancel(c) => self.handle_cancel(c.stream_id),
            Frame::Payload(p) => self.handle_payload_frame(p),
        }
    }

    /// One frame from the peer, as bytes: what a transport delimited (without the length
    /// prefix of a stream transport). The way in for a runtime: a frame that needs no decoding
    /// beyond its header is read from the header, and a whole message that needs no event of
    /// its own is returned instead of queued as [`Event::Next`] (see [`Message`]), so that a
    /// stream's messages skip the event queue. Everything else is decoded and handled as
    /// [`handle_frame`](Connection::handle_frame) handles it, and a frame that cannot be
    /// decoded as [`handle_decode_error`](Connection::handle_decode_error) says.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use std::time::Instant;
    /// use weft::conn::{ClientSettings, Connection, Event, ServerSettings};
    /// use weft::frame::{Frame, Setup};
    /// use weft::Config;
    ///
    /// let now = Instant::now();
    /// let mut server = Connection::server(Config::default(), ServerSettings::default(), now);
    /// let mut client = Connection::client(Config::default(), ClientSettings::default(), now);
    /// let setup = client.poll_transmit().expect("SETUP");
    /// let mut bytes = BytesMut::new();
    /// setup.encode(&mut bytes);
    /// assert!(server.handle_bytes(bytes.freeze(), now).is_none());
    /// assert!(matches!(server.poll_event(), Some(Event::SetupAccepted(_))));
    /// ```
    pub fn handle_bytes(&mut self, mut bytes: Bytes, now: Instant) -> Option<Message> {
        // Most frames are a stream's plain messages, whose header says all.
        if let Some((id, complete)) = frame::plain_message(&bytes)
            && let Some(last) = self.accept_message(id, complete, bytes.len() - HEADER_SIZE, now)
        {
            bytes.advance(HEADER_SIZE);
            return Some(Message { stream_id: id, metadata: Bytes::new(), data: bytes, last });
        }
        // A request (one per call on a server): decoded as such, without building a `Frame`.
        if frame::is_request(&bytes) {
            match frame::decode_request_frame(bytes) {
                Ok(request) => self.handle_request_frame(request, now),
                Err(e) => self.handle_decode_error(&e, now),
            }
            return None;
        }
        if !frame::is_payload(&bytes) {
            match Frame::decode(bytes) {
                Ok(frame) => self.handle_frame(frame, now),
                Err(e) => self.handle_decode_error(&e, now),
            }
            return None;
        }
        // The other PAYLOAD frames: decoded as such, without building a `Frame`.
        match frame::decode_payload_frame(bytes) {
            Ok(p) => self.handle_payload(p, now),
            Err(e) => {
                self.handle_decode_error(&e, now);
                None
            }
        }
    }

    /// A request frame read from the peer, as [`handle_frame`](Connection::handle_frame) would
    /// take it inside a [`Frame`] (see [`frame::decode_request_frame`]).
    pub(super) fn handle_request_frame(&mut self, request: RequestFrame, now: Instant) {
        if !self.heard_on_a_short_way(now) {
            // Rare, and handled there: ignored once closed, refused before SETUP.
            return self.handle_frame(request.into(), now);
        }
        self.request(request);
    }

    pub(super) fn request(&mut self, request: RequestFrame) {
        match request {
            RequestFrame::Response(r) => {
                self.handle_request(r.stream_id, Kind::RequestResponse, r.follows, 0, false, r.payload)
            }
            RequestFrame::Fnf(r) => {
                self.handle_request(r.stream_id, Kind::FireAndForget, r.follows, 0, false, r.payload)
            }
            RequestFrame::Stream(r) => {
                self.handle_request(r.stream_id, Kind::RequestStream, r.follows, r.initial_n, false, r.payload)
            }
            RequestFrame::Channel(r) => {
                self.handle_request(r.stream_id, Kind::Channel, r.follows, r.initial_n, r.complete, r.payload)
            }
        }
    }

    /// A PAYLOAD frame read from the peer, as [`handle_frame`](Connection::handle_frame)
    /// would take it, except that a whole message that needs no event of its own is returned
    /// instead of queued as [`Event::Next`], when no event is waiting before it (so the order of
    /// events holds): a plain message (N, neither F nor C) on a stream that reads messages, or
    /// the answer (N, not F) to this side's request/response, after which the connection has
    /// forgotten the stream ([`Message::last`]; no [`Event::Complete`] follows). Everything
    /// else about the frame is handled, and queued, as usual.
    pub(crate) fn handle_payload(&mut self, p: PayloadFrame, now: Instant) -> Option<Message> {
        let len = p.payload.metadata.as_ref().map_or(0, Bytes::len) + p.payload.data.len();
        match (p.next && !p.follows).then(|| self.accept_message(p.stream_id, p.complete, len, now)) {
            Some(Some(last)) => Some(Message {
                stream_id: p.stream_id,
                metadata: p.payload.metadata.unwrap_or_default(),
                data: p.payload.data,
                last,
            }),
            _ => {
                self.handle_frame(Frame::Payload(p), now);
                None
            }
        }
    }

    /// [`handle_payload`](Connection::handle_payload) for a whole message (N, not F) of `len`
    /// bytes on stream `id`, known from its frame's header: whether it is handed over directly,
    /// and if so whether it was the stream's last ([`Message::last`]). `None` leaves the
    /// streams as they were: the frame is then for [`handle_frame`](Connection::handle_frame).
    pub(crate) fn accept_message(&mut self, id: u32, complete: bool, len: usize, now: Instant) -> Option<bool> {
        let keep = self.keep_ended;
        let (stream, tally) = self.readable(id, now)?;
        // Protocol.md: a request/response PAYLOAD without C counts as complete.
        if stream.kind == Kind::RequestResponse {
            // Ended where it was found: one look-up for the answer.
            if end_record(stream, tally, keep) {
                self.streams.remove(&id);
            }
            self.after_end();
            return Some(true);
        }
        if complete || stream.in_outstanding == 0 {
            return None;
        }
        stream.received(len, &mut tally.unread);
        Some(false)
    }

    /// [`accept_message`](Connection::accept_message) for a run of plain messages (N alone)
    /// on stream `id`, a request/stream or channel, with the stream looked up once: `None` where
    /// `accept_message` would not hand its messages over. The connection is borrowed meanwhile,
    /// so nothing can happen to the stream between the run's messages.
    pub(crate) fn receiving(&mut self, id: u32, now: Instant) -> Option<Receiving<'_, A>> {
        let (stream, tally) = self.readable(id, now).filter(|(s, _)| s.kind != Kind::RequestResponse)?;
        Some(Receiving { stream, unread: &mut tally.unread })
    }

    /// Stream `id`, if a whole message on it may be handed over directly: the connection is
    /// open, no event waits (so the order of events holds), and the stream reads whole messages.
    /// Counts as a frame from the peer, as [`handle_frame`](Connection::handle_frame) would.
    /// With it, the connection's count of unread bytes, which a message handed over adds to.
    pub(super) fn readable(&mut self, id: u32, now: Instant) -> Option<(&mut Stream<A>, &mut Tally)> {
        if !self.events.is_empty() || !self.heard_on_a_short_way(now) {
            return None;
        }
        let tally = &mut self.tally;
        let stream = live(&mut self.streams, id)?;
        (stream.reassembly.is_none() && !stream.pending_request && stream.inbound == Half::Open)
            .then_some((stream, tally))
    }

    /// Whether a frame may skip [`handle_frame`](Connection::handle_frame) for a shorter way
    /// in: the connection is open or draining (SETUP is behind it, and it is not closed). If
    /// so, the frame counts as heard from the peer, as `handle_frame` would count it (any frame
    /// but a connection ERROR confirms SETUP to a client, and the short ways take none).
    pub(super) fn heard_on_a_short_way(&mut self, now: Instant) -> bool {
        if !matches!(self.state, State::Open | State::Draining) {
            return false;
        }
        self.last_received = now;
        if self.side == Side::Client {
            self.peer_confirmed = true;
        }
        true
    }

    pub(super) fn handle_setup_phase(&mut self, frame: Frame) {
        let setup = match frame {
            Frame::Setup(setup) => setup,
            Frame::Resume(_) => {
                return self.connection_error(ErrorCode::REJECTED_RESUME, "resumption is not supported");
            }
            other => {
                let message = format!("expected SETUP as the first frame, got {:?}", other.frame_type());
                return self.connection_error(ErrorCode::INVALID_SETUP, message);
            }
        };
        let rejection = if setup.version.major != VERSION.major {
            Some((
                ErrorCode::UNSUPPORTED_SETUP,
                format!(
                    "unsupported protocol version {}.{}; this server speaks 1.0",
                    setup.version.major, setup.version.minor
                ),
            ))
        } else if setup.resume_token.is_some() {
            // Protocol.md: a server that does not resume MUST reject R with REJECTED_SETUP.
            Some((ErrorCode::REJECTED_SETUP, "resumption is not supported".to_owned()))
        } else if setup.lease {
            Some((ErrorCode::UNSUPPORTED_SETUP, "leasing is not supported".to_owned()))
        } else if setup.keepalive_interval == 0 || setup.max_lifetime == 0 {
            Some((ErrorCode::INVALID_SETUP, "keepalive interval and max lifetime must be > 0".to_owned()))
        } else {
            None
        };
        if let Some((code, message)) = rejection {
            return self.connection_error(code, message);
        }
        // The client's max lifetime bounds how long it may stay silent, up to the server's
        // cap. Its interval is only advisory (one implementation announces twice what it
        // sends), so it is not used.
        self.max_lifetime =
            Duration::from_millis(u64::from(setup.max_lifetime)).min(self.server_settings.max_peer_lifetime);
        self.setup_deadline = None;
        self.deadline_epoch = self.deadline_epoch.wrapping_add(1);
        self.state = State::Open;
        self.events.push_back(Event::SetupAccepted(Box::new(setup)));
    }

    pub(super) fn handle_error(&mut self, e: ErrorFrame) {
        // On any stream: a server ignores SETUP and RESUME errors, a client once SETUP was
        // accepted (see `rules::SETUP_ERROR`).
        if rules::is_setup_error(e.code) && (self.side == Side::Server || self.peer_confirmed) {
            return rules::ignore(rules::SETUP_ERROR);
        }
        if e.stream_id == 0 {
            if e.code == ErrorCode::CONNECTION_CLOSE {
                // "Sender or Receiver of this frame MUST wait for outstanding streams to
                // terminate before closing the connection. New requests MAY not be accepted."
                self.peer_closing = true;
                return self.drain(CloseReason::PeerClosed);
            }
            return self.terminate(CloseReason::PeerError { code: e.code, message: e.message().into_owned() });
        }
        if live_ref(&self.streams, e.stream_id).is_some() {
            self.events.push_back(Event::Error {
                stream_id: e.stream_id,
                code: e.code,
                message: e.message().into_owned(),
            });
            self.remove_stream(e.stream_id);
        }
    }

    pub(super) fn handle_request(
        &mut self,
        id: u32,
        kind: Kind,
        follows: bool,
        initial_n: u32,
        complete: bool,
        payload: frame::Payload,
    ) {
        // One look-up of the id per request: the vacant slot is where the stream goes. An id in
        // use is checked first: even one of this side's own ids is then ignored, not an error.
        let local = self.is_local_id(id);
        let slot = match self.streams.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => return rules::ignore(rules::REQUEST_IN_USE),
            std::collections::hash_map::Entry::Vacant(slot) => slot,
        };
        if local {
            // "A client MUST generate odd Stream IDs, and a server MUST generate even Stream
            // IDs": a peer that opens one of this side's ids breaks the rule every later stream
            // id depends on.
            return self.connection_error(
                ErrorCode::CONNECTION_ERROR,
                format!(
                    "request on stream {id}, an id only this side may open ({:?} ids are {})",
                    self.side,
                    if self.side == Side::Client { "odd" } else { "even" }
                ),
            );
        }
        if self.state == State::Draining {
            self.transmit.push_back(error_frame(id, ErrorCode::REJECTED, "the connection is closing"));
            return;
        }
        if self.tally.peer_streams >= self.config.max_concurrent_streams {
            let message = format!("too many concurrent streams (limit {})", self.config.max_concurrent_streams);
            self.transmit.push_back(error_frame(id, ErrorCode::REJECTED, message));
            return;
        }
        if kind == Kind::FireAndForget && !follows {
            let (metadata, data) = (payload.metadata.unwrap_or_default(), payload.data);
            self.events.push_back(Event::Request {
                stream_id: id,
                kind,
                metadata,
                data,
                complete: false,
                initial_n: 0,
            });
            return;
        }
        let mut stream = Stream::responder(kind, initial_n, complete);
        self.tally.peer_streams += 1;
        if follows {
            stream.pending_request = true;
            slot.insert(stream);
            return self.reassemble(id, &payload);
        }
        // Made ready before it goes into the map.
        let opened = Connection::open_responder(slot.insert(stream), self.config.inbound_window);
        self.emit_request(id, opened, payload.metadata.unwrap_or_default(), payload.data);
    }

    /// A reassembled request: emits it, as [`handle_request`](Connection::handle_request) does
    /// a whole one.
    pub(super) fn emit_reassembled(&mut self, id: u32, metadata: Bytes, data: Bytes) {
        let window = self.config.inbound_window;
        let Some(stream) = live(&mut self.streams, id) else { return };
        let opened = Connection::open_responder(stream, window);
        if stream.kind == Kind::FireAndForget {
            self.streams.remove(&id);
            self.tally.peer_streams -= 1;
        }
        self.emit_request(id, opened, metadata, data);
    }

    /// Does to a responder stream what opening it requires, once its request is whole.
    pub(super) fn open_responder(stream: &mut Stream<A>, window: u32) -> OpenedRequest {
        stream.pending_request = false;
        let kind = stream.kind;
        let complete = kind == Kind::Channel && stream.inbound == Half::Closed;
        let initial_n = u32::try_from(stream.out_credit).unwrap_or(MAX_U31);
        let grant = kind == Kind::Channel && !complete;
        if grant {
            // Protocol.md: a responder MUST answer REQUEST_CHANNEL with REQUEST_N. The first
            // message came inside the request, so the window is granted on top of it.
            stream.in_window = window;
            stream.grant(window);
        }
        OpenedRequest { kind, complete, initial_n, grant: grant.then_some(window) }
    }

    /// Queues what a whole request produces: the REQUEST_N a channel is answered with, and
    /// the request's event.
    pub(super) fn emit_request(&mut self, id: u32, opened: OpenedRequest, metadata: Bytes, data: Bytes) {
        let OpenedRequest { kind, complete, initial_n, grant } = opened;
        if let Some(n) = grant {
            self.transmit.push_back(Frame::RequestN(RequestN { stream_id: id, n }));
        }
        self.events.push_back(Event::Request { stream_id: id, kind, metadata, data, complete, initial_n });
    }

    pub(super) fn handle_request_n(&mut self, r: RequestN) {
        let Some(stream) = live(&mut self.streams, r.stream_id) else { return };
        if stream.outbound != Half::Open || r.n == 0 {
            return;
        }
        stream.out_credit = stream.out_credit.saturating_add(u64::from(r.n));
        self.events.push_back(Event::RequestN { stream_id: r.stream_id, n: r.n });
    }

    pub(super) fn handle_cancel(&mut self, id: u32) {
        let Some(stream) = live(&mut self.streams, id) else { return };
        match stream.role {
            Role::Responder => {
                self.events.push_back(Event::Cancelled { stream_id: id });
                self.remove_stream(id);
            }
            Role::Requester => {
                // A channel's responder stops reading (rsocket-java does this): stop sending.
                if stream.outbound == Half::Open {
                    stream.outbound = Half::Closed;
                    self.events.push_back(Event::StopSending { stream_id: id });
                    self.reap(id);
                }
            }
        }
    }

    pub(super) fn handle_payload_frame(&mut self, p: PayloadFrame) {
        let id = p.stream_id;
        let Some(stream) = live(&mut self.streams, id) else { return };
        if stream.reassembly.is_some() {
            self.reassemble(id, &p.payload);
            // Protocol.md: a PAYLOAD with both F and C ignores F.
            if p.follows && !p.complete {
                return;
            }
            let Some(stream) = live(&mut self.streams, id) else { return };
            let Some(reassembly) = stream.reassembly.take() else { return };
            self.tally.reassembling -= reassembly.len;
            let (metadata, data) = reassembly.finish();
            if stream.pending_request {
                if p.complete && stream.kind == Kind::Channel {
                    stream.inbound = Half::Closed;
                }
                return self.emit_reassembled(id, metadata, data);
            }
            return self.deliver(id, true, p.complete, metadata, data);
        }
        if stream.inbound != Half::Open || stream.pending_request {
            return;
        }
        if p.follows && !p.complete {
            return self.reassemble(id, &p.payload);
        }
        let metadata = p.payload.metadata.unwrap_or_default();
        self.deliver(id, p.next, p.complete, metadata, p.payload.data)
    }

    /// Adds a fragment to stream `id`'s unfinished message, starting one if there is none,
    /// within the message size limit and the connection's budget (`Config::reassembly_limits`);
    /// beyond either, the stream ends. Check that the stream still has its message after.
    pub(super) fn reassemble(&mut self, id: u32, payload: &frame::Payload) {
        let (max_message, budget) = (self.config.max_message_size, self.config.max_reassembly_bytes);
        let now = self.last_received;
        let Some(stream) = live(&mut self.streams, id) else { return };
        let add = payload.metadata.as_ref().map_or(0, Bytes::len) + payload.data.len();
        if self.tally.reassembling + add > budget {
            let message = format!("unfinished fragmented messages on this connection exceed {budget} bytes");
            return self.stream_protocol_error(id, message);
        }
        let reassembly = stream.reassembly.get_or_insert_with(|| Box::new(Reassembly::new(now)));
        if let Err(message) = reassembly.push(payload, max_message) {
            return self.stream_protocol_error(id, message);
        }
        self.tally.reassembling += add;
        let deadline = reassembly.started + self.config.reassembly_timeout;
        if self.reassembly_deadline.is_none_or(|d| deadline < d) {
            self.reassembly_deadline = Some(deadline);
            self.deadline_epoch = self.deadline_epoch.wrapping_add(1);
        }
    }

    /// Ends the streams whose fragmented message is not finished in time, and finds when the
    /// next one may run out.
    pub(super) fn expire_reassemblies(&mut self, now: Instant) {
        let timeout = self.config.reassembly_timeout;
        let mut late = Vec::new();
        let mut next: Option<Instant> = None;
        for (&id, stream) in self.streams.iter() {
            if let Some(r) = &stream.reassembly {
                let deadline = r.started + timeout;
                if deadline <= now {
                    late.push(id);
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
        }
        self.reassembly_deadline = next;
        for id in late {
            let message = format!("fragmented message not finished within {} ms", timeout.as_millis());
            self.stream_protocol_error(id, message);
        }
    }

    /// Over the unread limit, a stall deadline runs; a reader's progress moves it on, and at
    /// the deadline without any, the streams holding the most unread bytes end.
    pub(super) fn check_unread(&mut self, now: Instant) {
        if !self.over_unread_limit() {
            self.unread_deadline = None;
            return;
        }
        match self.unread_deadline {
            Some(deadline) if now >= deadline && !self.unread_progress => {
                self.unread_deadline = None;
                // The largest first, until the rest fits: each stall sheds what it must,
                // so that the peer is heard again (its keepalives wait behind the pause).
                while self.over_unread_limit() {
                    let largest = self.streams.iter().filter(|(_, s)| s.in_queued > 0).max_by_key(|(_, s)| s.in_queued);
                    let Some((&id, _)) = largest else { break };
                    self.shed_unread(id);
                }
            }
            Some(deadline) if now < deadline => {}
            _ => {
                self.unread_deadline = Some(now + self.config.unread_stall);
                self.unread_progress = false;
            }
        }
    }

    /// Delivers a whole inbound message and/or completion on `id`.
    pub(super) fn deliver(&mut self, id: u32, next: bool, complete: bool, metadata: Bytes, data: Bytes) {
        let Some(stream) = live(&mut self.streams, id) else { return };
        if stream.kind == Kind::RequestResponse {
            // Protocol.md: a request/response PAYLOAD without C counts as complete. A C-only
            // PAYLOAD is an empty response (the Python implementation answers empty data so).
            self.events.push_back(Event::Next { stream_id: id, metadata, data });
            self.events.push_back(Event::Complete { stream_id: id });
            self.remove_stream(id);
            return;
        }
        if next {
            if stream.in_outstanding == 0 {
                return self.stream_protocol_error(id, "the peer sent a message beyond the credit granted".to_owned());
            }
            stream.received(metadata.len() + data.len(), &mut self.tally.unread);
            self.events.push_back(Event::Next { stream_id: id, metadata, data });
        }
        if complete {
            stream.inbound = Half::Closed;
            stream.in_outstanding = 0;
            self.events.push_back(Event::Complete { stream_id: id });
            self.reap(id);
        }
    }

    /// The transport reached its end or failed: the peer is gone. Every stream fails.
    pub fn handle_transport_closed(&mut self) {
        if self.state != State::Closed {
            self.terminate(CloseReason::PeerClosed);
        }
    }
}

/// What [`Connection::emit_request`] queues for a request whose stream is ready.
pub(super) struct OpenedRequest {
    kind: Kind,
    complete: bool,
    initial_n: u32,
    /// The REQUEST_N to answer a channel with.
    grant: Option<u32>,
}

/// A run of a stream's messages handed over from their frames' headers, with the stream looked
/// up once: see [`Connection::receiving`].
#[derive(Debug)]
pub(crate) struct Receiving<'a, A> {
    stream: &'a mut Stream<A>,
    /// The connection's unread bytes.
    unread: &'a mut u64,
}

impl<A> Receiving<'_, A> {
    /// [`Connection::accept_message`] for one more plain message (N alone) of `len` bytes: true
    /// if it is handed over; otherwise nothing changed, and its frame is for `handle_frame`.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> bool {
        if self.stream.in_outstanding == 0 {
            return false;
        }
        self.stream.received(len, self.unread);
        true
    }
}
