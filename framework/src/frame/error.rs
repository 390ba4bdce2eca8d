//! Decode errors. (STUB: the frame-layer helper fills this in; the shape below is the contract.)

use super::FrameType;
use std::fmt;

/// A frame that could not be decoded: what was wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The frame type, when the header was readable and the type known.
    pub frame_type: Option<FrameType>,
    /// The stream id, when the header was readable.
    pub stream_id: Option<u32>,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// What was wrong with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame ended inside `field`.
    Truncated {
        /// The field that was cut short.
        field: &'static str,
    },
    /// A declared length runs past the end of the frame.
    LengthOverrun {
        /// The length field.
        field: &'static str,
        /// The declared length.
        declared: usize,
        /// The bytes that were left.
        available: usize,
    },
    /// A declared length is larger than the configured maximum.
    TooLarge {
        /// The declared length.
        declared: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is not valid UTF-8 (or ASCII where the spec requires it).
    InvalidText {
        /// The field.
        field: &'static str,
    },
    /// Stream id 0 on a frame that needs a stream, or non-zero on a connection frame.
    InvalidStreamId {
        /// Whether the frame type requires stream 0.
        expected_zero: bool,
    },
    /// A frame type this implementation does not know.
    UnknownFrameType {
        /// The 6-bit type code.
        code: u8,
        /// The frame's (I)gnore flag: when set, the frame may be skipped.
        ignorable: bool,
    },
    /// A field holds a value the spec forbids (e.g. request N of 0).
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
}

impl DecodeError {
    /// Whether the spec lets a receiver skip this frame: an unknown type with the (I)gnore flag.
    pub fn is_ignorable(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::UnknownFrameType { ignorable: true, .. })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame: {:?}", self)
    }
}

impl std::error::Error for DecodeError {}
