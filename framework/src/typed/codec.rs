//! Codecs: how messages become payload data and back.

use bytes::Bytes;

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

    fn decode(data: Bytes) -> Result<T, CodecError> {
        Ok(T::decode(data)?)
    }
}

/// A codec for raw bytes: the message *is* the payload data, untouched and uncopied.
///
/// Use it for services whose methods take and return [`Bytes`], e.g. to carry an encoding Weft
/// knows nothing of: `#[weft::service(codec = weft::BytesCodec)]`.
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
