//! Codecs: how messages become payload data and back.

use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// Why a message could not be encoded or decoded, in words (shown in the resulting [`Status`]).
///
/// [`Status`]: crate::Status
pub type CodecError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Turns messages of type `T` into payload data and back.
///
/// A codec is a type, not a value: a service picks one with `#[weft::service(codec = Path)]`
/// and uses it for every message of every method. [`ProstCodec`] (protobuf through
/// [`prost::Message`]) is the default; [`BytesCodec`] passes [`Bytes`] through untouched.
///
/// Failures become a [`Status`](crate::Status) chosen by where they happen:
///
/// | failure | side | code |
/// |---|---|---|
/// | request does not decode | server | `INVALID_ARGUMENT` (the caller sent a bad request) |
/// | response does not encode | server | `INTERNAL` |
/// | request does not encode | client | `INTERNAL` (the call is not sent) |
/// | response does not decode | client | `INTERNAL` (the peer broke the contract) |
///
/// ```
/// use bytes::Bytes;
/// use weft::{Codec, CodecError};
///
/// /// Messages as UTF-8 text.
/// struct Utf8Codec;
///
/// impl Codec<String> for Utf8Codec {
///     fn encode(message: String) -> Result<Bytes, CodecError> {
///         Ok(Bytes::from(message))
///     }
///     fn decode(data: Bytes) -> Result<String, CodecError> {
///         Ok(String::from_utf8(data.to_vec())?)
///     }
/// }
///
/// assert_eq!(Utf8Codec::decode(Utf8Codec::encode("hi".to_owned())?)?, "hi");
/// # Ok::<(), CodecError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "the codec `{Self}` cannot encode or decode `{T}`",
    label = "`{T}` is used as a message of this service",
    note = "the default codec, `weft::ProstCodec`, handles types that implement `prost::Message` \
            (write `#[derive(Clone, PartialEq, prost::Message)]` on the message type)",
    note = "`weft::BytesCodec` handles `bytes::Bytes`; choose a codec with `#[weft::service(codec = Path)]`"
)]
pub trait Codec<T>: 'static {
    /// Encodes one message into payload data.
    fn encode(message: T) -> Result<Bytes, CodecError>;

    /// Encodes one message of a stream, with `arena` to write it into: a stream's messages
    /// are encoded into shared buffers rather than one allocation each. The default ignores
    /// `arena` and calls [`encode`](Codec::encode); a codec that writes its output (as
    /// [`ProstCodec`] does) appends the message to `arena` and splits it off with
    /// [`BytesMut::split`], which keeps the rest of the buffer for the next message.
    fn encode_into(message: T, arena: &mut BytesMut) -> Result<Bytes, CodecError> {
        let _ = arena;
        Self::encode(message)
    }

    /// Appends one message's encoding to `out`: the connection's write buffer, where a
    /// generated server writes each message of a response stream right behind its frame's
    /// header, so that nothing is built apart or copied. The default copies what
    /// [`encode`](Codec::encode) returns; a codec that writes its output (as [`ProstCodec`]
    /// does) writes it to `out`. After an error, whatever was appended is dropped.
    fn encode_append(message: T, out: &mut BytesMut) -> Result<(), CodecError> {
        out.extend_from_slice(&Self::encode(message)?);
        Ok(())
    }

    /// Decodes payload data into one message.
    fn decode(data: Bytes) -> Result<T, CodecError>;
}

/// The default codec: protobuf through [`prost::Message`].
///
/// Derive the messages with `#[derive(Clone, PartialEq, prost::Message)]`, or generate them
/// from `.proto` files with prost-build. On the wire this is
/// `application/vnd.google.protobuf`, so any protobuf-speaking RSocket peer can read it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProstCodec;

impl<T: prost::Message + Default + 'static> Codec<T> for ProstCodec {
    fn encode(message: T) -> Result<Bytes, CodecError> {
        Ok(Bytes::from(message.encode_to_vec()))
    }

    fn encode_into(message: T, arena: &mut BytesMut) -> Result<Bytes, CodecError> {
        Self::encode_append(message, arena)?;
        Ok(arena.split().freeze())
    }

    fn encode_append(message: T, out: &mut BytesMut) -> Result<(), CodecError> {
        // `encode` would measure the message to check the room a `BytesMut` always has: it
        // grows as it is written (each put reserves what it writes), so `encode_raw`, which
        // `encode` calls after the check, is all there is to do.
        message.encode_raw(out);
        Ok(())
    }

    fn decode(data: Bytes) -> Result<T, CodecError> {
        Ok(T::decode(data)?)
    }
}

/// A codec for raw bytes: the message *is* the payload data, untouched and uncopied.
///
/// Use it for services whose methods take and return [`Bytes`], e.g. to carry an encoding Weft
/// knows nothing of: `#[weft::service(codec = weft::BytesCodec)]`.
///
/// Uncopied means that a request a server receives is a slice of its connection's read
/// buffer: a method that keeps it beyond the call keeps that whole buffer (see
/// [`Handler`](crate::Handler)), so keep a copy (`Bytes::copy_from_slice`) instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn encode(message: Bytes) -> Result<Bytes, CodecError> {
        Ok(message)
    }

    fn decode(data: Bytes) -> Result<Bytes, CodecError> {
        Ok(data)
    }
}

/// The buffers a stream's messages are encoded into (see [`Codec::encode_into`]).
///
/// It starts empty, so a stream of one message costs one allocation of that message's size,
/// as [`Codec::encode`] would; from the second message on it reserves room for several at a
/// time, doubling up to [`Arena::MAX`]. A buffer is reused once every message split off it has
/// been written and dropped.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    buf: BytesMut,
    next: usize,
}

impl Arena {
    /// The most room reserved ahead.
    const MAX: usize = 8 * 1024;
    /// The most room kept once a message has been split off.
    const KEEP: usize = 8 * Arena::MAX;

    /// Encodes `message` with `encode` (a codec's [`Codec::encode_into`]).
    // Always inlined: `encode` is then a known function, not a pointer (measured: ~30
    // instructions a message when the compiler chose not to).
    #[inline(always)]
    pub(crate) fn encode<T>(
        &mut self,
        encode: fn(T, &mut BytesMut) -> Result<Bytes, CodecError>,
        message: T,
    ) -> Result<Bytes, CodecError> {
        if self.buf.capacity() - self.buf.len() < 64 && self.next > 0 {
            self.buf.reserve(self.next);
        }
        self.next = (self.next * 2).clamp(512, Arena::MAX);
        let encoded = encode(message, &mut self.buf);
        // Only a large message can have grown the buffer past what is kept; what is left of
        // it then is not kept around for small ones (the message itself keeps its part alive
        // while it needs it).
        if matches!(&encoded, Ok(m) if m.len() > Arena::MAX) && self.buf.capacity() - self.buf.len() > Arena::KEEP {
            *self = Arena::default();
        }
        encoded
    }

    /// Encodes the one message of a call (a request/response's request or response) into a
    /// buffer that this thread's calls share, as a stream's messages share theirs: without it,
    /// every call would allocate (and free) a buffer for a message of a few bytes. Falls back
    /// to [`Codec::encode`] if a codec's own encoding encodes another message.
    pub(crate) fn encode_one<C: Codec<T>, T>(message: T) -> Result<Bytes, CodecError> {
        thread_local! {
            static ARENA: RefCell<Arena> = RefCell::default();
        }
        ARENA.with(|arena| match arena.try_borrow_mut() {
            Ok(mut arena) => arena.encode(C::encode_into, message),
            Err(_) => C::encode(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Hello {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn prost_round_trips_and_reports_garbage() {
        let hello = Hello { name: "ada".into() };
        let data = ProstCodec::encode(hello.clone()).unwrap();
        assert_eq!(<ProstCodec as Codec<Hello>>::decode(data).unwrap(), hello);
        let garbage = Bytes::from_static(&[0x0a, 0xff]);
        assert!(<ProstCodec as Codec<Hello>>::decode(garbage).is_err());
    }

    #[test]
    fn bytes_pass_through_without_copying() {
        let data = Bytes::from_static(b"raw");
        let encoded = BytesCodec::encode(data.clone()).unwrap();
        assert_eq!(encoded.as_ptr(), data.as_ptr());
        assert_eq!(BytesCodec::decode(encoded).unwrap(), data);
    }
}
