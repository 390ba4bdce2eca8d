//! Weft: a code-generating RPC framework for Rust that speaks RSocket 1.0 on the wire.
//!
//! # Typed services
//!
//! Describe a service as a trait, annotate it with [`#[weft::service]`](service), and Weft
//! generates a client (`GreeterClient`) and a server (`GreeterServer`) for it. Every method
//! maps onto an RSocket interaction model by its signature; the [`service`] attribute's
//! documentation is the full reference, and the [`typed`] module describes the pieces.
//!
//! ```
//! use weft::{Server, Status};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct HelloRequest {
//!     #[prost(string, tag = "1")]
//!     pub name: String,
//! }
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! pub struct HelloReply {
//!     #[prost(string, tag = "1")]
//!     pub message: String,
//! }
//!
//! /// Greets people.
//! #[weft::service(package = "greet")]
//! pub trait Greeter {
//!     /// Answers a greeting.
//!     async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status>;
//! }
//!
//! struct MyGreeter;
//!
//! impl Greeter for MyGreeter {
//!     async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status> {
//!         Ok(HelloReply { message: format!("Hello, {}!", req.name) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Status> {
//! let server = Server::builder().add_service(GreeterServer::new(MyGreeter)).build();
//! let client = GreeterClient::new(server.connect_in_memory().await?);
//! let reply = client.say_hello(HelloRequest { name: "Ada".into() }).await?;
//! assert_eq!(reply.message, "Hello, Ada!");
//! # Ok(())
//! # }
//! ```

mod config;
pub mod conn;
pub mod frame;
mod include;
mod payload;
mod rt;
mod status;
pub mod typed;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use config::{Config, DEFAULT_DATA_MIME, MIN_FRAGMENT_SIZE};
pub use payload::{BoxFuture, BoxStream, Call, Payload};
pub use rt::client::Client;
pub use rt::handler::{Handler, Service, unimplemented_route};
pub use rt::responses::{Response, Responses};
pub use rt::server::{RunningServer, Server, ServerBuilder};
pub use rt::stream::PayloadStream;
pub use rt::transport::{Io, Transport};
pub use status::{Code, Status};
pub use typed::{
    BytesCodec, Codec, CodecError, Context, IntoRequest, IntoStreamingRequest, ProstCodec, Request, Streaming,
};
#[cfg(feature = "macros")]
pub use weft_macros::service;
