//! The tokio layer: the connection driver, the client handle, the server, transports.

pub(crate) mod client;
pub(crate) mod driver;
pub(crate) mod inbox;
pub(crate) mod reply;
pub(crate) mod server;
pub(crate) mod stream;
pub(crate) mod transport;
