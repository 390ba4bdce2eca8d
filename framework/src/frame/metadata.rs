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
    pub fn id(name: &str) -> Option<u8> {
        TABLE.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(id, _)| *id)
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

/// The MIME type of one composite metadata entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MimeType {
    /// A well-known id (7 bits).
    WellKnown(u8),
    /// A MIME type written out (ASCII, 1..=128 bytes).
    ///
    /// Its length byte holds the length − 1: the spec's diagram says "length", but the Java,
    /// JavaScript and Python implementations all write length − 1 (an empty MIME type being
    /// meaningless, this buys the 128th byte), and interoperating means doing the same.
    /// `application/x.weft-test`, 23 bytes, is written `0x16`.
    Custom(String),
}

impl MimeType {
    /// A MIME type to be written out, checked: 1 to 128 ASCII bytes.
    ///
    /// This keeps the string form even for well-known types (a peer may send routing that
    /// way); use [`MimeType::from_name`] for the compact form.
    pub fn custom(name: impl Into<String>) -> Result<MimeType, MetadataError> {
        let mime = MimeType::Custom(name.into());
        mime.validate()?;
        Ok(mime)
    }

    /// The compact form of MIME type `name`: its well-known id if it has one, otherwise
    /// written out (checked as by [`MimeType::custom`]).
    pub fn from_name(name: &str) -> Result<MimeType, MetadataError> {
        match well_known::id(name) {
            Some(id) => Ok(MimeType::WellKnown(id)),
            None => MimeType::custom(name),
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
            MimeType::Custom(name) if name.is_empty() || name.len() > MAX_CUSTOM_MIME_LEN => {
                Err(MetadataError::new(format!(
                    "MIME type `{name}` is {} bytes long; composite metadata can write out 1 to \
                     {MAX_CUSTOM_MIME_LEN} bytes",
                    name.len()
                )))
            }
            MimeType::Custom(name) if !name.is_ascii() => {
                Err(MetadataError::new(format!("MIME type `{name}` is not ASCII")))
            }
            MimeType::Custom(_) => Ok(()),
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

    /// Appends an entry, checked as by [`MetadataEntry::new`].
    pub fn push(&mut self, mime: MimeType, content: impl Into<Bytes>) -> Result<(), MetadataError> {
        self.entries.push(MetadataEntry::new(mime, content)?);
        Ok(())
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
            RawMime::Name(name) => MimeType::Custom(String::from_utf8_lossy(&name).into_owned()),
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
    fn unwritable_entries_and_tags_are_left_out() {
        let m = CompositeMetadata {
            entries: vec![
                MetadataEntry { mime: MimeType::Custom(String::new()), content: Bytes::from_static(b"x") },
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
