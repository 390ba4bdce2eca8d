//! The runtime: the tokio layer between the typed layer above and the sans-IO connection
//! ([`crate::conn`]) below. Its modules form layers, each using only those listed before it:
//!
//! - Leaves: [`sync`] (locks and wakers), [`unwind`] (panics to INTERNAL), [`alarm`] (the
//!   connection deadlines' timer), [`transport`] (what a connection runs over), [`responses`]
//!   (what handlers answer with), [`budget`] (the outgoing byte budget), [`slot`] (a
//!   request/response's reply, the driver's end), [`queue`] (a stream's inbound queue, the
//!   driver's end), [`assist`] (a client's driver, which waiting callers may run).
//! - Vocabulary: [`command`] (what handles ask of the driver), [`inbox`] (where they ask it),
//!   [`handles`] (what every handle of a connection shares).
//! - The handles' ends: [`reply`] (a request/response caller's), [`stream`] (a stream
//!   reader's: `PayloadStream`), [`handler`] (what answers the peer: `Handler`), [`service`]
//!   (`Service`, and its methods, each a handler, for a server's route table), [`routing`]
//!   (routes, written and read), [`client`] (`Client` and its calls).
//! - The driver: [`driver`], the one future that touches a connection's transport.
//! - On top: [`shutdown`] (a server's connections, told to stop), then [`connect`]
//!   (`ClientBuilder`: starting a client connection) and [`server`] (`Server`), side by side:
//!   each starts the other's end of an in-memory connection. Both serve requests through the
//!   one route table of [`routing`].

pub(crate) mod alarm;
pub(crate) mod assist;
pub(crate) mod auth;
pub(crate) mod balance;
pub(crate) mod budget;
pub(crate) mod client;
pub(crate) mod command;
pub(crate) mod connect;
pub(crate) mod deadline;
pub(crate) mod driver;
pub(crate) mod endpoint;
pub(crate) mod handler;
pub(crate) mod handles;
pub(crate) mod inbox;
pub(crate) mod queue;
pub(crate) mod reply;
pub(crate) mod responses;
pub(crate) mod retry;
pub(crate) mod routing;
pub(crate) mod server;
pub(crate) mod service;
pub(crate) mod shutdown;
pub(crate) mod slot;
pub(crate) mod stream;
pub(crate) mod sync;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod trace;
pub(crate) mod transport;
pub(crate) mod unwind;
#[cfg(feature = "websocket")]
pub(crate) mod websocket;
