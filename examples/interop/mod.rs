//! The interop service shared by `interop_server` and `interop_client`: `echo.Echo`, the table
//! in tests/interop/README.md, over the raw-bytes codec so that payload data is the message
//! bytes exactly (what the Python and JavaScript peers send and expect).

// Each example uses one half of what the macro generates (the server never calls `EchoClient`,
// the client never serves `EchoServer`) and of the modules here (the client serves nothing).
#![allow(dead_code)]

pub(crate) mod endpoint;
pub(crate) mod service;

use bytes::Bytes;
use futures_util::Stream;
use weft::{Status, Streaming};

/// The data MIME type every interop peer announces in SETUP: payload data is opaque bytes.
pub(crate) const DATA_MIME: &str = <weft::BytesCodec as weft::DataMime>::MIME;

/// The largest N `echo.Echo/ServerStream` accepts.
pub(crate) const MAX_STREAM_N: u64 = 1_000_000;

/// The largest N `echo.Echo/ChannelCount` accepts (N payloads each way).
pub(crate) const MAX_CHANNEL_COUNT: u64 = 1_000;

/// The interop service. Routes are `echo.Echo/{Unary, Error, ServerStream, Channel,
/// ChannelCount, Fire, FireCount}`, the same names the Python and JavaScript peers route on.
#[weft::service(package = "echo", codec = weft::BytesCodec)]
pub trait Echo {
    /// Answers with the request data unchanged (0 bytes included).
    async fn unary(&self, data: Bytes) -> Result<Bytes, Status>;
    /// Answers ERROR APPLICATION_ERROR whose message is the request data (UTF-8).
    async fn error(&self, message: Bytes) -> Result<Bytes, Status>;
    /// Data is an ASCII decimal N (0..=1,000,000): streams `"0"` .. `"N-1"`, then completes.
    async fn server_stream(&self, n: Bytes) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// Echoes every inbound payload, the first included; completes after the requester does.
    async fn channel(&self, msgs: Streaming<Bytes>) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// N payloads each way: the first inbound payload is an ASCII decimal N (1..=1,000), and
    /// the requester sends N in all (that one included). Streams `"0"` .. `"N-1"` whatever the
    /// inbound side does, then completes once the requester has completed too (ERROR if it
    /// sent other than N).
    async fn channel_count(&self, msgs: Streaming<Bytes>) -> Result<impl Stream<Item = Result<Bytes, Status>>, Status>;
    /// Counts one fire under the key that is its data.
    async fn fire(&self, key: Bytes);
    /// Data is a key: answers the ASCII decimal count of `Fire`s with that key (empty: total).
    async fn fire_count(&self, key: Bytes) -> Result<Bytes, Status>;
}

/// Resolves on SIGINT or SIGTERM.
/// (The interop and browser servers stop on either: a runner kills by PID with SIGTERM.)
pub(crate) async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
