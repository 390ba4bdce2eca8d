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

/// Writes a PAYLOAD frame carrying one whole message (N, and C if `complete`; no F) on
/// `stream_id`, with its prefix: the bytes [`encode_frame`] writes for that
/// [`Frame::Payload`], without building the frame. A stream's messages are written this way,
/// so the header is assembled once and the payload copied once. Metadata longer than a 24-bit
/// length is cut, as the frame encoder cuts it.
pub(crate) fn encode_message(stream_id: u32, complete: bool, metadata: Option<&[u8]>, data: &[u8], buf: &mut BytesMut) {
    use super::flags::{COMPLETE, NEXT};
    let flags = NEXT | if complete { COMPLETE } else { 0 };
    encode_whole(super::FrameType::Payload, stream_id, flags, None, metadata, data, buf);
}

/// The bytes before a message's data in a PAYLOAD frame without metadata: the prefix and the
/// frame header.
pub(crate) const MESSAGE_HEAD: usize = PREFIX_SIZE + HEADER_SIZE;

/// Starts a PAYLOAD frame whose data is written after it, in place: appends room for its
/// [`MESSAGE_HEAD`] and returns where the frame starts, for [`finish_message`]. The data can
/// then be encoded straight into `buf`, so a message is neither built apart nor copied.
// Inlined: called once a message, from the driver (compiled in the user's crate).
#[inline]
pub(crate) fn begin_message(buf: &mut BytesMut) -> usize {
    let start = buf.len();
    buf.put_bytes(0, MESSAGE_HEAD);
    start
}

/// Fills in the head [`begin_message`] left at the start of `frame`, which holds that head and
/// the message's data (N, and C if `complete`; no metadata, no F). Data longer than a frame can
/// hold is the caller's bug, as for [`encode_frame`]: the length is masked to 24 bits.
#[inline]
pub(crate) fn finish_message(frame: &mut [u8], stream_id: u32, complete: bool) {
    use super::flags::{COMPLETE, NEXT};
    let flags = NEXT | if complete { COMPLETE } else { 0 };
    put_head(frame, frame.len() - PREFIX_SIZE, super::FrameType::Payload, stream_id, flags);
}

/// Writes a frame's prefix and header, for a frame of `len` bytes (after the prefix), into the
/// first [`MESSAGE_HEAD`] bytes of `head`.
#[inline(always)]
fn put_head(head: &mut [u8], len: usize, frame_type: super::FrameType, stream_id: u32, flags: u16) {
    let type_and_flags = (u16::from(frame_type as u8) << 10) | flags;
    head[..PREFIX_SIZE].copy_from_slice(&((len & MAX_FRAME_SIZE) as u32).to_be_bytes()[1..]);
    head[PREFIX_SIZE..PREFIX_SIZE + 4].copy_from_slice(&(stream_id & super::MAX_U31).to_be_bytes());
    head[PREFIX_SIZE + 4..MESSAGE_HEAD].copy_from_slice(&type_and_flags.to_be_bytes());
}

/// Sets (C) on a PAYLOAD frame [`finish_message`] wrote: the message turned out to be its
/// stream's last.
pub(crate) fn complete_message(frame: &mut [u8]) {
    // The flags' low byte is the header's last.
    frame[MESSAGE_HEAD - 1] |= super::flags::COMPLETE as u8;
}

/// What a request frame carries before its payload, for [`encode_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestHead {
    /// REQUEST_RESPONSE.
    Response,
    /// REQUEST_FNF.
    FireAndForget,
    /// REQUEST_STREAM with its initial request n.
    Stream {
        /// Initial credit.
        initial_n: u32,
    },
    /// REQUEST_CHANNEL with its initial request n, and C if the requester sends nothing more.
    Channel {
        /// Initial credit.
        initial_n: u32,
        /// (C): the request is the requester's only message.
        complete: bool,
    },
}

/// Writes a whole (unfragmented) request frame on `stream_id`, with its prefix and with
/// metadata (M, even when empty: a Weft request always carries its route), the bytes
/// [`encode_frame`] writes for the same [`Frame`], without building it: requests go out this
/// way, as messages do with [`encode_message`]. Metadata longer than a 24-bit length is cut.
pub(crate) fn encode_request(head: RequestHead, stream_id: u32, metadata: &[u8], data: &[u8], buf: &mut BytesMut) {
    use super::FrameType;
    let (frame_type, flags, initial_n) = match head {
        RequestHead::Response => (FrameType::RequestResponse, 0, None),
        RequestHead::FireAndForget => (FrameType::RequestFnf, 0, None),
        RequestHead::Stream { initial_n } => (FrameType::RequestStream, 0, Some(initial_n)),
        RequestHead::Channel { initial_n, complete } => {
            (FrameType::RequestChannel, if complete { super::flags::COMPLETE } else { 0 }, Some(initial_n))
        }
    };
    encode_whole(frame_type, stream_id, flags, initial_n, Some(metadata), data, buf);
}

/// The one writer behind [`encode_message`] and [`encode_request`]: prefix, header (M added
/// when there is metadata), the initial request n if any, the metadata's length and the
/// metadata, the data. Always inlined, so that each caller's constant parts (no initial
/// request n for a message) fold away.
#[inline(always)]
fn encode_whole(
    frame_type: super::FrameType,
    stream_id: u32,
    flags: u16,
    initial_n: Option<u32>,
    metadata: Option<&[u8]>,
    data: &[u8],
    buf: &mut BytesMut,
) {
    // A 24-bit length, like the frame's own.
    let metadata = metadata.map(|m| &m[..m.len().min(MAX_FRAME_SIZE)]);
    let extra = if initial_n.is_some() { 4 } else { 0 };
    let len = HEADER_SIZE + extra + metadata.map_or(0, |m| PREFIX_SIZE + m.len()) + data.len();
    let flags = flags | if metadata.is_some() { super::flags::METADATA } else { 0 };
    let mut head = [0u8; MESSAGE_HEAD + 4 + PREFIX_SIZE];
    put_head(&mut head, len, frame_type, stream_id, flags);
    let mut head_len = MESSAGE_HEAD;
    if let Some(n) = initial_n {
        head[head_len..head_len + 4].copy_from_slice(&(n & super::MAX_U31).to_be_bytes());
        head_len += 4;
    }
    if let Some(m) = metadata {
        head[head_len..head_len + PREFIX_SIZE].copy_from_slice(&(m.len() as u32).to_be_bytes()[1..]);
        head_len += PREFIX_SIZE;
    }
    buf.reserve(PREFIX_SIZE + len);
    buf.put_slice(&head[..head_len]);
    if let Some(m) = metadata {
        buf.put_slice(m);
    }
    buf.put_slice(data);
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
    fn a_message_is_written_as_its_payload_frame_would_be() {
        /// Stream id, complete, metadata, data.
        type Case<'a> = (u32, bool, Option<&'a [u8]>, &'a [u8]);
        let cases: [Case<'_>; 5] = [
            (1, false, None, b"hello"),
            (3, true, None, b""),
            (0x7FFF_FFFF, true, Some(b"meta"), b"data"),
            (8, false, Some(b""), b"x"),
            (u32::MAX, false, None, &[0x5a; 300]),
        ];
        for (id, complete, metadata, data) in cases {
            let frame = Frame::Payload(PayloadFrame {
                stream_id: id,
                follows: false,
                complete,
                next: true,
                payload: Payload { metadata: metadata.map(Bytes::copy_from_slice), data: Bytes::copy_from_slice(data) },
            });
            let (mut direct, mut framed) = (BytesMut::new(), BytesMut::new());
            encode_message(id, complete, metadata, data, &mut direct);
            encode_frame(&frame, &mut framed);
            assert_eq!(direct, framed, "stream {id}, complete {complete}, metadata {metadata:?}");
        }
    }

    #[test]
    fn a_request_is_written_as_its_frame_would_be() {
        use crate::frame::{Request, RequestChannel, RequestStream};
        let heads = [
            RequestHead::Response,
            RequestHead::FireAndForget,
            RequestHead::Stream { initial_n: 256 },
            RequestHead::Stream { initial_n: 0x7FFF_FFFF },
            RequestHead::Channel { initial_n: 8, complete: false },
            RequestHead::Channel { initial_n: 1, complete: true },
        ];
        let bodies: [(&[u8], &[u8]); 3] = [(b"", b""), (b"\xFE\0\0\x06\x05a.B/C", b"data"), (b"m", &[0x5a; 300])];
        for (i, head) in heads.into_iter().enumerate() {
            for (metadata, data) in bodies {
                let id = 2 * i as u32 + 1;
                let payload =
                    Payload { metadata: Some(Bytes::copy_from_slice(metadata)), data: Bytes::copy_from_slice(data) };
                let frame = match head {
                    RequestHead::Response => Frame::RequestResponse(Request { stream_id: id, follows: false, payload }),
                    RequestHead::FireAndForget => Frame::RequestFnf(Request { stream_id: id, follows: false, payload }),
                    RequestHead::Stream { initial_n } => {
                        Frame::RequestStream(RequestStream { stream_id: id, follows: false, initial_n, payload })
                    }
                    RequestHead::Channel { initial_n, complete } => Frame::RequestChannel(RequestChannel {
                        stream_id: id,
                        follows: false,
                        complete,
                        initial_n,
                        payload,
                    }),
                };
                let (mut direct, mut framed) = (BytesMut::new(), BytesMut::new());
                encode_request(head, id, metadata, data, &mut direct);
                encode_frame(&frame, &mut framed);
                assert_eq!(direct, framed, "{head:?}, metadata {metadata:?}");
            }
        }
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

    #[test]
    fn a_message_begun_and_finished_in_place_is_a_whole_frame() {
        use bytes::BufMut;
        let mut wire = BytesMut::new();
        let start = begin_message(&mut wire);
        wire.put_slice(b"hello");
        finish_message(&mut wire[start..], 5, false);
        let frame = LengthDelimited::new(1024).decode_frame(&mut wire).unwrap();
        let expected = PayloadFrame {
            stream_id: 5,
            follows: false,
            complete: false,
            next: true,
            payload: Payload::data(&b"hello"[..]),
        };
        assert_eq!(frame, Some(Frame::Payload(expected)));
    }

    /// The writers that skip building a `Frame` write what `encode_frame` writes, for every
    /// kind they write, with and without metadata, at sizes around the length fields' bytes.
    #[test]
    fn the_direct_writers_write_what_encode_frame_writes() {
        use crate::frame::{Request, RequestChannel, RequestStream};
        let sizes = [0usize, 1, 255, 256, 65_535, 65_536, 70_000];
        let bytes = |n: usize| Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>());
        for &stream_id in &[1u32, 2, 0x7FFF_FFFF] {
            for &md in &sizes {
                for &data in &sizes {
                    let payload = Payload { metadata: Some(bytes(md)), data: bytes(data) };
                    let same = |frame: Frame, direct: &dyn Fn(&mut BytesMut)| {
                        let (mut expected, mut got) = (BytesMut::new(), BytesMut::new());
                        encode_frame(&frame, &mut expected);
                        direct(&mut got);
                        assert_eq!(got, expected, "{frame:?}");
                    };
                    for complete in [false, true] {
                        let p =
                            PayloadFrame { stream_id, follows: false, complete, next: true, payload: payload.clone() };
                        same(Frame::Payload(p), &|out| {
                            encode_message(stream_id, complete, Some(&bytes(md)), &bytes(data), out)
                        });
                        let bare = Payload { metadata: None, data: bytes(data) };
                        let p = PayloadFrame { stream_id, follows: false, complete, next: true, payload: bare };
                        same(Frame::Payload(p), &|out| encode_message(stream_id, complete, None, &bytes(data), out));
                        let r = RequestChannel {
                            stream_id,
                            follows: false,
                            complete,
                            initial_n: 7,
                            payload: payload.clone(),
                        };
                        let head = RequestHead::Channel { initial_n: 7, complete };
                        same(Frame::RequestChannel(r), &|out| {
                            encode_request(head, stream_id, &bytes(md), &bytes(data), out)
                        });
                    }
                    let r = Request { stream_id, follows: false, payload: payload.clone() };
                    same(Frame::RequestResponse(r.clone()), &|out| {
                        encode_request(RequestHead::Response, stream_id, &bytes(md), &bytes(data), out)
                    });
                    same(Frame::RequestFnf(r), &|out| {
                        encode_request(RequestHead::FireAndForget, stream_id, &bytes(md), &bytes(data), out)
                    });
                    let r = RequestStream { stream_id, follows: false, initial_n: 9, payload };
                    same(Frame::RequestStream(r), &|out| {
                        encode_request(RequestHead::Stream { initial_n: 9 }, stream_id, &bytes(md), &bytes(data), out)
                    });
                }
            }
        }
    }
}
