//! The checks behind the property test (`props.rs`) and the cargo-fuzz targets in
//! `framework/fuzz`. Each entry point takes arbitrary bytes, runs one part of the crate on them
//! and panics if that part panics or breaks one of its invariants:
//!
//! - [`frame_bytes`]: `Frame::decode`, the length-prefixed framing and the encoders;
//! - [`metadata_bytes`]: composite and routing metadata and MIME type names;
//! - [`connection_program`]: a `Connection` (server, client, or the two wired together) driven
//!   by a program read from the bytes.
//!
//! The fuzz targets include this very file (`#[path]`), so the fuzzers and the test that always
//! runs check the same things. It uses only `weft`, `bytes` and `std`.

// Each fuzz target calls one entry point; the rest is dead code in that binary.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};
use weft::Config;
use weft::conn::{ClientSettings, CloseReason, Connection, Event, Kind, ServerSettings, Side};
use weft::frame::length::{self, LengthDelimited};
use weft::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata, MimeType, RoutingMetadata, well_known};
use weft::frame::{
    Cancel, ErrorCode, ErrorFrame, Ext, Frame, HEADER_SIZE, Keepalive, Lease, MAX_FRAME_SIZE, MAX_U31, MetadataPush,
    Payload, PayloadFrame, Request, RequestChannel, RequestN, RequestStream, Resume, ResumeOk, Setup, VERSION, Version,
};

/// The fixture file, compiled in so that the fuzz targets (which run from anywhere) have it too.
const FIXTURES: &str = include_str!("../../fixtures/rsocket-frames.jsonl");

/// The `hex` column of every fixture record of `kind` ("frame" or "composite-metadata"),
/// decoded.
pub(crate) fn fixture_bytes(kind: &str) -> Vec<Vec<u8>> {
    fixture_records(kind).collect()
}

/// The fixture frames, parsed once: every connection program may feed them.
fn fixture_frames() -> &'static [Vec<u8>] {
    static FRAMES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| fixture_bytes("frame"))
}

/// The file's format is one flat JSON object per line whose hex value never needs escaping,
/// so finding the keys is enough; no JSON parser is needed.
fn fixture_records(kind: &str) -> impl Iterator<Item = Vec<u8>> {
    let kind_field = format!("\"kind\": \"{kind}\"");
    FIXTURES.lines().filter(move |line| line.contains(&kind_field)).filter_map(|line| {
        let start = line.find("\"hex\": \"")? + 8;
        let hex = &line[start..start + line[start..].find('"')?];
        (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect()
    })
}

// =============================================================================================
// Frames
// =============================================================================================

/// `Frame::decode` on `input` as one bare frame, then `input` as a length-prefixed byte stream
/// through [`LengthDelimited`] with several limits and read sizes.
pub(crate) fn frame_bytes(input: &[u8]) {
    check_frame(&Bytes::copy_from_slice(input));
    let chunk = 1 + usize::from(input.first().copied().unwrap_or(0) % 7);
    for (max, chunk) in [(MAX_FRAME_SIZE, usize::MAX), (MAX_FRAME_SIZE, chunk), (64, 3), (6, usize::MAX)] {
        framing(input, max, chunk);
    }
}

/// Decodes one bare frame and checks what is accepted (see [`check_decoded`]) and what is
/// refused (the error names the stream the header names).
fn check_frame(bytes: &Bytes) -> Option<Frame> {
    match Frame::decode(bytes.clone()) {
        Ok(frame) => {
            check_decoded(&frame, bytes);
            Some(frame)
        }
        Err(e) => {
            if let (Some(id), Some(head)) = (e.stream_id, bytes.get(..4)) {
                assert_eq!(id, u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & MAX_U31, "{e}");
            }
            let _ = (e.to_string(), e.is_ignorable());
            None
        }
    }
}

/// What holds for a frame decoded from `wire`: it re-encodes (bare and length-prefixed, and
/// through the writers that build frames without a `Frame`) to bytes that decode to the same
/// frame, and every byte field is a slice of `wire`: decoding copies nothing, so it cannot
/// allocate more than it was given, whatever the lengths declared.
fn check_decoded(frame: &Frame, wire: &Bytes) {
    round_trip(frame);
    for field in byte_fields(frame) {
        let inside = field.is_empty()
            || (wire.as_ptr() as usize <= field.as_ptr() as usize
                && field.as_ptr() as usize + field.len() <= wire.as_ptr() as usize + wire.len());
        assert!(inside, "a decoded field was copied rather than sliced: {frame:?}");
    }
}

/// Every `Bytes` a frame holds.
fn byte_fields(frame: &Frame) -> Vec<&Bytes> {
    fn payload(p: &Payload) -> Vec<&Bytes> {
        p.metadata.iter().chain([&p.data]).collect()
    }
    match frame {
        Frame::Setup(f) => f.resume_token.iter().chain(payload(&f.payload)).collect(),
        Frame::Lease(f) => f.metadata.iter().collect(),
        Frame::Keepalive(f) => vec![&f.data],
        Frame::RequestResponse(f) | Frame::RequestFnf(f) => payload(&f.payload),
        Frame::RequestStream(f) => payload(&f.payload),
        Frame::RequestChannel(f) => payload(&f.payload),
        Frame::Payload(f) => payload(&f.payload),
        Frame::Error(f) => vec![&f.data],
        Frame::MetadataPush(f) => vec![&f.metadata],
        Frame::Ext(f) => vec![&f.body],
        Frame::RequestN(_) | Frame::Cancel(_) | Frame::Resume(_) | Frame::ResumeOk(_) => Vec::new(),
    }
}

/// `decode(encode(frame)) == frame`, with `encoded_len` right, and the same through the length
/// prefix. (That the crate's direct writers write the same bytes is a unit test of
/// `frame::length`: they are not public.)
///
/// The reverse, `encode(decode(bytes)) == bytes`, is not an invariant: undefined flags and
/// bytes after a fixed-size frame's last field are ignored on receipt.
fn round_trip(frame: &Frame) {
    let mut bare = BytesMut::new();
    frame.encode(&mut bare);
    assert_eq!(bare.len(), frame.encoded_len(), "encoded_len of {frame:?}");
    assert_eq!(Frame::decode(bare.freeze()).as_ref(), Ok(frame), "bare round trip");

    let mut wire = BytesMut::new();
    length::encode_frame(frame, &mut wire);
    assert_eq!(wire.len(), length::encoded_len(frame));
    assert_eq!(LengthDelimited::new(MAX_FRAME_SIZE).decode_frame(&mut wire).as_ref(), Ok(&Some(frame.clone())));
    assert!(wire.is_empty(), "the prefix declared the frame's length");
}

/// `input` as a byte stream read `chunk` bytes at a time through a [`LengthDelimited`] of
/// `max`: `Ok(None)` and errors leave the buffer as it was, every frame taken is within the
/// limits, `decode_frame` is `decode` then `Frame::decode`, and `decode_all` takes exactly the
/// frames `decode` takes one by one.
fn framing(input: &[u8], max: usize, chunk: usize) {
    let framing = LengthDelimited::new(max);
    let mut src = BytesMut::new();
    let mut taken = Vec::new();
    let mut refused = None;
    // Each pass feeds at least one byte, and each frame taken consumes at least nine, so both
    // loops end within the input's length. Only lengths are compared on the way (decode only
    // ever takes bytes off the front), so that a long input read a byte at a time stays linear.
    'feed: for piece in input.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            let before = src.len();
            match framing.decode(&mut src) {
                Ok(Some(frame)) => {
                    assert!((HEADER_SIZE..=framing.max_frame_size()).contains(&frame.len()));
                    assert_eq!(before - src.len(), length::PREFIX_SIZE + frame.len(), "the prefix and the frame");
                    check_frame(&frame);
                    taken.push(frame);
                }
                Ok(None) => {
                    assert_eq!(src.len(), before, "an incomplete frame is left where it is");
                    break;
                }
                Err(e) => {
                    assert_eq!(src.len(), before, "an unacceptable prefix consumes nothing");
                    refused = Some(e);
                    break 'feed;
                }
            }
        }
    }
    // The same bytes at once: decode_frame is decode then Frame::decode, frame by frame, and
    // ends where decode ended (the refusal comes from the prefix alone, wherever reads split).
    let mut all = BytesMut::from(input);
    for frame in &taken {
        assert_eq!(framing.decode_frame(&mut all), Frame::decode(frame.clone()).map(Some), "decode_frame");
    }
    let end = framing.decode_frame(&mut all);
    assert_eq!(end, refused.clone().map_or(Ok(None), Err), "decode_frame stops where decode stopped");
    // decode_all takes the same frames, and stops before what decode stopped at.
    let mut all = BytesMut::from(input);
    let at_once: Vec<Bytes> = framing.decode_all(&mut all).collect();
    assert_eq!(at_once, taken, "decode_all takes the frames decode takes");
    assert_eq!(framing.decode(&mut all), refused.map_or(Ok(None), Err), "decode_all stops where decode stopped");
}

// =============================================================================================
// Metadata
// =============================================================================================

/// Composite metadata, routing metadata and MIME type names on `input`.
pub(crate) fn metadata_bytes(input: &[u8]) {
    let bytes = Bytes::copy_from_slice(input);
    if let Ok(m) = CompositeMetadata::decode(bytes.clone()) {
        // Composite metadata has one encoding: what decodes re-encodes to the same bytes.
        assert_eq!(m.encoded_len(), input.len());
        assert_eq!(m.to_bytes(), bytes, "composite metadata re-encodes as read");
        assert_eq!(CompositeMetadata::decode(m.to_bytes()).as_ref(), Ok(&m));
        for entry in &m.entries {
            let content = &entry.content;
            assert!(content.is_empty() || bytes.as_ptr_range().contains(&content.as_ptr()), "content was copied");
            let _ = (entry.mime.name(), entry.mime.well_known_id(), entry.mime.to_string(), entry.validate());
        }
        // `route` is `routing` without the allocation: the same answer, the same error.
        let routing = m.routing();
        match (m.route(), &routing) {
            (Ok(route), Ok(r)) => assert_eq!(route, r.as_ref().and_then(RoutingMetadata::route)),
            (Err(a), Err(b)) => assert_eq!(&a, b),
            (a, b) => panic!("route {a:?} and routing {b:?} disagree"),
        }
        let _ = m.find_well_known(well_known::ROUTING);
    }
    match RoutingMetadata::decode(input) {
        Ok(r) => {
            assert_eq!(&r.to_bytes()[..], input, "routing metadata re-encodes as read");
            assert_eq!(RoutingMetadata::decode_route(input), Ok(r.route()));
        }
        Err(e) => assert_eq!(RoutingMetadata::decode_route(input), Err(e)),
    }
    // MIME type names, from text and as a custom entry.
    if let Ok(name) = std::str::from_utf8(input) {
        if let Ok(mime) = MimeType::from_name(name) {
            assert!(mime.validate().is_ok(), "{mime:?}");
            let mut m = CompositeMetadata::default();
            m.push(mime.clone(), Bytes::new()).expect("a checked MIME type is writable");
            assert_eq!(CompositeMetadata::decode(m.to_bytes()).map(|d| d.entries.len()), Ok(1));
        }
        let _ = MimeType::custom(name).map(|mime| mime.validate());
        if let Some(id) = well_known::id(name) {
            assert!(well_known::name(id).is_some_and(|n| n.eq_ignore_ascii_case(name)));
        }
    }
    for id in input.iter().take(4) {
        let _ = well_known::name(*id);
    }
}

// =============================================================================================
// The connection
// =============================================================================================

/// Reads a program from fuzz input; past the end it reads zeros, so every input is a program.
struct Src<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Src<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> Bytes {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        Bytes::copy_from_slice(&self.data[start..end])
    }
}

/// The most steps one program runs: the fuzzers' inputs are bounded in size anyway, this
/// bounds the property test's.
const MAX_STEPS: usize = 400;

/// Milliseconds a timeout step moves the clock, around the deadlines of [`config`].
const TICKS: [u64; 8] = [0, 1, 99, 500, 1_000, 2_001, 10_000, 3_600_000];

/// The same for a pair: mostly within the keepalive interval, so that their streams get going.
const PAIR_TICKS: [u64; 8] = [0, 1, 10, 50, 100, 250, 499, 2_001];

/// A configuration from one byte: small limits, so that programs reach them. (The keepalive
/// and setup deadlines, each side's own, are set in [`Observed::new`].)
fn config(b: u8) -> Config {
    let mut c = Config::default();
    if b & 1 != 0 {
        c = c.fragment_size(Some(64));
    }
    if b & 2 != 0 {
        c = c.inbound_window(4);
    } else if b & 4 != 0 {
        c = c.inbound_window(2).inbound_window_growth(64, 4_096);
    }
    if b & 8 != 0 {
        c = c.max_concurrent_streams(2);
    }
    if b & 16 != 0 {
        c = c.max_message_size(1_024);
    }
    c
}

/// One connection under test and what has been seen of it.
struct Observed {
    conn: Connection,
    /// `Event::Closed` was seen.
    closed: bool,
    /// Client: frames it has sent (the first must be SETUP).
    sent: usize,
    /// Server: SETUP was accepted.
    accepted: bool,
    /// Stream ids this side opened, and ones the peer opened, for commands to name.
    local_ids: Vec<u32>,
    peer_ids: Vec<u32>,
    /// Every event seen, for the honest-pair checks.
    events: Vec<Event>,
    fragment_size: Option<usize>,
}

impl Observed {
    fn new(side: Side, cfg: u8, now: Instant) -> Observed {
        let config = config(cfg);
        let conn = match side {
            Side::Client => Connection::client(
                config,
                ClientSettings::default().keepalive(Duration::from_millis(500), Duration::from_millis(2_000)),
                now,
            ),
            Side::Server => {
                Connection::server(config, ServerSettings::default().setup_timeout(Duration::from_millis(1_000)), now)
            }
        };
        let fragment_size = (cfg & 1 != 0).then_some(64);
        Observed {
            conn,
            closed: false,
            sent: 0,
            accepted: false,
            local_ids: Vec::new(),
            peer_ids: Vec::new(),
            events: Vec::new(),
            fragment_size,
        }
    }

    /// Drains the connection's output after a step, checking it; frames go to `wire`
    /// (length-prefixed) when there is one. `budget` bounds the frames one step may produce,
    /// so that no input amplifies without bound.
    fn drain(&mut self, wire: Option<&mut BytesMut>, budget: usize) {
        let was_closed = self.closed;
        let side = self.conn.side();
        let mut out = BytesMut::new();
        let mut frames = 0;
        while let Some(frame) = self.conn.poll_transmit() {
            frames += 1;
            assert!(frames <= budget, "one step queued more than {budget} frames");
            assert!(!was_closed, "{side:?} sent {frame:?} after it closed");
            if side == Side::Client && self.sent == 0 {
                assert!(matches!(frame, Frame::Setup(_)), "a client starts with SETUP, not {frame:?}");
            }
            if side == Side::Server {
                assert!(!matches!(frame, Frame::Setup(_) | Frame::Resume(_)), "a server sent {frame:?}");
                if !self.accepted {
                    assert!(matches!(frame, Frame::Error(ErrorFrame { stream_id: 0, .. })), "before SETUP: {frame:?}");
                }
            }
            check_sent(side, &frame, self.fragment_size);
            self.sent += 1;
            length::encode_frame(&frame, &mut out);
        }
        let mut events = 0;
        while let Some(event) = self.conn.poll_event() {
            events += 1;
            assert!(events <= 8, "one step queued more than 8 events");
            assert!(!self.closed, "{side:?} emitted {event:?} after Event::Closed");
            match &event {
                Event::Closed(_) => self.closed = true,
                Event::SetupAccepted(_) => {
                    assert_eq!(side, Side::Server, "only a server accepts SETUP");
                    assert!(!self.accepted, "SETUP accepted twice");
                    self.accepted = true;
                }
                Event::Request { stream_id, .. } => {
                    assert!(*stream_id != 0 && is_peer_id(side, *stream_id), "{side:?} got {event:?}");
                    if self.peer_ids.len() < 64 {
                        self.peer_ids.push(*stream_id);
                    }
                }
                Event::Next { stream_id, .. }
                | Event::Complete { stream_id }
                | Event::Error { stream_id, .. }
                | Event::Cancelled { stream_id }
                | Event::StopSending { stream_id }
                | Event::RequestN { stream_id, .. } => assert_ne!(*stream_id, 0, "{event:?}"),
                Event::MetadataPush(_) => {}
            }
            if self.events.len() < 4_096 {
                self.events.push(event);
            }
        }
        assert_eq!(self.conn.is_closed(), self.closed, "is_closed agrees with Event::Closed");
        assert_eq!(self.conn.poll_timeout().is_none(), self.closed, "a deadline while open, none once closed");
        if self.closed {
            assert_eq!(self.conn.stream_count(), 0, "a closed connection keeps no streams");
        }
        if let Some(wire) = wire {
            wire.extend_from_slice(&out);
        }
    }

    /// A stream id for a command, mostly one that is live.
    fn pick_live(&self, src: &mut Src<'_>) -> u32 {
        let b = usize::from(src.u8());
        let known = self.local_ids.len() + self.peer_ids.len();
        if known == 0 || b % 8 == 7 {
            return self.pick_id(src);
        }
        // The newest first: older streams are more likely to be gone.
        let i = known - 1 - (b / 8) % known.min(4);
        if i < self.local_ids.len() { self.local_ids[i] } else { self.peer_ids[i - self.local_ids.len()] }
    }

    /// A stream id for a command or a frame: one this side or the peer opened, a fixed one,
    /// or any.
    fn pick_id(&self, src: &mut Src<'_>) -> u32 {
        let b = src.u8();
        let pick = |ids: &[u32]| ids.get(usize::from(b / 4) % ids.len().max(1)).copied();
        match b % 4 {
            0 => pick(&self.local_ids).unwrap_or(1),
            1 => pick(&self.peer_ids).unwrap_or(2),
            2 => u32::from(b / 4) % 8,
            _ => match b / 4 {
                0 => MAX_U31,
                1 => src.u32(),
                n => u32::from(n),
            },
        }
    }
}

fn is_peer_id(side: Side, id: u32) -> bool {
    (id % 2 == 1) == (side == Side::Server)
}

/// What holds for every frame a connection sends: it round-trips through the codec, requests
/// are on this side's ids, and with a fragment size set no request or PAYLOAD exceeds it.
fn check_sent(side: Side, frame: &Frame, fragment_size: Option<usize>) {
    round_trip(frame);
    let request = matches!(
        frame,
        Frame::RequestResponse(_) | Frame::RequestFnf(_) | Frame::RequestStream(_) | Frame::RequestChannel(_)
    );
    if request {
        assert!(!is_peer_id(side, frame.stream_id()), "{side:?} opened a stream on the peer's id: {frame:?}");
    }
    if let Some(limit) = fragment_size
        && (request || matches!(frame, Frame::Payload(_)))
    {
        assert!(frame.encoded_len() <= limit, "a {} byte frame with fragment size {limit}", frame.encoded_len());
    }
}

/// `len` bytes of data for a command: made up rather than read from the program, which would
/// spend the program's bytes on content.
fn filler(len: u8) -> Bytes {
    Bytes::from(vec![len; usize::from(len)])
}

/// A frame built from the program: any type, valid by construction, on a chosen stream.
fn built_frame(src: &mut Src<'_>, obs: &Observed) -> Frame {
    let kind = src.u8();
    let stream_id = obs.pick_id(src);
    let flags = src.u8();
    let (follows, complete, next, with_md) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let n = match flags >> 4 {
        0 => 0,
        1 => MAX_U31,
        k => u32::from(k),
    };
    let len = usize::from(src.u8() % 96);
    let data = src.bytes(len);
    let metadata = with_md.then(|| match flags >> 6 {
        0 => CompositeMetadata::with_route("svc.Echo/Unary").map(|m| m.to_bytes()).unwrap_or_default(),
        _ => data.slice(..data.len() / 2),
    });
    let payload = Payload { metadata, data: data.clone() };
    match kind % 16 {
        0 => Frame::Setup(setup_frame(flags)),
        1 => Frame::Lease(Lease { ttl: n, number_of_requests: n, metadata: payload.metadata }),
        2 => Frame::Keepalive(Keepalive { respond: follows, last_received_position: u64::from(n), data }),
        3 => Frame::RequestResponse(Request { stream_id, follows, payload }),
        4 => Frame::RequestFnf(Request { stream_id, follows, payload }),
        5 => Frame::RequestStream(RequestStream { stream_id, follows, initial_n: n, payload }),
        6 => Frame::RequestChannel(RequestChannel { stream_id, follows, complete, initial_n: n, payload }),
        7 => Frame::RequestN(RequestN { stream_id, n }),
        8 => Frame::Cancel(Cancel { stream_id }),
        9..=11 => Frame::Payload(PayloadFrame { stream_id, follows, complete, next, payload }),
        12 => {
            let codes = [0x201, 0x202, 0x203, 0x204, 0x101, 0x102, 0x001, 0x003, 0xFFFF_FFFF];
            let code = ErrorCode(codes[usize::from(flags) % codes.len()]);
            Frame::Error(ErrorFrame { stream_id: if complete { 0 } else { stream_id }, code, data })
        }
        13 => Frame::MetadataPush(MetadataPush { metadata: data }),
        14 => Frame::Ext(Ext { stream_id, ignore: follows, metadata: complete, extended_type: n, body: data }),
        _ if next => Frame::Resume(Resume {
            version: VERSION,
            token: data,
            last_received_server_position: 0,
            first_available_client_position: 0,
        }),
        _ => Frame::ResumeOk(ResumeOk { last_received_client_position: u64::from(n) }),
    }
}

/// A SETUP, mostly acceptable; `variant` picks the ways it may be refused.
fn setup_frame(variant: u8) -> Setup {
    Setup {
        version: if variant & 0x30 == 0x30 { Version { major: 2, minor: 0 } } else { VERSION },
        keepalive_interval: if variant & 0x70 == 0x40 { 0 } else { 500 },
        max_lifetime: 2_000,
        resume_token: (variant & 0xF0 == 0x50).then(|| Bytes::from_static(b"token")),
        lease: variant & 0xF0 == 0x60,
        metadata_mime: if variant & 0xF0 == 0x70 { "application/json".into() } else { COMPOSITE_METADATA_MIME.into() },
        data_mime: "application/octet-stream".into(),
        payload: Payload::default(),
    }
}

/// Feeds one frame's bytes to a connection: through [`Connection::handle_bytes`], the way in
/// a runtime uses, when `via_bytes`; otherwise decoded first (or its decode error) and handed
/// to `handle_frame`. A message `handle_bytes` hands over directly stands for the event it
/// would otherwise have queued.
fn feed_bytes(obs: &mut Observed, bytes: Bytes, now: Instant, via_bytes: bool) {
    if !via_bytes {
        match Frame::decode(bytes) {
            Ok(frame) => obs.conn.handle_frame(frame, now),
            Err(e) => obs.conn.handle_decode_error(&e, now),
        }
        return;
    }
    let was_open = !obs.conn.is_closed();
    if let Some(message) = obs.conn.handle_bytes(bytes, now) {
        assert!(was_open, "a closed connection handed a message over");
        assert_ne!(message.stream_id, 0);
        if message.last {
            assert!(!obs.conn.contains(message.stream_id), "the last message's stream is forgotten");
        }
        let Observed { events, .. } = obs;
        if events.len() < 4_096 {
            events.push(Event::Next { stream_id: message.stream_id, metadata: message.metadata, data: message.data });
        }
    }
}

/// Runs a connection program: byte 0 picks the mode (server alone, client alone, or the two
/// wired together) and the configuration; the rest are steps. See [`run_single`] and
/// [`run_pair`].
pub(crate) fn connection_program(input: &[u8]) {
    let mut src = Src { data: input, pos: 0 };
    let head = src.u8();
    match head % 3 {
        0 => run_single(Side::Server, head / 3, &mut src),
        1 => run_single(Side::Client, head / 3, &mut src),
        _ => run_pair(head / 3, &mut src),
    }
}

/// One connection, its peer played by the program: frames as bytes (bare or length-prefixed),
/// frames built field by field, fixture frames, and every command, with the clock moved by
/// timeout steps.
fn run_single(side: Side, cfg: u8, src: &mut Src<'_>) {
    let start = Instant::now();
    let mut now = start;
    let mut obs = Observed::new(side, cfg, now);
    let fixtures = fixture_frames();
    obs.drain(None, 4);
    for _ in 0..MAX_STEPS {
        if src.done() {
            break;
        }
        let op = src.u8();
        let mut budget = 8;
        match op % 16 {
            // A bare frame's bytes.
            0 => {
                let len = usize::from(src.u8());
                let bytes = src.bytes(len);
                feed_bytes(&mut obs, bytes, now, op & 0x80 != 0);
            }
            // A length-prefixed byte stream, split as the driver splits it, draining after
            // every frame.
            1 => {
                let len = usize::from(src.u16() % 2_048);
                let mut buf = BytesMut::from(&src.bytes(len)[..]);
                let framing = LengthDelimited::new(if op & 0x80 != 0 { 64 } else { MAX_FRAME_SIZE });
                for bytes in framing.decode_all(&mut buf) {
                    feed_bytes(&mut obs, bytes, now, op & 0x40 != 0);
                    obs.drain(None, budget);
                }
                if let Err(e) = framing.decode(&mut buf) {
                    obs.conn.handle_decode_error(&e, now);
                }
            }
            // A frame built field by field, then encoded and decoded as it would arrive: the
            // connection trusts `Frame`s to be what the decoder produces (no request on stream
            // 0, say), so a hand-built one is no test of what the network can do.
            2 | 3 => {
                let mut wire = BytesMut::new();
                built_frame(src, &obs).encode(&mut wire);
                feed_bytes(&mut obs, wire.freeze(), now, op & 0x80 != 0);
            }
            // A fixture frame, on a chosen stream when it names one.
            4 => {
                let mut bytes = fixtures[usize::from(src.u8()) % fixtures.len()].clone();
                let id = obs.pick_id(src);
                if op & 0x80 != 0 && bytes.len() >= 4 && bytes[..4] != [0; 4] {
                    bytes[..4].copy_from_slice(&id.to_be_bytes());
                }
                feed_bytes(&mut obs, bytes.into(), now, op & 0x40 != 0);
            }
            5 => obs.conn.handle_frame(Frame::Setup(setup_frame(src.u8())), now),
            6 => {
                let kind = [Kind::RequestResponse, Kind::FireAndForget, Kind::RequestStream, Kind::Channel]
                    [usize::from(op >> 6)];
                let data = filler(src.u8() % 200 + 1);
                budget += data.len() / 16;
                let metadata =
                    CompositeMetadata::with_route("svc.Echo/Unary").map(|m| m.to_bytes()).unwrap_or_default();
                if let Ok(id) = obs.conn.open(kind, metadata, data, op & 0x20 != 0) {
                    assert!(!is_peer_id(side, id), "opened a stream on the peer's id");
                    if obs.local_ids.len() < 64 {
                        obs.local_ids.push(id);
                    }
                }
            }
            7 => {
                let id = obs.pick_id(src);
                let data = filler(src.u8() % 200);
                budget += data.len() / 16;
                let metadata = if op & 0x40 != 0 { Bytes::from_static(b"md") } else { Bytes::new() };
                let _ = obs.conn.send_next(id, metadata, data, op & 0x80 != 0);
            }
            8 => {
                let id = obs.pick_id(src);
                let _ = obs.conn.send_complete(id);
            }
            9 => {
                let id = obs.pick_id(src);
                let code = if op & 0x80 != 0 { ErrorCode::APPLICATION_ERROR } else { ErrorCode(src.u32()) };
                let _ = obs.conn.send_error(id, code, "handler failed");
            }
            10 => {
                let id = obs.pick_id(src);
                obs.conn.cancel(id);
            }
            11 => {
                let id = obs.pick_id(src);
                let n = if op & 0x80 != 0 { u32::MAX } else { u32::from(src.u8()) };
                obs.conn.consumed(id, n, u64::from(src.u16()));
                let _ = obs.conn.credit_batch(id);
            }
            12 if op & 0x60 == 0 => obs.conn.close(op & 0x80 != 0),
            12 => obs.conn.handle_timeout(now),
            13 => {
                now += Duration::from_millis(TICKS[usize::from(op >> 5) % TICKS.len()]);
                if obs.conn.poll_timeout().is_some_and(|t| t <= now) || op & 0x10 != 0 {
                    obs.conn.handle_timeout(now);
                }
            }
            // A run of one stream's whole messages, the short way in's usual input.
            14 => {
                let id = obs.pick_id(src);
                let data = filler(src.u8());
                for _ in 0..=(op >> 5) % 4 {
                    let frame = Frame::Payload(PayloadFrame {
                        stream_id: id,
                        follows: false,
                        complete: op & 0x10 != 0,
                        next: true,
                        payload: Payload::data(data.clone()),
                    });
                    let mut bytes = BytesMut::new();
                    frame.encode(&mut bytes);
                    feed_bytes(&mut obs, bytes.freeze(), now, true);
                }
            }
            _ => {
                if op == 0xFF {
                    obs.conn.handle_transport_closed();
                }
            }
        }
        obs.drain(None, budget);
    }
    // However the program ended, a closed transport ends the connection.
    obs.conn.handle_transport_closed();
    obs.drain(None, 4);
    assert!(obs.closed, "the connection closed when its transport did");
}

/// A client and a server wired together: commands on either side, frames delivered through
/// length-prefixed wires a few at a time, the clock moved for both. Unless the program
/// tampered with a wire, the two are honest peers, so neither may blame the other: no
/// `CloseReason::ProtocolError` (but a server's SETUP timeout) and no stream failed INVALID.
fn run_pair(cfg: u8, src: &mut Src<'_>) {
    let start = Instant::now();
    let mut now = start;
    let mut sides = [Observed::new(Side::Client, cfg, now), Observed::new(Side::Server, cfg, now)];
    // wires[i]: bytes sides[i] has sent that the other has not read yet.
    let mut wires = [BytesMut::new(), BytesMut::new()];
    let mut tampered = false;
    let via_bytes = cfg & 0x20 != 0;
    for (obs, wire) in sides.iter_mut().zip(wires.iter_mut()) {
        obs.drain(Some(wire), 4);
    }
    for _ in 0..MAX_STEPS {
        if src.done() {
            break;
        }
        let op = src.u8();
        let me = usize::from(op >> 7);
        let [client, server] = &mut sides;
        let (actor, other) = if me == 0 { (client, server) } else { (server, client) };
        let mut budget = 8;
        // Ops are weighted towards traffic: closing and tampering are rare, so that most
        // programs get streams going before the connection ends.
        match op & 0x0F {
            0..=4 => {
                // Deliver up to `count` frames from the actor to the other side.
                let count = 1 + usize::from(op >> 4 & 7);
                let framing = LengthDelimited::new(MAX_FRAME_SIZE);
                for _ in 0..count {
                    match framing.decode(&mut wires[me]) {
                        Ok(Some(bytes)) => feed_bytes(other, bytes, now, via_bytes),
                        Ok(None) => break,
                        Err(e) => {
                            other.conn.handle_decode_error(&e, now);
                            wires[me].clear();
                        }
                    }
                    other.drain(Some(&mut wires[1 - me]), budget);
                }
                // A side that closed and whose last frames were read has closed its transport.
                if actor.closed && wires[me].is_empty() {
                    other.conn.handle_transport_closed();
                    other.drain(Some(&mut wires[1 - me]), budget);
                }
                continue;
            }
            5 | 6 => {
                let kind = [Kind::RequestResponse, Kind::FireAndForget, Kind::RequestStream, Kind::Channel]
                    [usize::from(op >> 4 & 3)];
                let data = filler(src.u8() % 160);
                budget += data.len() / 16;
                let metadata =
                    CompositeMetadata::with_route("svc.Echo/Unary").map(|m| m.to_bytes()).unwrap_or_default();
                if let Ok(id) = actor.conn.open(kind, metadata, data, op & 0x40 != 0)
                    && actor.local_ids.len() < 64
                {
                    actor.local_ids.push(id);
                }
            }
            7..=9 => {
                let id = actor.pick_live(src);
                let data = filler(src.u8() % 160);
                budget += data.len() / 16;
                let metadata = if op & 0x10 != 0 { Bytes::from_static(b"md") } else { Bytes::new() };
                let _ = actor.conn.send_next(id, metadata, data, op & 0x40 != 0);
            }
            10 => {
                let id = actor.pick_live(src);
                let _ = actor.conn.send_complete(id);
            }
            11 => {
                let id = actor.pick_live(src);
                let n = if op & 0x40 != 0 { actor.conn.credit_batch(id) } else { u32::from(src.u8() % 8) };
                actor.conn.consumed(id, n, u64::from(n) * 160);
            }
            12 => {
                let id = actor.pick_live(src);
                if op & 0x10 != 0 {
                    let _ = actor.conn.send_error(id, ErrorCode::APPLICATION_ERROR, "handler failed");
                } else {
                    actor.conn.cancel(id);
                }
            }
            13 => {
                now += Duration::from_millis(PAIR_TICKS[usize::from(op >> 4 & 7)]);
                for obs in [&mut *actor, &mut *other] {
                    if obs.conn.poll_timeout().is_some_and(|t| t <= now) {
                        obs.conn.handle_timeout(now);
                    }
                }
                other.drain(Some(&mut wires[1 - me]), budget);
            }
            14 if op & 0x70 == 0x70 => {
                // Tamper: flip a bit of what is on the actor's wire.
                let at = usize::from(src.u16());
                if !wires[me].is_empty() {
                    let len = wires[me].len();
                    wires[me][at % len] ^= 1 << (at >> 13);
                    tampered = true;
                }
            }
            15 if op & 0x30 == 0 => actor.conn.close(op & 0x40 != 0),
            _ => {
                let id = actor.pick_live(src);
                let n = actor.conn.credit_batch(id);
                actor.conn.consumed(id, n, u64::from(n) * 160);
            }
        }
        actor.drain(Some(&mut wires[me]), budget);
    }
    if !tampered {
        for obs in &sides {
            honest(obs);
        }
    }
}

/// Between two Weft connections nothing is the peer's fault.
fn honest(obs: &Observed) {
    for event in &obs.events {
        match event {
            Event::Closed(CloseReason::ProtocolError { code, message }) => {
                // The server times out a client whose SETUP is still on the wire.
                let setup_timeout =
                    obs.conn.side() == Side::Server && !obs.accepted && *code == ErrorCode::INVALID_SETUP;
                assert!(setup_timeout, "{:?} blamed an honest peer: {code:?} {message}", obs.conn.side());
            }
            Event::Error { stream_id, code, message } if *code == ErrorCode::INVALID => {
                panic!("{:?} failed stream {stream_id} of an honest peer: {message}", obs.conn.side())
            }
            _ => {}
        }
    }
}
