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
/// A codec names its encoding with [`DataMime`], which every codec implements too: a generated
/// client announces it in SETUP, and a server answers a call of a generated method only on a
/// connection whose SETUP announced it (see [`DataMime`] for what matches).
///
/// A codec writes a message where the runtime says: behind its frame's header in the
/// connection's write buffer (a generated server's answers and stream messages, so that
/// nothing is built apart or copied), or into a buffer shared by a stream's or a thread's
/// messages, from which the runtime splits it off.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use weft::{Codec, CodecError, DataMime};
///
/// /// Messages as UTF-8 text.
/// struct Utf8Codec;
///
/// impl DataMime for Utf8Codec {
///     const MIME: &'static str = "text/plain";
/// }
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
pub trait Codec<T>: DataMime + 'static {
    /// Appends one message's encoding to `out`. After an error, whatever was appended is
    /// dropped: nothing of a message that failed to encode reaches the wire.
    fn encode(message: T, out: &mut BytesMut) -> Result<(), CodecError>;

    /// Decodes payload data into one message.
    fn decode(data: Bytes) -> Result<T, CodecError>;
}

/// The data MIME type of a codec's encoding: what SETUP announces for it.
///
/// A codec is one encoding, whatever messages it encodes, so this is a trait of the codec alone
/// and not of [`Codec<T>`], which requires it. It is what ties a connection to the services it
/// may call:
///
/// - a generated client's `connect` announces its codec's MIME type in SETUP;
/// - a generated client made with `new` over a [`Client`](crate::Client) whose SETUP announced
///   another data MIME type fails every call with
///   [`FAILED_PRECONDITION`](crate::Code::FailedPrecondition) and sends nothing;
/// - a server answers a request for a method of a generated service, on a connection whose
///   SETUP announced another data MIME type, with an ERROR saying so (FAILED_PRECONDITION);
///   the connection and its other calls go on. Hand-written handlers
///   ([`ServerBuilder::add_handler`](crate::ServerBuilder::add_handler)) take any data MIME
///   type.
///
/// Two MIME types match when their `type/subtype` is the same without regard to case;
/// parameters (`; charset=…`) are ignored. The protobuf names in use,
/// `application/vnd.google.protobuf` (RSocket's well-known name, which Weft announces),
/// `application/protobuf` and `application/x-protobuf`, all match one another.
///
/// ```
/// use weft::{BytesCodec, DataMime, ProstCodec};
///
/// assert_eq!(ProstCodec::MIME, "application/vnd.google.protobuf");
/// assert_eq!(BytesCodec::MIME, "application/octet-stream");
/// ```
#[diagnostic::on_unimplemented(
    message = "the codec `{Self}` does not name its data MIME type",
    label = "a codec implements `weft::DataMime` too",
    note = "write `impl weft::DataMime for {Self} {{ const MIME: &'static str = \"type/subtype\"; }}`, \
            naming the encoding that SETUP announces for it"
)]
pub trait DataMime {
    /// The MIME type, e.g. `application/json`.
    const MIME: &'static str;
}

/// The protobuf names in use, which all name one encoding: RSocket's well-known name first.
const PROTOBUF: [&str; 3] = [crate::DEFAULT_DATA_MIME, "application/protobuf", "application/x-protobuf"];

/// Whether a connection that announced `announced` in SETUP carries the data of a codec whose
/// [`DataMime::MIME`] is `codec` (see [`DataMime`] for the rule).
pub(crate) fn speaks(codec: &str, announced: &str) -> bool {
    // `type/subtype`, without parameters or the spaces around them.
    fn essence(mime: &str) -> &str {
        mime.split(';').next().unwrap_or_default().trim()
    }
    let (codec, announced) = (essence(codec), essence(announced));
    let protobuf = |mime: &str| PROTOBUF.iter().any(|p| p.eq_ignore_ascii_case(mime));
    codec.eq_ignore_ascii_case(announced) || (protobuf(codec) && protobuf(announced))
}

/// The default codec: protobuf through [`prost::Message`].
///
/// Derive the messages with `#[derive(Clone, PartialEq, prost::Message)]`, or generate them
/// from `.proto` files with prost-build. On the wire this is
/// `application/vnd.google.protobuf`, so any protobuf-speaking RSocket peer can read it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProstCodec;

impl DataMime for ProstCodec {
    const MIME: &'static str = crate::DEFAULT_DATA_MIME;
}

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
///
/// Its data MIME type is `application/octet-stream`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl DataMime for BytesCodec {
    const MIME: &'static str = "application/octet-stream";
}

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

    impl DataMime for HalfThenFail {
        const MIME: &'static str = "application/octet-stream";
    }

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
    fn data_mime_types_match_by_essence_and_protobuf_names_match_one_another() {
        let octets = BytesCodec::MIME;
        assert!(speaks(octets, "application/octet-stream"));
        assert!(speaks(octets, "Application/Octet-Stream"), "case does not matter");
        assert!(speaks(octets, " application/octet-stream ; x=y"), "nor parameters");
        assert!(!speaks(octets, ProstCodec::MIME));
        assert!(!speaks(octets, ""));
        assert!(!speaks(octets, "application/octet-streams"));
        for alias in ["application/vnd.google.protobuf", "application/protobuf", "APPLICATION/X-PROTOBUF"] {
            assert!(speaks(ProstCodec::MIME, alias), "{alias}");
            assert!(speaks("application/x-protobuf", alias), "{alias}: the aliases match one another");
            assert!(!speaks(octets, alias), "{alias}");
        }
        assert!(!speaks(ProstCodec::MIME, "application/json"));
        assert!(!speaks("application/json", "application/protobuf"));
    }

    #[test]
    fn a_message_that_fails_to_encode_leaves_nothing_in_the_arena() {
        let mut arena = Arena::default();
        assert!(arena.encode(HalfThenFail::encode, Bytes::from_static(b"bad message")).is_err());
        let next = arena.encode(HalfThenFail::encode, Bytes::from_static(b"good")).unwrap();
        assert_eq!(next, "good");
    }
}
