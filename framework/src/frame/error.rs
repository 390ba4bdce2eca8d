//! Decode errors: what was wrong with a frame, and where.
//!
//! A [`DecodeError`] carries the frame type and stream id whenever the header could be read, so
//! that the connection can decide whether the damage is confined to one stream (ERROR on that
//! stream) or breaks the connection (ERROR\[CONNECTION_ERROR\] on stream 0), and so that the
//! message it sends names the frame, the field and the stream.

use super::FrameType;
use std::fmt;

/// A frame that could not be decoded: what was wrong and where.
///
/// Its `Display` is one sentence meant for an ERROR frame's data and for logs, for example
/// ``malformed REQUEST_STREAM frame on stream 7: field `initial request n` truncated``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The frame type, when the header was readable and the type known.
    pub frame_type: Option<FrameType>,
    /// The stream id, when the header was readable.
    pub stream_id: Option<u32>,
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// The frame's (I)gnore flag, when the header was readable: the sender said that a
    /// receiver that cannot understand the frame may skip it (Protocol.md, "Handling Ignore
    /// Flag"), which holds for a frame that cannot be read as much as for one of an unknown type.
    pub ignore: bool,
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
    /// Stream id 0 on a frame that needs a stream, or non-zero on a connection frame.
    InvalidStreamId {
        /// Whether the frame type requires stream 0.
        expected_zero: bool,
    },
    /// A frame type this implementation does not know. Whether it may be skipped is the
    /// frame's (I)gnore flag: [`DecodeError::ignore`].
    UnknownFrameType {
        /// The 6-bit type code.
        code: u8,
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
    /// Whether the spec lets a receiver skip this frame: it carried the (I)gnore flag.
    pub fn is_ignorable(&self) -> bool {
        self.ignore
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The adjective says which kind of problem this is before the details do: a frame of a
        // type we do not know is not necessarily malformed, and an oversized one was never read.
        f.write_str(match self.kind {
            DecodeErrorKind::UnknownFrameType { .. } => "unsupported ",
            DecodeErrorKind::TooLarge { .. } => "oversized ",
            _ => "malformed ",
        })?;
        if let Some(ty) = self.frame_type {
            write!(f, "{ty} ")?;
        }
        f.write_str("frame")?;
        if let Some(id) = self.stream_id {
            write!(f, " on stream {id}")?;
        }
        f.write_str(": ")?;
        fmt::Display::fmt(&self.kind, f)?;
        if self.ignore {
            f.write_str(" (IGNORE flag set: the frame may be skipped)")?;
        }
        Ok(())
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeErrorKind::Truncated { field } => write!(f, "field `{field}` truncated"),
            DecodeErrorKind::LengthOverrun { field, declared, available } => {
                write!(f, "field `{field}` declares {declared} bytes but only {available} remain in the frame")
            }
            DecodeErrorKind::TooLarge { declared, max } => {
                write!(f, "declared length {declared} exceeds the maximum frame size of {max} bytes")
            }
            DecodeErrorKind::InvalidStreamId { expected_zero: true } => {
                f.write_str("this frame type belongs to the connection and must use stream 0")
            }
            DecodeErrorKind::InvalidStreamId { expected_zero: false } => {
                f.write_str("this frame type needs a stream, but stream 0 is reserved for the connection")
            }
            DecodeErrorKind::UnknownFrameType { code } => write!(f, "unknown frame type 0x{code:02X}"),
            DecodeErrorKind::InvalidValue { field, value } => write!(f, "field `{field}` has invalid value {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(frame_type: Option<FrameType>, stream_id: Option<u32>, kind: DecodeErrorKind) -> String {
        DecodeError { frame_type, stream_id, kind, ignore: false }.to_string()
    }

    fn ignorable(frame_type: Option<FrameType>, stream_id: Option<u32>, kind: DecodeErrorKind) -> String {
        DecodeError { frame_type, stream_id, kind, ignore: true }.to_string()
    }

    #[test]
    fn display_names_frame_type_field_and_stream() {
        assert_eq!(
            err(Some(FrameType::RequestStream), Some(7), DecodeErrorKind::Truncated { field: "initial request n" }),
            "malformed REQUEST_STREAM frame on stream 7: field `initial request n` truncated"
        );
        assert_eq!(
            err(
                Some(FrameType::Payload),
                Some(3),
                DecodeErrorKind::LengthOverrun { field: "metadata length", declared: 300, available: 12 }
            ),
            "malformed PAYLOAD frame on stream 3: field `metadata length` declares 300 bytes but only 12 remain \
             in the frame"
        );
        assert_eq!(
            err(Some(FrameType::Setup), Some(5), DecodeErrorKind::InvalidStreamId { expected_zero: true }),
            "malformed SETUP frame on stream 5: this frame type belongs to the connection and must use stream 0"
        );
        assert_eq!(
            err(Some(FrameType::RequestN), Some(0), DecodeErrorKind::InvalidStreamId { expected_zero: false }),
            "malformed REQUEST_N frame on stream 0: this frame type needs a stream, but stream 0 is reserved for \
             the connection"
        );
    }

    #[test]
    fn display_without_header() {
        assert_eq!(
            err(None, None, DecodeErrorKind::TooLarge { declared: 100_000, max: 65_536 }),
            "oversized frame: declared length 100000 exceeds the maximum frame size of 65536 bytes"
        );
        assert_eq!(
            ignorable(None, Some(9), DecodeErrorKind::UnknownFrameType { code: 0x1F }),
            "unsupported frame on stream 9: unknown frame type 0x1F (IGNORE flag set: the frame may be skipped)"
        );
        assert_eq!(
            err(None, None, DecodeErrorKind::InvalidValue { field: "frame length", value: 2 }),
            "malformed frame: field `frame length` has invalid value 2"
        );
    }

    #[test]
    fn frames_with_the_ignore_flag_are_ignorable_whatever_was_wrong() {
        let e = |kind, ignore| DecodeError { frame_type: None, stream_id: Some(1), kind, ignore };
        assert!(e(DecodeErrorKind::UnknownFrameType { code: 0x20 }, true).is_ignorable());
        assert!(!e(DecodeErrorKind::UnknownFrameType { code: 0x20 }, false).is_ignorable());
        assert!(e(DecodeErrorKind::Truncated { field: "request n" }, true).is_ignorable());
        assert!(!e(DecodeErrorKind::Truncated { field: "request n" }, false).is_ignorable());
    }
}
