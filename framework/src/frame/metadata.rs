//! Composite metadata and routing metadata (RSocket extensions).
//!
//! Weft puts a [`CompositeMetadata`] block (Extensions/CompositeMetadata.md) in the metadata of
//! every request, announced in SETUP as [`COMPOSITE_METADATA_MIME`]. Its first entry is the route,
//! as [`RoutingMetadata`] (Extensions/Routing.md): `package.Service/Method`.
//!
//! ```text
//! composite entry:  |1| id (7) |                          well-known MIME type, or
//!                   |0| len-1 (7) | MIME type (ASCII) ... MIME type written out
//!                   | content length (24) | content ...
//! routing content:  | tag length (8) | tag (UTF-8) ... | tag length | tag ... |
//! ```
//!
//! ```
//! use weft::frame::metadata::{CompositeMetadata, MimeType, well_known};
//!
//! let mut metadata = CompositeMetadata::with_route("echo.Echo/Unary")?;
//! metadata.push(MimeType::custom("application/x.trace")?, &b"t1"[..])?;
//! let bytes = metadata.to_bytes();
//! assert_eq!(&bytes[..5], &[0xFE, 0, 0, 16, 15]); // routing id | content length | tag length
//!
//! let decoded = CompositeMetadata::decode(bytes)?;
//! assert_eq!(decoded, metadata);
//! assert_eq!(decoded.routing()?.unwrap().route(), Some("echo.Echo/Unary"));
//! assert_eq!(well_known::name(well_known::ROUTING), Some("message/x.rsocket.routing.v0"));
//! # Ok::<(), weft::frame::metadata::MetadataError>(())
//! ```
//!
//! Applications name their entries by string, as gRPC metadata is named: a key is a MIME type
//! ([`MimeType`], re-exported as `weft::MimeType`), checked when it is made, and a
//! well-known type's name is written as its one-byte id. Entries are read back by key with
//! [`CompositeMetadata::get`], which compares meaning rather than form:
//!
//! ```
//! use weft::{CompositeMetadata, MimeType};
//!
//! let mut metadata = CompositeMetadata::default();
//! metadata.push("x-user-id", "42")?; // written out
//! metadata.push("application/json", "{}")?; // well-known: id 0x05
//! metadata.push(MimeType::try_from(String::from("x-tenant"))?, "acme")?; // made at run time
//! let bytes = metadata.to_bytes();
//! assert_eq!(&bytes[..10], b"\x08x-user-id");
//! assert_eq!(bytes[15], 0x85);
//!
//! let decoded = CompositeMetadata::decode(bytes)?;
//! assert_eq!(decoded.get_str("x-user-id"), Some("42"));
//! assert_eq!(decoded.get_str("application/json"), Some("{}"));
//! assert_eq!(decoded.get_str("X-Tenant"), Some("acme"));
//! # Ok::<(), weft::MetadataError>(())
//! ```
//!
//! Decoding keeps every entry in wire order, including MIME types Weft does not know (callers
//! skip them), and keeps the form each MIME type arrived in, id or string, so that re-encoding
//! reproduces the peer's bytes.
//!
//! Encoding never panics. Entries and tags that the wire cannot represent (see
//! [`MimeType::validate`], [`CompositeMetadata::encode`], [`RoutingMetadata::encode`]) are left
//! out; the constructors ([`CompositeMetadata::with_route`], [`CompositeMetadata::push`],
//! [`RoutingMetadata::new`], [`MimeType::custom`]) refuse them up front, so code that builds
//! metadata through them never meets that case.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sealed::Key;
use std::borrow::Cow;
use std::fmt;

/// Well-known MIME type ids (Extensions/WellKnownMimeTypes.md).
///
/// Ids are 7 bits; on the wire a composite metadata entry sets the high bit to mark an id, so
/// [`ROUTING`](well_known::ROUTING) (0x7E) is written `0xFE`.
pub mod well_known {
    /// `application/avro`.
    pub const AVRO: u8 = 0x00;
    /// `application/cbor`.
    pub const CBOR: u8 = 0x01;
    /// `application/graphql`.
    pub const GRAPHQL: u8 = 0x02;
    /// `application/gzip`.
    pub const GZIP: u8 = 0x03;
    /// `application/javascript`.
    pub const JAVASCRIPT: u8 = 0x04;
    /// `application/json`.
    pub const JSON: u8 = 0x05;
    /// `application/octet-stream`.
    pub const OCTET_STREAM: u8 = 0x06;
    /// `application/pdf`.
    pub const PDF: u8 = 0x07;
    /// `application/vnd.apache.thrift.binary`.
    pub const THRIFT: u8 = 0x08;
    /// `application/vnd.google.protobuf`.
    pub const PROTOBUF: u8 = 0x09;
    /// `application/xml`.
    pub const XML: u8 = 0x0A;
    /// `application/zip`.
    pub const ZIP: u8 = 0x0B;
    /// `audio/aac`.
    pub const AUDIO_AAC: u8 = 0x0C;
    /// `audio/mp3`.
    pub const AUDIO_MP3: u8 = 0x0D;
    /// `audio/mp4`.
    pub const AUDIO_MP4: u8 = 0x0E;
    /// `audio/mpeg3`.
    pub const AUDIO_MPEG3: u8 = 0x0F;
    /// `audio/mpeg`.
    pub const AUDIO_MPEG: u8 = 0x10;
    /// `audio/ogg`.
    pub const AUDIO_OGG: u8 = 0x11;
    /// `audio/opus`.
    pub const AUDIO_OPUS: u8 = 0x12;
    /// `audio/vorbis`.
    pub const AUDIO_VORBIS: u8 = 0x13;
    /// `image/bmp`.
    pub const IMAGE_BMP: u8 = 0x14;
    /// `image/gif`.
    pub const IMAGE_GIF: u8 = 0x15;
    /// `image/heic-sequence`.
    pub const IMAGE_HEIC_SEQUENCE: u8 = 0x16;
    /// `image/heic`.
    pub const IMAGE_HEIC: u8 = 0x17;
    /// `image/heif-sequence`.
    pub const IMAGE_HEIF_SEQUENCE: u8 = 0x18;
    /// `image/heif`.
    pub const IMAGE_HEIF: u8 = 0x19;
    /// `image/jpeg`.
    pub const IMAGE_JPEG: u8 = 0x1A;
    /// `image/png`.
    pub const IMAGE_PNG: u8 = 0x1B;
    /// `image/tiff`.
    pub const IMAGE_TIFF: u8 = 0x1C;
    /// `multipart/mixed`.
    pub const MULTIPART_MIXED: u8 = 0x1D;
    /// `text/css`.
    pub const TEXT_CSS: u8 = 0x1E;
    /// `text/csv`.
    pub const TEXT_CSV: u8 = 0x1F;
    /// `text/html`.
    pub const TEXT_HTML: u8 = 0x20;
    /// `text/plain`.
    pub const TEXT_PLAIN: u8 = 0x21;
    /// `text/xml`.
    pub const TEXT_XML: u8 = 0x22;
    /// `video/H264`.
    pub const VIDEO_H264: u8 = 0x23;
    /// `video/H265`.
    pub const VIDEO_H265: u8 = 0x24;
    /// `video/VP8`.
    pub const VIDEO_VP8: u8 = 0x25;
    /// `application/x-hessian`.
    pub const HESSIAN: u8 = 0x26;
    /// `application/x-java-object`.
    pub const JAVA_OBJECT: u8 = 0x27;
    /// `application/cloudevents+json`.
    pub const CLOUDEVENTS_JSON: u8 = 0x28;
    /// `application/x-capnp`.
    pub const CAPNP: u8 = 0x29;
    /// `application/x-flatbuffers`.
    pub const FLATBUFFERS: u8 = 0x2A;
    /// `message/x.rsocket.mime-type.v0` (per-stream data MIME type).
    pub const MIME_TYPE: u8 = 0x7A;
    /// `message/x.rsocket.accept-mime-types.v0`.
    pub const ACCEPT_MIME_TYPES: u8 = 0x7B;
    /// `message/x.rsocket.authentication.v0`.
    pub const AUTHENTICATION: u8 = 0x7C;
    /// `message/x.rsocket.tracing-zipkin.v0`.
    pub const TRACING_ZIPKIN: u8 = 0x7D;
    /// `message/x.rsocket.routing.v0`.
    pub const ROUTING: u8 = 0x7E;
    /// `message/x.rsocket.composite-metadata.v0`.
    pub const COMPOSITE_METADATA: u8 = 0x7F;

    /// Every assigned id with its MIME type, in id order (the spec's table).
    const TABLE: [(u8, &str); 49] = [
        (AVRO, "application/avro"),
        (CBOR, "application/cbor"),
        (GRAPHQL, "application/graphql"),
        (GZIP, "application/gzip"),
        (JAVASCRIPT, "application/javascript"),
        (JSON, "application/json"),
        (OCTET_STREAM, "application/octet-stream"),
        (PDF, "application/pdf"),
        (THRIFT, "application/vnd.apache.thrift.binary"),
        (PROTOBUF, "application/vnd.google.protobuf"),
        (XML, "application/xml"),
        (ZIP, "application/zip"),
        (AUDIO_AAC, "audio/aac"),
        (AUDIO_MP3, "audio/mp3"),
        (AUDIO_MP4, "audio/mp4"),
        (AUDIO_MPEG3, "audio/mpeg3"),
        (AUDIO_MPEG, "audio/mpeg"),
        (AUDIO_OGG, "audio/ogg"),
        (AUDIO_OPUS, "audio/opus"),
        (AUDIO_VORBIS, "audio/vorbis"),
        (IMAGE_BMP, "image/bmp"),
        (IMAGE_GIF, "image/gif"),
        (IMAGE_HEIC_SEQUENCE, "image/heic-sequence"),
        (IMAGE_HEIC, "image/heic"),
        (IMAGE_HEIF_SEQUENCE, "image/heif-sequence"),
        (IMAGE_HEIF, "image/heif"),
        (IMAGE_JPEG, "image/jpeg"),
        (IMAGE_PNG, "image/png"),
        (IMAGE_TIFF, "image/tiff"),
        (MULTIPART_MIXED, "multipart/mixed"),
        (TEXT_CSS, "text/css"),
        (TEXT_CSV, "text/csv"),
        (TEXT_HTML, "text/html"),
        (TEXT_PLAIN, "text/plain"),
        (TEXT_XML, "text/xml"),
        (VIDEO_H264, "video/H264"),
        (VIDEO_H265, "video/H265"),
        (VIDEO_VP8, "video/VP8"),
        (HESSIAN, "application/x-hessian"),
        (JAVA_OBJECT, "application/x-java-object"),
        (CLOUDEVENTS_JSON, "application/cloudevents+json"),
        (CAPNP, "application/x-capnp"),
        (FLATBUFFERS, "application/x-flatbuffers"),
        (MIME_TYPE, "message/x.rsocket.mime-type.v0"),
        (ACCEPT_MIME_TYPES, "message/x.rsocket.accept-mime-types.v0"),
        (AUTHENTICATION, "message/x.rsocket.authentication.v0"),
        (TRACING_ZIPKIN, "message/x.rsocket.tracing-zipkin.v0"),
        (ROUTING, "message/x.rsocket.routing.v0"),
        (COMPOSITE_METADATA, "message/x.rsocket.composite-metadata.v0"),
    ];

    /// The MIME type with well-known id `id`, `None` for an unassigned id.
    ///
    /// ```
    /// use weft::frame::metadata::well_known;
    /// assert_eq!(well_known::name(well_known::PROTOBUF), Some("application/vnd.google.protobuf"));
    /// assert_eq!(well_known::name(0x50), None);
    /// ```
    pub fn name(id: u8) -> Option<&'static str> {
        TABLE.iter().find(|(i, _)| *i == id).map(|(_, name)| *name)
    }

    /// The well-known id of MIME type `name`, `None` if it has none.
    ///
    /// MIME types compare without regard to ASCII case (RFC 2045, section 5.1), so
    /// `video/h264` finds [`VIDEO_H264`].
    ///
    /// ```
    /// use weft::frame::metadata::well_known;
    /// assert_eq!(well_known::id("message/x.rsocket.routing.v0"), Some(well_known::ROUTING));
    /// assert_eq!(well_known::id("application/x.weft-test"), None);
    /// ```
    pub const fn id(name: &str) -> Option<u8> {
        // A loop rather than an iterator so that `MimeType::from_static` can map a well-known
        // name to its id at compile time.
        let mut i = 0;
        while i < TABLE.len() {
            if TABLE[i].1.as_bytes().eq_ignore_ascii_case(name.as_bytes()) {
                return Some(TABLE[i].0);
            }
            i += 1;
        }
        None
    }
}

/// The composite metadata MIME type, announced in SETUP.
pub const COMPOSITE_METADATA_MIME: &str = "message/x.rsocket.composite-metadata.v0";
/// The routing metadata MIME type.
pub const ROUTING_MIME: &str = "message/x.rsocket.routing.v0";

/// The longest MIME type a composite entry can write out: its 7-bit length field holds
/// length − 1 (see [`MimeType::Custom`]).
pub const MAX_CUSTOM_MIME_LEN: usize = 128;
/// The longest content a composite entry can carry: its length field has 24 bits.
pub const MAX_ENTRY_LEN: usize = 0xFF_FFFF;
/// The longest routing tag: its length field has 8 bits.
pub const MAX_TAG_LEN: usize = 255;

/// The MIME type of one composite metadata entry: the key that names the entry.
///
/// RSocket's composite metadata names each entry by a MIME type, which is either one of the
/// well-known types, written as a one-byte id ([`well_known`]), or written out (1 to 128 ASCII
/// bytes). Weft asks no `type/subtype` shape of a written-out name, so a gRPC-style key such as
/// `x-user-id` is a key too. Made from a string, a key is checked when it is made, so that no
/// call fails later for its key's sake:
///
/// - a literal: [`MimeType::from_static`], which is `const` (an invalid literal in a `const`
///   fails to compile) and panics on an invalid literal otherwise, as
///   `http::HeaderName::from_static` does; or the literal itself wherever a key is expected (see
///   [`IntoMetadataKey`]), as in `Request::new(msg).with_metadata("x-user-id", "42")`;
/// - a string made at run time: `MimeType::try_from(s)` or `s.parse::<MimeType>()`, which
///   return a [`MetadataError`] that says what is wrong;
/// - [`MimeType::custom`], the written-out form even for a well-known type.
///
/// The first two write a well-known type's name (`application/json`,
/// `message/x.rsocket.authentication.v0`, …) as its id, which every RSocket implementation
/// reads as that name, and anything else written out, as it was given.
///
/// `==` compares the form (id or name, and the name's case), which is what re-encoding keeps.
/// Looking an entry up ([`CompositeMetadata::get`]) compares the meaning: a well-known name
/// finds its entries in either form, and case does not matter (RFC 2045, section 5.1).
///
/// ```
/// use weft::MimeType;
/// use weft::frame::metadata::well_known;
///
/// const USER_ID: MimeType = MimeType::from_static("x-user-id");
/// assert_eq!(USER_ID.name(), Some("x-user-id"));
/// assert_eq!(MimeType::from_static("application/json"), MimeType::WellKnown(well_known::JSON));
///
/// // Keys made at run time are checked as they are made.
/// let from_config: MimeType = String::from("x-tenant").try_into()?;
/// assert_eq!(from_config, MimeType::from_static("x-tenant"));
/// assert!(MimeType::try_from("x-ünïcode").is_err());
/// assert!("".parse::<MimeType>().is_err());
/// # Ok::<(), weft::MetadataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MimeType {
    /// A well-known id (7 bits).
    WellKnown(u8),
    /// A MIME type written out (ASCII, 1..=128 bytes): borrowed when it was a literal
    /// ([`MimeType::from_static`]), so a call keyed by one copies nothing.
    ///
    /// Built directly, the name is not checked; the constructors check it. A call carrying an
    /// entry whose name cannot be written fails with `INVALID_ARGUMENT` before anything is
    /// sent.
    ///
    /// Its length byte holds the length − 1: the spec's diagram says "length", but the Java,
    /// JavaScript and Python implementations all write length − 1 (an empty MIME type being
    /// meaningless, this buys the 128th byte), and interoperating means doing the same.
    /// `application/x.weft-test`, 23 bytes, is written `0x16`.
    Custom(Cow<'static, str>),
}

impl MimeType {
    /// A MIME type to be written out, checked: 1 to 128 ASCII bytes.
    ///
    /// This keeps the string form even for well-known types (a peer may send routing that
    /// way); use [`MimeType::from_name`] for the compact form.
    pub fn custom(name: impl Into<String>) -> Result<MimeType, MetadataError> {
        let mime = MimeType::Custom(Cow::Owned(name.into()));
        mime.validate()?;
        Ok(mime)
    }

    /// The compact form of MIME type `name`: its well-known id if it has one, otherwise
    /// written out (checked as by [`MimeType::custom`]). The same as `MimeType::try_from(name)`.
    pub fn from_name(name: &str) -> Result<MimeType, MetadataError> {
        match well_known::id(name) {
            Some(id) => Ok(MimeType::WellKnown(id)),
            None => MimeType::custom(name),
        }
    }

    /// The key named by the literal `name`, in the compact form (as [`MimeType::from_name`]
    /// makes it), without copying it.
    ///
    /// # Panics
    ///
    /// If `name` cannot be a key: it is empty, longer than 128 bytes, or not ASCII. In a
    /// `const`, that is a compile error:
    ///
    /// ```compile_fail
    /// const BAD: weft::MimeType = weft::MimeType::from_static("x-ünïcode");
    /// ```
    ///
    /// For strings made at run time use `MimeType::try_from`, which returns the error instead.
    ///
    /// ```
    /// use weft::MimeType;
    /// use weft::frame::metadata::well_known;
    ///
    /// const TRACE: MimeType = MimeType::from_static("x-trace-id");
    /// assert_eq!(TRACE, MimeType::Custom("x-trace-id".into()));
    /// assert_eq!(
    ///     MimeType::from_static("Message/X.RSocket.Authentication.v0"),
    ///     MimeType::WellKnown(well_known::AUTHENTICATION)
    /// );
    /// ```
    #[track_caller]
    pub const fn from_static(name: &'static str) -> MimeType {
        if let Some(problem) = NameProblem::of(name) {
            panic!("{}", problem.static_message());
        }
        match well_known::id(name) {
            Some(id) => MimeType::WellKnown(id),
            None => MimeType::Custom(Cow::Borrowed(name)),
        }
    }

    /// The MIME type as a string: the written-out name, or the name of a well-known id;
    /// `None` for an id the spec has not assigned.
    pub fn name(&self) -> Option<&str> {
        match self {
            MimeType::WellKnown(id) => well_known::name(*id),
            MimeType::Custom(name) => Some(name),
        }
    }

    /// The well-known id this MIME type stands for, whichever form it is in: a written-out
    /// `message/x.rsocket.routing.v0` gives [`well_known::ROUTING`] too.
    pub fn well_known_id(&self) -> Option<u8> {
        match self {
            MimeType::WellKnown(id) => Some(*id),
            MimeType::Custom(name) => well_known::id(name),
        }
    }

    /// Whether this MIME type can be written: an id of at most 7 bits, or a name of 1 to 128
    /// ASCII bytes. [`CompositeMetadata::encode`] leaves out entries that fail this.
    pub fn validate(&self) -> Result<(), MetadataError> {
        match self {
            MimeType::WellKnown(id) if *id > 0x7F => {
                Err(MetadataError::new(format!("well-known MIME type id {id:#04x} does not fit in 7 bits")))
            }
            MimeType::WellKnown(_) => Ok(()),
            MimeType::Custom(name) => match NameProblem::of(name) {
                Some(problem) => Err(problem.error(name)),
                None => Ok(()),
            },
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            MimeType::WellKnown(_) => 1,
            MimeType::Custom(name) => 1 + name.len(),
        }
    }

    /// Callers have validated `self`.
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            MimeType::WellKnown(id) => buf.put_u8(0x80 | id),
            MimeType::Custom(name) => {
                buf.put_u8((name.len() - 1) as u8);
                buf.put_slice(name.as_bytes());
            }
        }
    }
}

impl fmt::Display for MimeType {
    /// The MIME type's name, or `well-known MIME type 0x..` for an unassigned id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "well-known MIME type {:#04x}", self.well_known_id().unwrap_or_default()),
        }
    }
}

impl TryFrom<&str> for MimeType {
    type Error = MetadataError;

    /// The key named by `name`, checked: see [`MimeType::from_name`].
    fn try_from(name: &str) -> Result<MimeType, MetadataError> {
        MimeType::from_name(name)
    }
}

impl TryFrom<String> for MimeType {
    type Error = MetadataError;

    /// The key named by `name`, checked as [`MimeType::from_name`] checks it; a name written
    /// out keeps `name`'s buffer.
    fn try_from(name: String) -> Result<MimeType, MetadataError> {
        match well_known::id(&name) {
            Some(id) => Ok(MimeType::WellKnown(id)),
            None => MimeType::custom(name),
        }
    }
}

impl std::str::FromStr for MimeType {
    type Err = MetadataError;

    /// The key named by `name`, checked: see [`MimeType::from_name`].
    fn from_str(name: &str) -> Result<MimeType, MetadataError> {
        MimeType::from_name(name)
    }
}

/// Why a name cannot be written out as a composite entry's MIME type: one check for
/// [`MimeType::validate`], the fallible constructors and the `const` [`MimeType::from_static`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameProblem {
    Empty,
    TooLong,
    NotAscii,
}

impl NameProblem {
    const fn of(name: &str) -> Option<NameProblem> {
        if name.is_empty() {
            Some(NameProblem::Empty)
        } else if name.len() > MAX_CUSTOM_MIME_LEN {
            Some(NameProblem::TooLong)
        } else if !name.is_ascii() {
            Some(NameProblem::NotAscii)
        } else {
            None
        }
    }

    /// For a `const` panic, which can show no run-time value: the call site, which
    /// `#[track_caller]` names, shows the literal.
    const fn static_message(self) -> &'static str {
        match self {
            NameProblem::Empty => "invalid metadata key: it is empty; a key is 1 to 128 ASCII bytes",
            NameProblem::TooLong => "invalid metadata key: it is longer than 128 bytes; a key is 1 to 128 ASCII bytes",
            NameProblem::NotAscii => "invalid metadata key: it is not ASCII; a key is 1 to 128 ASCII bytes",
        }
    }

    fn error(self, name: &str) -> MetadataError {
        // A name given at run time can be of any length; the message shows its start.
        let shown = match name.char_indices().nth(40) {
            Some((end, _)) => format!("{}…", &name[..end]),
            None => name.to_owned(),
        };
        let what = match self {
            NameProblem::Empty => "MIME type (metadata key) is empty".to_owned(),
            NameProblem::TooLong => format!("MIME type (metadata key) `{shown}` is {} bytes long", name.len()),
            NameProblem::NotAscii => format!("MIME type (metadata key) `{shown}` is not ASCII"),
        };
        MetadataError::new(format!("{what}; composite metadata writes out 1 to {MAX_CUSTOM_MIME_LEN} ASCII bytes"))
    }
}

/// What names a metadata entry that a client attaches: a [`MimeType`], or a `&'static str`
/// literal, which becomes a key as [`MimeType::from_static`] makes it (a well-known type's
/// name becomes its id).
///
/// A literal that cannot be a key is a bug in the program, found the first time its line runs:
/// `with_metadata` panics there, with the reason ([`CompositeMetadata::push`], which returns a
/// `Result` anyway, returns the error). A key made at run time is checked first with
/// `MimeType::try_from`, which returns the error instead:
///
/// ```
/// use weft::{MimeType, Request};
///
/// # fn attach(tenant_key: String) -> Result<(), weft::MetadataError> {
/// let request = Request::new("message").with_metadata("x-user-id", "42");
/// let request = request.with_metadata(MimeType::try_from(tenant_key)?, "acme");
/// assert_eq!(request.metadata().len(), 2);
/// # Ok(()) }
/// # attach("x-tenant".into()).unwrap();
/// ```
///
/// A `String`, or a `&str` that is not `'static`, is not taken as it is, so that a key read
/// from a peer or a file is never checked by a panic: the compiler refuses it, and
/// `MimeType::try_from` makes it a key.
///
/// Weft implements this trait; it is sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a metadata key",
    label = "expected a `weft::MimeType` or a `&'static str` literal",
    note = "a string made at run time becomes a key, checked, with `weft::MimeType::try_from(s)?`"
)]
pub trait IntoMetadataKey: sealed::IntoKey {}

/// What looks a metadata entry up: a string (`&str`, `String`) or a [`MimeType`], or a
/// reference to one.
///
/// A look-up compares meaning, not form: a well-known type's name or id finds entries written
/// either way (`application/json` finds an entry keyed by id 0x05, and the other way round),
/// and case does not matter. It never fails: a string that could not be a key finds nothing.
///
/// Weft implements this trait; it is sealed.
pub trait AsMetadataKey: sealed::AsKey {}

/// The traits behind [`IntoMetadataKey`] and [`AsMetadataKey`], out of reach (public items
/// of a private module) so that only the impls here exist and their methods and types stay out
/// of the public API.
mod sealed {
    pub trait IntoKey: Sized {
        /// The key; panics on a literal that cannot be one.
        fn into_key(self) -> super::MimeType;
        /// The key, or why the literal cannot be one.
        fn try_into_key(self) -> Result<super::MimeType, super::MetadataError>;
    }

    pub trait AsKey {
        fn as_key(&self) -> Key<'_>;
    }

    /// A look-up key as given: a well-known id, or a name, which may stand for one.
    #[derive(Clone, Copy, Debug)]
    pub enum Key<'a> {
        Id(u8),
        Name(&'a str),
    }
}

impl IntoMetadataKey for MimeType {}
impl sealed::IntoKey for MimeType {
    fn into_key(self) -> MimeType {
        self
    }

    fn try_into_key(self) -> Result<MimeType, MetadataError> {
        Ok(self)
    }
}

impl IntoMetadataKey for &MimeType {}
impl sealed::IntoKey for &MimeType {
    fn into_key(self) -> MimeType {
        self.clone()
    }

    fn try_into_key(self) -> Result<MimeType, MetadataError> {
        Ok(self.clone())
    }
}

impl IntoMetadataKey for &'static str {}
impl sealed::IntoKey for &'static str {
    #[track_caller]
    fn into_key(self) -> MimeType {
        // Not `from_static`, whose `const` panic cannot name the literal; this message does.
        match self.try_into_key() {
            Ok(key) => key,
            Err(e) => panic!("{e}; a string made at run time is checked with `MimeType::try_from`"),
        }
    }

    fn try_into_key(self) -> Result<MimeType, MetadataError> {
        match NameProblem::of(self) {
            Some(problem) => Err(problem.error(self)),
            None => Ok(MimeType::from_static(self)),
        }
    }
}

impl Key<'_> {
    /// The key with a well-known name replaced by its id.
    fn resolve(self) -> Self {
        match self {
            Key::Name(name) => well_known::id(name).map_or(self, Key::Id),
            Key::Id(_) => self,
        }
    }

    /// Whether `mime` is named by this key, which has been [resolved](Key::resolve).
    fn matches(self, mime: &MimeType) -> bool {
        match (self, mime) {
            (Key::Id(id), MimeType::WellKnown(i)) => id == *i,
            (Key::Id(id), MimeType::Custom(name)) => well_known::name(id).is_some_and(|n| n.eq_ignore_ascii_case(name)),
            // A name without an id matches no id, and no written-out well-known name.
            (Key::Name(_), MimeType::WellKnown(_)) => false,
            (Key::Name(key), MimeType::Custom(name)) => key.eq_ignore_ascii_case(name),
        }
    }
}

impl AsMetadataKey for MimeType {}
impl sealed::AsKey for MimeType {
    fn as_key(&self) -> Key<'_> {
        match self {
            MimeType::WellKnown(id) => Key::Id(*id),
            MimeType::Custom(name) => Key::Name(name),
        }
    }
}

impl AsMetadataKey for str {}
impl sealed::AsKey for str {
    fn as_key(&self) -> Key<'_> {
        Key::Name(self)
    }
}

impl AsMetadataKey for String {}
impl sealed::AsKey for String {
    fn as_key(&self) -> Key<'_> {
        Key::Name(self)
    }
}

/// Any reference to a key is a key: `&str`, `&MimeType`, `&String`, and `&&str` from
/// iterating over a list of keys.
impl<K: AsMetadataKey + ?Sized> AsMetadataKey for &K {}
impl<K: sealed::AsKey + ?Sized> sealed::AsKey for &K {
    fn as_key(&self) -> Key<'_> {
        (**self).as_key()
    }
}

/// One entry of composite metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataEntry {
    /// The entry's MIME type.
    pub mime: MimeType,
    /// The entry's content.
    pub content: Bytes,
}

impl MetadataEntry {
    /// An entry, checked: a writable MIME type ([`MimeType::validate`]) and content of at most
    /// [`MAX_ENTRY_LEN`] bytes.
    pub fn new(mime: MimeType, content: impl Into<Bytes>) -> Result<MetadataEntry, MetadataError> {
        let entry = MetadataEntry { mime, content: content.into() };
        entry.validate()?;
        Ok(entry)
    }

    /// Whether this entry can be written; [`CompositeMetadata::encode`] leaves out entries that
    /// fail this.
    pub fn validate(&self) -> Result<(), MetadataError> {
        self.mime.validate()?;
        if self.content.len() > MAX_ENTRY_LEN {
            return Err(MetadataError::new(format!(
                "metadata entry `{}` is {} bytes long; its length field allows at most {MAX_ENTRY_LEN}",
                self.mime,
                self.content.len()
            )));
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.mime.encoded_len() + 3 + self.content.len()
    }
}

/// Composite metadata: an ordered list of entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompositeMetadata {
    /// Entries in wire order.
    pub entries: Vec<MetadataEntry>,
}

/// Malformed composite or routing metadata, or metadata that cannot be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataError {
    /// What was wrong, in words.
    pub reason: String,
}

impl MetadataError {
    fn new(reason: impl Into<String>) -> MetadataError {
        MetadataError { reason: reason.into() }
    }
}

impl fmt::Display for MetadataError {
    /// The reason: a sentence that says which entry or tag, where, and what was wrong.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for MetadataError {}

impl CompositeMetadata {
    /// Decodes a composite metadata block; entries are slices of `bytes`.
    ///
    /// Every entry is kept, in order, whatever its MIME type. Errors: a MIME type or content
    /// length that runs past the end, a written-out MIME type that is not ASCII.
    pub fn decode(bytes: Bytes) -> Result<Self, MetadataError> {
        let entries = RawEntries::new(bytes)
            .map(|entry| entry.map(|e| MetadataEntry { mime: e.mime.into_mime(), content: e.content }))
            .collect::<Result<_, _>>()?;
        Ok(CompositeMetadata { entries })
    }

    /// The route of a request's composite metadata block, read as leniently as the block
    /// allows, without building the entries: what the server does with every request.
    ///
    /// Request metadata comes from any implementation, and an entry the responder cannot read
    /// is no reason to refuse a request whose route it can (Protocol.md, "Handling the
    /// Unexpected": lenient processing). So an entry with a MIME type that is not ASCII is
    /// skipped; a routing entry whose first tag cannot be read (it overruns the entry, or is
    /// not UTF-8) is skipped as if absent (the next routing entry, if any, names the route: a
    /// later tag never does, since it could name another method); tags after the route are
    /// not looked at. Only where the block's own framing breaks (an entry's length runs past
    /// its end) does the walk stop, keeping what came before.
    pub(crate) fn decode_route(bytes: &Bytes) -> Option<String> {
        RawEntries::readable(bytes.clone())
            .filter(|entry| entry.mime.is_well_known(well_known::ROUTING))
            .find_map(|entry| RoutingMetadata::tags(&entry.content).next().and_then(Result::ok).map(str::to_owned))
    }

    /// The content of the first entry of `bytes` (a request's block, read as
    /// [`decode_route`](CompositeMetadata::decode_route) reads it) whose MIME type is written
    /// out as `name` (compared without regard to case), without decoding the others.
    pub(crate) fn find_named(bytes: &Bytes, name: &str) -> Option<Bytes> {
        RawEntries::readable(bytes.clone())
            .find(|entry| matches!(&entry.mime, RawMime::Name(n) if n.eq_ignore_ascii_case(name.as_bytes())))
            .map(|entry| entry.content)
    }

    /// The entries of a request's block as [`decode_route`](CompositeMetadata::decode_route)
    /// reads it: every entry it can read, those it cannot skipped.
    pub(crate) fn decode_lenient(bytes: Bytes) -> CompositeMetadata {
        let entries = RawEntries::readable(bytes)
            .map(|e| MetadataEntry { mime: e.mime.into_mime(), content: e.content })
            .collect();
        CompositeMetadata { entries }
    }

    /// Composite metadata with one routing entry (under the well-known id) naming `route`:
    /// what every Weft request carries.
    pub fn with_route(route: &str) -> Result<Self, MetadataError> {
        let routing = RoutingMetadata::new(route)?;
        Ok(CompositeMetadata {
            entries: vec![MetadataEntry {
                mime: MimeType::WellKnown(well_known::ROUTING),
                content: routing.to_bytes(),
            }],
        })
    }

    /// Appends an entry, checked as by [`MetadataEntry::new`]. The key is a [`MimeType`] or a
    /// literal (see [`IntoMetadataKey`]); a literal that cannot be a key is an error here, not
    /// a panic.
    pub fn push(&mut self, key: impl IntoMetadataKey, content: impl Into<Bytes>) -> Result<(), MetadataError> {
        self.entries.push(MetadataEntry::new(key.try_into_key()?, content)?);
        Ok(())
    }

    /// The content of the first entry named by `key`, a string or a [`MimeType`], compared by
    /// meaning (see [`AsMetadataKey`]): a well-known type's name finds the entry sent under its
    /// id.
    ///
    /// ```
    /// use weft::{CompositeMetadata, MimeType};
    /// use weft::frame::metadata::well_known;
    ///
    /// let mut metadata = CompositeMetadata::default();
    /// metadata.push("x-user-id", "42")?;
    /// metadata.push(MimeType::WellKnown(well_known::AUTHENTICATION), &b"\x81token"[..])?;
    ///
    /// assert_eq!(metadata.get("x-user-id").map(|v| &v[..]), Some(&b"42"[..]));
    /// assert_eq!(metadata.get_str("X-User-Id"), Some("42"), "case does not matter");
    /// assert!(metadata.get("message/x.rsocket.authentication.v0").is_some());
    /// assert!(metadata.get(&MimeType::from_static("x-user-id")).is_some());
    /// assert_eq!(metadata.get("x-missing"), None);
    /// # Ok::<(), weft::MetadataError>(())
    /// ```
    pub fn get(&self, key: impl AsMetadataKey) -> Option<&Bytes> {
        self.get_all(key).next()
    }

    /// The content of the first entry named by `key` (as [`get`](CompositeMetadata::get) finds
    /// it) as UTF-8; `None` if there is none or its content is not UTF-8 (read it with `get`).
    pub fn get_str(&self, key: impl AsMetadataKey) -> Option<&str> {
        self.get(key).and_then(|content| std::str::from_utf8(content).ok())
    }

    /// The contents of every entry named by `key` (as [`get`](CompositeMetadata::get) finds
    /// them), in wire order.
    pub fn get_all(&self, key: impl AsMetadataKey) -> impl Iterator<Item = &Bytes> {
        // Resolved once: the well-known id a name stands for, if any. A key without one is
        // matched as given (no look-up per entry), which the iterator keeps `key` for.
        let id = match key.as_key().resolve() {
            Key::Id(id) => Some(id),
            Key::Name(_) => None,
        };
        self.entries
            .iter()
            .filter(move |e| match id {
                Some(id) => Key::Id(id).matches(&e.mime),
                None => key.as_key().matches(&e.mime),
            })
            .map(|e| &e.content)
    }

    /// The first entry whose MIME type is well-known id `id`, in either form (see
    /// [`MimeType::well_known_id`]).
    pub fn find_well_known(&self, id: u8) -> Option<&MetadataEntry> {
        self.entries.iter().find(|e| e.mime.well_known_id() == Some(id))
    }

    /// Appends the encoding of every entry.
    ///
    /// Entries that cannot be written ([`MetadataEntry::validate`] fails: a MIME type that is
    /// empty, over 128 bytes or not ASCII, an id over 7 bits, content over 16 MiB) are left out
    /// rather than written wrong; the checked constructors never produce them.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        for entry in self.writable() {
            entry.mime.encode(buf);
            let len = entry.content.len() as u32;
            buf.put_slice(&len.to_be_bytes()[1..]);
            buf.put_slice(&entry.content);
        }
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        self.writable().map(MetadataEntry::encoded_len).sum()
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }

    /// The first routing entry's tags (well-known id or MIME written out), decoded.
    ///
    /// `Ok(None)`: there is no routing entry. An entry with no tags gives empty tags.
    pub fn routing(&self) -> Result<Option<RoutingMetadata>, MetadataError> {
        self.find_well_known(well_known::ROUTING).map(|e| RoutingMetadata::decode(&e.content)).transpose()
    }

    /// The route: the first tag of the first routing entry, checked as
    /// [`routing`](CompositeMetadata::routing) checks it, without allocating. `None` if there
    /// is no routing entry or it has no tags.
    pub fn route(&self) -> Result<Option<&str>, MetadataError> {
        match self.find_well_known(well_known::ROUTING) {
            Some(entry) => RoutingMetadata::decode_route(&entry.content),
            None => Ok(None),
        }
    }

    fn writable(&self) -> impl Iterator<Item = &MetadataEntry> {
        self.entries.iter().filter(|e| e.validate().is_ok())
    }
}

/// A composite entry's MIME type as it is on the wire: an id, or a name checked to be ASCII.
enum RawMime {
    Id(u8),
    Name(Bytes),
}

impl RawMime {
    fn is_well_known(&self, id: u8) -> bool {
        match self {
            RawMime::Id(i) => *i == id,
            RawMime::Name(name) => well_known::name(id).is_some_and(|n| n.as_bytes().eq_ignore_ascii_case(name)),
        }
    }

    fn into_mime(self) -> MimeType {
        match self {
            RawMime::Id(id) => MimeType::WellKnown(id),
            RawMime::Name(name) => MimeType::Custom(Cow::Owned(String::from_utf8_lossy(&name).into_owned())),
        }
    }
}

struct RawEntry {
    mime: RawMime,
    content: Bytes,
}

/// The entries of an encoded composite block, each checked; after an error, nothing more.
/// One walk for [`CompositeMetadata::decode`] and [`CompositeMetadata::decode_route`], so
/// that both accept and refuse the same blocks, with the same words.
struct RawEntries {
    rest: Bytes,
    total: usize,
    index: usize,
    /// Entries whose MIME type is not ASCII are yielded instead of failing the walk (their
    /// lengths still frame them, so the walk can go on); see `RawEntries::readable`.
    lenient: bool,
}

impl RawEntries {
    fn new(bytes: Bytes) -> RawEntries {
        RawEntries { total: bytes.len(), rest: bytes, index: 0, lenient: false }
    }

    /// The entries of a block that can be read, read leniently: those whose MIME type is not
    /// ASCII are passed over, and the walk ends where the block's framing breaks.
    fn readable(bytes: Bytes) -> impl Iterator<Item = RawEntry> {
        RawEntries { lenient: true, ..RawEntries::new(bytes) }
            .map_while(Result::ok)
            .filter(|entry| !matches!(&entry.mime, RawMime::Name(name) if !name.is_ascii()))
    }

    fn next_entry(&mut self) -> Result<RawEntry, MetadataError> {
        let rest = &mut self.rest;
        let at = self.total - rest.len();
        let index = self.index;
        self.index += 1;
        let fail = |what: String| MetadataError::new(format!("composite metadata entry {index} (byte {at}): {what}"));
        let first = rest.get_u8();
        let mime = if first & 0x80 != 0 {
            RawMime::Id(first & 0x7F)
        } else {
            // Length − 1 on the wire; see `MimeType::Custom`.
            let len = usize::from(first) + 1;
            if rest.len() < len {
                return Err(fail(format!("MIME type of {len} bytes runs past the end ({} left)", rest.len())));
            }
            let name = rest.split_to(len);
            if !name.is_ascii() && !self.lenient {
                return Err(fail("MIME type is not ASCII".into()));
            }
            RawMime::Name(name)
        };
        if rest.len() < 3 {
            return Err(fail(format!("`{}` entry's content length is truncated", mime.into_mime())));
        }
        let len = rest.get_uint(3) as usize;
        if rest.len() < len {
            return Err(fail(format!(
                "`{}` entry declares {len} bytes of content but only {} remain",
                mime.into_mime(),
                rest.len()
            )));
        }
        Ok(RawEntry { mime, content: rest.split_to(len) })
    }
}

impl Iterator for RawEntries {
    type Item = Result<RawEntry, MetadataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let entry = self.next_entry();
        if entry.is_err() {
            self.rest = Bytes::new();
        }
        Some(entry)
    }
}

/// Routing metadata: a list of UTF-8 tags of at most 255 bytes each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingMetadata {
    /// Tags in order; the first is the route.
    pub tags: Vec<String>,
}

impl RoutingMetadata {
    /// Routing metadata with the single tag `route`, checked: at most 255 bytes.
    ///
    /// An empty route is allowed by the extension; whether it names anything is the
    /// responder's business.
    pub fn new(route: impl Into<String>) -> Result<Self, MetadataError> {
        Self::from_tags([route])
    }

    /// Routing metadata with `tags`, in order, each checked: at most 255 bytes.
    pub fn from_tags<I>(tags: I) -> Result<Self, MetadataError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        if let Some(tag) = tags.iter().find(|t| t.len() > MAX_TAG_LEN) {
            return Err(MetadataError::new(format!(
                "routing tag `{tag}` is {} bytes long; the routing extension allows at most {MAX_TAG_LEN}",
                tag.len()
            )));
        }
        Ok(RoutingMetadata { tags })
    }

    /// The route: the first tag.
    pub fn route(&self) -> Option<&str> {
        self.tags.first().map(String::as_str)
    }

    /// Decodes routing metadata content.
    ///
    /// Errors: a tag length that runs past the end, a tag that is not UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let tags = Self::tags(bytes).map(|tag| tag.map(str::to_owned)).collect::<Result<_, _>>()?;
        Ok(RoutingMetadata { tags })
    }

    /// The first tag of encoded routing metadata, every tag checked as
    /// [`decode`](RoutingMetadata::decode) checks them, without allocating; `None` if there
    /// are no tags.
    ///
    /// ```
    /// use weft::frame::metadata::RoutingMetadata;
    /// assert_eq!(RoutingMetadata::decode_route(b"\x05a.B/C\x01x"), Ok(Some("a.B/C")));
    /// assert!(RoutingMetadata::decode_route(b"\x05a.B/C\x09x").is_err(), "a later tag is short");
    /// ```
    pub fn decode_route(bytes: &[u8]) -> Result<Option<&str>, MetadataError> {
        let mut tags = Self::tags(bytes);
        let first = tags.next().transpose()?;
        tags.try_for_each(|tag| tag.map(drop))?;
        Ok(first)
    }

    /// The tags of encoded routing metadata, each checked: length and UTF-8.
    fn tags(bytes: &[u8]) -> impl Iterator<Item = Result<&str, MetadataError>> {
        let mut rest = bytes;
        let mut index = 0;
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let at = bytes.len() - rest.len();
            let len = usize::from(len);
            let i = index;
            index += 1;
            if tail.len() < len {
                rest = &[];
                return Some(Err(MetadataError::new(format!(
                    "routing tag {i} (byte {at}) declares {len} bytes but only {} remain",
                    tail.len()
                ))));
            }
            let (tag, tail) = tail.split_at(len);
            rest = tail;
            match std::str::from_utf8(tag) {
                Ok(tag) => Some(Ok(tag)),
                Err(_) => {
                    rest = &[];
                    Some(Err(MetadataError::new(format!("routing tag {i} (byte {at}) is not valid UTF-8"))))
                }
            }
        })
    }

    /// Appends the encoding.
    ///
    /// Tags longer than 255 bytes cannot be written and are left out (never cut: a cut route
    /// could name a different method); [`RoutingMetadata::new`] and
    /// [`RoutingMetadata::from_tags`] refuse them up front.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        for tag in self.writable() {
            buf.put_u8(tag.len() as u8);
            buf.put_slice(tag.as_bytes());
        }
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        self.writable().map(|t| 1 + t.len()).sum()
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }

    fn writable(&self) -> impl Iterator<Item = &String> {
        self.tags.iter().filter(|t| t.len() <= MAX_TAG_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for id in 0..=0x7F {
            if let Some(name) = well_known::name(id) {
                assert_eq!(well_known::id(name), Some(id), "{name}");
                assert!(seen.insert(name));
                assert_eq!(MimeType::from_name(name), Ok(MimeType::WellKnown(id)));
            }
        }
        assert_eq!(seen.len(), 49);
        assert_eq!(well_known::id("VIDEO/h264"), Some(well_known::VIDEO_H264));
        assert_eq!(well_known::id(ROUTING_MIME), Some(well_known::ROUTING));
        assert_eq!(well_known::id(COMPOSITE_METADATA_MIME), Some(well_known::COMPOSITE_METADATA));
    }

    #[test]
    fn custom_mime_length_is_written_minus_one() {
        let mut m = CompositeMetadata::default();
        m.push(MimeType::custom("application/x.weft-test").unwrap(), &[1u8, 2, 3][..]).unwrap();
        assert_eq!(&m.to_bytes()[..1], &[0x16]);
        // The extremes: 1 byte is written 0x00, 128 bytes 0x7F.
        for len in [1, 128] {
            let m = CompositeMetadata {
                entries: vec![MetadataEntry::new(MimeType::custom("a".repeat(len)).unwrap(), Bytes::new()).unwrap()],
            };
            let bytes = m.to_bytes();
            assert_eq!(usize::from(bytes[0]), len - 1);
            assert_eq!(bytes.len(), m.encoded_len());
            assert_eq!(CompositeMetadata::decode(bytes).unwrap(), m);
        }
    }

    #[test]
    fn constructors_refuse_what_cannot_be_written() {
        assert!(MimeType::custom("").is_err());
        assert!(MimeType::custom("a".repeat(129)).is_err());
        assert!(MimeType::custom("text/plaîn").is_err());
        assert!(MimeType::WellKnown(0x80).validate().is_err());
        assert!(RoutingMetadata::new("r".repeat(256)).is_err());
        assert!(RoutingMetadata::new("r".repeat(255)).is_ok());
        assert!(CompositeMetadata::with_route(&"r".repeat(256)).is_err());
        let err = RoutingMetadata::new("r".repeat(300)).unwrap_err();
        assert!(err.to_string().contains("300 bytes long"), "{err}");
    }

    #[test]
    fn keys_are_checked_when_they_are_made() {
        let too_long = "k".repeat(MAX_CUSTOM_MIME_LEN + 1);
        for bad in ["", too_long.as_str(), "x-ünïcode", "tab\u{e9}"] {
            assert!(MimeType::try_from(bad).is_err(), "{bad:?}");
            assert!(MimeType::try_from(bad.to_owned()).is_err(), "{bad:?}");
            assert!(bad.parse::<MimeType>().is_err(), "{bad:?}");
            assert!(MimeType::custom(bad).is_err(), "{bad:?}");
        }
        let longest = "k".repeat(MAX_CUSTOM_MIME_LEN);
        assert_eq!(MimeType::try_from(longest.as_str()), Ok(MimeType::Custom(longest.clone().into())));
        assert_eq!(MimeType::try_from("x-user-id"), Ok(MimeType::from_static("x-user-id")));
        // The errors say which key and what is wrong; a long key is shown by its start.
        let err = MimeType::try_from(too_long.as_str()).unwrap_err().to_string();
        assert!(err.contains("is 129 bytes long") && err.contains("1 to 128 ASCII bytes"), "{err}");
        assert!(err.contains(&format!("`{}…`", "k".repeat(40))), "{err}");
        let err = MimeType::try_from("x-ünïcode").unwrap_err().to_string();
        assert!(err.contains("`x-ünïcode` is not ASCII"), "{err}");
        assert!(MimeType::try_from("").unwrap_err().to_string().contains("is empty"));
    }

    #[test]
    fn well_known_names_become_their_ids_in_every_way_a_key_is_made() {
        for id in 0..=0x7F {
            let Some(name) = well_known::name(id) else { continue };
            let upper = name.to_ascii_uppercase();
            assert_eq!(MimeType::try_from(name), Ok(MimeType::WellKnown(id)), "{name}");
            assert_eq!(MimeType::try_from(upper.clone()), Ok(MimeType::WellKnown(id)), "{upper}");
            assert_eq!(upper.parse::<MimeType>(), Ok(MimeType::WellKnown(id)), "{upper}");
        }
        const JSON: MimeType = MimeType::from_static("application/json");
        assert_eq!(JSON, MimeType::WellKnown(well_known::JSON));
        assert_eq!(sealed::IntoKey::into_key("Text/Plain"), MimeType::WellKnown(well_known::TEXT_PLAIN));
        // A literal key is borrowed, not copied.
        const KEY: &str = "x-user-id";
        match sealed::IntoKey::into_key(KEY) {
            MimeType::Custom(Cow::Borrowed(name)) => assert_eq!(name.as_ptr(), KEY.as_ptr()),
            other => panic!("{other:?}"),
        }
        // `custom` keeps the written-out form, as before.
        assert_eq!(MimeType::custom("application/json").unwrap(), MimeType::Custom("application/json".into()));
    }

    #[test]
    #[should_panic(expected = "invalid metadata key: it is not ASCII")]
    fn from_static_panics_on_an_invalid_literal() {
        let _ = std::hint::black_box(MimeType::from_static)("x-é");
    }

    #[test]
    #[should_panic(expected = "MIME type (metadata key) is empty")]
    fn a_literal_key_that_cannot_be_one_panics_where_it_is_used() {
        let _ = sealed::IntoKey::into_key(std::hint::black_box(""));
    }

    #[test]
    fn push_refuses_a_literal_that_cannot_be_a_key_without_panicking() {
        let mut m = CompositeMetadata::default();
        let err = m.push("x-é", "1").unwrap_err();
        assert!(err.to_string().contains("`x-é` is not ASCII"), "{err}");
        assert!(m.push("", "1").is_err());
        assert!(m.entries.is_empty());
    }

    #[test]
    fn keys_find_entries_by_meaning() {
        let mut m = CompositeMetadata::with_route("a.B/C").unwrap();
        m.push("x-user-id", "42").unwrap();
        m.push(MimeType::WellKnown(well_known::AUTHENTICATION), &b"\x81tok"[..]).unwrap();
        m.push(MimeType::custom("application/json").unwrap(), "{}").unwrap();
        m.push("X-USER-ID", &b"\xFF"[..]).unwrap();
        m.push(MimeType::WellKnown(0x50), "unassigned").unwrap();

        // A custom key: case-insensitive, every entry in order.
        assert_eq!(m.get("x-user-id").map(|b| &b[..]), Some(&b"42"[..]));
        assert_eq!(m.get_str(String::from("x-User-Id")), Some("42"));
        let all: Vec<_> = m.get_all("x-user-id").map(|b| &b[..]).collect();
        assert_eq!(all, [&b"42"[..], &b"\xFF"[..]]);
        assert_eq!(m.get_all(&MimeType::from_static("x-user-id")).count(), 2);
        // A well-known name finds the entry sent under its id, and the other way round.
        assert_eq!(m.get("message/x.rsocket.authentication.v0").map(|b| &b[..]), Some(&b"\x81tok"[..]));
        assert_eq!(m.get(MimeType::custom("message/x.rsocket.authentication.v0").unwrap()).map(|b| b.len()), Some(4));
        assert_eq!(m.get(MimeType::WellKnown(well_known::JSON)).map(|b| &b[..]), Some(&b"{}"[..]));
        assert_eq!(m.get_str("APPLICATION/JSON"), Some("{}"));
        assert!(m.get("message/x.rsocket.routing.v0").is_some());
        // An id nobody named is found by the id alone.
        assert_eq!(m.get_str(MimeType::WellKnown(0x50)), Some("unassigned"));
        // Nothing else matches: not a prefix, not a key that could not be made, not a
        // well-known entry for a custom name.
        for missing in ["x-user", "x-user-id2", "", "é", "application/xml"] {
            assert_eq!(m.get(missing), None, "{missing}");
        }
        let long = "k".repeat(1000);
        assert_eq!(m.get(&long), None);
        // Keys by reference, as iterating over a list of them gives.
        for key in &["x-user-id", "X-USER-ID"] {
            assert_eq!(m.get_str(key), Some("42"));
        }
        assert_eq!(m.get_all(long).count(), 0);
    }

    #[test]
    fn get_str_is_none_for_content_that_is_not_utf8() {
        let mut m = CompositeMetadata::default();
        m.push("x-bin", &b"\xC3\x28"[..]).unwrap();
        assert!(m.get("x-bin").is_some());
        assert_eq!(m.get_str("x-bin"), None);
    }

    #[test]
    fn unwritable_entries_and_tags_are_left_out() {
        let m = CompositeMetadata {
            entries: vec![
                MetadataEntry { mime: MimeType::Custom("".into()), content: Bytes::from_static(b"x") },
                MetadataEntry { mime: MimeType::WellKnown(well_known::JSON), content: Bytes::from_static(b"{}") },
                MetadataEntry { mime: MimeType::WellKnown(0xFF), content: Bytes::new() },
            ],
        };
        assert_eq!(&m.to_bytes()[..], &[0x85, 0, 0, 2, b'{', b'}']);
        assert_eq!(m.encoded_len(), 6);

        let r = RoutingMetadata { tags: vec!["x".repeat(256), "ok".into()] };
        assert_eq!(&r.to_bytes()[..], &[2, b'o', b'k']);
        assert_eq!(r.encoded_len(), 3);
    }

    #[test]
    fn routing_is_found_in_either_form() {
        let tag = RoutingMetadata::new("a.B/C").unwrap().to_bytes();
        let by_string = CompositeMetadata {
            entries: vec![
                MetadataEntry { mime: MimeType::WellKnown(well_known::JSON), content: Bytes::new() },
                MetadataEntry { mime: MimeType::Custom(ROUTING_MIME.into()), content: tag.clone() },
            ],
        };
        assert_eq!(by_string.routing().unwrap().unwrap().route(), Some("a.B/C"));
        let decoded = CompositeMetadata::decode(by_string.to_bytes()).unwrap();
        assert_eq!(decoded, by_string, "the string form is kept");
        assert_eq!(CompositeMetadata::default().routing(), Ok(None));
        assert_eq!(CompositeMetadata::default().route(), Ok(None));
        assert_eq!(by_string.route(), Ok(Some("a.B/C")));
    }

    #[test]
    fn decode_errors_say_where() {
        let err = CompositeMetadata::decode(Bytes::from_static(&[0xFE, 0, 0, 9, 1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "composite metadata entry 0 (byte 0): `message/x.rsocket.routing.v0` entry declares 9 bytes of \
             content but only 1 remain"
        );
        let err = RoutingMetadata::decode(&[1, b'a', 2, 0xC3, 0x28]).unwrap_err();
        assert_eq!(err.to_string(), "routing tag 1 (byte 2) is not valid UTF-8");
        assert_eq!(RoutingMetadata::decode(&[]), Ok(RoutingMetadata::default()));
        // The route alone is checked the same way, every tag included.
        assert_eq!(RoutingMetadata::decode_route(&[1, b'a', 2, 0xC3, 0x28]), Err(err));
        assert_eq!(RoutingMetadata::decode_route(&[]), Ok(None));
    }
}
