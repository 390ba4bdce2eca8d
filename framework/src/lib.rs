//! Weft: a code-generating RPC framework for Rust that speaks RSocket 1.0 on the wire.
//!
//! # Architecture
//!
//! A service is written once, as a Rust trait under [`#[weft::service]`](service) or as a
//! `.proto` file compiled by a build script, and Weft generates a typed client and server for
//! it. Below the generated code every layer speaks only to the one beneath it: messages become
//! payloads, payloads become the streams of one connection, streams become RSocket frames, and
//! frames become bytes on a transport. The connection and the frame codec are sans-IO: they take
//! bytes, commands and the current time, and hand back frames, events and the next deadline, so
//! every protocol rule is tested without a socket; tokio appears only in the runtime that drives
//! them.
//!
//! ```text
//!  trait + #[weft::service]            .proto file + build.rs
//!            │ weft-macros                    │ weft-codegen (configure())
//!            └───────────────┬────────────────┘
//!                            ▼  one service model, one emitter
//!  typed layer    weft::typed     codecs, Streaming, Context, Request; the generated
//!                                 {Service}Client and {Service}Server<T>
//!                            │  messages ⇄ payloads (Bytes + composite metadata)
//!  runtime        Client, Server  tokio: the connection driver, one per connection;
//!                 Handler         the payload-level API
//!                            │  commands ⇄ events
//!  connection     weft::conn      sans-IO: RSocket's rules, streams, REQUEST_N credit,
//!                                 fragmentation, keepalive, limits
//!                            │  frames ⇄ frames
//!  frames         weft::frame     sans-IO: encode and decode every frame; composite and
//!                                 routing metadata
//!                            │  bytes ⇄ bytes, each frame behind a 24-bit length prefix
//!  transport      Transport       TCP, in-memory; any AsyncRead + AsyncWrite through Io
//! ```
//!
//! What each layer owns, and what of it is public:
//!
//! - **Code generation** (`weft-macros`, `weft-codegen`): parsing the trait or the `.proto`
//!   file, checking it, lowering it into one service model, and emitting the server trait,
//!   `{Service}Client` and `{Service}Server<T>`. The generated code calls generic functions of
//!   the typed layer through a hidden `weft::__private` module, which is not public API.
//! - **The typed layer** ([`typed`], its items re-exported here): messages instead of bytes.
//!   A [`Codec`] ([`ProstCodec`] by default, or [`BytesCodec`]) encodes them; [`Streaming`],
//!   [`Context`] and [`Request`] appear in the signatures of services and generated clients.
//!   Per-call metadata is keyed by string, as in gRPC, each key a composite-metadata
//!   [`MimeType`] checked when it is made: `Request::new(msg).with_metadata("x-user-id", "42")`
//!   on the client, `ctx.metadata().get_str("x-user-id")` in the handler
//!   ([`CompositeMetadata::get`]).
//! - **The runtime** ([`Client`], [`Server`], [`Handler`], [`Service`], [`PayloadStream`],
//!   [`Config`]): the tokio layer. Each connection has a driver, the one future that touches its
//!   transport: it owns the [`conn::Connection`] and the read and write buffers, feeds the
//!   connection what it reads, what the handles ask for (through one inbox) and the timer's
//!   expiries, writes what the connection emits, delivers messages to the streams that wait for
//!   them, and polls the streams this side sends. The driver is private; [`Client`] (requests)
//!   and [`Handler`] (answers) are the public payload-level API, for hand-written services and
//!   for RSocket peers that are not Weft.
//! - **The connection** ([`conn`]): one side of an RSocket connection as a state machine, with
//!   no IO and no clock: SETUP, the streams and their states, REQUEST_N credit both ways,
//!   cancellation, fragmentation and reassembly, keepalive, the limits, and which errors close
//!   a stream and which the connection.
//! - **Frames** ([`frame`]): every RSocket 1.0 frame encoded and decoded on [`bytes`], the
//!   composite and routing metadata ([`frame::metadata`]), and the 24-bit length prefix of
//!   stream transports ([`frame::length`]).
//! - **Transports** ([`Transport`], [`Io`]): a reliable, ordered byte stream split into a read
//!   half and a write half. TCP ([`Client::connect`], [`Server::bind`]) and an in-memory duplex
//!   ([`Server::connect_in_memory`]) ship with Weft; the runtime adds and strips the length
//!   prefix as it writes and reads.
//!
//! [`conn`] and [`frame`] are a public, documented low-level layer, as `quinn-proto` is to
//! `quinn`: what a different runtime, a fuzzer or a protocol test would build on. Most programs
//! need only the generated code, [`Client`], [`Server`] and [`Config`].
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
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder().add_service(GreeterServer::new(MyGreeter)).build();
//! let client = GreeterClient::new(server.connect_in_memory().await?);
//! let reply = client.say_hello(HelloRequest { name: "Ada".into() }).await?;
//! assert_eq!(reply.message, "Hello, Ada!");
//! # Ok(())
//! # }
//! ```
//!
//! The same service written as a `.proto` file is compiled in a build script by
//! `weft_codegen::configure().compile_protos(…)` and pulled into a module with
//! [`include_proto!`]; the generated items are the same.
//!
//! # Below the typed layer
//!
//! A [`Client`] makes calls at the payload level (a [`Call`] names the route and carries
//! metadata; the data is [`bytes::Bytes`]), and a [`Handler`] answers them; generated clients and
//! servers are built on the two. Every connection carries requests both ways: a client serves
//! the server's requests with the services and handlers added to its [`ClientBuilder`] (as a
//! server's are to its [`ServerBuilder`], and dispatched the same way), and a handler reaches
//! that side through [`Context::peer`] or [`Call::peer`].
//!
//! # Settings
//!
//! [`Config`] holds what applies to either side of a connection: credit windows,
//! fragmentation, and the limits that bound what a peer can make a connection hold. Each side
//! takes one on its builder, beside its own settings: a [`ClientBuilder`] chooses what the
//! client announces in SETUP (keepalive, the data MIME type), a [`ServerBuilder`] how the
//! server holds clients to it and how it serves them (setup timeout, longest peer lifetime,
//! connection limit, shutdown grace). A setting of one side cannot be given to the other: it is
//! not a method there. [`Config`]'s documentation lists each side's settings and why they are
//! that side's.
//!
//! # Errors
//!
//! A call fails with a [`Status`]: a gRPC-style [`Code`] and a message. Setting up and tearing
//! down connections and listeners fails with an [`Error`], whose [`ErrorKind`] says what
//! happened: connecting or binding failed, the server rejected the SETUP, or the connection
//! closed (and who closed it, and why). `?` turns an [`Error`] into a [`Status`].

mod config;
pub mod conn;
mod error;
pub mod frame;
#[cfg(feature = "macros")]
pub mod health;
mod include;
mod payload;
mod rt;
mod status;
pub mod typed;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use config::{Config, DEFAULT_DATA_MIME, MIN_FRAGMENT_SIZE};
pub use error::{Error, ErrorKind};
pub use frame::auth::{Credentials, CredentialsError};
pub use frame::metadata::{AsMetadataKey, CompositeMetadata, IntoMetadataKey, MetadataEntry, MetadataError, MimeType};
pub use payload::{BoxFuture, BoxStream, Call, Payload};
pub use rt::auth::SetupInfo;
pub use rt::balance::Change;
pub use rt::client::Client;
pub use rt::connect::ClientBuilder;
pub use rt::deadline::TIMEOUT_MIME;
pub use rt::endpoint::Reconnect;
pub use rt::handler::{Handler, unimplemented_route};
pub use rt::responses::{Response, Responses};
pub use rt::retry::Retry;
pub use rt::server::{AcceptError, RunningServer, Server, ServerBuilder};
pub use rt::service::Service;
pub use rt::stream::PayloadStream;
#[cfg(feature = "tls")]
pub use rt::tls::{ClientTls, ServerTls};
pub use rt::transport::{Io, Transport};
#[cfg(feature = "websocket")]
pub use rt::websocket::{WebSocket, WebSocketReader, WebSocketWriter};
pub use status::{Code, Status};
pub use typed::{
    BytesCodec, Codec, CodecError, Context, DataMime, IntoRequest, IntoStreamingRequest, ProstCodec, Request, Streaming,
};
#[cfg(feature = "macros")]
pub use weft_macros::service;

/// The README's Rust examples, compiled as doc-tests so that what a new user copies from it
/// builds. It shows the optional transports too, so it is compiled with them (as
/// `cargo test --workspace` builds `weft`: the tests and examples enable them).
#[cfg(all(doctest, feature = "websocket", feature = "tls"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
