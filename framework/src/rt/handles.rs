//! What every handle of a connection shares with its driver: the inbox, the close reason, the
//! outgoing byte budget, and (a client's) the driver that callers may run.

use super::assist::Assist;
use super::budget::Budget;
use super::inbox::Inbox;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// What every handle of a connection shares (the command sender is held apart, because the
/// connection closes once the last one is dropped). Behind one `Arc`: every request from the
/// peer hands its handler a [`Client`](crate::Client) for the way back, and a stream's reader holds one too,
/// so a clone should cost one count, not one per field.
#[derive(Clone, Debug)]
pub(crate) struct Handles(Arc<HandlesInner>);

impl std::ops::Deref for Handles {
    type Target = HandlesInner;

    fn deref(&self) -> &HandlesInner {
        &self.0
    }
}

impl Handles {
    /// The handles of a connection configured by `config`, whose driver takes what is
    /// signalled to `inbox` and says on `closed` when it is over.
    pub(crate) fn new(
        inbox: Arc<Inbox>,
        config: &crate::Config,
        closed: watch::Receiver<Option<crate::Error>>,
        assist: Option<Arc<Assist>>,
        peer: Peer,
    ) -> Handles {
        Handles(Arc::new(HandlesInner {
            inbox,
            credit_batch: config.credit_batch(),
            report_bytes: (config.max_unread_bytes as u64 / 8).max(1),
            closed,
            budget: Arc::new(Budget::new(config.max_buffered_bytes)),
            assist,
            unary_waiting: std::sync::atomic::AtomicUsize::new(0),
            data_mime: OnceLock::new(),
            principal: OnceLock::new(),
            peer,
            draining: watch::Sender::new(false),
            refusing: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

/// See [`Handles`].
#[derive(Debug)]
pub(crate) struct HandlesInner {
    /// Where signals go (and, held apart in [`Sender`](super::inbox::Sender)s, commands).
    pub(crate) inbox: Arc<Inbox>,
    /// The credit batch size a new [`PayloadStream`](super::stream::PayloadStream) reports
    /// consumption in (the driver raises it as the stream's window grows).
    pub(crate) credit_batch: u32,
    /// Bytes consumed that a [`PayloadStream`](super::stream::PayloadStream) reports even
    /// short of a batch: until reported they count as unread against `Config::unread_limits`,
    /// of which this is an eighth.
    pub(crate) report_bytes: u64,
    /// Flips to the close reason once the connection is over.
    pub(crate) closed: watch::Receiver<Option<crate::Error>>,
    /// See [`Budget`].
    pub(crate) budget: Arc<Budget>,
    /// A client connection's driver, which a waiting reader may poll (see [`Assist`]).
    pub(crate) assist: Option<Arc<Assist>>,
    /// Request/response callers waiting for their answer (see `Reply::helped_by`).
    pub(crate) unary_waiting: std::sync::atomic::AtomicUsize,
    /// The data MIME type of the connection, which SETUP announced for both directions: set
    /// when the driver is made on a client, when the peer's SETUP is accepted on a server
    /// (before any request, so before any handle a handler is given could read it).
    pub(crate) data_mime: OnceLock<Box<str>>,
    /// What a server's authenticate hook made of the peer's SETUP: set when SETUP is
    /// accepted, before any request is handled.
    pub(crate) principal: OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    /// Who is at the other end, as far as the transport knows.
    pub(crate) peer: Peer,
    /// Flips to `true` when the connection begins to drain (it takes no new streams) or can
    /// open no more: a reconnecting client's cue to make a new one.
    pub(crate) draining: watch::Sender<bool>,
    /// Set once the connection takes no new streams, for whatever reason (draining, closed,
    /// closing), before any call learns it from a refusal: a call the connection refused
    /// then finds it refusing, and a reconnecting or balancing client sends the call
    /// elsewhere. (`closed` is published later, once the last frame is written.)
    pub(crate) refusing: std::sync::atomic::AtomicBool,
}

impl HandlesInner {
    /// See [`HandlesInner::refusing`].
    pub(crate) fn refuse(&self) {
        self.refusing.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The connection has begun to drain, or can open no more streams: it refuses calls, and
    /// a reconnecting client makes a new one (see [`HandlesInner::draining`]).
    pub(crate) fn begin_draining(&self) {
        self.refuse();
        self.draining.send_replace(true);
    }

    /// Whether the connection takes no new streams (closed, closing or draining).
    pub(crate) fn refuses_calls(&self) -> bool {
        self.refusing.load(std::sync::atomic::Ordering::Acquire) || self.is_closed()
    }

    /// Whether the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        // A driver that ended without saying why (it panicked) dropped the sender.
        self.closed.borrow().is_some() || self.closed.has_changed().is_err()
    }
}

/// Who is at the other end of a connection, as far as its transport knows: handlers read it
/// through their call ([`Call::remote_addr`](crate::Call::remote_addr),
/// [`Call::peer_certificates`](crate::Call::peer_certificates)).
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// The peer's address, over TCP (plain, TLS or WebSocket).
    pub(crate) addr: Option<std::net::SocketAddr>,
    /// The certificate chain the peer presented in the TLS handshake (DER, its own first).
    pub(crate) certificates: Option<Arc<[bytes::Bytes]>>,
    /// The `Origin` of the WebSocket handshake, from a browser.
    pub(crate) origin: Option<Arc<str>>,
}

impl HandlesInner {
    /// The status of a call that found the connection closed.
    pub(crate) fn closed_status(&self) -> crate::Status {
        self.closed_status_or("the connection is closed")
    }

    /// The status of a call that found the connection closed (`UNAVAILABLE`, with why it
    /// closed), or closing (`UNAVAILABLE` saying `otherwise`) if it has not closed yet.
    pub(crate) fn closed_status_or(&self, otherwise: &str) -> crate::Status {
        match &*self.closed.borrow() {
            Some(error) => error.to_status(),
            None => crate::Status::unavailable(otherwise),
        }
    }
}
