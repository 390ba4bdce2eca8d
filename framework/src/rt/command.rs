//! What handles ask of a connection's driver: [`Command`]s (bounded: a sender waits for room)
//! and [`Control`] signals (unbounded, sent from `Drop`; see the driver's module doc), and
//! where a stream's inbound messages go ([`Inbound`]).

use super::budget::Reserved;
use super::queue::Inlet;
use super::responses::Responses;
use super::slot::ReplySender;
use crate::conn::Kind;
use crate::{Payload, Status};
use bytes::Bytes;
use tokio::sync::oneshot;

/// Commands queued for the driver at most (see [`Inbox`](super::inbox::Inbox)).
pub(crate) const COMMAND_CAPACITY: usize = 1024;
/// A request from a handle, or the answer of a request/response handler's task.
pub(crate) enum Command {
    /// Open a stream. `opened` learns the stream id (or why not); if it was dropped (the
    /// caller gave up) the stream is cancelled at once.
    Open {
        kind: Kind,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        inbound: Option<Inbound>,
        outbound: Option<Responses>,
        opened: Opened,
    },
    /// A request/response handler's outcome, holding `permits` of the outgoing byte budget.
    Respond { id: u32, result: Result<Payload, Status>, reserved: Reserved },
}

/// How the driver tells a caller which stream its request opened.
pub(crate) enum Opened {
    /// Through a channel, with the id or why the stream could not open; if the receiver is
    /// gone (the caller gave up), the stream is cancelled at once.
    Reply(oneshot::Sender<Result<u32, Status>>),
    /// Request/response: through the caller's reply slot (its `Inbound::Single`), so the
    /// caller waits for one thing only, the answer, which also carries a failure to open.
    Slot,
}

/// Signals from stream handles; see the module doc for why they are not bounded.
#[derive(Debug)]
pub(crate) enum Control {
    /// The application consumed messages of a stream: how many, and their bytes.
    Consumed(u32, u32, u64),
    /// The application dropped its end of a stream before it finished.
    Cancel(u32),
    /// Close the connection; `graceful` waits for open streams (bounded by the grace period).
    Close { graceful: bool },
    /// The server is shutting down: close gracefully, and cut what is left after the
    /// configured grace period.
    Shutdown,
}

/// Where a stream's inbound messages go.
pub(crate) enum Inbound {
    Single(ReplySender),
    Many(Inlet),
}
