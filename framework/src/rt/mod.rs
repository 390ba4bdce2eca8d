//! The tokio runtime layer: the connection driver, the client handle, the server.
//! (STUB: signatures are the contract for the typed layer; bodies come with the connection.)

pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod stream;
