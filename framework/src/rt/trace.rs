//! What Weft tells a `tracing` subscriber: the events a production log keeps, when a
//! connection ends other than in the ordinary way and when a client cannot reach its server.
//! Nothing on the per-call path: an event costs a disabled check (one atomic load) where no
//! subscriber listens, and connections end far less often than calls run.
//!
//! Targets: `weft::connection` (a connection's end, with `side`, `peer` and `reason`) and
//! `weft::client` (a reconnecting or balancing client's attempts to connect).
//!
//! | what | level |
//! |---|---|
//! | this side found the peer at fault (a protocol error, INVALID_SETUP included: ERROR sent on stream 0) | WARN |
//! | the peer closed with an error, or the server refused this client's SETUP | WARN |
//! | a server refused a connection's SETUP (its authenticate hook, limits, MIME types) | INFO |
//! | the peer went silent past the keepalive max lifetime | WARN |
//! | the transport failed (a reset, a broken pipe) | INFO |
//! | an ordinary close, by either side | DEBUG |
//! | a reconnecting client could not connect (it tries again after its backoff) | WARN |
//! | a reconnecting client connected again | INFO |

use crate::ErrorKind;
use crate::conn::{CloseReason, Side};
use std::net::SocketAddr;

/// A connection of this `side` with `peer` ended, for `why`.
pub(crate) fn connection_closed(why: &crate::Error, side: Side, peer: Option<SocketAddr>) {
    let (side, peer) = (if side == Side::Server { "server" } else { "client" }, peer.map(|p| p.to_string()));
    let peer = peer.as_deref().unwrap_or("-");
    match why.kind() {
        ErrorKind::Closed(CloseReason::ProtocolError { code, .. }) if is_setup_code(*code) => {
            tracing::info!(target: "weft::connection", side, peer, reason = %why, "refused a connection's SETUP");
        }
        ErrorKind::Closed(CloseReason::ProtocolError { .. }) => {
            tracing::warn!(target: "weft::connection", side, peer, reason = %why, "closed a connection: the peer broke the protocol");
        }
        ErrorKind::Closed(CloseReason::PeerError { .. }) | ErrorKind::SetupRejected { .. } => {
            tracing::warn!(target: "weft::connection", side, peer, reason = %why, "the peer closed the connection with an error");
        }
        ErrorKind::Closed(CloseReason::KeepaliveTimeout(_)) => {
            tracing::warn!(target: "weft::connection", side, peer, reason = %why, "closed a silent connection");
        }
        ErrorKind::Transport => {
            tracing::info!(target: "weft::connection", side, peer, reason = %why, "a connection's transport failed");
        }
        _ => tracing::debug!(target: "weft::connection", side, peer, reason = %why, "connection closed"),
    }
}

/// A reconnecting client could not connect to `server`; it tries again after `wait`.
pub(crate) fn connect_failed(server: &str, why: &crate::Error, failures: u32, wait: std::time::Duration) {
    tracing::warn!(target: "weft::client", server, reason = %why, failures, retry_in_ms = wait.as_millis() as u64, "could not connect");
}

/// A reconnecting client connected to `server` again.
pub(crate) fn reconnected(server: &str) {
    tracing::info!(target: "weft::client", server, "connected again");
}

fn is_setup_code(code: crate::frame::ErrorCode) -> bool {
    use crate::frame::ErrorCode;
    // INVALID_SETUP is not a refusal but a peer at fault (no SETUP first, or a malformed one).
    matches!(code, ErrorCode::UNSUPPORTED_SETUP | ErrorCode::REJECTED_SETUP)
}
