//! RSocket 1.0 frames: types, encoding and decoding, sans-IO.
//!
//! A [`Frame`] is one RSocket frame *without* the transport's framing. Stream transports (TCP)
//! prefix every frame with a 24-bit length; that layer lives in [`length`], because message
//! transports such as WebSocket carry frames without it.
//!
//! Encoding writes into any [`BufMut`]; decoding takes a whole frame as [`Bytes`] and splits
//! metadata and data out of it without copying. Decoding is structural: it checks that every
//! field is present and every declared length fits, and returns a typed [`DecodeError`] that
//! names the frame type, the field and the stream. Whether a well-formed frame makes sense *now*
//! (a PAYLOAD for an unknown stream, a second SETUP) is the connection's business, not the
//! codec's.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use weft::frame::{Frame, Payload, RequestN};
//!
//! let frame = Frame::RequestN(RequestN { stream_id: 7, n: 16 });
//! let mut buf = BytesMut::new();
//! frame.encode(&mut buf);
//! assert_eq!(&buf[..], &[0, 0, 0, 7, 0x20, 0x00, 0, 0, 0, 16]);
//! assert_eq!(Frame::decode(buf.freeze()).unwrap(), frame);
//! # let _ = Payload::default(); let _ = Bytes::new();
//! ```

use bytes::{BufMut, Bytes};

pub mod auth;
mod codec;
pub(crate) mod direct;
mod error;
pub mod length;
pub mod metadata;

pub(crate) use codec::{
    RequestFrame, decode_payload_frame, decode_request_frame, is_payload, is_request, plain_message,
};
pub use error::{DecodeError, DecodeErrorKind};

/// The largest frame RSocket allows: the 24-bit frame length field's maximum (Protocol.md,
/// "Max Frame Size").
pub const MAX_FRAME_SIZE: usize = 0xFF_FFFF;

/// The largest value of a 31-bit field (stream id, request N, keepalive interval, ...).
pub const MAX_U31: u32 = 0x7FFF_FFFF;

/// Size of the frame header: stream id (4 bytes) and type + flags (2 bytes).
pub const HEADER_SIZE: usize = 6;

/// Protocol version this implementation speaks.
pub const VERSION: Version = Version { major: 1, minor: 0 };

/// Frame type codes (6 bits) from Protocol.md, "Frame Types".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// SETUP (0x01): sent by the client to start a connection.
    Setup = 0x01,
    /// LEASE (0x02): a responder grants the right to send requests.
    Lease = 0x02,
    /// KEEPALIVE (0x03).
    Keepalive = 0x03,
    /// REQUEST_RESPONSE (0x04).
    RequestResponse = 0x04,
    /// REQUEST_FNF (0x05): fire-and-forget.
    RequestFnf = 0x05,
    /// REQUEST_STREAM (0x06).
    RequestStream = 0x06,
    /// REQUEST_CHANNEL (0x07).
    RequestChannel = 0x07,
    /// REQUEST_N (0x08): more credit.
    RequestN = 0x08,
    /// CANCEL (0x09).
    Cancel = 0x09,
    /// PAYLOAD (0x0A).
    Payload = 0x0A,
    /// ERROR (0x0B).
    Error = 0x0B,
    /// METADATA_PUSH (0x0C).
    MetadataPush = 0x0C,
    /// RESUME (0x0D).
    Resume = 0x0D,
    /// RESUME_OK (0x0E).
    ResumeOk = 0x0E,
    /// EXT (0x3F): extension frame.
    Ext = 0x3F,
}

/// Flag bits in the 10-bit flags field, as they sit in the 16-bit type-and-flags word.
pub mod flags {
    /// (I)gnore: the frame may be ignored if not understood.
    pub const IGNORE: u16 = 0x200;
    /// (M)etadata present.
    pub const METADATA: u16 = 0x100;
    /// (F)ollows: more fragments follow (request frames and PAYLOAD).
    pub const FOLLOWS: u16 = 0x80;
    /// (C)omplete (REQUEST_CHANNEL and PAYLOAD).
    pub const COMPLETE: u16 = 0x40;
    /// (N)ext (PAYLOAD).
    pub const NEXT: u16 = 0x20;
    /// (R)esume enable (SETUP).
    pub const RESUME_ENABLE: u16 = 0x80;
    /// (L)ease (SETUP).
    pub const LEASE: u16 = 0x40;
    /// (R)espond (KEEPALIVE).
    pub const RESPOND: u16 = 0x80;
}

/// A protocol version, major and minor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

/// Metadata and data carried by a frame.
///
/// `metadata` is `None` when the (M) flag is clear. The distinction between absent and empty
/// metadata is kept so that re-encoding reproduces the peer's bytes exactly; higher layers must
/// not give it meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Metadata, present when the frame's (M) flag is set.
    pub metadata: Option<Bytes>,
    /// Data; may be empty.
    pub data: Bytes,
}

impl Payload {
    /// A payload with data and no metadata.
    pub fn data(data: impl Into<Bytes>) -> Self {
        Payload { metadata: None, data: data.into() }
    }

    /// A payload with metadata and data.
    pub fn new(metadata: impl Into<Bytes>, data: impl Into<Bytes>) -> Self {
        Payload { metadata: Some(metadata.into()), data: data.into() }
    }

    /// Encoded size of this payload inside a frame that has a metadata length field.
    pub fn encoded_len(&self) -> usize {
        self.metadata.as_ref().map_or(0, |m| 3 + m.len()) + self.data.len()
    }
}

/// Stream error codes and connection error codes (Protocol.md, "Error Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The SETUP frame is invalid for the server. Stream 0.
    pub const INVALID_SETUP: ErrorCode = ErrorCode(0x0000_0001);
    /// Some parameters of the SETUP are unsupported. Stream 0.
    pub const UNSUPPORTED_SETUP: ErrorCode = ErrorCode(0x0000_0002);
    /// The server rejected the SETUP. Stream 0.
    pub const REJECTED_SETUP: ErrorCode = ErrorCode(0x0000_0003);
    /// The server rejected the RESUME. Stream 0.
    pub const REJECTED_RESUME: ErrorCode = ErrorCode(0x0000_0004);
    /// The connection is being terminated at once. Stream 0.
    pub const CONNECTION_ERROR: ErrorCode = ErrorCode(0x0000_0101);
    /// The connection is being terminated after outstanding streams end. Stream 0.
    pub const CONNECTION_CLOSE: ErrorCode = ErrorCode(0x0000_0102);
    /// Application-level error on a stream.
    pub const APPLICATION_ERROR: ErrorCode = ErrorCode(0x0000_0201);
    /// The responder rejected the request without processing it.
    pub const REJECTED: ErrorCode = ErrorCode(0x0000_0202);
    /// The responder cancelled the request, possibly after starting it.
    pub const CANCELED: ErrorCode = ErrorCode(0x0000_0203);
    /// The request is invalid.
    pub const INVALID: ErrorCode = ErrorCode(0x0000_0204);

    /// Whether this code belongs on stream 0 (a setup, resume or connection error).
    pub fn is_connection_error(self) -> bool {
        matches!(self.0, 0x0001..=0x0004 | 0x0101 | 0x0102)
    }

    /// The spec's name for a defined code, `None` for application-defined codes.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::INVALID_SETUP => "INVALID_SETUP",
            Self::UNSUPPORTED_SETUP => "UNSUPPORTED_SETUP",
            Self::REJECTED_SETUP => "REJECTED_SETUP",
            Self::REJECTED_RESUME => "REJECTED_RESUME",
            Self::CONNECTION_ERROR => "CONNECTION_ERROR",
            Self::CONNECTION_CLOSE => "CONNECTION_CLOSE",
            Self::APPLICATION_ERROR => "APPLICATION_ERROR",
            Self::REJECTED => "REJECTED",
            Self::CANCELED => "CANCELED",
            Self::INVALID => "INVALID",
            _ => return None,
        })
    }
}

/// SETUP (0x01): the client's connection parameters. Always stream 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Protocol version the client speaks.
    pub version: Version,
    /// Milliseconds between the client's KEEPALIVE frames (31 bits).
    pub keepalive_interval: u32,
    /// Milliseconds without a frame from the server before the client gives up (31 bits).
    pub max_lifetime: u32,
    /// Resume identification token; `Some` sets the (R) flag.
    pub resume_token: Option<Bytes>,
    /// The (L)ease flag: the client will honour LEASE.
    pub lease: bool,
    /// MIME type of metadata (ASCII, at most 255 bytes).
    pub metadata_mime: String,
    /// MIME type of data (ASCII, at most 255 bytes).
    pub data_mime: String,
    /// Setup metadata and data.
    pub payload: Payload,
}

/// LEASE (0x02). Always stream 0. Its metadata has no length prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Validity of the lease in milliseconds (31 bits).
    pub ttl: u32,
    /// Requests that may be sent until the next LEASE (31 bits).
    pub number_of_requests: u32,
    /// Optional metadata; `Some` sets the (M) flag.
    pub metadata: Option<Bytes>,
}

/// KEEPALIVE (0x03). Always stream 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// The (R)espond flag: the peer must answer with a KEEPALIVE without it.
    pub respond: bool,
    /// Resume last received position (63 bits); 0 when resumption is not in use.
    pub last_received_position: u64,
    /// Data, echoed back by the responder.
    pub data: Bytes,
}

/// REQUEST_RESPONSE (0x04) and REQUEST_FNF (0x05).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Stream id (non-zero).
    pub stream_id: u32,
    /// (F)ollows: more fragments of this request follow as PAYLOAD frames.
    pub follows: bool,
    /// Metadata and data (or their first fragment).
    pub payload: Payload,
}

/// REQUEST_STREAM (0x06).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestStream {
    /// Stream id (non-zero).
    pub stream_id: u32,
    /// (F)ollows: more fragments of this request follow as PAYLOAD frames.
    pub follows: bool,
    /// Initial credit granted to the responder (31 bits).
    pub initial_n: u32,
    /// Metadata and data (or their first fragment).
    pub payload: Payload,
}

/// REQUEST_CHANNEL (0x07).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestChannel {
    /// Stream id (non-zero).
    pub stream_id: u32,
    /// (F)ollows: more fragments of this request follow as PAYLOAD frames.
    pub follows: bool,
    /// (C)omplete: the requester sends nothing after this payload.
    pub complete: bool,
    /// Initial credit granted to the responder (31 bits).
    pub initial_n: u32,
    /// The channel's first payload (or its first fragment).
    pub payload: Payload,
}

/// REQUEST_N (0x08): grants `n` more payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestN {
    /// Stream id (non-zero).
    pub stream_id: u32,
    /// Additional credit (31 bits).
    pub n: u32,
}

/// CANCEL (0x09).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancel {
    /// Stream id (non-zero).
    pub stream_id: u32,
}

/// PAYLOAD (0x0A).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadFrame {
    /// Stream id (non-zero).
    pub stream_id: u32,
    /// (F)ollows: more fragments of this payload follow.
    pub follows: bool,
    /// (C)omplete: the stream ends (in this direction).
    pub complete: bool,
    /// (N)ext: the frame carries a payload for the application.
    pub next: bool,
    /// Metadata and data.
    pub payload: Payload,
}

/// ERROR (0x0B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// Stream id; 0 for connection errors.
    pub stream_id: u32,
    /// Error code.
    pub code: ErrorCode,
    /// Error data, by convention a UTF-8 message; kept as bytes because peers may send anything.
    pub data: Bytes,
}

impl ErrorFrame {
    /// The error data as text, with invalid UTF-8 replaced.
    pub fn message(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.data)
    }
}

/// METADATA_PUSH (0x0C). Always stream 0. Its metadata has no length prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataPush {
    /// The pushed metadata.
    pub metadata: Bytes,
}

/// RESUME (0x0D). Always stream 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Protocol version.
    pub version: Version,
    /// The resume token given in SETUP.
    pub token: Bytes,
    /// Last position the client received from the server (63 bits).
    pub last_received_server_position: u64,
    /// Earliest position the client can replay from (63 bits).
    pub first_available_client_position: u64,
}

/// RESUME_OK (0x0E). Always stream 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeOk {
    /// Last position the server received from the client (63 bits).
    pub last_received_client_position: u64,
}

/// EXT (0x3F): an extension frame, kept opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ext {
    /// Stream id (may be 0).
    pub stream_id: u32,
    /// (I)gnore: the frame may be dropped by a peer that does not understand it.
    pub ignore: bool,
    /// (M)etadata, as the sender set it: what it means is the extended type's business.
    pub metadata: bool,
    /// Extended type (31 bits).
    pub extended_type: u32,
    /// Everything after the extended type, as sent. The spec leaves its layout to the
    /// extended type ("Depends on Extended Type"), so it is not read as metadata and data: an
    /// extension Weft does not know can never make a frame malformed.
    pub body: Bytes,
}

/// One RSocket frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// SETUP.
    Setup(Setup),
    /// LEASE.
    Lease(Lease),
    /// KEEPALIVE.
    Keepalive(Keepalive),
    /// REQUEST_RESPONSE.
    RequestResponse(Request),
    /// REQUEST_FNF.
    RequestFnf(Request),
    /// REQUEST_STREAM.
    RequestStream(RequestStream),
    /// REQUEST_CHANNEL.
    RequestChannel(RequestChannel),
    /// REQUEST_N.
    RequestN(RequestN),
    /// CANCEL.
    Cancel(Cancel),
    /// PAYLOAD.
    Payload(PayloadFrame),
    /// ERROR.
    Error(ErrorFrame),
    /// METADATA_PUSH.
    MetadataPush(MetadataPush),
    /// RESUME.
    Resume(Resume),
    /// RESUME_OK.
    ResumeOk(ResumeOk),
    /// EXT.
    Ext(Ext),
}

impl Frame {
    /// The stream this frame belongs to; 0 for connection frames.
    pub fn stream_id(&self) -> u32 {
        match self {
            Frame::Setup(_)
            | Frame::Lease(_)
            | Frame::Keepalive(_)
            | Frame::MetadataPush(_)
            | Frame::Resume(_)
            | Frame::ResumeOk(_) => 0,
            Frame::RequestResponse(f) | Frame::RequestFnf(f) => f.stream_id,
            Frame::RequestStream(f) => f.stream_id,
            Frame::RequestChannel(f) => f.stream_id,
            Frame::RequestN(f) => f.stream_id,
            Frame::Cancel(f) => f.stream_id,
            Frame::Payload(f) => f.stream_id,
            Frame::Error(f) => f.stream_id,
            Frame::Ext(f) => f.stream_id,
        }
    }

    /// This frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Setup(_) => FrameType::Setup,
            Frame::Lease(_) => FrameType::Lease,
            Frame::Keepalive(_) => FrameType::Keepalive,
            Frame::RequestResponse(_) => FrameType::RequestResponse,
            Frame::RequestFnf(_) => FrameType::RequestFnf,
            Frame::RequestStream(_) => FrameType::RequestStream,
            Frame::RequestChannel(_) => FrameType::RequestChannel,
            Frame::RequestN(_) => FrameType::RequestN,
            Frame::Cancel(_) => FrameType::Cancel,
            Frame::Payload(_) => FrameType::Payload,
            Frame::Error(_) => FrameType::Error,
            Frame::MetadataPush(_) => FrameType::MetadataPush,
            Frame::Resume(_) => FrameType::Resume,
            Frame::ResumeOk(_) => FrameType::ResumeOk,
            Frame::Ext(_) => FrameType::Ext,
        }
    }

    /// The number of bytes [`Frame::encode`] writes (without any transport length prefix).
    pub fn encoded_len(&self) -> usize {
        codec::encoded_len(self)
    }

    /// Appends this frame's encoding (without a transport length prefix) to `buf`.
    ///
    /// Fields wider than the wire allows (a 31-bit count above [`MAX_U31`], metadata over
    /// 16 MiB) are the caller's bug; they are masked to the wire's width so that encoding never
    /// panics. The connection layer guarantees they do not happen.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        codec::encode(self, buf)
    }

    /// Decodes one whole frame (without a transport length prefix).
    ///
    /// Metadata and data are slices of `bytes`; nothing is copied.
    pub fn decode(bytes: Bytes) -> Result<Frame, DecodeError> {
        codec::decode(bytes)
    }
}
