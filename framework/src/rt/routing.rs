//! Routes, end to end: how a requester writes a call's route into the request metadata (a
//! generated client's calls carry metadata written at compile time, see
//! [`MethodRoute`](crate::payload::MethodRoute)), how a responder reads it back (once per
//! distinct metadata block a connection sends, see [`RouteCache`]), and the route table that
//! finds what serves a route: the method of a generated service, or a hand-written handler
//! (see [`MethodTable`](super::service::MethodTable)). (A block that begins with a routing
//! entry seen before shares its route whatever follows.)
//!
//! A route travels as RSocket's routing extension inside composite metadata
//! (`message/x.rsocket.routing.v0`, one tag of 1 to 255 bytes), the first entry of every
//! request's metadata.

use super::handler::{Handler, NoHandler};
use super::service::{MethodTable, Service};
use crate::frame::metadata::{CompositeMetadata, well_known};
use crate::typed::codec::speaks;
use crate::{BoxFuture, Call, PayloadStream, Response, Responses, Status};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

// ---- the requester's side: writing the route -----------------------------------------------

/// Encodes a call's composite metadata: the route first, then the call's own entries.
pub(crate) fn request_metadata(call: Call) -> Result<Bytes, Status> {
    // Every call of a generated client without metadata: written at compile time.
    if let Some(encoded) = call.static_request_metadata() {
        return Ok(Bytes::from_static(encoded));
    }
    let (route, extra) = call.into_parts();
    check_route(&route)?;
    // The composite encoder leaves out entries it cannot write; a caller must hear about it.
    for entry in &extra.entries {
        entry.validate().map_err(|e| Status::invalid_argument(format!("call metadata for `{route}`: {e}")))?;
    }
    Ok(encode_request_metadata(&route, &extra))
}

/// A route fits the routing tag's length field: 1 to 255 bytes.
fn check_route(route: &str) -> Result<(), Status> {
    if route.is_empty() || route.len() > 255 {
        return Err(Status::invalid_argument(format!(
            "a route must be 1 to 255 bytes long, `{route}` is {}",
            route.len()
        )));
    }
    Ok(())
}

/// The routing entry for `route` (1 to 255 bytes), then `extra`'s entries. Written by hand
/// because every request carries it: one well-known routing entry (id 0x7E with the high bit
/// set, a 24-bit length, then one length-prefixed tag).
fn encode_request_metadata(route: &str, extra: &CompositeMetadata) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + route.len() + extra.encoded_len());
    out.put_u8(0x80 | well_known::ROUTING);
    out.put_uint(1 + route.len() as u64, 3);
    out.put_u8(route.len() as u8);
    out.put_slice(route.as_bytes());
    extra.encode(&mut out);
    out.freeze()
}

// ---- the responder's side: reading the route, finding its handler --------------------------

/// The routes of the last few distinct routing entries this connection received first in a
/// request's metadata, and the handlers that serve them (for a generated service, the method
/// itself).
///
/// A requester sends the same routing entry first with every call to a method (usually alone,
/// sometimes followed by entries of the call's own, such as its deadline), and checking it
/// (every entry, every tag, UTF-8), copying its route out and looking the route up cost more
/// than the rest of dispatching the call. A block that begins with a routing entry seen before
/// is compared byte for byte with the copy kept here, and its route and handler shared; what
/// follows that entry does not change the route, so it is read only when the call needs it.
/// What a peer can do with it is bounded: a few entries of at most [`RouteCache::MAX_BLOCK`]
/// bytes per connection, each look-up at most that many comparisons.
#[derive(Default)]
pub(crate) struct RouteCache {
    entries: [Option<KnownBlock>; RouteCache::ENTRIES],
    /// The entry to replace next (oldest first).
    next: usize,
}

/// A route, and the handler that serves it if it was resolved.
pub(crate) type Resolved = (Arc<str>, Option<Arc<dyn Handler>>);

/// A request metadata block (a copy), its route, and the handler resolved for the route.
struct KnownBlock {
    block: Box<[u8]>,
    route: Arc<str>,
    handler: Option<Arc<dyn Handler>>,
}

impl RouteCache {
    const ENTRIES: usize = 4;
    /// Blocks longer than this are checked every time (a route is at most 255 bytes, but
    /// method routes are much shorter, and a long block is rarely sent twice).
    const MAX_BLOCK: usize = 128;

    /// The route and handler of `block` if it begins with a routing entry kept here, and
    /// whether more entries follow it.
    #[inline]
    pub(crate) fn get(&self, block: &[u8]) -> Option<(Resolved, bool)> {
        let known = self.entries.iter().flatten().find(|known| block.starts_with(&known.block))?;
        Some(((known.route.clone(), known.handler.clone()), block.len() > known.block.len()))
    }

    /// Remembers that `block` carries `route` (which `CompositeMetadata::decode_route` found
    /// in it), served by `handler`, if the route is that of the routing entry that begins it;
    /// returns them.
    pub(crate) fn put(&mut self, block: &Bytes, route: Arc<str>, handler: Option<Arc<dyn Handler>>) -> Resolved {
        if let Some(len) = first_routing_entry(block)
            && len <= RouteCache::MAX_BLOCK
            // The route of the first routing entry the block's reader could read, which is this
            // one unless its own first tag is broken.
            && CompositeMetadata::decode_route(&block.slice(..len)).as_deref() == Some(&*route)
        {
            let known = KnownBlock { block: block[..len].into(), route: route.clone(), handler: handler.clone() };
            self.entries[self.next] = Some(known);
            self.next = (self.next + 1) % RouteCache::ENTRIES;
        }
        (route, handler)
    }
}

/// The length of `block`'s first entry if it is a complete routing entry (under its
/// well-known id, as every requester writes it).
fn first_routing_entry(block: &[u8]) -> Option<usize> {
    match *block {
        [id, a, b, c, ..] if id == 0x80 | well_known::ROUTING => {
            let len = 4 + u32::from_be_bytes([0, a, b, c]) as usize;
            (len <= block.len()).then_some(len)
        }
        _ => None,
    }
}

/// Dispatches each request to what serves its route: the method of a generated service, or a
/// hand-written handler. A server's and a client's (a client serves the server's requests
/// with one): both sides dispatch through it alike.
#[derive(Clone, Default)]
pub(crate) struct Router {
    /// An unkeyed hash is safe here although the peer chooses the route: the table is
    /// complete before the server starts and never grows, so a route crafted to collide costs
    /// a lookup at most a comparison with each registered route.
    pub(crate) routes: HashMap<&'static str, Served, RouteHash>,
    /// The data MIME type of the first generated service added (see
    /// `Server::connect_in_memory`).
    pub(crate) data_mime: Option<&'static str>,
}

/// What serves a route, and the data MIME type it reads: a generated method's codec's, or
/// `None` (a hand-written handler, which takes any).
#[derive(Clone)]
pub(crate) struct Served {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) data_mime: Option<&'static str>,
}

/// FNV-1a, for the route table: every request whose metadata block is not in a connection's
/// [`RouteCache`] looks its route up, and SipHash cost more than the rest of that. Unkeyed:
/// only for maps whose keys no peer can add.
pub(crate) type RouteHash = BuildHasherDefault<RouteHasher>;

/// See [`RouteHash`].
pub(crate) struct RouteHasher(u64);

impl Default for RouteHasher {
    fn default() -> Self {
        // The FNV offset basis.
        RouteHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for RouteHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Router {
    pub(crate) fn get(&self, route: &str) -> Option<&Arc<dyn Handler>> {
        self.routes.get(route).map(|served| &served.handler)
    }

    /// Serves `route` with `handler`, which reads data of the MIME type `data_mime` (`None`:
    /// any).
    ///
    /// # Panics
    /// If something already serves `route` (see `ServerBuilder::add_service`).
    pub(crate) fn insert(&mut self, route: &'static str, handler: Arc<dyn Handler>, data_mime: Option<&'static str>) {
        if self.routes.insert(route, Served { handler, data_mime }).is_some() {
            panic!("two services serve the route `{route}`");
        }
    }

    /// Serves every route of `service`, each by its method (see `ServerBuilder::add_service`).
    pub(crate) fn add_service<S: Service>(&mut self, service: S) {
        let mut table = MethodTable::default();
        service.__register(&mut table);
        for entry in table.entries {
            self.data_mime = self.data_mime.or(entry.data_mime);
            self.insert(entry.route, entry.handler, entry.data_mime);
        }
    }

    /// Serves `routes` with `handler`.
    pub(crate) fn add_handler(&mut self, routes: &'static [&'static str], handler: Arc<dyn Handler>) {
        for route in routes {
            self.insert(route, handler.clone(), None);
        }
    }

    /// The routes served, sorted, for `Debug`.
    pub(crate) fn sorted_routes(&self) -> Vec<&'static str> {
        let mut routes: Vec<_> = self.routes.keys().copied().collect();
        routes.sort_unstable();
        routes
    }
}

impl Resolve for Router {
    /// What serves `route` for a connection whose SETUP announced the data MIME type
    /// `announced`: its handler, or, for a method whose codec reads other data, a handler that
    /// says so (see [`WrongDataMime`]).
    fn resolve(&self, route: &str, announced: &str) -> Option<Arc<dyn Handler>> {
        let served = self.routes.get(route)?;
        Some(match served.data_mime {
            Some(codec) if !speaks(codec, announced) => Arc::new(WrongDataMime { codec, announced: announced.into() }),
            _ => served.handler.clone(),
        })
    }
}

/// What answers every request to a generated method on a connection whose SETUP announced a
/// data MIME type the method's codec does not read: FAILED_PRECONDITION, naming both types and
/// what to do. A request's data is not looked at (it could be anything), and the connection
/// and its other calls go on: the mismatch is the caller's wiring, not a broken peer.
/// Fire-and-forget has nobody to tell: the request is dropped.
///
/// Resolved once per distinct request metadata block, as any handler is (see [`RouteCache`]):
/// a connection's data MIME type is fixed by its SETUP, so the answer cannot change.
pub(crate) struct WrongDataMime {
    codec: &'static str,
    announced: Box<str>,
}

impl WrongDataMime {
    fn status(&self, call: &Call) -> Status {
        Status::failed_precondition(format!(
            "`{route}` reads `{codec}` data, but this connection announced `{announced}` in SETUP; \
             connect with the data MIME type `{codec}` (a generated client's `connect` announces its codec's)",
            route = call.route(),
            codec = self.codec,
            announced = self.announced,
        ))
    }
}

impl Handler for WrongDataMime {
    fn request_response(&self, call: Call, _data: Bytes) -> Response {
        Response::ready(Err(self.status(&call)))
    }

    fn request_stream(&self, call: Call, _data: Bytes) -> Responses {
        Responses::once(Err(self.status(&call)))
    }

    fn request_channel(&self, call: Call, _messages: PayloadStream) -> Responses {
        Responses::once(Err(self.status(&call)))
    }
}

impl Handler for Router {
    fn request_response(&self, call: Call, data: Bytes) -> Response {
        match self.get(call.route()) {
            Some(h) => h.request_response(call, data),
            None => NoHandler.request_response(call, data),
        }
    }

    fn fire_and_forget(&self, call: Call, data: Bytes) -> BoxFuture<'static, ()> {
        match self.get(call.route()) {
            Some(h) => h.fire_and_forget(call, data),
            None => NoHandler.fire_and_forget(call, data),
        }
    }

    fn request_stream(&self, call: Call, data: Bytes) -> Responses {
        match self.get(call.route()) {
            Some(h) => h.request_stream(call, data),
            None => NoHandler.request_stream(call, data),
        }
    }

    fn request_channel(&self, call: Call, messages: PayloadStream) -> Responses {
        match self.get(call.route()) {
            Some(h) => h.request_channel(call, messages),
            None => NoHandler.request_channel(call, messages),
        }
    }
}

/// Finds the handler of a route, for a driver that looks routes up once per distinct request
/// metadata block rather than on every request (see the driver's `RouteCache`). Resolving a
/// route and calling its handler is what [`Router`] does on every request, without the data
/// MIME check, which needs the connection: its [`Handler`] implementation is for routes nobody
/// serves (every request a server connection receives is resolved first).
pub(crate) trait Resolve: Send + Sync {
    /// The handler of `route` (for a generated service, the method), if one serves it, on a
    /// connection whose SETUP announced the data MIME type `announced`.
    fn resolve(&self, route: &str, announced: &str) -> Option<Arc<dyn Handler>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::metadata::{MimeType, RoutingMetadata};
    use crate::payload::MethodRoute;

    #[test]
    fn request_metadata_is_the_route_then_the_calls_entries() {
        let call = Call::new("echo.Echo/Unary").with_metadata(MimeType::Custom("application/x.trace".into()), "t1");
        let decoded = CompositeMetadata::decode(request_metadata(call).unwrap()).unwrap();
        assert_eq!(decoded.routing().unwrap().unwrap().tags, ["echo.Echo/Unary"]);
        assert_eq!(decoded.entries.len(), 2);
        assert_eq!(decoded.entries[1].mime, MimeType::Custom("application/x.trace".into()));
        assert_eq!(&decoded.entries[1].content[..], b"t1");
    }

    #[test]
    fn a_generated_calls_metadata_is_the_bytes_written_at_compile_time() {
        // What weft-codegen writes for `echo.Echo/Static` (16 bytes): the routing entry alone.
        const METADATA: &[u8] = b"\xFE\x00\x00\x11\x10echo.Echo/Static";
        let method = MethodRoute::new("echo.Echo/Static", METADATA);
        let a = request_metadata(Call::for_method(method)).unwrap();
        assert_eq!(a.as_ptr(), METADATA.as_ptr(), "the static bytes themselves, not a copy");
        assert_eq!(a, request_metadata(Call::new("echo.Echo/Static")).unwrap(), "as any call encodes them");
        // With metadata of its own, the call is encoded at run time, route first.
        let with_entry = Call::for_method(method).with_metadata(MimeType::Custom("application/x.t".into()), "v");
        let decoded = CompositeMetadata::decode(request_metadata(with_entry).unwrap()).unwrap();
        assert_eq!(decoded.routing().unwrap().unwrap().tags, ["echo.Echo/Static"]);
        assert_eq!(decoded.entries.len(), 2);
    }

    #[test]
    fn string_keys_are_written_out_and_well_known_names_as_their_ids() {
        let call = Call::new("a/B").with_metadata("x-user-id", "42").with_metadata("application/json", "{}");
        let bytes = request_metadata(call).unwrap();
        // After the routing entry (5 + 3 bytes): length − 1, the key, a 24-bit length, "42";
        // then the id of application/json with the high bit set, a 24-bit length, "{}".
        assert_eq!(&bytes[8..], b"\x08x-user-id\x00\x00\x0242\x85\x00\x00\x02{}");
        let decoded = CompositeMetadata::decode(bytes).unwrap();
        assert_eq!(decoded.entries[1].mime, MimeType::Custom("x-user-id".into()));
        assert_eq!(decoded.entries[2].mime, MimeType::WellKnown(well_known::JSON));
        assert_eq!(decoded.get_str("x-user-id"), Some("42"));
        assert_eq!(decoded.get_str("application/json"), Some("{}"));
    }

    #[test]
    fn unwritable_routes_and_metadata_are_refused() {
        assert!(request_metadata(Call::new("")).is_err());
        assert!(request_metadata(Call::new("x".repeat(256))).is_err());
        let bad = Call::new("a/B").with_metadata(MimeType::Custom("not ascii: é".into()), "x");
        assert_eq!(request_metadata(bad).unwrap_err().code(), crate::Code::InvalidArgument);
    }

    #[test]
    fn the_route_cache_keeps_the_last_few_routing_entries_and_matches_blocks_that_begin_with_them() {
        let mut cache = RouteCache::default();
        let block = |i: usize| CompositeMetadata::with_route(&format!("r.R/{i}")).unwrap().to_bytes();
        let route_of = |cache: &RouteCache, block: &[u8]| cache.get(block).map(|((route, _), more)| (route, more));
        let put = |cache: &mut RouteCache, i: usize| {
            let route = format!("r.R/{i}");
            assert_eq!(&*cache.put(&block(i), route.clone().into(), None).0, route);
        };
        for i in 0..RouteCache::ENTRIES + 1 {
            assert!(cache.get(&block(i)).is_none());
            put(&mut cache, i);
        }
        assert!(cache.get(&block(0)).is_none(), "the oldest made room");
        for i in 1..RouteCache::ENTRIES + 1 {
            assert_eq!(route_of(&cache, &block(i)), Some((format!("r.R/{i}").into(), false)));
        }
        // Entries after the routing entry leave the route as it is, and are reported.
        let mut with_more = CompositeMetadata::with_route("r.R/1").unwrap();
        with_more.push("x-user-id", "42").unwrap();
        assert_eq!(route_of(&cache, &with_more.to_bytes()), Some(("r.R/1".into(), true)));
        // A routing entry that differs only in its length is another one.
        let mut longer = block(1).to_vec();
        longer[3] += 1;
        longer.push(b'x');
        assert!(cache.get(&longer).is_none());
        assert!(cache.get(&block(1)[..block(1).len() - 1]).is_none(), "nor is a cut one");

        // Not kept: a block that does not begin with a routing entry, a long routing entry,
        // and one whose route is not its own (its first tag is broken, so the route came
        // from a later entry).
        let mut other_first = CompositeMetadata::default();
        other_first.push("x-user-id", "42").unwrap();
        other_first
            .push(MimeType::WellKnown(well_known::ROUTING), RoutingMetadata::new("r.R/9").unwrap().to_bytes())
            .unwrap();
        let other_first = other_first.to_bytes();
        cache.put(&other_first, "r.R/9".into(), None);
        assert!(cache.get(&other_first).is_none());
        let long = CompositeMetadata::with_route(&"l".repeat(RouteCache::MAX_BLOCK)).unwrap().to_bytes();
        cache.put(&long, "l".repeat(RouteCache::MAX_BLOCK).into(), None);
        assert!(cache.get(&long).is_none(), "too long to keep");
        let broken = Bytes::from_static(b"\xfe\x00\x00\x02\x05a");
        cache.put(&broken, "r.R/7".into(), None);
        assert!(cache.get(&broken).is_none());
        assert!(cache.get(&block(1)).is_some(), "and they pushed nothing out");
    }
}
