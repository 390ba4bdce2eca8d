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
//!
//! # Where things are
//!
//! This file has the types, the connection's state and its output; `input.rs` what comes from
//! the peer (frames, timers, the transport's end); `commands.rs` what this side's application
//! asks, and how messages are put in frames; `ending.rs` how streams and the connection end;
//! `stream.rs` one stream's record (its protocol state, credit, reassembly, and the runtime's
//! attachment); `ids.rs` the map of records by stream id.

mod commands;
mod ending;
mod ids;
mod input;
mod rules;
#[cfg(test)]
mod spec_tests;
mod stream;
#[cfg(test)]
mod tests;

use crate::config::Config;
pub use crate::config::{ClientSettings, ServerSettings};
use crate::frame::metadata::COMPOSITE_METADATA_MIME;
use crate::frame::{
    self, Cancel, DecodeError, ErrorCode, ErrorFrame, Frame, FrameType, HEADER_SIZE, Keepalive, MAX_U31, PayloadFrame,
    RequestChannel, RequestFrame, RequestN, RequestStream, Setup, VERSION,
};
use bytes::{Buf, Bytes, BytesMut};
use ending::{end_record, live, live_ref};
use frame::direct::RequestHead;
use ids::IdMap;
pub(crate) use input::Receiving;
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
    /// Server: what it holds the client's SETUP to (the client's: the defaults, unused).
    server_settings: ServerSettings,
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
    /// The peer sent ERROR\[CONNECTION_CLOSE\] (see [`Connection::peer_closed_gracefully`]).
    peer_closing: bool,
    /// Over the unread limit: when a stream is shed unless a reader makes progress first.
    unread_deadline: Option<Instant>,
    /// A reader reported progress since `unread_deadline` was set.
    unread_progress: bool,
    /// When the oldest unfinished fragmented message may have run out of time (at or after
    /// its real deadline: one that finished early leaves it, and firing early finds nothing).
    reassembly_deadline: Option<Instant>,
}

impl Connection {
    /// The client side, announcing `settings` in SETUP. SETUP is queued at once, so requests
    /// may follow it immediately.
    pub fn client(config: Config, settings: ClientSettings, now: Instant) -> Connection {
        let mut conn = Connection::new(Side::Client, config, ServerSettings::default(), now);
        conn.keepalive_interval = settings.keepalive_interval;
        conn.max_lifetime = settings.max_lifetime;
        let setup = Setup {
            version: VERSION,
            keepalive_interval: millis(settings.keepalive_interval),
            max_lifetime: millis(settings.max_lifetime),
            resume_token: None,
            lease: false,
            metadata_mime: COMPOSITE_METADATA_MIME.to_owned(),
            data_mime: settings.data_mime,
            payload: frame::Payload { metadata: settings.setup_metadata, data: bytes::Bytes::new() },
        };
        conn.transmit.push_back(Frame::Setup(setup));
        conn.state = State::Open;
        conn.next_keepalive = Some(now + conn.keepalive_interval);
        conn
    }

    /// Client: the data MIME type its SETUP announces, while SETUP is queued (from creation
    /// until the runtime takes it to write).
    pub(crate) fn announced_data_mime(&self) -> Option<&str> {
        self.transmit.iter().find_map(|frame| match frame {
            Frame::Setup(setup) => Some(setup.data_mime.as_str()),
            _ => None,
        })
    }

    /// The server side, holding the client's SETUP to `settings`; it waits for SETUP.
    pub fn server(config: Config, settings: ServerSettings, now: Instant) -> Connection {
        let setup_deadline = Some(now + settings.setup_timeout);
        let mut conn = Connection::new(Side::Server, config, settings, now);
        conn.setup_deadline = setup_deadline;
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
            server_settings: self.server_settings,
            last_received: self.last_received,
            next_keepalive: self.next_keepalive,
            setup_deadline: self.setup_deadline,
            deadline_epoch: self.deadline_epoch,
            peer_confirmed: self.peer_confirmed,
            drain_reason: self.drain_reason,
            peer_closing: self.peer_closing,
            unread_deadline: self.unread_deadline,
            unread_progress: self.unread_progress,
            reassembly_deadline: self.reassembly_deadline,
        }
    }

    fn new(side: Side, config: Config, server_settings: ServerSettings, now: Instant) -> Connection {
        // The keepalive timing is the client's: set from its settings (client) or its SETUP
        // (server); until then, the defaults.
        let defaults = ClientSettings::default();
        Connection {
            side,
            keepalive_interval: defaults.keepalive_interval,
            max_lifetime: defaults.max_lifetime,
            server_settings,
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
            peer_closing: false,
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

    /// Whether the connection is draining: it refuses new streams and closes once the open
    /// ones end (either side closed it gracefully).
    pub fn is_draining(&self) -> bool {
        self.state == State::Draining
    }

    /// Whether the peer closed the connection gracefully: it sent ERROR\[CONNECTION_CLOSE\],
    /// after which it "MUST wait for outstanding streams to terminate before closing the
    /// connection" and refuses new ones. So when the transport then ends without an error,
    /// the streams this side opened that are still open never reached a handler: the peer
    /// would have waited for them, or REJECTED them.
    pub fn peer_closed_gracefully(&self) -> bool {
        self.peer_closing
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
