//! Encoding and decoding of frame bodies (Protocol.md, "Framing" and one section per frame type).
//!
//! The file reads top to bottom: the frame header and the field helpers every frame shares, then
//! one section per frame type with its layout, encoder, size and decoder side by side, then the
//! dispatch over [`Frame`].
//!
//! Rules that hold for every frame type, with the spec clause they come from:
//! - The top bit of the stream id is reserved: written 0, ignored on receipt ("Frame Header
//!   Format": `|0| Stream ID`). Likewise the reserved top bit of every 31- and 63-bit field.
//! - Flags a frame type does not define are written 0 and ignored on receipt ("Flags: Any Flag bit
//!   not specifically indicated in the frame type should be set to 0 when sent and not interpreted
//!   on reception"). That includes (I)gnore on the frame types we know: we understand them, so
//!   the flag has nothing to say. EXT keeps it, because it is about the extended type.
//! - Connection frames (SETUP, LEASE, KEEPALIVE, METADATA_PUSH, RESUME, RESUME_OK) "MUST always use
//!   Stream ID 0"; stream frames (requests, REQUEST_N, CANCEL, PAYLOAD) need a stream because "Stream
//!   ID of value 0 is reserved for any operation involving the connection". ERROR and EXT may use
//!   either.
//! - Decoding is structural only. Values the spec forbids but that do not stop us from reading
//!   the frame (request N of 0, a PAYLOAD with neither N nor C, an unknown version) are returned
//!   as read: the connection decides what they mean, and the codec must round-trip what real
//!   peers send.
//! - Bytes after the last field of a fixed-size frame (REQUEST_N, CANCEL, RESUME, RESUME_OK, and
//!   LEASE without metadata) are ignored rather than rejected: they cannot be mistaken for
//!   anything, and a later minor version may append fields (Protocol.md, "Cross version
//!   compatibility").
//! - Nothing is allocated or reserved from a declared length: every length is checked against
//!   the bytes actually present, and metadata and data are `Bytes` slices of the input.

use super::flags::{COMPLETE, FOLLOWS, IGNORE, LEASE, METADATA, NEXT, RESPOND, RESUME_ENABLE};
use super::{
    Cancel, DecodeError, DecodeErrorKind, ErrorCode, ErrorFrame, Ext, Frame, FrameType, HEADER_SIZE, Keepalive, Lease,
    MAX_U31, MetadataPush, Payload, PayloadFrame, Request, RequestChannel, RequestN, RequestStream, Resume, ResumeOk,
    Setup, Version,
};
use bytes::{Buf, BufMut, Bytes};
use std::fmt;

/// Largest value of a 24-bit length field (metadata length).
const MAX_U24: usize = 0xFF_FFFF;
/// Largest value of a 63-bit position field.
const MAX_U63: u64 = u64::MAX >> 1;
/// Largest value of a 1-byte length field (SETUP MIME types).
const MAX_U8_LEN: usize = u8::MAX as usize;
/// Largest value of a 2-byte length field (resume token).
const MAX_U16_LEN: usize = u16::MAX as usize;
/// The 10 flag bits of the type-and-flags word.
const FLAGS_MASK: u16 = 0x3FF;

impl FrameType {
    /// The frame type with this 6-bit code, `None` for reserved and unassigned codes.
    pub fn from_code(code: u8) -> Option<FrameType> {
        Some(match code {
            0x01 => FrameType::Setup,
            0x02 => FrameType::Lease,
            0x03 => FrameType::Keepalive,
            0x04 => FrameType::RequestResponse,
            0x05 => FrameType::RequestFnf,
            0x06 => FrameType::RequestStream,
            0x07 => FrameType::RequestChannel,
            0x08 => FrameType::RequestN,
            0x09 => FrameType::Cancel,
            0x0A => FrameType::Payload,
            0x0B => FrameType::Error,
            0x0C => FrameType::MetadataPush,
            0x0D => FrameType::Resume,
            0x0E => FrameType::ResumeOk,
            0x3F => FrameType::Ext,
            _ => return None,
        })
    }

    /// The 6-bit code written on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether a frame of this type opens a stream: REQUEST_RESPONSE, REQUEST_FNF,
    /// REQUEST_STREAM or REQUEST_CHANNEL.
    pub(crate) fn is_request(self) -> bool {
        matches!(
            self,
            FrameType::RequestResponse | FrameType::RequestFnf | FrameType::RequestStream | FrameType::RequestChannel
        )
    }

    /// The spec's name for this type, e.g. `"REQUEST_STREAM"`.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Setup => "SETUP",
            FrameType::Lease => "LEASE",
            FrameType::Keepalive => "KEEPALIVE",
            FrameType::RequestResponse => "REQUEST_RESPONSE",
            FrameType::RequestFnf => "REQUEST_FNF",
            FrameType::RequestStream => "REQUEST_STREAM",
            FrameType::RequestChannel => "REQUEST_CHANNEL",
            FrameType::RequestN => "REQUEST_N",
            FrameType::Cancel => "CANCEL",
            FrameType::Payload => "PAYLOAD",
            FrameType::Error => "ERROR",
            FrameType::MetadataPush => "METADATA_PUSH",
            FrameType::Resume => "RESUME",
            FrameType::ResumeOk => "RESUME_OK",
            FrameType::Ext => "EXT",
        }
    }

    /// Which stream ids the spec allows for this type.
    fn stream_rule(self) -> StreamRule {
        match self {
            FrameType::Setup
            | FrameType::Lease
            | FrameType::Keepalive
            | FrameType::MetadataPush
            | FrameType::Resume
            | FrameType::ResumeOk => StreamRule::Zero,
            FrameType::RequestResponse
            | FrameType::RequestFnf
            | FrameType::RequestStream
            | FrameType::RequestChannel
            | FrameType::RequestN
            | FrameType::Cancel
            | FrameType::Payload => StreamRule::NonZero,
            // ERROR: "A Stream ID of 0 means the error pertains to the connection". EXT: the
            // extended type decides.
            FrameType::Error | FrameType::Ext => StreamRule::Any,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy)]
enum StreamRule {
    Zero,
    NonZero,
    Any,
}

// ---------------------------------------------------------------------------------------------
// Shared pieces: header, clamping, payload, reader
// ---------------------------------------------------------------------------------------------

/// Writes the 6-byte header: `|0| stream id (31)`, `type (6) | flags (10)`.
fn put_header<B: BufMut>(buf: &mut B, stream_id: u32, frame_type: FrameType, flags: u16) {
    buf.put_u32(stream_id & MAX_U31);
    buf.put_u16((u16::from(frame_type.code()) << 10) | (flags & FLAGS_MASK));
}

fn put_u24<B: BufMut>(buf: &mut B, n: usize) {
    // Callers clamp first; the mask only keeps the three low bytes.
    let n = (n & MAX_U24) as u32;
    buf.put_slice(&n.to_be_bytes()[1..]);
}

/// The part of `bytes` a length field of at most `max` can describe. `Frame::encode` documents
/// that over-long fields are cut to the field's width instead of panicking; cutting (rather than
/// masking the length alone) keeps the frame self-consistent, so the peer can still parse it.
fn clamp(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

fn flag(on: bool, bit: u16) -> u16 {
    if on { bit } else { 0 }
}

/// Metadata (behind a 24-bit length, when present) then data: the layout of every frame that
/// carries both ("Metadata Optional Header").
fn put_payload<B: BufMut>(buf: &mut B, payload: &Payload) {
    if let Some(metadata) = &payload.metadata {
        let metadata = clamp(metadata, MAX_U24);
        put_u24(buf, metadata.len());
        buf.put_slice(metadata);
    }
    buf.put_slice(&payload.data);
}

fn payload_len(payload: &Payload) -> usize {
    payload.metadata.as_ref().map_or(0, |m| 3 + m.len().min(MAX_U24)) + payload.data.len()
}

fn metadata_flag(payload: &Payload) -> u16 {
    flag(payload.metadata.is_some(), METADATA)
}

/// Reads the fields of one frame body, turning every shortfall into an error that names the
/// frame type, the stream and the field.
struct Reader {
    buf: Bytes,
    frame_type: FrameType,
    stream_id: u32,
    /// The frame's (I)gnore flag, for its errors: see [`DecodeError::ignore`].
    ignore: bool,
}

impl Reader {
    fn new(buf: Bytes, frame_type: FrameType, stream_id: u32, flags: u16) -> Reader {
        Reader { buf, frame_type, stream_id, ignore: flags & IGNORE != 0 }
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { frame_type: Some(self.frame_type), stream_id: Some(self.stream_id), kind, ignore: self.ignore }
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.len() < n { Err(self.error(DecodeErrorKind::Truncated { field })) } else { Ok(()) }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    fn u24(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        self.need(3, field)?;
        Ok(self.buf.get_uint(3) as usize)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    /// A 31-bit field behind a reserved bit, which is ignored on receipt.
    fn u31(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(self.u32(field)? & MAX_U31)
    }

    /// A 63-bit position behind a reserved bit, which is ignored on receipt.
    fn u63(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64() & MAX_U63)
    }

    /// The next `len` bytes, as declared by `length_field`, without copying.
    fn take(&mut self, len: usize, length_field: &'static str) -> Result<Bytes, DecodeError> {
        let available = self.buf.len();
        if len > available {
            return Err(self.error(DecodeErrorKind::LengthOverrun { field: length_field, declared: len, available }));
        }
        Ok(self.buf.split_to(len))
    }

    /// A MIME type behind a 1-byte length. The spec says it "SHOULD be a US-ASCII string" and
    /// that "the protocol implementation MUST NOT interpret the MIME type itself": so a string
    /// that is not ASCII is no reason to refuse the frame; whether the type is acceptable is
    /// for the layer above to decide. Each byte that is not UTF-8 is read as `?`: the string
    /// keeps its length, so the frame re-encodes to one that decodes to the same value.
    fn mime(&mut self, length_field: &'static str) -> Result<String, DecodeError> {
        let len = self.u8(length_field)?;
        let bytes = self.take(usize::from(len), length_field)?;
        let mut mime = String::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            mime.push_str(chunk.valid());
            mime.extend(std::iter::repeat_n('?', chunk.invalid().len()));
        }
        Ok(mime)
    }

    /// Everything left in the frame.
    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Metadata behind a 24-bit length when (M) is set, then the rest as data.
    fn payload(&mut self, has_metadata: bool) -> Result<Payload, DecodeError> {
        let metadata = if has_metadata {
            let len = self.u24("metadata length")?;
            Some(self.take(len, "metadata length")?)
        } else {
            None
        };
        Ok(Payload { metadata, data: self.rest() })
    }
}

// ---------------------------------------------------------------------------------------------
// SETUP (0x01), stream 0. Flags: M, R (resume token present), L.
//   u16 major | u16 minor | 0 + u31 keepalive | 0 + u31 max lifetime
//   [u16 token length | token]            only when R
//   u8 length | metadata MIME (ASCII) | u8 length | data MIME (ASCII)
//   [u24 metadata length | metadata]      only when M
//   data
// ---------------------------------------------------------------------------------------------

fn encode_setup<B: BufMut>(f: &Setup, buf: &mut B) {
    let flags = metadata_flag(&f.payload) | flag(f.resume_token.is_some(), RESUME_ENABLE) | flag(f.lease, LEASE);
    put_header(buf, 0, FrameType::Setup, flags);
    buf.put_u16(f.version.major);
    buf.put_u16(f.version.minor);
    buf.put_u32(f.keepalive_interval & MAX_U31);
    buf.put_u32(f.max_lifetime & MAX_U31);
    if let Some(token) = &f.resume_token {
        let token = clamp(token, MAX_U16_LEN);
        buf.put_u16(token.len() as u16);
        buf.put_slice(token);
    }
    for mime in [&f.metadata_mime, &f.data_mime] {
        let mime = clamp(mime.as_bytes(), MAX_U8_LEN);
        buf.put_u8(mime.len() as u8);
        buf.put_slice(mime);
    }
    put_payload(buf, &f.payload);
}

fn setup_len(f: &Setup) -> usize {
    2 + 2
        + 4
        + 4
        + f.resume_token.as_ref().map_or(0, |t| 2 + t.len().min(MAX_U16_LEN))
        + 1
        + f.metadata_mime.len().min(MAX_U8_LEN)
        + 1
        + f.data_mime.len().min(MAX_U8_LEN)
        + payload_len(&f.payload)
}

fn decode_setup(r: &mut Reader, flags: u16) -> Result<Setup, DecodeError> {
    let major = r.u16("major version")?;
    let minor = r.u16("minor version")?;
    let keepalive_interval = r.u31("time between keepalive frames")?;
    let max_lifetime = r.u31("max lifetime")?;
    let resume_token = if flags & RESUME_ENABLE != 0 {
        let len = r.u16("resume token length")?;
        Some(r.take(usize::from(len), "resume token length")?)
    } else {
        None
    };
    let metadata_mime = r.mime("metadata mime type length")?;
    let data_mime = r.mime("data mime type length")?;
    let payload = r.payload(flags & METADATA != 0)?;
    Ok(Setup {
        version: Version { major, minor },
        keepalive_interval,
        max_lifetime,
        resume_token,
        lease: flags & LEASE != 0,
        metadata_mime,
        data_mime,
        payload,
    })
}

// ---------------------------------------------------------------------------------------------
// LEASE (0x02), stream 0. Flags: M.
//   0 + u31 time-to-live | 0 + u31 number of requests | metadata (no length prefix, when M)
// "This frame only supports Metadata, so the Metadata Length header MUST NOT be included."
// ---------------------------------------------------------------------------------------------

fn encode_lease<B: BufMut>(f: &Lease, buf: &mut B) {
    put_header(buf, 0, FrameType::Lease, flag(f.metadata.is_some(), METADATA));
    buf.put_u32(f.ttl & MAX_U31);
    buf.put_u32(f.number_of_requests & MAX_U31);
    if let Some(metadata) = &f.metadata {
        buf.put_slice(metadata);
    }
}

fn lease_len(f: &Lease) -> usize {
    4 + 4 + f.metadata.as_ref().map_or(0, Bytes::len)
}

fn decode_lease(r: &mut Reader, flags: u16) -> Result<Lease, DecodeError> {
    let ttl = r.u31("time-to-live")?;
    let number_of_requests = r.u31("number of requests")?;
    let metadata = (flags & METADATA != 0).then(|| r.rest());
    Ok(Lease { ttl, number_of_requests, metadata })
}

// ---------------------------------------------------------------------------------------------
// KEEPALIVE (0x03), stream 0. Flags: R (respond).
//   0 + u63 last received position | data
// ---------------------------------------------------------------------------------------------

fn encode_keepalive<B: BufMut>(f: &Keepalive, buf: &mut B) {
    put_header(buf, 0, FrameType::Keepalive, flag(f.respond, RESPOND));
    buf.put_u64(f.last_received_position & MAX_U63);
    buf.put_slice(&f.data);
}

fn keepalive_len(f: &Keepalive) -> usize {
    8 + f.data.len()
}

fn decode_keepalive(r: &mut Reader, flags: u16) -> Result<Keepalive, DecodeError> {
    let last_received_position = r.u63("last received position")?;
    Ok(Keepalive { respond: flags & RESPOND != 0, last_received_position, data: r.rest() })
}

// ---------------------------------------------------------------------------------------------
// REQUEST_RESPONSE (0x04) and REQUEST_FNF (0x05). Flags: M, F.
//   [u24 metadata length | metadata] | data
// ---------------------------------------------------------------------------------------------

fn encode_request<B: BufMut>(f: &Request, frame_type: FrameType, buf: &mut B) {
    put_header(buf, f.stream_id, frame_type, metadata_flag(&f.payload) | flag(f.follows, FOLLOWS));
    put_payload(buf, &f.payload);
}

fn decode_request(r: &mut Reader, flags: u16) -> Result<Request, DecodeError> {
    let payload = r.payload(flags & METADATA != 0)?;
    Ok(Request { stream_id: r.stream_id, follows: flags & FOLLOWS != 0, payload })
}

// ---------------------------------------------------------------------------------------------
// REQUEST_STREAM (0x06). Flags: M, F.
//   0 + u31 initial request n | [u24 metadata length | metadata] | data
// ---------------------------------------------------------------------------------------------

fn encode_request_stream<B: BufMut>(f: &RequestStream, buf: &mut B) {
    put_header(buf, f.stream_id, FrameType::RequestStream, metadata_flag(&f.payload) | flag(f.follows, FOLLOWS));
    buf.put_u32(f.initial_n & MAX_U31);
    put_payload(buf, &f.payload);
}

fn decode_request_stream(r: &mut Reader, flags: u16) -> Result<RequestStream, DecodeError> {
    let initial_n = r.u31("initial request n")?;
    let payload = r.payload(flags & METADATA != 0)?;
    Ok(RequestStream { stream_id: r.stream_id, follows: flags & FOLLOWS != 0, initial_n, payload })
}

// ---------------------------------------------------------------------------------------------
// REQUEST_CHANNEL (0x07). Flags: M, F, C.
//   0 + u31 initial request n | [u24 metadata length | metadata] | data
// ---------------------------------------------------------------------------------------------

fn encode_request_channel<B: BufMut>(f: &RequestChannel, buf: &mut B) {
    let flags = metadata_flag(&f.payload) | flag(f.follows, FOLLOWS) | flag(f.complete, COMPLETE);
    put_header(buf, f.stream_id, FrameType::RequestChannel, flags);
    buf.put_u32(f.initial_n & MAX_U31);
    put_payload(buf, &f.payload);
}

fn decode_request_channel(r: &mut Reader, flags: u16) -> Result<RequestChannel, DecodeError> {
    let initial_n = r.u31("initial request n")?;
    let payload = r.payload(flags & METADATA != 0)?;
    Ok(RequestChannel {
        stream_id: r.stream_id,
        follows: flags & FOLLOWS != 0,
        complete: flags & COMPLETE != 0,
        initial_n,
        payload,
    })
}

// ---------------------------------------------------------------------------------------------
// REQUEST_N (0x08). No flags.
//   0 + u31 request n
// ---------------------------------------------------------------------------------------------

fn encode_request_n<B: BufMut>(f: &RequestN, buf: &mut B) {
    put_header(buf, f.stream_id, FrameType::RequestN, 0);
    buf.put_u32(f.n & MAX_U31);
}

fn decode_request_n(r: &mut Reader) -> Result<RequestN, DecodeError> {
    Ok(RequestN { stream_id: r.stream_id, n: r.u31("request n")? })
}

// ---------------------------------------------------------------------------------------------
// CANCEL (0x09). No flags, no body.
// ---------------------------------------------------------------------------------------------

fn encode_cancel<B: BufMut>(f: &Cancel, buf: &mut B) {
    put_header(buf, f.stream_id, FrameType::Cancel, 0);
}

// ---------------------------------------------------------------------------------------------
// PAYLOAD (0x0A). Flags: M, F, C, N.
//   [u24 metadata length | metadata] | data
// "A PAYLOAD MUST NOT have both (C)omplete and (N)ext empty" is not checked here: the Python
// implementation sends such frames (see the fixtures), and what they mean is the stream's call.
// ---------------------------------------------------------------------------------------------

fn encode_payload<B: BufMut>(f: &PayloadFrame, buf: &mut B) {
    let flags = metadata_flag(&f.payload) | flag(f.follows, FOLLOWS) | flag(f.complete, COMPLETE) | flag(f.next, NEXT);
    put_header(buf, f.stream_id, FrameType::Payload, flags);
    put_payload(buf, &f.payload);
}

fn decode_payload(r: &mut Reader, flags: u16) -> Result<PayloadFrame, DecodeError> {
    let payload = r.payload(flags & METADATA != 0)?;
    Ok(PayloadFrame {
        stream_id: r.stream_id,
        follows: flags & FOLLOWS != 0,
        complete: flags & COMPLETE != 0,
        next: flags & NEXT != 0,
        payload,
    })
}

// ---------------------------------------------------------------------------------------------
// ERROR (0x0B). No flags (the layout shows `|0|0|` for I and M).
//   u32 error code | error data
// ---------------------------------------------------------------------------------------------

fn encode_error<B: BufMut>(f: &ErrorFrame, buf: &mut B) {
    put_header(buf, f.stream_id, FrameType::Error, 0);
    buf.put_u32(f.code.0);
    buf.put_slice(&f.data);
}

fn decode_error(r: &mut Reader) -> Result<ErrorFrame, DecodeError> {
    let code = ErrorCode(r.u32("error code")?);
    Ok(ErrorFrame { stream_id: r.stream_id, code, data: r.rest() })
}

// ---------------------------------------------------------------------------------------------
// METADATA_PUSH (0x0C), stream 0. The (M) flag is always written: the layout shows `|0|1|`.
//   metadata (no length prefix: "the Metadata Length header MUST NOT be included")
// A frame without (M) is still read as metadata: the frame type has nothing else to carry.
// ---------------------------------------------------------------------------------------------

fn encode_metadata_push<B: BufMut>(f: &MetadataPush, buf: &mut B) {
    put_header(buf, 0, FrameType::MetadataPush, METADATA);
    buf.put_slice(&f.metadata);
}

fn decode_metadata_push(r: &mut Reader) -> MetadataPush {
    MetadataPush { metadata: r.rest() }
}

// ---------------------------------------------------------------------------------------------
// RESUME (0x0D), stream 0. No flags.
//   u16 major | u16 minor | u16 token length | token
//   0 + u63 last received server position | 0 + u63 first available client position
// ---------------------------------------------------------------------------------------------

fn encode_resume<B: BufMut>(f: &Resume, buf: &mut B) {
    put_header(buf, 0, FrameType::Resume, 0);
    buf.put_u16(f.version.major);
    buf.put_u16(f.version.minor);
    let token = clamp(&f.token, MAX_U16_LEN);
    buf.put_u16(token.len() as u16);
    buf.put_slice(token);
    buf.put_u64(f.last_received_server_position & MAX_U63);
    buf.put_u64(f.first_available_client_position & MAX_U63);
}

fn resume_len(f: &Resume) -> usize {
    2 + 2 + 2 + f.token.len().min(MAX_U16_LEN) + 8 + 8
}

fn decode_resume(r: &mut Reader) -> Result<Resume, DecodeError> {
    let major = r.u16("major version")?;
    let minor = r.u16("minor version")?;
    let len = r.u16("resume token length")?;
    let token = r.take(usize::from(len), "resume token length")?;
    let last_received_server_position = r.u63("last received server position")?;
    let first_available_client_position = r.u63("first available client position")?;
    Ok(Resume {
        version: Version { major, minor },
        token,
        last_received_server_position,
        first_available_client_position,
    })
}

// ---------------------------------------------------------------------------------------------
// RESUME_OK (0x0E), stream 0. No flags.
//   0 + u63 last received client position
// ---------------------------------------------------------------------------------------------

fn encode_resume_ok<B: BufMut>(f: &ResumeOk, buf: &mut B) {
    put_header(buf, 0, FrameType::ResumeOk, 0);
    buf.put_u64(f.last_received_client_position & MAX_U63);
}

fn decode_resume_ok(r: &mut Reader) -> Result<ResumeOk, DecodeError> {
    Ok(ResumeOk { last_received_client_position: r.u63("last received client position")? })
}

// ---------------------------------------------------------------------------------------------
// EXT (0x3F), any stream. Flags: I, M.
//   0 + u31 extended type | body
// The spec leaves the body to the extended type ("Depends on Extended Type..."), so it is kept
// as opaque bytes, M included as a flag: reading it with the common metadata layout would turn
// an extension that lays it out otherwise into a malformed frame.
// ---------------------------------------------------------------------------------------------

fn encode_ext<B: BufMut>(f: &Ext, buf: &mut B) {
    put_header(buf, f.stream_id, FrameType::Ext, flag(f.ignore, IGNORE) | flag(f.metadata, METADATA));
    buf.put_u32(f.extended_type & MAX_U31);
    buf.put_slice(&f.body);
}

fn decode_ext(r: &mut Reader, flags: u16) -> Result<Ext, DecodeError> {
    let extended_type = r.u31("extended type")?;
    Ok(Ext { stream_id: r.stream_id, ignore: r.ignore, metadata: flags & METADATA != 0, extended_type, body: r.rest() })
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

pub(super) fn encoded_len(frame: &Frame) -> usize {
    HEADER_SIZE
        + match frame {
            Frame::Setup(f) => setup_len(f),
            Frame::Lease(f) => lease_len(f),
            Frame::Keepalive(f) => keepalive_len(f),
            Frame::RequestResponse(f) | Frame::RequestFnf(f) => payload_len(&f.payload),
            Frame::RequestStream(f) => 4 + payload_len(&f.payload),
            Frame::RequestChannel(f) => 4 + payload_len(&f.payload),
            Frame::RequestN(_) => 4,
            Frame::Cancel(_) => 0,
            Frame::Payload(f) => payload_len(&f.payload),
            Frame::Error(f) => 4 + f.data.len(),
            Frame::MetadataPush(f) => f.metadata.len(),
            Frame::Resume(f) => resume_len(f),
            Frame::ResumeOk(_) => 8,
            Frame::Ext(f) => 4 + f.body.len(),
        }
}

pub(super) fn encode<B: BufMut>(frame: &Frame, buf: &mut B) {
    match frame {
        Frame::Setup(f) => encode_setup(f, buf),
        Frame::Lease(f) => encode_lease(f, buf),
        Frame::Keepalive(f) => encode_keepalive(f, buf),
        Frame::RequestResponse(f) => encode_request(f, FrameType::RequestResponse, buf),
        Frame::RequestFnf(f) => encode_request(f, FrameType::RequestFnf, buf),
        Frame::RequestStream(f) => encode_request_stream(f, buf),
        Frame::RequestChannel(f) => encode_request_channel(f, buf),
        Frame::RequestN(f) => encode_request_n(f, buf),
        Frame::Cancel(f) => encode_cancel(f, buf),
        Frame::Payload(f) => encode_payload(f, buf),
        Frame::Error(f) => encode_error(f, buf),
        Frame::MetadataPush(f) => encode_metadata_push(f, buf),
        Frame::Resume(f) => encode_resume(f, buf),
        Frame::ResumeOk(f) => encode_resume_ok(f, buf),
        Frame::Ext(f) => encode_ext(f, buf),
    }
}

/// Whether `bytes` hold the header of a PAYLOAD frame; [`decode_payload_frame`] decodes it.
pub(crate) fn is_payload(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_SIZE && (u16::from_be_bytes([bytes[4], bytes[5]]) >> 10) as u8 == FrameType::Payload as u8
}

/// The stream id of a PAYLOAD frame that is one plain message, and whether it has (C): (N)
/// set; (M), (F) and (I) clear; a stream id that is not 0. Its data is everything after the
/// header. `None` for any other frame, which [`decode_payload_frame`] or [`decode`] then reads in
/// full (and rejects, if need be): nearly every frame a stream's reader gets is a plain
/// message, and its header alone says all there is to know about it.
#[inline]
pub(crate) fn plain_message(bytes: &[u8]) -> Option<(u32, bool)> {
    const PLAIN: u16 = ((FrameType::Payload as u16) << 10) | NEXT;
    let head = bytes.get(..HEADER_SIZE)?;
    let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & MAX_U31;
    let complete = match u16::from_be_bytes([head[4], head[5]]) {
        PLAIN => false,
        word if word == PLAIN | COMPLETE => true,
        _ => return None,
    };
    (stream_id != 0).then_some((stream_id, complete))
}

/// [`decode`] for a frame that [`is_payload`] accepted, giving the [`PayloadFrame`] itself:
/// the same result and the same errors, without building a [`Frame`] (the largest variant is
/// several times a PAYLOAD's size, and a stream's messages are most of what is read).
pub(crate) fn decode_payload_frame(mut bytes: Bytes) -> Result<PayloadFrame, DecodeError> {
    debug_assert!(is_payload(&bytes));
    let stream_id = bytes.get_u32() & MAX_U31;
    let flags = bytes.get_u16() & FLAGS_MASK;
    let mut r = Reader::new(bytes, FrameType::Payload, stream_id, flags);
    if stream_id == 0 {
        return Err(r.error(DecodeErrorKind::InvalidStreamId { expected_zero: false }));
    }
    decode_payload(&mut r, flags)
}

/// A request frame (REQUEST_RESPONSE, REQUEST_FNF, REQUEST_STREAM or REQUEST_CHANNEL), as
/// [`decode_request_frame`] reads it: the frame's own variant, without the rest of [`Frame`]
/// around it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RequestFrame {
    Response(Request),
    Fnf(Request),
    Stream(RequestStream),
    Channel(RequestChannel),
}

impl From<RequestFrame> for Frame {
    fn from(request: RequestFrame) -> Frame {
        match request {
            RequestFrame::Response(r) => Frame::RequestResponse(r),
            RequestFrame::Fnf(r) => Frame::RequestFnf(r),
            RequestFrame::Stream(r) => Frame::RequestStream(r),
            RequestFrame::Channel(r) => Frame::RequestChannel(r),
        }
    }
}

/// Whether `bytes` hold the header of a request frame; [`decode_request_frame`] decodes it.
pub(crate) fn is_request(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_SIZE
        && FrameType::from_code((u16::from_be_bytes([bytes[4], bytes[5]]) >> 10) as u8)
            .is_some_and(FrameType::is_request)
}

/// [`decode`] for a frame that [`is_request`] accepted: the same result and the same errors,
/// without building a [`Frame`] (whose size is its largest variant's; a server reads a request
/// frame per call).
pub(crate) fn decode_request_frame(mut bytes: Bytes) -> Result<RequestFrame, DecodeError> {
    debug_assert!(is_request(&bytes));
    let stream_id = bytes.get_u32() & MAX_U31;
    let type_and_flags = bytes.get_u16();
    let flags = type_and_flags & FLAGS_MASK;
    let frame_type = FrameType::from_code((type_and_flags >> 10) as u8).unwrap_or(FrameType::RequestResponse);
    let mut r = Reader::new(bytes, frame_type, stream_id, flags);
    if stream_id == 0 {
        return Err(r.error(DecodeErrorKind::InvalidStreamId { expected_zero: false }));
    }
    Ok(match frame_type {
        FrameType::RequestFnf => RequestFrame::Fnf(decode_request(&mut r, flags)?),
        FrameType::RequestStream => RequestFrame::Stream(decode_request_stream(&mut r, flags)?),
        FrameType::RequestChannel => RequestFrame::Channel(decode_request_channel(&mut r, flags)?),
        // REQUEST_RESPONSE: the one other type `is_request` accepts.
        _ => RequestFrame::Response(decode_request(&mut r, flags)?),
    })
}

pub(super) fn decode(mut bytes: Bytes) -> Result<Frame, DecodeError> {
    if bytes.len() < HEADER_SIZE {
        // Name the stream if its four bytes made it: the connection may confine the damage.
        let stream_id = bytes.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & MAX_U31);
        return Err(DecodeError {
            frame_type: None,
            stream_id,
            kind: DecodeErrorKind::Truncated { field: "frame header" },
            ignore: false,
        });
    }
    let stream_id = bytes.get_u32() & MAX_U31;
    let type_and_flags = bytes.get_u16();
    let code = (type_and_flags >> 10) as u8;
    let flags = type_and_flags & FLAGS_MASK;
    let Some(frame_type) = FrameType::from_code(code) else {
        // "Handling Ignore Flag": whether the frame may be skipped is the receiver's decision,
        // so it travels in the error.
        let ignore = flags & IGNORE != 0;
        let kind = DecodeErrorKind::UnknownFrameType { code };
        return Err(DecodeError { frame_type: None, stream_id: Some(stream_id), kind, ignore });
    };
    let mut r = Reader::new(bytes, frame_type, stream_id, flags);
    let bad_stream = match frame_type.stream_rule() {
        StreamRule::Zero => (stream_id != 0).then_some(true),
        StreamRule::NonZero => (stream_id == 0).then_some(false),
        StreamRule::Any => None,
    };
    if let Some(expected_zero) = bad_stream {
        return Err(r.error(DecodeErrorKind::InvalidStreamId { expected_zero }));
    }
    Ok(match frame_type {
        FrameType::Setup => Frame::Setup(decode_setup(&mut r, flags)?),
        FrameType::Lease => Frame::Lease(decode_lease(&mut r, flags)?),
        FrameType::Keepalive => Frame::Keepalive(decode_keepalive(&mut r, flags)?),
        FrameType::RequestResponse => Frame::RequestResponse(decode_request(&mut r, flags)?),
        FrameType::RequestFnf => Frame::RequestFnf(decode_request(&mut r, flags)?),
        FrameType::RequestStream => Frame::RequestStream(decode_request_stream(&mut r, flags)?),
        FrameType::RequestChannel => Frame::RequestChannel(decode_request_channel(&mut r, flags)?),
        FrameType::RequestN => Frame::RequestN(decode_request_n(&mut r)?),
        FrameType::Cancel => Frame::Cancel(Cancel { stream_id }),
        FrameType::Payload => Frame::Payload(decode_payload(&mut r, flags)?),
        FrameType::Error => Frame::Error(decode_error(&mut r)?),
        FrameType::MetadataPush => Frame::MetadataPush(decode_metadata_push(&mut r)),
        FrameType::Resume => Frame::Resume(decode_resume(&mut r)?),
        FrameType::ResumeOk => Frame::ResumeOk(decode_resume_ok(&mut r)?),
        FrameType::Ext => Frame::Ext(decode_ext(&mut r, flags)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reproducible stream of pseudo-random numbers.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// 500 frames made from `wire` (a whole frame): itself first, then with a byte changed and
    /// cut short (which reaches the flags, lengths and metadata length), every seventh with a
    /// stream id of 0.
    fn mutations<'a>(wire: &'a [u8], random: &'a mut impl FnMut() -> u64) -> impl Iterator<Item = Vec<u8>> + 'a {
        (0..500).map(move |round| {
            let mut bytes = wire.to_vec();
            if round > 0 {
                let at = HEADER_SIZE - 2 + random() as usize % (bytes.len() - HEADER_SIZE + 2);
                bytes[at] = random() as u8;
                bytes.truncate(HEADER_SIZE + random() as usize % (bytes.len() - HEADER_SIZE + 1));
            }
            if round % 7 == 0 {
                bytes[..4].fill(0);
            }
            bytes
        })
    }

    #[test]
    fn request_frames_decode_alone_as_they_decode_as_frames() {
        let meta = || Payload { metadata: Some(Bytes::from_static(b"route")), data: Bytes::from_static(b"data") };
        let frames = [
            Frame::RequestResponse(Request { stream_id: 1, follows: false, payload: meta() }),
            Frame::RequestFnf(Request { stream_id: 3, follows: true, payload: Payload::data("x") }),
            Frame::RequestStream(RequestStream { stream_id: 5, follows: false, initial_n: 7, payload: meta() }),
            Frame::RequestChannel(RequestChannel {
                stream_id: 0x7FFF_FFFF,
                follows: false,
                complete: true,
                initial_n: 1,
                payload: Payload::data("hi"),
            }),
        ];
        // Whatever the mutation, the two decoders agree.
        let mut random = xorshift(0x9E37_79B9_7F4A_7C15);
        let (mut tried, mut decoded) = (0, 0);
        for frame in frames {
            let mut wire = Vec::new();
            frame.encode(&mut wire);
            assert_eq!(decode_request_frame(Bytes::from(wire.clone())).map(Frame::from), Ok(frame));
            for bytes in mutations(&wire, &mut random) {
                let full = decode(Bytes::from(bytes.clone()));
                let is_request_type = matches!(
                    full,
                    Ok(Frame::RequestResponse(_)
                        | Frame::RequestFnf(_)
                        | Frame::RequestStream(_)
                        | Frame::RequestChannel(_))
                ) || matches!(&full, Err(e) if matches!(
                    e.frame_type,
                    Some(FrameType::RequestResponse | FrameType::RequestFnf | FrameType::RequestStream | FrameType::RequestChannel)
                ));
                assert_eq!(is_request(&bytes), is_request_type, "{bytes:02x?}");
                if !is_request(&bytes) {
                    continue;
                }
                tried += 1;
                let alone = decode_request_frame(Bytes::from(bytes.clone())).map(Frame::from);
                decoded += usize::from(alone.is_ok());
                assert_eq!(alone, full, "{bytes:02x?}");
            }
        }
        // The mutations reached both outcomes many times.
        assert!(tried > 1_000 && decoded > 100 && tried - decoded > 100, "{tried} tried, {decoded} decoded");
        // Nothing else is taken for a request.
        let mut other = Vec::new();
        Frame::Payload(PayloadFrame {
            stream_id: 1,
            follows: false,
            complete: true,
            next: true,
            payload: Payload::data("a"),
        })
        .encode(&mut other);
        assert!(!is_request(&other) && !is_request(&other[..HEADER_SIZE - 1]));
    }

    #[test]
    fn payload_frames_decode_alone_as_they_decode_as_frames() {
        let frames = [
            PayloadFrame { stream_id: 1, follows: false, complete: false, next: true, payload: Payload::data("hi") },
            PayloadFrame {
                stream_id: 0x7FFF_FFFF,
                follows: true,
                complete: true,
                next: false,
                payload: Payload { metadata: Some(Bytes::from_static(b"meta")), data: Bytes::from_static(b"data") },
            },
            PayloadFrame { stream_id: 2, follows: false, complete: true, next: false, payload: Payload::default() },
            PayloadFrame { stream_id: 5, follows: false, complete: true, next: true, payload: Payload::data("last") },
        ];
        // Whatever the mutation, the two decoders agree.
        let mut random = xorshift(0x2545_F491_4F6C_DD1D);
        let (mut tried, mut plain) = (0, 0);
        for frame in frames {
            let mut wire = Vec::new();
            Frame::Payload(frame).encode(&mut wire);
            for bytes in mutations(&wire, &mut random) {
                if !is_payload(&bytes) {
                    continue;
                }
                tried += 1;
                let alone = decode_payload_frame(Bytes::from(bytes.clone())).map(Frame::Payload);
                let full = decode(Bytes::from(bytes.clone()));
                assert_eq!(alone, full, "{bytes:02x?}");
                // What the header alone says of a plain message is what the full decode says.
                if let Some((stream_id, complete)) = plain_message(&bytes) {
                    plain += 1;
                    let data = Bytes::copy_from_slice(&bytes[HEADER_SIZE..]);
                    let payload = Payload { metadata: None, data };
                    let expected = PayloadFrame { stream_id, follows: false, complete, next: true, payload };
                    assert_eq!(full, Ok(Frame::Payload(expected)), "{bytes:02x?}");
                }
            }
        }
        assert!(tried > 1_000, "only {tried} frames were PAYLOAD frames");
        assert!(plain > 200, "only {plain} frames were plain messages");
        assert!(!is_payload(&[0, 0, 0, 1, 0x28]), "a header is six bytes");
        let mut cancel = Vec::new();
        Frame::Cancel(Cancel { stream_id: 1 }).encode(&mut cancel);
        assert!(!is_payload(&cancel));
    }

    #[test]
    fn frame_type_codes_round_trip() {
        for code in 0..=0x3F {
            if let Some(ty) = FrameType::from_code(code) {
                assert_eq!(ty.code(), code);
                assert_eq!(ty.to_string(), ty.name());
            }
        }
        let known = (0..=0x3F).filter_map(FrameType::from_code).count();
        assert_eq!(known, 15);
        assert_eq!(FrameType::from_code(0x00), None, "0x00 is reserved");
    }

    #[test]
    fn header_masks_reserved_stream_bit_and_undefined_flags() {
        let mut buf = Vec::new();
        put_header(&mut buf, u32::MAX, FrameType::Cancel, 0xFFFF);
        assert_eq!(buf, [0x7F, 0xFF, 0xFF, 0xFF, 0x27, 0xFF]);
    }

    #[test]
    fn clamp_cuts_to_the_field_width() {
        assert_eq!(clamp(b"abcdef", 4), b"abcd");
        assert_eq!(clamp(b"ab", 4), b"ab");
    }

    #[test]
    fn over_wide_values_are_masked_and_lengths_stay_consistent() {
        // A resume token longer than its u16 length field: cut, and encoded_len agrees.
        let frame = Frame::Resume(Resume {
            version: Version { major: 1, minor: 0 },
            token: Bytes::from(vec![7u8; MAX_U16_LEN + 10]),
            last_received_server_position: u64::MAX,
            first_available_client_position: 1,
        });
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        assert_eq!(buf.len(), encoded_len(&frame));
        let Frame::Resume(back) = decode(Bytes::from(buf)).unwrap() else { panic!("not a RESUME") };
        assert_eq!(back.token.len(), MAX_U16_LEN);
        assert_eq!(back.last_received_server_position, MAX_U63);

        let frame = Frame::RequestN(RequestN { stream_id: u32::MAX, n: u32::MAX });
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        assert_eq!(decode(Bytes::from(buf)).unwrap(), Frame::RequestN(RequestN { stream_id: MAX_U31, n: MAX_U31 }));
    }

    #[test]
    fn long_setup_mime_is_cut_to_255_bytes() {
        let frame = Frame::Setup(Setup {
            version: super::super::VERSION,
            keepalive_interval: 1,
            max_lifetime: 1,
            resume_token: None,
            lease: false,
            metadata_mime: "x".repeat(300),
            data_mime: "y".into(),
            payload: Payload::default(),
        });
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        assert_eq!(buf.len(), encoded_len(&frame));
        let Frame::Setup(back) = decode(Bytes::from(buf)).unwrap() else { panic!("not a SETUP") };
        assert_eq!(back.metadata_mime.len(), 255);
        assert_eq!(back.data_mime, "y");
    }
}
