//! Per-stream state.
//!
//! A stream has two directions, each [`Half::Open`] or [`Half::Closed`]; which exist from the
//! start depends on the interaction model and on whether this side requested or responds:
//!
//! ```text
//!                      requester (this side opened it)   responder (the peer opened it)
//! request/response     out: Closed   in: Open (1 reply)   out: Open (1 reply)  in: Closed
//! request/stream       out: Closed   in: Open (credit)    out: Open (credit)   in: Closed
//! channel              out: Open*    in: Open (credit)    out: Open (credit)   in: Open*
//!                      (* Closed at once when REQUEST_CHANNEL carried C)
//! fire-and-forget      no state is kept on either side
//! ```
//!
//! `out` closes when this side sends (C) (or answers a request/response), `in` when the peer
//! does. The stream is forgotten when both are closed, or at once on ERROR either way, on
//! CANCEL (sent by the requester, received by the responder), or when the connection closes.
//! Where the runtime keeps its own state in the record (`Connection<A>`), an ended stream's
//! record stays, marked ended and seen by nothing but the runtime, until the runtime releases it.
//! `in` credit (`in_outstanding`) counts messages the peer may still send; `out_credit` counts
//! messages this side may still send.

use super::{Kind, append};
use crate::frame;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Half {
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Requester,
    Responder,
}

#[derive(Debug)]
pub(super) struct Stream<A> {
    pub(super) kind: Kind,
    pub(super) role: Role,
    pub(super) inbound: Half,
    pub(super) outbound: Half,
    /// Messages the peer may still send before it needs more credit.
    pub(super) in_outstanding: u64,
    /// Messages consumed since credit was last granted back.
    pub(super) in_unacked: u32,
    /// Bytes of messages handed to the application and not yet reported consumed (for
    /// `Config::unread_limits`).
    pub(super) in_queued: u64,
    /// The inbound credit window (it grows for small messages: `Config::next_window`).
    pub(super) in_window: u32,
    /// Bytes and count of messages received since the window was last reconsidered.
    pub(super) in_bytes: u64,
    pub(super) in_count: u32,
    /// Messages this side may still send.
    pub(super) out_credit: u64,
    /// Fragments of a message being reassembled. Boxed: rarely there, and every stream is
    /// moved into and out of the connection's map (unboxed, it made a stream twice as large,
    /// large enough to be moved with a call to `memcpy`).
    pub(super) reassembly: Option<Box<Reassembly>>,
    /// The request itself is still being reassembled; nothing was told to the application.
    pub(super) pending_request: bool,
    /// Over, and kept only until the runtime releases it (`Connection::release`).
    pub(super) ended: bool,
    /// What the runtime keeps with the stream.
    pub(super) attached: A,
}

impl<A: Default> Stream<A> {
    /// A stream this side opened, granting `window` credit on streams and channels.
    pub(super) fn requester(kind: Kind, window: u32, complete: bool) -> Stream<A> {
        let (outbound, in_outstanding) = match kind {
            Kind::RequestResponse | Kind::FireAndForget => (Half::Closed, 1),
            Kind::RequestStream => (Half::Closed, u64::from(window)),
            Kind::Channel => (if complete { Half::Closed } else { Half::Open }, u64::from(window)),
        };
        Stream {
            kind,
            role: Role::Requester,
            inbound: Half::Open,
            outbound,
            in_outstanding,
            in_unacked: 0,
            in_queued: 0,
            in_window: window,
            in_bytes: 0,
            in_count: 0,
            out_credit: 0,
            reassembly: None,
            pending_request: false,
            ended: false,
            attached: A::default(),
        }
    }

    /// A stream the peer opened with `initial_n` credit for this side.
    pub(super) fn responder(kind: Kind, initial_n: u32, complete: bool) -> Stream<A> {
        let inbound = if kind == Kind::Channel && !complete { Half::Open } else { Half::Closed };
        let out_credit = match kind {
            Kind::RequestStream | Kind::Channel => u64::from(initial_n),
            _ => 0,
        };
        Stream {
            kind,
            role: Role::Responder,
            inbound,
            // A fragmented request needs its inbound direction to gather fragments; it is
            // set back by `emit_request` through `pending_request`.
            outbound: if kind == Kind::FireAndForget { Half::Closed } else { Half::Open },
            in_outstanding: 0,
            in_unacked: 0,
            in_queued: 0,
            in_window: 0,
            in_bytes: 0,
            in_count: 0,
            out_credit,
            reassembly: None,
            pending_request: false,
            ended: false,
            attached: A::default(),
        }
    }
}

impl<A> Stream<A> {
    /// Over: both directions closed, nothing more to send or receive.
    pub(super) fn end(&mut self) {
        self.inbound = Half::Closed;
        self.outbound = Half::Closed;
        self.in_outstanding = 0;
        self.out_credit = 0;
        self.ended = true;
    }

    /// A message of `len` bytes arrived on credit: one credit spent, counted for the window's
    /// next size, and unread until the application reports it consumed.
    /// `unread` is the connection's count of unread bytes, all streams together.
    pub(super) fn received(&mut self, len: usize, unread: &mut u64) {
        self.in_outstanding -= 1;
        self.in_queued += len as u64;
        *unread += len as u64;
        self.in_bytes += len as u64;
        self.in_count = self.in_count.saturating_add(1);
    }

    /// Consumed messages that make a grant worth sending: half the current window.
    pub(super) fn credit_batch(&self) -> u32 {
        (self.in_window / 2).max(1)
    }

    /// Records that `n` more messages were granted to the peer.
    pub(super) fn grant(&mut self, n: u32) {
        self.in_outstanding = self.in_outstanding.saturating_add(u64::from(n));
    }
}

/// Fragments of one message, gathered until the last arrives.
#[derive(Debug)]
pub(super) struct Reassembly {
    metadata: Option<BytesMut>,
    data: Option<BytesMut>,
    pub(super) len: usize,
    /// When its first fragment arrived (for `Config::reassembly_limits`).
    pub(super) started: Instant,
}

impl Reassembly {
    pub(super) fn new(started: Instant) -> Reassembly {
        Reassembly { metadata: None, data: None, len: 0, started }
    }

    /// Appends a fragment, refusing to grow beyond `max` bytes.
    pub(super) fn push(&mut self, payload: &frame::Payload, max: usize) -> Result<(), String> {
        let add = payload.metadata.as_ref().map_or(0, Bytes::len) + payload.data.len();
        // Counted only once accepted: the connection's budget subtracts `len` when the
        // message goes, so a refused fragment must leave it as it was.
        let len = self.len.saturating_add(add);
        if len > max {
            return Err(format!("fragmented message exceeds the maximum message size of {max} bytes"));
        }
        self.len = len;
        if let Some(m) = &payload.metadata {
            append(&mut self.metadata, m);
        }
        if !payload.data.is_empty() {
            append(&mut self.data, &payload.data);
        }
        Ok(())
    }

    /// The whole message: metadata and data.
    pub(super) fn finish(self) -> (Bytes, Bytes) {
        (self.metadata.map(BytesMut::freeze).unwrap_or_default(), self.data.map(BytesMut::freeze).unwrap_or_default())
    }
}
