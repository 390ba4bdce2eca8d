//! Weft: a code-generating RPC framework for Rust that speaks RSocket 1.0 on the wire.

mod config;
pub mod conn;
pub mod frame;
mod payload;
mod rt;
mod status;

pub use config::{Config, DEFAULT_DATA_MIME, MIN_FRAGMENT_SIZE};
pub use payload::{BoxFuture, BoxStream, Call, Payload};
pub use rt::client::Client;
pub use rt::server::{Handler, RunningServer, Server, ServerBuilder, Service, unimplemented_route};
pub use rt::stream::PayloadStream;
pub use rt::transport::{Io, Transport};
pub use status::{Code, Status};
