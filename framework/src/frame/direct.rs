//! Frames written without building a [`Frame`]: a stream's messages and requests, the frames
//! a busy connection writes most, assembled straight into the caller's write buffer (and a
//! message's data encoded there in place). The bytes are those [`Frame::encode`] writes; a
//! stream transport's framing (the length prefix, [`super::length`]) goes around them.
//! Crate-private: these are the runtime's fast paths, not a promise.

#[cfg(doc)]
use super::Frame;
use super::{HEADER_SIZE, MAX_FRAME_SIZE};
use bytes::{BufMut, Bytes, BytesMut};

/// The size of a metadata length field.
const METADATA_LENGTH_SIZE: usize = 3;

/// Writes a PAYLOAD frame carrying one whole message (N, and C if `complete`; no F) on
/// `stream_id`: the bytes [`Frame::encode`] writes for that [`Frame::Payload`], without
/// building the frame. A stream's messages are written this way,
/// so the header is assembled once and the payload copied once. Metadata longer than a 24-bit
/// length is cut, as the frame encoder cuts it.
pub(crate) fn encode_message(stream_id: u32, complete: bool, metadata: Option<&[u8]>, data: &[u8], buf: &mut BytesMut) {
    use super::flags::{COMPLETE, NEXT};
    let flags = NEXT | if complete { COMPLETE } else { 0 };
    encode_whole(super::FrameType::Payload, stream_id, flags, None, metadata, data, buf);
}

/// Starts a PAYLOAD frame whose data is written after it, in place: appends room for its
/// header and returns where the frame starts, for [`finish_message`]. The data can then be
/// encoded straight into `buf`, so a message is neither built apart nor copied. (The runtime
/// reserves the header with its framing's prefix, in one write: `length::begin_with`.)
#[cfg(test)]
pub(crate) fn begin_message(buf: &mut BytesMut) -> usize {
    let start = buf.len();
    buf.put_bytes(0, HEADER_SIZE);
    start
}

/// Fills in the head left (zeroed) at the start of `frame`, which holds that head and
/// the message's data (N, and C if `complete`; no metadata, no F). Data longer than a frame can
/// hold is the caller's bug, as for `frame::length::encode_frame`.
#[inline(always)]
pub(crate) fn finish_message(frame: &mut [u8], stream_id: u32, complete: bool, metadata: bool) {
    use super::flags::{COMPLETE, METADATA, NEXT};
    let flags = NEXT | if complete { COMPLETE } else { 0 } | if metadata { METADATA } else { 0 };
    put_head(frame, super::FrameType::Payload, stream_id, flags);
}

/// Appends a message's body as a PAYLOAD frame carries it after its header: with metadata, its
/// 24-bit length and the metadata, then the data. Returns whether it carries metadata (for
/// [`finish_message`]); empty metadata is none, as [`encode_message`] writes it.
#[inline]
pub(crate) fn put_body(metadata: &[u8], data: &[u8], buf: &mut BytesMut) -> bool {
    if metadata.is_empty() {
        buf.extend_from_slice(data);
        return false;
    }
    let metadata = &metadata[..metadata.len().min(MAX_FRAME_SIZE)];
    buf.reserve(METADATA_LENGTH_SIZE + metadata.len() + data.len());
    buf.put_slice(&(metadata.len() as u32).to_be_bytes()[1..]);
    buf.put_slice(metadata);
    buf.put_slice(data);
    true
}

/// The metadata and the data of a body [`put_body`] wrote (with metadata if `metadata`).
pub(crate) fn split_body(body: &[u8], metadata: bool) -> (Bytes, Bytes) {
    if !metadata || body.len() < METADATA_LENGTH_SIZE {
        return (Bytes::new(), Bytes::copy_from_slice(body));
    }
    let len = (usize::from(body[0]) << 16 | usize::from(body[1]) << 8 | usize::from(body[2]))
        .min(body.len() - METADATA_LENGTH_SIZE);
    let (metadata, data) = body[METADATA_LENGTH_SIZE..].split_at(len);
    (Bytes::copy_from_slice(metadata), Bytes::copy_from_slice(data))
}

/// Writes a frame's header into the first [`HEADER_SIZE`] bytes of `head`.
#[inline(always)]
fn put_head(head: &mut [u8], frame_type: super::FrameType, stream_id: u32, flags: u16) {
    let type_and_flags = (u16::from(frame_type as u8) << 10) | flags;
    head[..4].copy_from_slice(&(stream_id & super::MAX_U31).to_be_bytes());
    head[4..HEADER_SIZE].copy_from_slice(&type_and_flags.to_be_bytes());
}

/// Sets (C) on a PAYLOAD frame [`finish_message`] wrote: the message turned out to be its
/// stream's last.
pub(crate) fn complete_message(frame: &mut [u8]) {
    // The flags' low byte is the header's last.
    frame[HEADER_SIZE - 1] |= super::flags::COMPLETE as u8;
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

/// Writes a whole (unfragmented) request frame on `stream_id`, with metadata (M, even when
/// empty: a Weft request always carries its route), the bytes [`Frame::encode`] writes for the
/// same [`Frame`], without building it: requests go out this
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

/// The one writer behind [`encode_message`] and [`encode_request`]: header (M added
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
    let len = HEADER_SIZE + extra + metadata.map_or(0, |m| METADATA_LENGTH_SIZE + m.len()) + data.len();
    let flags = flags | if metadata.is_some() { super::flags::METADATA } else { 0 };
    let mut head = [0u8; HEADER_SIZE + 4 + METADATA_LENGTH_SIZE];
    put_head(&mut head, frame_type, stream_id, flags);
    let mut head_len = HEADER_SIZE;
    if let Some(n) = initial_n {
        head[head_len..head_len + 4].copy_from_slice(&(n & super::MAX_U31).to_be_bytes());
        head_len += 4;
    }
    if let Some(m) = metadata {
        head[head_len..head_len + METADATA_LENGTH_SIZE].copy_from_slice(&(m.len() as u32).to_be_bytes()[1..]);
        head_len += METADATA_LENGTH_SIZE;
    }
    buf.reserve(len);
    buf.put_slice(&head[..head_len]);
    if let Some(m) = metadata {
        buf.put_slice(m);
    }
    buf.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::length;
    use crate::frame::{Frame, Payload, PayloadFrame};

    #[test]
    fn a_message_begun_and_finished_in_place_is_a_whole_frame() {
        use bytes::BufMut;
        let mut wire = BytesMut::new();
        let start = begin_message(&mut wire);
        wire.put_slice(b"hello");
        finish_message(&mut wire[start..], 5, false, false);
        let frame = Frame::decode(wire.freeze()).ok();
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
                        frame.encode(&mut expected);
                        direct(&mut got);
                        assert_eq!(got, expected, "{frame:?}");
                        // And framed in place as `encode_frame` frames it.
                        let (mut framed, mut in_place) = (BytesMut::new(), BytesMut::new());
                        length::encode_frame(&frame, &mut framed);
                        let start = length::begin(&mut in_place);
                        direct(&mut in_place);
                        length::seal(&mut in_place, start);
                        assert_eq!(in_place, framed);
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

    #[test]
    fn a_body_written_in_place_with_or_without_metadata_is_the_frame_encode_message_writes() {
        for (metadata, data) in [(&b""[..], &b"data"[..]), (b"meta", b"data"), (b"m", b""), (b"", b"")] {
            for complete in [false, true] {
                let mut in_place = BytesMut::new();
                in_place.put_bytes(0, HEADER_SIZE);
                let has = put_body(metadata, data, &mut in_place);
                assert_eq!(has, !metadata.is_empty());
                assert_eq!(
                    split_body(&in_place[HEADER_SIZE..], has),
                    (Bytes::copy_from_slice(metadata), Bytes::copy_from_slice(data))
                );
                finish_message(&mut in_place, 9, complete, has);
                let mut expected = BytesMut::new();
                encode_message(9, complete, (!metadata.is_empty()).then_some(metadata), data, &mut expected);
                assert_eq!(in_place, expected, "metadata {metadata:?}, data {data:?}");
            }
        }
    }
}
