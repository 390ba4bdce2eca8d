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
/// A codec writes a message where the runtime says: behind its frame's header in the
/// connection's write buffer (a generated server's answers and stream messages, so that
/// nothing is built apart or copied), or into a buffer shared by a stream's or a thread's
/// messages, from which the runtime splits it off.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use weft::{Codec, CodecError};
///
/// /// Messages as UTF-8 text.
/// struct Utf8Codec;
///
/// impl Codec<String> for Utf8Codec {
///     fn encode(message: String, out: &mut BytesMut) -> Result<(), CodecError> {
///         out.extend_from_slice(message.as_bytes());
///         Ok(())
///     }
///     fn decode(data: Bytes) -> Result<String, CodecError> {
///         Ok(String::from_utf8(data.to_vec())?)
///     }
/// }
///
/// let mut out = BytesMut::new();
/// Utf8Codec::encode("hi".to_owned(), &mut out)?;
/// assert_eq!(Utf8Codec::decode(out.freeze())?, "hi");
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
    /// Appends one message's encoding to `out`. After an error, whatever was appended is
    /// dropped: nothing of a message that failed to encode reaches the wire.
    fn encode(message: T, out: &mut BytesMut) -> Result<(), CodecError>;

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
    fn encode(message: T, out: &mut BytesMut) -> Result<(), CodecError> {
        // `Message::encode` would measure the message to check the room a `BytesMut` always
        // has: it grows as it is written (each put reserves what it writes), so `encode_raw`,
        // which `encode` calls after the check, is all there is to do.
        message.encode_raw(out);
        Ok(())
    }

    fn decode(data: Bytes) -> Result<T, CodecError> {
        Ok(T::decode(data)?)
    }
}

/// A codec for raw bytes: the message *is* the payload data, untouched.
///
/// Use it for services whose methods take and return [`Bytes`], e.g. to carry an encoding Weft
/// knows nothing of: `#[weft::service(codec = weft::BytesCodec)]`.
///
/// A message sent is copied once, into the connection's buffers, as every message is. A
/// message received is not copied: a request a server receives is a slice of its connection's
/// read buffer, and a method that keeps it beyond the call keeps that whole buffer (see
/// [`Handler`](crate::Handler)), so keep a copy (`Bytes::copy_from_slice`) instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn encode(message: Bytes, out: &mut BytesMut) -> Result<(), CodecError> {
        out.extend_from_slice(&message);
        Ok(())
    }

    fn decode(data: Bytes) -> Result<Bytes, CodecError> {
        Ok(data)
    }
}

/// The buffers a stream's messages are encoded into when they cannot be encoded in place.
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

    /// Encodes `message` with `encode` (a codec's [`Codec::encode`]), and splits it off.
    // Always inlined: `encode` is then a known function, not a pointer (measured: ~30
    // instructions a message when the compiler chose not to).
    #[inline(always)]
    pub(crate) fn encode<T>(
        &mut self,
        encode: fn(T, &mut BytesMut) -> Result<(), CodecError>,
        message: T,
    ) -> Result<Bytes, CodecError> {
        if self.buf.capacity() - self.buf.len() < 64 && self.next > 0 {
            self.buf.reserve(self.next);
        }
        self.next = (self.next * 2).clamp(512, Arena::MAX);
        // The buffer is empty here: every message is split off it, and a failed one cleared.
        let encoded = match encode(message, &mut self.buf) {
            Ok(()) => Ok(self.buf.split().freeze()),
            Err(e) => {
                self.buf.clear();
                Err(e)
            }
        };
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
    /// to a buffer of its own if a codec's own encoding encodes another message.
    pub(crate) fn encode_one<C: Codec<T>, T>(message: T) -> Result<Bytes, CodecError> {
        Arena::encode_one_with(C::encode, message)
    }

    /// [`encode_one`](Arena::encode_one) with a codec's `encode`.
    pub(crate) fn encode_one_with<T>(
        encode: fn(T, &mut BytesMut) -> Result<(), CodecError>,
        message: T,
    ) -> Result<Bytes, CodecError> {
        thread_local! {
            static ARENA: RefCell<Arena> = RefCell::default();
        }
        ARENA.with(|arena| match arena.try_borrow_mut() {
            Ok(mut arena) => arena.encode(encode, message),
            Err(_) => {
                let mut out = BytesMut::new();
                encode(message, &mut out)?;
                Ok(out.freeze())
            }
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
        let data = Arena::encode_one::<ProstCodec, _>(hello.clone()).unwrap();
        assert_eq!(<ProstCodec as Codec<Hello>>::decode(data).unwrap(), hello);
        let garbage = Bytes::from_static(&[0x0a, 0xff]);
        assert!(<ProstCodec as Codec<Hello>>::decode(garbage).is_err());
    }

    #[test]
    fn bytes_pass_through_untouched_and_are_received_without_copying() {
        let data = Bytes::from_static(b"raw");
        let encoded = Arena::encode_one::<BytesCodec, _>(data.clone()).unwrap();
        assert_eq!(encoded, data);
        assert_eq!(BytesCodec::decode(data.clone()).unwrap().as_ptr(), data.as_ptr());
    }

    /// A codec that writes half a message and then fails.
    struct HalfThenFail;

    impl Codec<Bytes> for HalfThenFail {
        fn encode(message: Bytes, out: &mut BytesMut) -> Result<(), CodecError> {
            out.extend_from_slice(&message[..message.len() / 2]);
            if message.starts_with(b"bad") {
                return Err("bad".into());
            }
            out.extend_from_slice(&message[message.len() / 2..]);
            Ok(())
        }

        fn decode(data: Bytes) -> Result<Bytes, CodecError> {
            Ok(data)
        }
    }

    #[test]
    fn a_message_that_fails_to_encode_leaves_nothing_in_the_arena() {
        let mut arena = Arena::default();
        assert!(arena.encode(HalfThenFail::encode, Bytes::from_static(b"bad message")).is_err());
        let next = arena.encode(HalfThenFail::encode, Bytes::from_static(b"good")).unwrap();
        assert_eq!(next, "good");
    }
}
