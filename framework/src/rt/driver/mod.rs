//! The connection driver: the one future that touches a connection's transport. It runs as a
//! task of its own; a client connection's is also polled by a caller that waits on it (see
//! [`super::assist`]).
//!
//! It owns the sans-IO [`Connection`] and feeds it the bytes read from the transport, what
//! handles ask ([`Command`]s and [`Control`] signals, through the [`Inbox`]) and timer
//! expiries; it writes the frames the connection emits, and turns the connection's events into
//! deliveries to whoever waits for them and into handler calls for the peer's requests.
//!
//! Per live stream the runtime attaches its own state ([`Attached`]): where its inbound
//! messages go, the stream this side sends, a handler's task, a cancel signal. It lives in the
//! stream's record in the connection, beside the protocol's state: one record, one look-up. An
//! ended stream's record stays until the driver has acted on the end and released it
//! ([`Connection::release`]), so that what was attached is there when the end is learned.
//!
//! The streams this side sends (a responder's stream, a channel requester's messages) are
//! **producers** polled by the driver itself, each with a waker of its own that marks it ready
//! in the inbox: no task, no channel and no wake-up between a message and the write buffer. A
//! producer is polled only while it has credit (the peer's REQUEST_N) and the write buffer has
//! room; out of credit it is polled once more, to learn whether it has ended (its end needs no
//! credit), and a message that poll yields waits for credit: one per stream. A request/response
//! handler that does not answer at its first poll runs as a task of its own. Inbound messages
//! go to the reader through a queue per stream ([`super::queue`]): a run of one stream's
//! messages in a read costs one lock and at most one wake-up.
//!
//! Commands are bounded (requesters and handler tasks wait when the driver is behind). Signals
//! are unbounded *by type* but bounded by construction: each live stream has at most one
//! cancel and at most two credit returns in flight (a [`PayloadStream`] returns credit per half
//! window, and cannot consume more than the window before the driver grants again), and live
//! streams are capped by the stream limit. Bounding them would let a full queue turn a `Drop`
//! (which cannot wait) into a lost cancel.
//!
//! The driver is split by what it does, each part an `impl` of [`Driver`] in a module of its
//! own: [`io`] runs the loop (reading, writing, waiting, timers); [`read`] hands the bytes read
//! to the connection; [`events`] turns what the connection emits, and what handles ask, into
//! writes and deliveries; [`dispatch`] answers the peer's requests with handlers; [`produce`]
//! polls the streams this side sends.
//!
//! [`PayloadStream`]: super::stream::PayloadStream
//! [`Command`]: super::command::Command
//! [`Control`]: super::command::Control

mod dispatch;
mod events;
mod io;
mod produce;
mod read;

use super::assist::Assist;
use super::command::Inbound;
use super::handles::{Handles, Peer};
use super::inbox::{self, Inbox, Taken, WeakSender};
use super::routing::{Resolve, RouteCache};
use super::shutdown::ShutdownHub;
use super::transport::Transport;
use crate::conn::Connection;
use crate::frame::length::LengthDelimited;
use crate::payload::CancelSignal;
use crate::{Handler, Payload, Status};
use dispatch::Fires;
use produce::Producer;
use std::sync::Arc;
use std::task::Waker;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the runtime attached to a live stream (see the module doc).
#[derive(Default)]
pub(crate) struct Attached {
    inbound: Option<Inbound>,
    /// The application's stream of messages this side sends, while it has any to send. Boxed:
    /// most streams are request/responses, which have none, and every record is moved into and
    /// out of the connection's map.
    producer: Option<Box<Producer>>,
    /// A request/response handler's task, to stop when the stream ends.
    task: Option<AbortHandle>,
    /// Fired when the stream ends early, for handlers watching [`Call::cancelled`](crate::Call::cancelled).
    cancel: Option<CancelSignal>,
}

impl Attached {
    /// Ends the stream with `status`: its reader gets it as the last item.
    fn fail(mut self, status: Status) {
        match self.inbound.take() {
            Some(Inbound::Single(tx)) => tx.send(Err(status)),
            Some(Inbound::Many(inlet)) => inlet.push(Err(status)),
            None => {}
        }
        self.stop();
    }

    /// Stops what works for the stream: the handler's task, and (dropped with this record) the
    /// producer's stream.
    fn stop(self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        if let Some(cancel) = &self.cancel {
            cancel.fire();
        }
    }
}

pub(crate) struct Driver<T: Transport> {
    conn: Connection<Attached>,
    reader: T::Reader,
    writer: T::Writer,
    /// Written to since it was last flushed (see `write_flush` in `io`).
    unflushed: bool,
    /// A server's authenticate hook, run on the client's SETUP.
    pub(crate) authenticate: Option<Arc<super::auth::Authenticate>>,
    framing: LengthDelimited,
    inbox: Arc<Inbox>,
    /// What was last taken out of the inbox (kept for its allocations).
    taken: Taken,
    handles: Handles,
    /// For tasks the driver spawns; weak, so that it does not keep the connection alive.
    weak: WeakSender,
    closed: watch::Sender<Option<crate::Error>>,
    /// Why the connection closed; published on `closed` once the last frame is written.
    close_reason: Option<crate::Error>,
    /// The IO error the transport failed with, if it did: the connection learns only that the
    /// transport ended, and this makes the close a transport error rather than the peer's.
    transport_error: Option<std::io::Error>,
    handler: Arc<dyn Handler>,
    /// A server's routes, looked up once per distinct request metadata block (`RouteCache`)
    /// rather than by `handler` on every request.
    resolver: Option<Arc<dyn Resolve>>,
    /// Streams to release once the batch of events in hand is handled (see `Driver::process`).
    reap_later: Vec<u32>,
    /// Producers to poll on the next turn (woken, given credit, or not finished last turn).
    runnable: Vec<u32>,
    /// Consecutive messages for one stream's queue, pushed at once (see `Driver::flush_staged`).
    staged: Vec<Result<Payload, Status>>,
    staged_id: u32,
    /// Cancel signals of calls answered at once, for the next calls (see `Driver::recycle`).
    spare_cancels: Vec<CancelSignal>,
    /// Fire-and-forget handlers running as tasks of their own (see [`Fires`]).
    fires: Fires,
    routes: RouteCache,
    /// Every handle is gone: close once no stream is left.
    orphaned: bool,
    /// The handles were told the connection is draining (see `Driver::tell_draining`).
    draining_told: bool,
    /// Permits for fire-and-forget handlers running as tasks (`Config::max_concurrent_fire_and_forget`).
    fire_and_forget: Arc<Semaphore>,
    grace_deadline: Option<Instant>,
    /// A server connection's grace period once told to shut down (see [`ShutdownHub`]).
    shutdown_grace: std::time::Duration,
    /// What the driver registers with its inbox and timer when others may poll it too (see
    /// [`Assist`]): then only the socket's read readiness gets the poller's own waker.
    task_waker: Option<Waker>,
    /// Last: however the driver ends, its inbox is closed.
    _close: inbox::CloseOnDrop,
}

impl<T: Transport> Driver<T> {
    /// Creates a driver for `conn` over `transport`, answering the peer's requests with
    /// `handler`, and returns it with the handles to talk to it.
    pub(crate) fn new(
        conn: Connection,
        transport: T,
        handler: Arc<dyn Handler>,
        resolver: Option<Arc<dyn Resolve>>,
        shutdown: Option<&ShutdownHub>,
        drive: Option<Arc<Assist>>,
        peer: Peer,
    ) -> (Driver<T>, inbox::Sender, Handles) {
        let (reader, writer) = transport.split();
        let (inbox, command_tx) = Inbox::new();
        if let Some(hub) = shutdown {
            hub.register(&inbox);
        }
        let shutdown_grace = shutdown.map(ShutdownHub::grace).unwrap_or_default();
        let (closed, closed_rx) = watch::channel(None);
        let task_waker = drive.as_ref().map(|d| d.task_waker());
        let config = conn.config();
        let handles = Handles::new(inbox.clone(), config, closed_rx, drive, peer);
        if let Some(announced) = conn.announced_data_mime() {
            let _ = handles.data_mime.set(announced.into());
        }
        let framing = LengthDelimited::new(config.max_frame_size);
        let fire_and_forget = Arc::new(Semaphore::new(config.max_concurrent_fire_and_forget));
        let driver = Driver {
            conn: conn.with_attachments(),
            reader,
            writer,
            framing,
            inbox: inbox.clone(),
            taken: Taken::default(),
            handles: handles.clone(),
            weak: command_tx.downgrade(),
            closed,
            close_reason: None,
            transport_error: None,
            handler,
            resolver,
            reap_later: Vec::new(),
            unflushed: false,
            authenticate: None,
            runnable: Vec::new(),
            staged: Vec::new(),
            staged_id: 0,
            spare_cancels: Vec::new(),
            fires: Fires::default(),
            routes: RouteCache::default(),
            orphaned: false,
            draining_told: false,
            fire_and_forget,
            grace_deadline: None,
            shutdown_grace,
            task_waker,
            _close: inbox::CloseOnDrop(inbox),
        };
        (driver, command_tx, handles)
    }
}
