//! Encoding and decoding of frame bodies. (STUB: the frame-layer helper fills this in.)

use super::{DecodeError, Frame};
use bytes::{BufMut, Bytes};

pub(super) fn encoded_len(_frame: &Frame) -> usize {
    todo!()
}

pub(super) fn encode<B: BufMut>(_frame: &Frame, _buf: &mut B) {
    todo!()
}

pub(super) fn decode(_bytes: Bytes) -> Result<Frame, DecodeError> {
    todo!()
}
