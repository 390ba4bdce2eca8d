//! What generated code uses, by absolute path (`::weft::__private::…`), so that users need no
//! other dependency and no import. Not a public API: anything here may change in any release.

pub use crate::payload::MethodRoute;
pub use crate::rt::service::MethodTable;
pub use crate::typed::client::{
    DataMimeCheck, call_channel, call_client_streaming, call_fire_and_forget, call_stream, call_unary,
};
pub use crate::typed::server::{
    box_stream, ignore, not_served, reject_stream, reject_unary, serve_channel, serve_client_streaming,
    serve_fire_and_forget, serve_stream, serve_unary,
};
pub use crate::typed::{Codec, Context, DataMime, IntoRequest, IntoStreamingRequest, ProstCodec, Streaming};
pub use crate::{
    BoxFuture, BoxStream, Call, Client, Error, Handler, Payload, PayloadStream, Response, Responses, Service, Status,
};
pub use bytes::Bytes;
pub use futures_core::Stream;
pub use tokio::net::ToSocketAddrs;
