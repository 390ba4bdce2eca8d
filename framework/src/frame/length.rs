//! The 24-bit frame length prefix that stream transports (TCP) put before every frame.
//! (STUB: the frame-layer helper fills this in; the signatures are the contract.)

use super::{DecodeError, Frame};
use bytes::{BufMut, Bytes, BytesMut};

/// Size of the length prefix.
pub const PREFIX_SIZE: usize = 3;

/// Appends `frame` with its 24-bit length prefix.
pub fn encode_frame<B: BufMut>(_frame: &Frame, _buf: &mut B) {
    todo!()
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
    pub fn decode(&self, _src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        todo!()
    }

    /// [`Self::decode`] followed by [`Frame::decode`].
    pub fn decode_frame(&self, _src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        todo!()
    }
}
