//! The 24-bit frame length prefix that stream transports (TCP) put before every frame.
//!
//! Protocol.md, "Framing Protocol Usage": a transport that does not preserve message boundaries
//! prepends each frame with its length, an unsigned 24-bit big-endian integer that excludes
//! itself. Message transports (WebSocket) do not, which is why this layer is separate from
//! [`Frame`].
//!
//! Writing is [`encode_frame`]. Reading is a [`LengthDelimited`] splitter fed from a read
//! buffer: it hands back one whole frame at a time, `Ok(None)` while the frame is still
//! incomplete (consuming nothing, so the caller just reads more and calls again), and an error
//! as soon as the prefix alone shows the frame is unacceptable: before a single byte of it is
//! buffered on its behalf.
//!
//! ```
//! use bytes::BytesMut;
//! use weft::frame::length::{self, LengthDelimited};
//! use weft::frame::{Cancel, Frame, RequestN};
//!
//! let mut wire = BytesMut::new();
//! length::encode_frame(&Frame::RequestN(RequestN { stream_id: 1, n: 8 }), &mut wire);
//! length::encode_frame(&Frame::Cancel(Cancel { stream_id: 1 }), &mut wire);
//! assert_eq!(&wire[..3], &[0, 0, 10]); // REQUEST_N: 6-byte header + 4-byte n
//!
//! let framing = LengthDelimited::new(64 * 1024);
//! // Bytes arrive in pieces; a partial frame is left where it is.
//! let mut rbuf = BytesMut::from(&wire[..5]);
//! assert_eq!(framing.decode_frame(&mut rbuf).unwrap(), None);
//! assert_eq!(rbuf.len(), 5);
//! rbuf.extend_from_slice(&wire[5..]);
//! assert_eq!(framing.decode_frame(&mut rbuf).unwrap(), Some(Frame::RequestN(RequestN { stream_id: 1, n: 8 })));
//! assert_eq!(framing.decode_frame(&mut rbuf).unwrap(), Some(Frame::Cancel(Cancel { stream_id: 1 })));
//! assert!(rbuf.is_empty());
//!
//! // A declared length over the limit is refused from the prefix alone.
//! let mut hostile = BytesMut::from(&[0xFF, 0xFF, 0xFF][..]);
//! assert!(framing.decode(&mut hostile).is_err());
//! ```

use super::{DecodeError, DecodeErrorKind, Frame, HEADER_SIZE, MAX_FRAME_SIZE};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the length prefix.
pub const PREFIX_SIZE: usize = 3;

/// Appends `frame` with its 24-bit length prefix.
///
/// A frame longer than [`MAX_FRAME_SIZE`] cannot be described by the prefix; producing one is the
/// caller's bug (the connection fragments payloads to its maximum frame size). Like
/// [`Frame::encode`], this does not panic on it: the length is masked to 24 bits, and the peer
/// will see a framing error.
pub fn encode_frame<B: BufMut>(frame: &Frame, buf: &mut B) {
    let len = (frame.encoded_len() & MAX_FRAME_SIZE) as u32;
    buf.put_slice(&len.to_be_bytes()[1..]);
    frame.encode(buf);
}

/// Reserves a prefix at the end of `buf` for a frame written after it, in place; returns where
/// the prefix starts, for [`seal`].
#[inline]
pub(crate) fn begin(buf: &mut BytesMut) -> usize {
    begin_with(buf, 0)
}

/// [`begin`], with `extra` more bytes reserved after the prefix at once (a frame's header, to
/// fill in later): one write instead of two, for what every message does.
#[inline(always)]
pub(crate) fn begin_with(buf: &mut BytesMut, extra: usize) -> usize {
    let start = buf.len();
    buf.put_bytes(0, PREFIX_SIZE + extra);
    start
}

/// Fills in the prefix [`begin`] reserved at `start`, for the frame written after it (up to the
/// end of `buf`); if none was written, takes the prefix back out. A frame longer than the
/// prefix can describe is the caller's bug, as for [`encode_frame`]: the length is masked.
#[inline(always)]
pub(crate) fn seal(buf: &mut BytesMut, start: usize) {
    let len = buf.len() - start - PREFIX_SIZE;
    if len == 0 {
        buf.truncate(start);
        return;
    }
    put_prefix(&mut buf[start..start + PREFIX_SIZE], len);
}

/// [`seal`] for a prefix known to have a frame after it.
#[inline(always)]
pub(crate) fn seal_frame(buf: &mut [u8], start: usize) {
    let len = buf.len() - start - PREFIX_SIZE;
    put_prefix(&mut buf[start..start + PREFIX_SIZE], len);
}

/// Writes the 24-bit length `len` into `prefix`.
#[inline(always)]
fn put_prefix(prefix: &mut [u8], len: usize) {
    let [_, a, b, c] = ((len & MAX_FRAME_SIZE) as u32).to_be_bytes();
    prefix[..PREFIX_SIZE].copy_from_slice(&[a, b, c]);
}

/// The number of bytes [`encode_frame`] writes for `frame`: the prefix and the frame.
pub fn encoded_len(frame: &Frame) -> usize {
    PREFIX_SIZE + frame.encoded_len()
}

/// The frame length a 3-byte prefix declares.
fn prefix_len(prefix: &[u8]) -> usize {
    usize::from(prefix[0]) << 16 | usize::from(prefix[1]) << 8 | usize::from(prefix[2])
}

/// Splits length-prefixed frames off a byte buffer.
#[derive(Clone, Debug)]
pub struct LengthDelimited {
    max_frame_size: usize,
}

impl LengthDelimited {
    /// A splitter that refuses frames longer than `max_frame_size` (capped at
    /// [`super::MAX_FRAME_SIZE`]) before buffering them.
    pub fn new(max_frame_size: usize) -> Self {
        LengthDelimited { max_frame_size: max_frame_size.min(super::MAX_FRAME_SIZE) }
    }

    /// The configured maximum.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Takes one whole frame's bytes (without the prefix) off the front of `src`.
    /// `Ok(None)`: not enough bytes yet; `src` is untouched. An over-long declared length is an
    /// error before anything is reserved.
    ///
    /// Errors, both raised from the 3 prefix bytes alone and leaving `src` untouched:
    /// - [`DecodeErrorKind::TooLarge`]: the declared length exceeds [`Self::max_frame_size`];
    /// - [`DecodeErrorKind::InvalidValue`] for field `frame length`: the declared length is
    ///   shorter than the 6-byte frame header, so it cannot hold a frame.
    ///
    /// Either way the byte stream can no longer be split into frames, and the connection must
    /// close. Neither error knows the frame type or stream.
    ///
    /// The returned frame is split off `src` without copying. Reserving room for the rest of an
    /// incomplete frame is left to the caller, who knows its read strategy.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let Some(prefix) = src.get(..PREFIX_SIZE) else { return Ok(None) };
        let len = prefix_len(prefix);
        let error = |kind| DecodeError { frame_type: None, stream_id: None, kind, ignore: false };
        if len > self.max_frame_size {
            return Err(error(DecodeErrorKind::TooLarge { declared: len, max: self.max_frame_size }));
        }
        if len < HEADER_SIZE {
            return Err(error(DecodeErrorKind::InvalidValue { field: "frame length", value: len as u64 }));
        }
        if src.len() < PREFIX_SIZE + len {
            return Ok(None);
        }
        src.advance(PREFIX_SIZE);
        Ok(Some(src.split_to(len).freeze()))
    }

    /// Takes every whole frame at the front of `src` off at once, for [`Frames`] to split:
    /// one split of the read buffer per read rather than per frame. It stops at a partial
    /// frame, and before a prefix that [`Self::decode`] refuses, so that calling that next
    /// finds the partial frame (`Ok(None)`) or the error.
    pub fn decode_all(&self, src: &mut BytesMut) -> Frames {
        let mut end = 0;
        while let Some(prefix) = src.get(end..end + PREFIX_SIZE) {
            let len = prefix_len(prefix);
            if len > self.max_frame_size || len < HEADER_SIZE || src.len() < end + PREFIX_SIZE + len {
                break;
            }
            end += PREFIX_SIZE + len;
        }
        Frames(src.split_to(end).freeze())
    }

    /// [`Self::decode`] followed by [`Frame::decode`].
    ///
    /// A frame whose bytes were taken off `src` but failed [`Frame::decode`] is consumed: the
    /// framing is intact, so the caller may carry on with the next frame if the error allows.
    pub fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        self.decode(src)?.map(Frame::decode).transpose()
    }
}

/// Whole frames taken off a buffer by [`LengthDelimited::decode_all`]: each item is one
/// frame's bytes without the prefix, as [`LengthDelimited::decode`] returns them.
#[derive(Debug)]
pub struct Frames(Bytes);

impl Iterator for Frames {
    type Item = Bytes;

    // Inlined: called once a frame, from the driver (compiled in the user's crate).
    #[inline]
    fn next(&mut self) -> Option<Bytes> {
        // Every prefix here was checked by `decode_all`.
        let prefix = self.0.get(..PREFIX_SIZE)?;
        let len = prefix_len(prefix);
        self.0.advance(PREFIX_SIZE);
        Some(self.0.split_to(len.min(self.0.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Cancel, Payload, PayloadFrame};

    fn payload_frame(data: &'static [u8]) -> Frame {
        Frame::Payload(PayloadFrame {
            stream_id: 3,
            follows: false,
            complete: true,
            next: true,
            payload: Payload::data(data),
        })
    }

    #[test]
    fn whole_frames_are_taken_at_once_and_the_rest_is_left_to_decode() {
        let framing = LengthDelimited::new(64);
        let mut buf = BytesMut::new();
        for data in [&b"one"[..], b"two", b"three"] {
            encode_frame(&payload_frame(data), &mut buf);
        }
        let whole = buf.len();
        encode_frame(&payload_frame(b"partial"), &mut buf);
        buf.truncate(whole + 5);
        let frames: Vec<Frame> = framing.decode_all(&mut buf).map(|b| Frame::decode(b).unwrap()).collect();
        assert_eq!(frames, [payload_frame(b"one"), payload_frame(b"two"), payload_frame(b"three")]);
        assert_eq!(buf.len(), 5, "the partial frame stays");
        assert_eq!(framing.decode(&mut buf), Ok(None));
        // A prefix decode refuses stops the run before it, and decode then reports it.
        let mut buf = BytesMut::new();
        encode_frame(&payload_frame(b"ok"), &mut buf);
        buf.put_slice(&[0, 1, 0]);
        buf.put_slice(&[0; 300]);
        assert_eq!(framing.decode_all(&mut buf).count(), 1);
        assert!(matches!(framing.decode(&mut buf), Err(DecodeError { kind: DecodeErrorKind::TooLarge { .. }, .. })));
        let mut empty = BytesMut::new();
        assert_eq!(framing.decode_all(&mut empty).count(), 0);
    }

    #[test]
    fn prefix_is_big_endian_length_without_itself() {
        let frame = payload_frame(b"hello");
        let mut buf = BytesMut::new();
        encode_frame(&frame, &mut buf);
        assert_eq!(&buf[..3], &[0, 0, 11]);
        assert_eq!(buf.len(), encoded_len(&frame));
    }

    #[test]
    fn partial_input_is_left_alone() {
        let mut wire = BytesMut::new();
        encode_frame(&payload_frame(b"abc"), &mut wire);
        let framing = LengthDelimited::new(MAX_FRAME_SIZE);
        for cut in 0..wire.len() {
            let mut src = BytesMut::from(&wire[..cut]);
            assert_eq!(framing.decode(&mut src), Ok(None), "prefix of {cut} bytes");
            assert_eq!(&src[..], &wire[..cut]);
        }
    }

    #[test]
    fn frames_back_to_back_split_exactly() {
        let mut wire = BytesMut::new();
        encode_frame(&payload_frame(b"one"), &mut wire);
        encode_frame(&Frame::Cancel(Cancel { stream_id: 3 }), &mut wire);
        wire.extend_from_slice(&[0, 0]); // the start of a third frame
        let framing = LengthDelimited::new(1024);
        assert_eq!(framing.decode_frame(&mut wire).unwrap(), Some(payload_frame(b"one")));
        assert_eq!(framing.decode_frame(&mut wire).unwrap(), Some(Frame::Cancel(Cancel { stream_id: 3 })));
        assert_eq!(framing.decode_frame(&mut wire).unwrap(), None);
        assert_eq!(&wire[..], &[0, 0]);
    }

    #[test]
    fn oversized_length_is_refused_from_the_prefix_alone() {
        let framing = LengthDelimited::new(100);
        let mut src = BytesMut::from(&[0x00, 0x00, 101][..]);
        let err = framing.decode(&mut src).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooLarge { declared: 101, max: 100 });
        assert_eq!(src.len(), 3, "nothing consumed");
        assert_eq!(src.capacity(), 3, "nothing reserved");
        // Exactly the limit is fine.
        let mut src = BytesMut::from(&[0x00, 0x00, 100][..]);
        assert_eq!(framing.decode(&mut src), Ok(None));
    }

    #[test]
    fn length_shorter_than_a_header_is_refused() {
        let framing = LengthDelimited::new(100);
        for len in 0..HEADER_SIZE as u8 {
            let mut src = BytesMut::from(&[0, 0, len][..]);
            let err = framing.decode(&mut src).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::InvalidValue { field: "frame length", value: u64::from(len) });
        }
    }

    #[test]
    fn maximum_is_capped_at_the_protocol_limit() {
        assert_eq!(LengthDelimited::new(usize::MAX).max_frame_size(), MAX_FRAME_SIZE);
        assert_eq!(LengthDelimited::new(10).max_frame_size(), 10);
    }
}
