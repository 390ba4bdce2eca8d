//! The messages of `proto/bench.proto` and the tonic client and server generated from it (by
//! `build.rs`, through protox). Weft's service uses the same message types.
#![allow(clippy::all, missing_docs, unreachable_pub)]

include!(concat!(env!("OUT_DIR"), "/bench.rs"));

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// The response stream of `ServerStream`, shared by the tonic and Weft servers: `count`
/// messages of `size` bytes, or with `hold` one message and then an open, silent stream.
pub fn produce<E: Send + 'static>(req: StreamReq) -> BoxStream<'static, Result<Msg, E>> {
    let msg = Msg { data: bytes::Bytes::from(vec![0xA5u8; req.size.min(1 << 20) as usize]) };
    if req.hold {
        futures_util::stream::once(std::future::ready(Ok(msg))).chain(futures_util::stream::pending()).boxed()
    } else {
        futures_util::stream::iter((0..req.count).map(move |_| Ok(msg.clone()))).boxed()
    }
}
