//! The connection state machine: sans-IO, no clock.
//!
//! A [`Connection`] is one side of an RSocket connection. It performs no IO and reads no clock:
//! the driver feeds it
//!
//! 1. input: [`Connection::handle_bytes`] for every frame read (its bytes, as the transport
//!    delimited them), or [`Connection::handle_frame`] for a frame already decoded (then
//!    [`Connection::handle_decode_error`] for one that failed to decode), and
//!    [`Connection::handle_timeout`] when the deadline from [`Connection::poll_timeout`] passes;
//! 2. commands from the application: [`Connection::open`], [`Connection::send_next`],
//!    [`Connection::send_complete`], [`Connection::send_error`], [`Connection::cancel`],
//!    [`Connection::consumed`], [`Connection::close`];
//!
//! and after each call drains
//!
//! 3. output: [`Connection::poll_transmit`] (frames to write, in order),
//!    [`Connection::poll_event`] (what the application must learn), and
//!    [`Connection::poll_timeout`] (when to call `handle_timeout` next).
//!
//! A stream's messages have shorter ways through, which skip the queues where the order of
//! frames and events allows it: `handle_bytes` reads a plain message from its frame's header
//! alone and hands it back instead of queuing an event. Weft's runtime has shorter ways still
//! (a run of one stream's messages read with one look-up; messages written, or encoded, straight
//! into its write buffer), which are not public: they are the runtime's. None of them frames
//! what it writes: a frame's length prefix is the transport's business (the runtime puts it
//! around each frame), so a transport that keeps message boundaries needs nothing here changed.
//!
//! Either side is requester and responder at once: the client opens odd stream ids, the server
//! even ones (Protocol.md, "Stream Identifiers"), so the [`Side`] decides who owns a stream.
//!
//! # Which errors close what
//!
//! The rule, applied in [`Connection::handle_decode_error`] and the `handle_*` methods:
//!
//! * **Connection errors** — the peer broke framing or the connection's own protocol: a frame
//!   that cannot be decoded and does not name a stream, one whose metadata length overruns it,
//!   an unknown frame type without (I), anything but SETUP first, a bad SETUP, a request on a
//!   stream id of the wrong parity, silence beyond the max lifetime. Answer: ERROR on stream 0 (CONNECTION_ERROR, or the SETUP codes),
//!   then close; every open stream fails.
//! * **Stream errors** — the frame was framed correctly and names a stream, but is malformed,
//!   exceeds the credit granted, or reassembles beyond the size limit. Answer: that stream alone
//!   ends (ERROR\[INVALID\] when this side responds on it, CANCEL when this side requested it);
//!   every other stream and the connection carry on.
//! * **Limits** — messages within the credit granted, but beyond `Config::unread_limits`
//!   unread, stop the connection reading ([`Connection::accepts_input`]); if no reader makes
//!   progress for the stall time, the stream holding the most ends alike, as
//!   RESOURCE_EXHAUSTED (ERROR\[APPLICATION_ERROR\] with Weft's error text, or CANCEL).
//! * **Ignored** — what Protocol.md's "Handling the Unexpected" says to ignore: frames for
//!   unknown streams (stream 0 included), a request on a stream id in use, a frame with the
//!   (I)gnore flag that cannot be read, a second SETUP, connection frames on a non-zero stream,
//!   SETUP errors after establishment, frames of features never negotiated.
//!
//! The verdicts, rule by rule with the sentence each comes from, are in `rules.rs`.

mod ids;
mod rules;
#[cfg(test)]
mod spec_tests;
mod stream;
#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::frame::metadata::COMPOSITE_METADATA_MIME;
use crate::frame::{
    self, Cancel, DecodeError, ErrorCode, ErrorFrame, Frame, FrameType, HEADER_SIZE, Keepalive, MAX_U31, PayloadFrame,
    RequestChannel, RequestFrame, RequestN, RequestStream, Setup, VERSION,
};
use bytes::{Buf, Bytes, BytesMut};
use frame::direct::RequestHead;
use ids::IdMap;
use rules::Verdict;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::fmt;
use std::time::{Duration, Instant};
use stream::{Half, Reassembly, Role, Stream};

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that connected and sent SETUP; opens odd stream ids.
    Client,
    /// The side that accepted; opens even stream ids.
    Server,
}

/// The interaction model of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// REQUEST_RESPONSE.
    RequestResponse,
    /// REQUEST_FNF.
    FireAndForget,
    /// REQUEST_STREAM.
    RequestStream,
    /// REQUEST_CHANNEL.
    Channel,
}

/// What the application must learn from the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server: the client's SETUP was accepted.
    SetupAccepted(Box<Setup>),
    /// The peer opened a stream (reassembled if it was fragmented).
    Request {
        /// The new stream.
        stream_id: u32,
        /// Its interaction model.
        kind: Kind,
        /// The request's metadata (empty if absent).
        metadata: Bytes,
        /// The request's data; for a channel, its first message.
        data: Bytes,
        /// Channel only: the requester sent (C) with its first message, so no more follow.
        complete: bool,
        /// Request/stream and channel: the credit the requester granted this side.
        initial_n: u32,
    },
    /// A message on a stream this side reads from.
    Next {
        /// The stream.
        stream_id: u32,
        /// Metadata (empty if absent).
        metadata: Bytes,
        /// Data.
        data: Bytes,
    },
    /// The peer completed its direction of a stream.
    Complete {
        /// The stream.
        stream_id: u32,
    },
    /// The stream ended in error: sent by the peer, or detected here (see the module doc).
    /// The stream is gone.
    Error {
        /// The stream.
        stream_id: u32,
        /// The error code (APPLICATION_ERROR, REJECTED, CANCELED, INVALID, ...).
        code: ErrorCode,
        /// The message.
        message: String,
    },
    /// The requester cancelled a stream this side responds on: stop, the stream is gone.
    Cancelled {
        /// The stream.
        stream_id: u32,
    },
    /// A channel's responder stopped reading (rsocket-java does this): this side, the
    /// requester, must stop sending; the responder's messages still arrive.
    StopSending {
        /// The stream.
        stream_id: u32,
    },
    /// The peer granted `n` more messages on a stream this side writes to.
    RequestN {
        /// The stream.
        stream_id: u32,
        /// Additional credit.
        n: u32,
    },
    /// The peer pushed connection metadata.
    MetadataPush(Bytes),
    /// The connection is over; every stream still open has failed. The last event.
    Closed(CloseReason),
}

/// Why a connection closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it on purpose.
    Local,
    /// The peer closed the transport, or sent ERROR\[CONNECTION_CLOSE\].
    PeerClosed,
    /// The peer sent a connection-level ERROR.
    PeerError {
        /// The code.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
    /// This side found the peer at fault and sent ERROR on stream 0.
    ProtocolError {
        /// The code sent.
        code: ErrorCode,
        /// The message sent.
        message: String,
    },
    /// Nothing arrived from the peer within the max lifetime.
    KeepaliveTimeout(Duration),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("connection closed locally"),
            CloseReason::PeerClosed => f.write_str("connection closed by the peer"),
            CloseReason::PeerError { code, message } => {
                write!(f, "peer closed the connection with {}: {message}", code_name(*code))
            }
            CloseReason::ProtocolError { code, message } => {
                write!(f, "connection closed after a protocol error ({}): {message}", code_name(*code))
            }
            CloseReason::KeepaliveTimeout(d) => {
                write!(f, "no frame from the peer for {} ms (keepalive max lifetime)", d.as_millis())
            }
        }
    }
}

fn code_name(code: ErrorCode) -> String {
    code.name().map_or_else(|| format!("error 0x{:x}", code.0), str::to_owned)
}

/// A command that cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The connection is closed, or closing and refusing new streams.
    Closed,
    /// No stream id is left (the 31-bit space is used up); open a new connection.
    StreamIdsExhausted,
    /// The stream does not exist (any more) or this side may not do that on it.
    NoSuchStream(u32),
    /// The peer has granted no credit for another message.
    NoCredit(u32),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Closed => f.write_str("the connection is closed"),
            CommandError::StreamIdsExhausted => f.write_str("no stream ids left on this connection"),
            CommandError::NoSuchStream(id) => write!(f, "stream {id} is not open for that"),
            CommandError::NoCredit(id) => write!(f, "stream {id}: the peer granted no credit"),
        }
    }
}

impl std::error::Error for CommandError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Server before SETUP.
    AwaitingSetup,
    Open,
    /// No new streams; closes once the last stream ends.
    Draining,
    Closed,
}

/// Counts over all of a connection's streams, apart from the map of streams, so that a
/// stream's record can end while it is borrowed from the map (see [`end_record`]).
#[derive(Debug, Default)]
struct Tally {
    /// Streams the peer opened that are still live, for the concurrency limit.
    peer_streams: usize,
    /// Records of ended streams not yet released.
    ended: usize,
    /// Bytes held in unfinished fragmented messages.
    reassembling: usize,
    /// Bytes of messages handed to the application and not yet reported consumed
    /// (`Config::unread_limits`).
    unread: u64,
}

/// What [`Connection::emit_request`] queues for a request whose stream is ready.
struct OpenedRequest {
    kind: Kind,
    complete: bool,
    initial_n: u32,
    /// The REQUEST_N to answer a channel with.
    grant: Option<u32>,
}

/// A message from the peer that [`Connection::handle_bytes`] hands over directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The stream it belongs to.
    pub stream_id: u32,
    /// Its metadata (empty if none).
    pub metadata: Bytes,
    /// Its data.
    pub data: Bytes,
    /// The stream's last message: the answer to this side's request/response. The connection
    /// has forgotten the stream.
    pub last: bool,
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

/// One side of an RSocket connection. See the [module docs](self).
///
/// `A` is what Weft's runtime keeps with each stream, in the stream's own record, so that a
/// frame looks its stream up once; the public constructors make a `Connection<()>`, which
/// keeps nothing.
#[derive(Debug)]
pub struct Connection<A = ()> {
    side: Side,
    config: Config,
    state: State,
    /// One record per stream: the protocol's state and the runtime's attachment.
    streams: IdMap<Stream<A>>,
    /// Ended streams stay until the runtime releases them (see `Connection::release`), so
    /// that what it attached to a stream is there when it learns of the end; without
    /// attachments (`A = ()`) an ended stream is forgotten at once.
    keep_ended: bool,
    /// Counts over all streams.
    tally: Tally,
    next_stream_id: u32,
    /// Frames to write, in order.
    transmit: VecDeque<Frame>,
    events: VecDeque<Event>,
    keepalive_interval: Duration,
    max_lifetime: Duration,
    last_received: Instant,
    next_keepalive: Option<Instant>,
    setup_deadline: Option<Instant>,
    /// Changes whenever a deadline may have moved earlier: see `deadline_epoch`.
    deadline_epoch: u32,
    /// Client: the server has sent something, so SETUP was accepted (Protocol.md: errors with
    /// SETUP codes are ignored after that).
    peer_confirmed: bool,
    /// While draining: why the connection will close once its last stream ends (this side
    /// closed it, or the peer sent ERROR\[CONNECTION_CLOSE\]).
    drain_reason: Option<CloseReason>,
    /// Over the unread limit: when a stream is shed unless a reader makes progress first.
    unread_deadline: Option<Instant>,
    /// A reader reported progress since `unread_deadline` was set.
    unread_progress: bool,
    /// When the oldest unfinished fragmented message may have run out of time (at or after
    /// its real deadline: one that finished early leaves it, and firing early finds nothing).
    reassembly_deadline: Option<Instant>,
}

impl Connection {
    /// The client side. SETUP is queued at once, so requests may follow it immediately.
    pub fn client(config: Config, now: Instant) -> Connection {
        let mut conn = Connection::new(Side::Client, config, now);
        let setup = Setup {
            version: VERSION,
            keepalive_interval: millis(conn.config.keepalive_interval),
            max_lifetime: millis(conn.config.max_lifetime),
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.to_owned(),
            data_mime: conn.config.data_mime.clone(),
            payload: frame::Payload::default(),
        };
        conn.transmit.push_back(Frame::Setup(setup));
        conn.state = State::Open;
        conn.next_keepalive = Some(now + conn.keepalive_interval);
        conn
    }

    /// The server side; it waits for SETUP.
    pub fn server(config: Config, now: Instant) -> Connection {
        let mut conn = Connection::new(Side::Server, config, now);
        conn.setup_deadline = Some(now + conn.config.setup_timeout);
        conn
    }

    /// This connection, new (no stream opened yet), keeping an `A` with each stream: the
    /// runtime's record of it. An ended stream's record then stays until
    /// [`release`](Connection::release)d.
    pub(crate) fn with_attachments<A>(self) -> Connection<A> {
        assert!(self.streams.is_empty(), "attachments are chosen before the first stream");
        Connection {
            side: self.side,
            config: self.config,
            state: self.state,
            streams: ids::id_map(),
            keep_ended: true,
            tally: self.tally,
            next_stream_id: self.next_stream_id,
            transmit: self.transmit,
            events: self.events,
            keepalive_interval: self.keepalive_interval,
            max_lifetime: self.max_lifetime,
            last_received: self.last_received,
            next_keepalive: self.next_keepalive,
            setup_deadline: self.setup_deadline,
            deadline_epoch: self.deadline_epoch,
            peer_confirmed: self.peer_confirmed,
            drain_reason: self.drain_reason,
            unread_deadline: self.unread_deadline,
            unread_progress: self.unread_progress,
            reassembly_deadline: self.reassembly_deadline,
        }
    }

    fn new(side: Side, config: Config, now: Instant) -> Connection {
        Connection {
            side,
            keepalive_interval: config.keepalive_interval,
            max_lifetime: config.max_lifetime,
            config,
            state: State::AwaitingSetup,
            streams: ids::id_map(),
            keep_ended: false,
            tally: Tally::default(),
            next_stream_id: if side == Side::Client { 1 } else { 2 },
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            last_received: now,
            next_keepalive: None,
            setup_deadline: None,
            deadline_epoch: 0,
            peer_confirmed: false,
            drain_reason: None,
            reassembly_deadline: None,
            unread_deadline: None,
            unread_progress: false,
        }
    }
}

impl<A: Default> Connection<A> {
    /// Which side this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the connection has closed (the [`Event::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether stream `id` is live.
    pub fn contains(&self, id: u32) -> bool {
        live_ref(&self.streams, id).is_some()
    }

    /// Number of live streams, both directions.
    pub fn stream_count(&self) -> usize {
        self.live_count()
    }

    fn live_count(&self) -> usize {
        self.streams.len() - self.tally.ended
    }

    /// What the runtime attached to stream `id`, live or ended (until released).
    #[inline]
    pub(crate) fn attachment(&mut self, id: u32) -> Option<&mut A> {
        self.streams.get_mut(&id).map(|s| &mut s.attached)
    }

    /// What the runtime attached to stream `id`, with the messages this side may still send on
    /// it (the credit the peer granted, not yet spent; 0 for a stream this side does not write
    /// to): one look-up for a producer's turn.
    #[inline]
    pub(crate) fn producing(&mut self, id: u32) -> Option<(&mut A, u64)> {
        let stream = self.streams.get_mut(&id)?;
        let credit = if stream.outbound == Half::Open { stream.out_credit } else { 0 };
        Some((&mut stream.attached, credit))
    }

    /// Forgets stream `id` if it has ended, returning what was attached to it; a live stream
    /// (or an unknown id) is left alone. The runtime calls this once it has acted on the
    /// stream's end (its last event, or the call of its own that ended it).
    #[inline]
    pub(crate) fn release(&mut self, id: u32) -> Option<A> {
        let Entry::Occupied(entry) = self.streams.entry(id) else { return None };
        if !entry.get().ended {
            return None;
        }
        self.tally.ended -= 1;
        Some(entry.remove().attached)
    }

    /// Once closed: forgets every stream, returning what was attached to each.
    pub(crate) fn release_all(&mut self) -> impl Iterator<Item = A> + '_ {
        debug_assert!(self.state == State::Closed);
        self.tally.ended = 0;
        self.streams.drain().map(|(_, s)| s.attached)
    }

    /// Records of ended streams not yet released (the runtime releases each as it learns of
    /// the end; a count left over is a leak).
    pub(crate) fn unreleased(&self) -> usize {
        self.tally.ended
    }

    // ---- output -------------------------------------------------------------------------

    /// Whether a frame waits to be written ([`poll_transmit`](Connection::poll_transmit)).
    #[inline]
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// The next frame to write.
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let lifetime = match self.state {
            State::AwaitingSetup => None,
            _ => Some(self.last_received + self.max_lifetime),
        };
        // Over the unread limit with no deadline yet: due at once, to set one.
        let unread = self.over_unread_limit().then(|| self.unread_deadline.unwrap_or(self.last_received));
        [lifetime, self.next_keepalive, self.setup_deadline, self.reassembly_deadline, unread]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the transport should read more from the peer: false while the messages handed
    /// to the application and not yet reported [`consumed`](Connection::consumed) exceed
    /// `Config::unread_limits`, all streams together. Not reading is how a peer that sends
    /// within its credit, but faster than this side reads, is slowed (TCP back-pressure):
    /// credit counts messages, not bytes. Reading resumes as the application reads, or when
    /// [`handle_timeout`](Connection::handle_timeout) finds no reader made progress for the
    /// stall time, and ends the stream holding the most unread bytes.
    pub fn accepts_input(&self) -> bool {
        !self.over_unread_limit()
    }

    fn over_unread_limit(&self) -> bool {
        self.tally.unread > self.config.max_unread_bytes as u64
    }

    /// Changes whenever [`poll_timeout`](Self::poll_timeout)'s answer may have moved earlier
    /// (a timeout handled, SETUP accepted) or gone (closed). In between, it only moves later,
    /// as frames arrive (the peer's silence limit), so a driver with a timer set for it need
    /// not ask again: a timer that fires early finds nothing due, and is set again.
    pub(crate) fn deadline_epoch(&self) -> u32 {
        self.deadline_epoch
    }

    // ---- input --------------------------------------------------------------------------

    /// Timers: keepalive sending, max-lifetime and setup timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.deadline_epoch = self.deadline_epoch.wrapping_add(1);
        if let Some(deadline) = self.setup_deadline
            && now >= deadline
        {
            let message = format!("no SETUP within {} ms", self.config.setup_timeout.as_millis());
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
    /// use weft::conn::{Connection, Event};
    /// use weft::frame::{Frame, Setup};
    /// use weft::Config;
    ///
    /// let now = Instant::now();
    /// let mut server = Connection::server(Config::default(), now);
    /// let mut client = Connection::client(Config::default(), now);
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
    fn handle_request_frame(&mut self, request: RequestFrame, now: Instant) {
        if !self.heard_on_a_short_way(now) {
            // Rare, and handled there: ignored once closed, refused before SETUP.
            return self.handle_frame(request.into(), now);
        }
        self.request(request);
    }

    fn request(&mut self, request: RequestFrame) {
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
    fn readable(&mut self, id: u32, now: Instant) -> Option<(&mut Stream<A>, &mut Tally)> {
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
    fn heard_on_a_short_way(&mut self, now: Instant) -> bool {
        if !matches!(self.state, State::Open | State::Draining) {
            return false;
        }
        self.last_received = now;
        if self.side == Side::Client {
            self.peer_confirmed = true;
        }
        true
    }

    fn handle_setup_phase(&mut self, frame: Frame) {
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
        self.max_lifetime = Duration::from_millis(u64::from(setup.max_lifetime)).min(self.config.max_peer_lifetime);
        self.setup_deadline = None;
        self.deadline_epoch = self.deadline_epoch.wrapping_add(1);
        self.state = State::Open;
        self.events.push_back(Event::SetupAccepted(Box::new(setup)));
    }

    fn handle_error(&mut self, e: ErrorFrame) {
        // On any stream: a server ignores SETUP and RESUME errors, a client once SETUP was
        // accepted (see `rules::SETUP_ERROR`).
        if rules::is_setup_error(e.code) && (self.side == Side::Server || self.peer_confirmed) {
            return rules::ignore(rules::SETUP_ERROR);
        }
        if e.stream_id == 0 {
            if e.code == ErrorCode::CONNECTION_CLOSE {
                // "Sender or Receiver of this frame MUST wait for outstanding streams to
                // terminate before closing the connection. New requests MAY not be accepted."
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

    fn handle_request(
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
    fn emit_reassembled(&mut self, id: u32, metadata: Bytes, data: Bytes) {
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
    fn open_responder(stream: &mut Stream<A>, window: u32) -> OpenedRequest {
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
    fn emit_request(&mut self, id: u32, opened: OpenedRequest, metadata: Bytes, data: Bytes) {
        let OpenedRequest { kind, complete, initial_n, grant } = opened;
        if let Some(n) = grant {
            self.transmit.push_back(Frame::RequestN(RequestN { stream_id: id, n }));
        }
        self.events.push_back(Event::Request { stream_id: id, kind, metadata, data, complete, initial_n });
    }

    fn handle_request_n(&mut self, r: RequestN) {
        let Some(stream) = live(&mut self.streams, r.stream_id) else { return };
        if stream.outbound != Half::Open || r.n == 0 {
            return;
        }
        stream.out_credit = stream.out_credit.saturating_add(u64::from(r.n));
        self.events.push_back(Event::RequestN { stream_id: r.stream_id, n: r.n });
    }

    fn handle_cancel(&mut self, id: u32) {
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

    fn handle_payload_frame(&mut self, p: PayloadFrame) {
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
    fn reassemble(&mut self, id: u32, payload: &frame::Payload) {
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
    fn expire_reassemblies(&mut self, now: Instant) {
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
    fn check_unread(&mut self, now: Instant) {
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
    fn deliver(&mut self, id: u32, next: bool, complete: bool, metadata: Bytes, data: Bytes) {
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

    // ---- commands -----------------------------------------------------------------------

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
    fn request_head(&self, kind: Kind, complete: bool) -> RequestHead {
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
    fn writes_now(&self, body_len: usize) -> bool {
        self.transmit.is_empty() && self.fits_one_frame(body_len)
    }

    /// Whether a frame whose body after the header is `body_len` bytes needs no fragmenting.
    fn fits_one_frame(&self, body_len: usize) -> bool {
        HEADER_SIZE + body_len <= self.config.effective_fragment_size()
    }

    /// The id for a new stream of this side's.
    fn next_id(&mut self) -> Result<u32, CommandError> {
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
    fn opened(&mut self, id: u32, kind: Kind, complete: bool) {
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
    fn spend_credit(&mut self, id: u32, complete: bool) -> Result<bool, CommandError> {
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
    fn drain(&mut self, reason: CloseReason) {
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

    // ---- internals ----------------------------------------------------------------------

    /// Whether stream id `id` is one this side opens (its parity is this side's).
    pub(crate) fn is_local_id(&self, id: u32) -> bool {
        (id % 2 == 1) == (self.side == Side::Client)
    }

    /// Ends a stream because of the peer's fault (see the module doc).
    fn stream_protocol_error(&mut self, id: u32, message: String) {
        let Some(stream) = live_ref(&self.streams, id) else { return };
        let pending_request = stream.pending_request;
        if stream.role == Role::Responder {
            self.transmit.push_back(error_frame(id, ErrorCode::INVALID, &message));
        } else {
            self.transmit.push_back(Frame::Cancel(Cancel { stream_id: id }));
        }
        if !pending_request {
            self.events.push_back(Event::Error { stream_id: id, code: ErrorCode::INVALID, message });
        }
        self.remove_stream(id);
    }

    /// The connection holds more unread bytes than `Config::unread_limits` allows, and no
    /// reader made progress for the stall time: stream `id`, which holds the most, ends for
    /// both sides as resources exhausted. Not the peer's fault (its credit allowed what it
    /// sent), so not INVALID: the peer reads RESOURCE_EXHAUSTED in a Weft error text (or
    /// CANCEL, where it is the responder), and the local reader alike.
    fn shed_unread(&mut self, id: u32) {
        let Some(stream) = live_ref(&self.streams, id) else { return };
        let message = format!(
            "RESOURCE_EXHAUSTED: stream {id} holds {} bytes received and not read for {} ms, beyond the \
             connection's limit of {} unread (Config::unread_limits)",
            stream.in_queued,
            self.config.unread_stall.as_millis(),
            self.config.max_unread_bytes
        );
        let code = ErrorCode::APPLICATION_ERROR;
        if stream.role == Role::Responder {
            self.transmit.push_back(error_frame(id, code, &message));
        } else {
            self.transmit.push_back(Frame::Cancel(Cancel { stream_id: id }));
        }
        self.events.push_back(Event::Error { stream_id: id, code, message });
        self.remove_stream(id);
    }

    /// Ends the connection for the peer's fault: ERROR\[`code`\] on stream 0, then close.
    fn connection_error(&mut self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        self.send_connection_error(code, &message);
        self.terminate(CloseReason::ProtocolError { code, message });
    }

    /// Queues ERROR\[`code`\] on stream 0, the connection's last frame.
    fn send_connection_error(&mut self, code: ErrorCode, message: &str) {
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
    fn push_connection_frame(&mut self, frame: Frame) {
        let at = self.transmit.iter().position(|f| f.stream_id() != 0).unwrap_or(self.transmit.len());
        self.transmit.insert(at, frame);
    }

    fn terminate(&mut self, reason: CloseReason) {
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
    fn remove_stream(&mut self, id: u32) {
        self.end_stream_if(id, |_| true);
    }

    /// Forgets a stream once both directions are closed.
    fn reap(&mut self, id: u32) {
        self.end_stream_if(id, |s| s.inbound == Half::Closed && s.outbound == Half::Closed);
    }

    /// Ends live stream `id` if `done` says so (with one look-up), as
    /// [`remove_stream`](Connection::remove_stream) says.
    #[inline]
    fn end_stream_if(&mut self, id: u32, done: impl FnOnce(&Stream<A>) -> bool) {
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
    fn after_end(&mut self) {
        if self.state == State::Draining && self.live_count() == 0 {
            let reason = self.drain_reason.take().unwrap_or(CloseReason::Local);
            self.terminate(reason);
        }
    }

    /// Queues a request or PAYLOAD frame, split into fragments no larger than the configured
    /// fragment size (Protocol.md, "Fragmentation and Reassembly": metadata first, then
    /// data; follow-up fragments are PAYLOAD frames; C only on the last).
    fn push_fragmented(&mut self, id: u32, head: Head, payload: frame::Payload) {
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

/// Whether the frame a fragmented message started with carried (C).
/// Ends `stream`'s record: its share of the connection's counts goes, and it is marked ended
/// if it is kept for the runtime (`keep`). Returns whether it must leave the map now instead
/// (not kept). What follows an end is the caller's: [`Connection::after_end`].
fn end_record<A>(stream: &mut Stream<A>, tally: &mut Tally, keep: bool) -> bool {
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
fn live<A>(streams: &mut IdMap<Stream<A>>, id: u32) -> Option<&mut Stream<A>> {
    streams.get_mut(&id).filter(|s| !s.ended)
}

/// [`live`], shared.
#[inline]
fn live_ref<A>(streams: &IdMap<Stream<A>>, id: u32) -> Option<&Stream<A>> {
    streams.get(&id).filter(|s| !s.ended)
}

fn head_completes(head: &Head) -> bool {
    matches!(head, Head::Payload { complete: true } | Head::Channel { complete: true, .. })
}

/// The first frame of a (possibly fragmented) message.
#[derive(Clone, Copy, Debug)]
enum Head {
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
    fn extra_len(&self) -> usize {
        match self {
            Head::Stream { .. } | Head::Channel { .. } => 4,
            _ => 0,
        }
    }

    fn frame(self, stream_id: u32, follows: bool, payload: frame::Payload) -> Frame {
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

fn payload_frame(stream_id: u32, next: bool, complete: bool, payload: frame::Payload) -> Frame {
    Frame::Payload(PayloadFrame { stream_id, follows: false, complete, next, payload })
}

fn error_frame(stream_id: u32, code: ErrorCode, message: impl AsRef<str>) -> Frame {
    Frame::Error(ErrorFrame { stream_id, code, data: Bytes::copy_from_slice(message.as_ref().as_bytes()) })
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(MAX_U31).clamp(1, MAX_U31)
}

/// Concatenates fragments; used by [`stream::Reassembly`].
fn append(buf: &mut Option<BytesMut>, bytes: &Bytes) {
    buf.get_or_insert_with(BytesMut::new).extend_from_slice(bytes);
}
