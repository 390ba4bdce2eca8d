//! Composite metadata and routing metadata (RSocket extensions).
//! (STUB: the frame-layer helper fills this in; the signatures are the contract.)

use bytes::{BufMut, Bytes};
use std::fmt;

/// Well-known MIME type ids (Extensions/WellKnownMimeTypes.md).
pub mod well_known {
    /// `application/octet-stream`.
    pub const OCTET_STREAM: u8 = 0x06;
    /// `application/vnd.google.protobuf`.
    pub const PROTOBUF: u8 = 0x09;
    /// `message/x.rsocket.mime-type.v0` (per-stream data MIME type).
    pub const MIME_TYPE: u8 = 0x7A;
    /// `message/x.rsocket.authentication.v0`.
    pub const AUTHENTICATION: u8 = 0x7C;
    /// `message/x.rsocket.routing.v0`.
    pub const ROUTING: u8 = 0x7E;
    /// `message/x.rsocket.composite-metadata.v0`.
    pub const COMPOSITE_METADATA: u8 = 0x7F;
}

/// The composite metadata MIME type, announced in SETUP.
pub const COMPOSITE_METADATA_MIME: &str = "message/x.rsocket.composite-metadata.v0";
/// The routing metadata MIME type.
pub const ROUTING_MIME: &str = "message/x.rsocket.routing.v0";

/// The MIME type of one composite metadata entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MimeType {
    /// A well-known id (7 bits).
    WellKnown(u8),
    /// A MIME type written out (ASCII, 1..=128 bytes).
    Custom(String),
}

/// One entry of composite metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataEntry {
    /// The entry's MIME type.
    pub mime: MimeType,
    /// The entry's content.
    pub content: Bytes,
}

/// Composite metadata: an ordered list of entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompositeMetadata {
    /// Entries in wire order.
    pub entries: Vec<MetadataEntry>,
}

/// Malformed composite or routing metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataError {
    /// What was wrong, in words.
    pub reason: String,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed metadata: {}", self.reason)
    }
}

impl std::error::Error for MetadataError {}

impl CompositeMetadata {
    /// Decodes a composite metadata block; entries are slices of `bytes`.
    pub fn decode(_bytes: Bytes) -> Result<Self, MetadataError> {
        todo!()
    }

    /// Appends the encoding of every entry.
    pub fn encode<B: BufMut>(&self, _buf: &mut B) {
        todo!()
    }

    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        todo!()
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        todo!()
    }

    /// The first routing entry's tags (well-known id or MIME written out), decoded.
    pub fn routing(&self) -> Result<Option<RoutingMetadata>, MetadataError> {
        todo!()
    }
}

/// Routing metadata: a list of UTF-8 tags of at most 255 bytes each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingMetadata {
    /// Tags in order; the first is the route.
    pub tags: Vec<String>,
}

impl RoutingMetadata {
    /// Decodes routing metadata content.
    pub fn decode(_bytes: &[u8]) -> Result<Self, MetadataError> {
        todo!()
    }

    /// Appends the encoding.
    pub fn encode<B: BufMut>(&self, _buf: &mut B) {
        todo!()
    }
}
