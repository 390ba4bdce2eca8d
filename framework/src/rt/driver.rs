//! The connection driver: the one future that touches a connection's transport. It runs as a
//! task of its own; a client connection's is also polled by a stream reader that waits on it
//! (see [`super::drive`]).
//!
//! It owns the sans-IO [`Connection`] and feeds it bytes read from the transport, commands
//! from handles ([`Command`], [`Control`]) and timer expiries; it writes the frames the
//! connection emits and turns the connection's events into deliveries to the handles that wait
//! for them and into handler tasks for requests from the peer.
//!
//! The streams this side writes to (a responder's stream, a channel requester's messages) are
//! **producers** polled by the driver itself, each with a waker of its own that marks it ready
//! in the [`Inbox`]: no task, no channel and no wake-up between a message and the write buffer. A
//! producer is polled only while it has credit (the peer's REQUEST_N), and only while the
//! write buffer has room; out of credit it is polled once more, to learn whether it has ended
//! (its end needs no credit), and a message that poll yields waits for credit: one per stream. A request/response handler
//! that does not answer at its first poll (see [`poll_once`]) runs as a task of its own.
//! Inbound messages go to the reader through a queue per stream ([`super::stream`]): a run of
//! one stream's messages in a read costs one lock and at most one wake-up.
//!
//! Everything that asks the driver to act arrives in one [`Inbox`]: commands are bounded
//! (requesters and handler tasks wait when the driver is behind). Signals (`Control`: credit
//! returned, cancel) are unbounded *by type* but bounded by construction: each live stream has
//! at most one cancel and at most two credit returns in flight (a [`PayloadStream`] returns
//! credit per half window, and cannot consume more than the window before the driver grants
//! again), and live streams are capped by the stream limit. Bounding them would let a full queue turn a `Drop` (which cannot wait) into a lost
//! cancel.
//!
//! [`PayloadStream`]: super::stream::PayloadStream

use super::alarm::Alarm;
use super::drive::Drive;
use super::inbox::{self, Inbox, ReadyFlag, Taken, WeakSender};
use super::reply::ReplySender;
use super::responses::{Answer, Responses, Source};
use super::server::Resolve;
use super::stream::Inlet;
use super::transport::Transport;
use super::unwind;
use crate::conn::{CommandError, Connection, Event, IdMap, Kind, Receiving, id_map};
use crate::frame::length::{self, LengthDelimited};
use crate::frame::metadata::{COMPOSITE_METADATA_MIME, CompositeMetadata};
use crate::frame::{self, DecodeError, ErrorCode, Frame};
use crate::payload::CancelSignal;
use crate::{Call, Client, Handler, Payload, Status};
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What a panic is blamed on, in the status the call ends with (see [`unwind`]).
const HANDLER: &str = "the handler";
const STREAM: &str = "the stream of messages";

/// Commands queued for the driver at most (see [`Inbox`]).
pub(crate) const COMMAND_CAPACITY: usize = 1024;
/// Messages taken from one producer in a turn before the others get theirs, so that one busy
/// stream cannot starve the rest of the connection.
const PRODUCER_BATCH: usize = 64;
/// ... and at most about this many bytes of them, so a turn never takes much more than one
/// large message.
const PRODUCER_BATCH_BYTES: usize = 64 * 1024;
/// Producers get turn after turn until this many bytes wait to be written: one turn of a stream
/// of small messages (64 of 16 bytes) makes a small write, and each write costs a system call
/// on each side. A stream of 16-byte messages across two cores wrote ~2.8 KB at a time, where
/// raw TCP writes ~8 KB and tonic ~15 KB.
const PRODUCERS_WRITE: usize = 16 * 1024;
/// While the events of a read are handled (a read's worth of requests, answered at once), the
/// answers are written as soon as this many bytes are waiting, rather than all after the last:
/// the peer starts on the first answers while this side makes the rest. With 64 calls of 1 KiB
/// in flight across two cores that took Weft from ~0.5x to ~0.8x raw TCP's calls/s; on one
/// core, where the peer cannot run meanwhile, it costs a few percent (more system calls).
/// Small answers (64 of 16 bytes) never reach it.
const EARLY_WRITE: usize = 16 * 1024;
/// Bytes asked of the transport per read.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free room, the read buffer is grown by a chunk before the next read.
const MIN_READ_ROOM: usize = 1024;
/// The most cancel signals kept for reuse (see `Driver::recycle`); calls answered at once
/// need one at a time.
const SPARE_CANCELS: usize = 16;

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

/// How a server tells its connections to shut down: each connection's driver registers its
/// inbox, and a shutdown queues [`Control::Shutdown`] in every inbox still alive (and in any
/// registered later). A signal in the inbox costs a running connection nothing, where a watch
/// channel polled on every turn of every driver cost each turn a few hundred instructions.
///
/// It also counts the server's live connections (see [`Live`]).
#[derive(Debug, Default)]
pub(crate) struct ShutdownHub {
    state: std::sync::Mutex<HubState>,
    live: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Default)]
struct HubState {
    stopping: bool,
    inboxes: Vec<std::sync::Weak<Inbox>>,
    /// Live inboxes after the last sweep of dead ones: the next sweep comes when the list has
    /// doubled, so registering stays O(1) amortised and the list at most twice the live ones.
    swept: usize,
}

impl ShutdownHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        super::lock(&self.state)
    }

    fn register(&self, inbox: &Arc<Inbox>) {
        let mut state = self.lock();
        if state.stopping {
            drop(state);
            inbox.control(Control::Shutdown);
            return;
        }
        if state.inboxes.len() >= 2 * state.swept.max(16) {
            state.inboxes.retain(|weak| weak.strong_count() > 0);
            state.swept = state.inboxes.len();
        }
        state.inboxes.push(Arc::downgrade(inbox));
    }

    /// Tells every connection, and every one registered from now on, to shut down.
    pub(crate) fn shutdown(&self) {
        let inboxes = {
            let mut state = self.lock();
            state.stopping = true;
            std::mem::take(&mut state.inboxes)
        };
        for inbox in inboxes.iter().filter_map(std::sync::Weak::upgrade) {
            inbox.control(Control::Shutdown);
        }
    }

    /// Registered inboxes, dead ones included (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().inboxes.len()
    }

    /// Counts a connection as live until the returned guard is dropped.
    pub(crate) fn live(self: &Arc<Self>) -> Live {
        self.live.fetch_add(1, Ordering::Relaxed);
        Live(self.clone())
    }

    /// Connections accepted and not yet over.
    pub(crate) fn connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// A live connection of a server, counted by its [`ShutdownHub`] until dropped: held by the
/// connection's task, so it is dropped however the connection ends (closed, or its task
/// dropped before or while it ran). One count a connection, never per message.
#[derive(Debug)]
pub(crate) struct Live(Arc<ShutdownHub>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The fire-and-forget handlers of a connection that did not finish at their first poll and
/// run as tasks of their own.
///
/// Nobody waits for them, so they are not stopped when the connection closes (a requester that
/// fires and then closes at once still gets its work done). But they are told, through
/// [`Call::cancelled`], as a request/response handler is: without that, a handler that waits
/// for its call to be cancelled, or for something only the connection would have ended, lived
/// on after its connection, holding its call's handles of the dead connection and the read
/// buffer its request's bytes are slices of. Only tasks are kept here, not calls answered at
/// once, and finished ones are dropped as the list grows, so it stays at about twice the
/// running ones.
#[derive(Default)]
struct Fires {
    running: Vec<(AbortHandle, CancelSignal)>,
    /// Running after the last sweep of finished ones: the next sweep comes when the list has
    /// doubled, so tracking stays O(1) amortised.
    swept: usize,
}

impl Fires {
    fn track(&mut self, task: AbortHandle, cancel: CancelSignal) {
        if self.running.len() >= 2 * self.swept.max(16) {
            self.running.retain(|(task, _)| !task.is_finished());
            self.swept = self.running.len();
        }
        self.running.push((task, cancel));
    }

    /// Tells every handler still running that its connection is gone.
    fn connection_closed(&mut self) {
        for (task, cancel) in self.running.drain(..) {
            if !task.is_finished() {
                cancel.fire();
            }
        }
        self.swept = 0;
    }
}

/// How a producer's stream ended.
enum End {
    Complete,
    Error(Status),
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

/// What the driver keeps per live stream.
#[derive(Default)]
struct Entry {
    inbound: Option<Inbound>,
    /// The application's stream of messages this side sends, while it has any to send. Boxed:
    /// most streams are request/responses, which have none, and every entry is moved into and
    /// out of the driver's map.
    producer: Option<Box<Producer>>,
    /// A request/response handler's task, to stop when the stream ends.
    task: Option<AbortHandle>,
    /// Fired when the stream ends early, for handlers watching [`Call::cancelled`].
    cancel: Option<CancelSignal>,
}

impl Entry {
    /// Ends the stream with `status`: its reader gets it as the last item.
    fn fail(mut self, status: Status) {
        match self.inbound.take() {
            Some(Inbound::Single(tx)) => tx.send(Err(status)),
            Some(Inbound::Many(inlet)) => inlet.push(Err(status)),
            None => {}
        }
        self.stop();
    }

    /// Stops what works for the stream: the handler's task, and (dropped with the entry) the
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

/// A stream of messages this side sends, polled by the driver.
struct Producer {
    stream: Responses,
    /// Messages the peer has granted and not yet been sent.
    credit: u64,
    /// A message polled while there was no credit for it (see `Driver::run_producer`): sent
    /// first once credit comes. The stream is not polled again meanwhile, so a producer holds
    /// at most this one message beyond what its peer asked for.
    ahead: Option<Payload>,
    /// Wakes the driver with this producer marked ready.
    waker: Waker,
    flag: Arc<ReadyFlag>,
}

/// What every handle of a connection shares (the command sender is held apart, because the
/// connection closes once the last one is dropped). Behind one `Arc`: every request from the
/// peer hands its handler a [`Client`] for the way back, and a stream's reader holds one too,
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
        closed: watch::Receiver<Option<String>>,
        drive: Option<Arc<Drive>>,
    ) -> Handles {
        Handles(Arc::new(HandlesInner {
            inbox,
            credit_batch: config.credit_batch(),
            report_bytes: (config.max_unread_bytes as u64 / 8).max(1),
            closed,
            budget: Arc::new(Budget::new(config.max_buffered_bytes)),
            drive,
            unary_waiting: std::sync::atomic::AtomicUsize::new(0),
        }))
    }
}

/// See [`Handles`].
#[derive(Debug)]
pub(crate) struct HandlesInner {
    /// Where signals go (and, held apart in [`inbox::Sender`]s, commands).
    pub(crate) inbox: Arc<Inbox>,
    /// The credit batch size a new [`PayloadStream`](super::stream::PayloadStream) reports
    /// consumption in (the driver raises it as the stream's window grows).
    pub(crate) credit_batch: u32,
    /// Bytes consumed that a [`PayloadStream`](super::stream::PayloadStream) reports even
    /// short of a batch: until reported they count as unread against `Config::unread_limits`,
    /// of which this is an eighth.
    pub(crate) report_bytes: u64,
    /// Flips to the close reason once the connection is over.
    pub(crate) closed: watch::Receiver<Option<String>>,
    /// See [`Budget`].
    pub(crate) budget: Arc<Budget>,
    /// A client connection's driver, which a waiting reader may poll (see [`Drive`]).
    pub(crate) drive: Option<Arc<Drive>>,
    /// Request/response callers waiting for their answer (see `Reply::helped_by`).
    pub(crate) unary_waiting: std::sync::atomic::AtomicUsize,
}

/// Bytes of answers that handler tasks may have queued for the driver.
///
/// The command channel bounds how many answers wait, not how large they are: a thousand slow
/// handlers finishing at once could otherwise queue a thousand large answers while the peer
/// reads nothing. A task reserves an answer's size before queueing it; the driver releases it
/// when the answer enters its write buffer, whose own size is bounded by stopping intake (and
/// the polling of producers) while it is full.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Semaphore,
    size: usize,
}

impl Budget {
    fn new(size: usize) -> Budget {
        let size = size.clamp(1, u32::MAX as usize);
        Budget { permits: Semaphore::new(size), size }
    }

    /// Waits for room for `payload`: its size, at least 1, at most the whole budget (so a
    /// message larger than the budget still goes, alone).
    async fn reserve(self: &Arc<Self>, size: usize) -> Reserved {
        let size = size.clamp(1, self.size);
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        match self.permits.acquire_many(permits).await {
            Ok(permit) => {
                permit.forget();
                Reserved(Some((self.clone(), permits)))
            }
            // Never closed; a closed budget would only mean nothing is bounded any more.
            Err(_) => Reserved::none(),
        }
    }
}

/// A message's share of the [`Budget`], given back when dropped: when the driver has taken
/// the message, or when the task or command carrying it is dropped on the way (a cancelled
/// stream must not shrink the budget for good).
pub(crate) struct Reserved(Option<(Arc<Budget>, u32)>);

impl Reserved {
    /// No share (an error, which the budget does not count).
    pub(crate) fn none() -> Reserved {
        Reserved(None)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some((budget, permits)) = self.0.take() {
            budget.permits.add_permits(permits as usize);
        }
    }
}

pub(crate) struct Driver<T: Transport> {
    conn: Connection,
    reader: T::Reader,
    writer: T::Writer,
    framing: LengthDelimited,
    inbox: Arc<Inbox>,
    /// What was last taken out of the inbox (kept for its allocations).
    taken: Taken,
    handles: Handles,
    /// For tasks the driver spawns; weak, so that it does not keep the connection alive.
    weak: WeakSender,
    closed: watch::Sender<Option<String>>,
    /// Why the connection closed; published on `closed` once the last frame is written.
    close_reason: Option<String>,
    handler: Arc<dyn Handler>,
    /// A server's routes, looked up once per distinct request metadata block (`RouteCache`)
    /// rather than by `handler` on every request.
    resolver: Option<Arc<dyn Resolve>>,
    entries: IdMap<Entry>,
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
    /// Permits for fire-and-forget handlers running as tasks (`Config::max_concurrent_fire_and_forget`).
    fire_and_forget: Arc<Semaphore>,
    grace_deadline: Option<Instant>,
    /// What the driver registers with its inbox and timer when others may poll it too (see
    /// [`Drive`]): then only the socket's read readiness gets the poller's own waker.
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
        drive: Option<Arc<Drive>>,
    ) -> (Driver<T>, inbox::Sender, Handles) {
        let (reader, writer) = transport.split();
        let (inbox, command_tx) = Inbox::new();
        if let Some(hub) = shutdown {
            hub.register(&inbox);
        }
        let (closed, closed_rx) = watch::channel(None);
        let task_waker = drive.as_ref().map(|d| d.task_waker());
        let config = conn.config();
        let handles = Handles::new(inbox.clone(), config, closed_rx, drive);
        let framing = LengthDelimited::new(config.max_frame_size);
        let fire_and_forget = Arc::new(Semaphore::new(config.max_concurrent_fire_and_forget));
        let driver = Driver {
            conn,
            reader,
            writer,
            framing,
            inbox: inbox.clone(),
            taken: Taken::default(),
            handles: handles.clone(),
            weak: command_tx.downgrade(),
            closed,
            close_reason: None,
            handler,
            resolver,
            entries: id_map(),
            runnable: Vec::new(),
            staged: Vec::new(),
            staged_id: 0,
            spare_cancels: Vec::new(),
            fires: Fires::default(),
            routes: RouteCache::default(),
            orphaned: false,
            fire_and_forget,
            grace_deadline: None,
            task_waker,
            _close: inbox::CloseOnDrop(inbox),
        };
        (driver, command_tx, handles)
    }

    /// Runs the connection until it closes.
    pub(crate) async fn run(mut self) {
        let weak = self.weak.clone();
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut reading = true;
        let max_buffered = self.conn.config().max_buffered_bytes;
        // The connection's deadlines are kept off tokio's timer wheel (see `Alarm`). (A
        // server's shutdown arrives through the inbox, as `Control::Shutdown`, so that waiting
        // for it costs a turn nothing.)
        let mut sleeping_until = None;
        // What the deadlines were last looked at for (see below).
        let mut armed_for = (0, None);
        // A reader that polls the driver (see `Drive`) is woken by the socket's reads, not by
        // the inbox or the timer: those wake the driver's task alone.
        let task_waker = self.task_waker.clone();
        // The alarm wakes a waker of the driver's own that records its firing, so a turn
        // looks at the deadlines only when it fired. Its firing wakes the task that polls the
        // driver: the driver's own (see `Drive`) or, for a server's connection, whichever
        // polled it last (`serve_connection` runs inside a caller's future, which may move
        // between tasks).
        let (timer, timer_waker) = Flagged::new();
        let mut alarm = Alarm::new(timer_waker);
        let mut timer_task: Option<Waker> = None;
        // A client's driver always follows its own task (see `Drive`): once is enough.
        if let Some(task) = &task_waker {
            timer.follow(&mut timer_task, task);
        }
        // A client's socket read readiness is registered with a waker of its own too, which
        // records that it fired and wakes whichever waker polled the read last (a reader's,
        // see `Drive`, or the driver's task's): a client's turns are often woken by something
        // else (the caller's next message), and then skip the read. A server's turns nearly
        // all begin with a read: there it would cost more than it saves.
        let read_wake = task_waker.as_ref().map(|_| Flagged::new());
        let mut read_target: Option<Waker> = None;
        let mut read_armed = true;
        let fire_and_forget = self.fire_and_forget.clone();
        let mut fnf_wait = None;
        loop {
            self.inbox.set_busy();
            self.process(&weak, &mut wbuf);
            // What was just handled often readies a producer (a channel's handler reading the
            // message just queued) and leaves frames to write; doing both now, rather than on
            // later turns of the select below, saves polling every other source in between
            // (a round trip on a channel costs one turn instead of three).
            let intake = wbuf.len() < max_buffered && !self.orphaned;
            if self.inbox.take_now(&mut self.taken, intake) || (intake && !self.runnable.is_empty()) {
                self.handle_taken(&mut wbuf, max_buffered);
                self.process(&weak, &mut wbuf);
            }
            if !wbuf.is_empty() && !self.conn.is_closed() {
                // A write that cannot go now is retried by the select, with a real waker.
                match self.write_now(&mut wbuf) {
                    Poll::Ready(Ok(n)) if n > 0 => {}
                    Poll::Ready(_) => {
                        self.transport_closed();
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if self.conn.is_closed() {
                break;
            }
            // The peer's silence deadline moves with every frame it sends, and only later;
            // moving the alarm as often would cost a lock on most turns. An alarm set for an
            // earlier deadline is kept: when it fires, the connection checks the real deadlines
            // (firing early does nothing) and the alarm is set again for the next one. So the
            // deadlines are looked at only when none is set or one may have moved earlier.
            // Paused for unread messages (rare), the stall deadline is looked at on every turn.
            let paused = !self.conn.accepts_input();
            if sleeping_until.is_none()
                || paused
                || self.conn.deadline_epoch() != armed_for.0
                || self.grace_deadline != armed_for.1
            {
                armed_for = (self.conn.deadline_epoch(), self.grace_deadline);
                let timeout = self.conn.poll_timeout().map(Instant::from_std);
                let deadline = match (timeout, self.grace_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match (deadline, sleeping_until) {
                    (Some(next), Some(armed)) if armed <= next => {}
                    (Some(next), _) => {
                        alarm.set(next);
                        sleeping_until = Some(next);
                    }
                    (None, Some(_)) => {
                        alarm.cancel();
                        sleeping_until = None;
                    }
                    (None, None) => {}
                }
            }
            // Back-pressure: with too much unwritten, stop taking new work and stop reading
            // (the peer then feels TCP back-pressure) until the writes drain.
            let congested = wbuf.len() >= max_buffered;
            // Likewise with as many fire-and-forget handlers running as the connection allows.
            // The wait for a permit is made only then: a future in the select below is made on
            // every turn, whether or not its branch is enabled.
            let fnf_full = fire_and_forget.available_permits() == 0;
            if fnf_full && fnf_wait.is_none() {
                fnf_wait = Some(Box::pin(fire_and_forget.clone().acquire_owned()));
            }
            // `read_buf` on a full buffer would grow it by a few bytes and read that little;
            // keep room for a real read. The buffer holds at most one partial frame (bounded by
            // the maximum frame size) plus one chunk, since whole frames are taken off at once.
            if rbuf.capacity() - rbuf.len() < MIN_READ_ROOM {
                rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                written = std::future::poll_fn(|cx| write_some(&mut self.writer, cx, &mut wbuf)), if !wbuf.is_empty() => {
                    if !matches!(written, Ok(n) if n > 0) {
                        self.transport_closed();
                    }
                }
                read = std::future::poll_fn(|cx| {
                    let Some((wake, waker)) = &read_wake else {
                        return std::pin::pin!(self.reader.read_buf(&mut rbuf)).poll(cx);
                    };
                    // After a read that came up empty, the socket holds the read waker until
                    // it has something: polling again before that only registers it again
                    // (most of a read's cost outside the kernel). A turn woken by anything
                    // else (the caller's next message to send) then skips the read; the socket
                    // then wakes the waker of the last read, which wakes the driver's task.
                    if !read_armed && !wake.take() {
                        return Poll::Pending;
                    }
                    wake.follow(&mut read_target, cx.waker());
                    let read = std::pin::pin!(self.reader.read_buf(&mut rbuf))
                        .poll(&mut std::task::Context::from_waker(waker));
                    // A read that got something is followed by another, until one comes up empty.
                    read_armed = read.is_ready();
                    read
                }), if reading && !congested && !fnf_full && !paused => {
                    match read {
                        Ok(0) | Err(_) => {
                            reading = false;
                            self.transport_closed();
                        }
                        Ok(_) => {
                            // Running again: what this read wakes need not wake the driver.
                            self.inbox.set_busy();
                            self.handle_bytes(&mut rbuf);
                        }
                    }
                }
                _ = std::future::poll_fn(|cx| {
                    // Producers left over from a full turn go on without waiting.
                    if !congested && !self.runnable.is_empty() {
                        return Poll::Ready(());
                    }
                    on_task(&task_waker, cx, |cx| self.inbox.poll_take(cx, &mut self.taken, !congested && !self.orphaned))
                }) => self.handle_taken(&mut wbuf, max_buffered),
                _ = std::future::poll_fn(|cx| {
                    // Followed before the firing is looked at: a firing after this wakes this task.
                    if task_waker.is_none() {
                        timer.follow(&mut timer_task, cx.waker());
                    }
                    if timer.take() {
                        return Poll::Ready(());
                    }
                    alarm.poll_due()
                }), if sleeping_until.is_some() => {
                    // Reset before it is polled again.
                    sleeping_until = None;
                    let now = Instant::now();
                    if self.grace_deadline.is_some_and(|d| now >= d) {
                        self.conn.close(false);
                    }
                    self.conn.handle_timeout(now.into_std());
                }
                // Fire-and-forget handlers at their limit: reading waits for one to finish.
                _ = std::future::poll_fn(|cx| match fnf_wait.as_mut() {
                    Some(wait) => wait.as_mut().poll(cx).map(drop),
                    None => Poll::Pending,
                }), if fnf_full => fnf_wait = None,
            }
        }
        // Flush what is left (the final ERROR, answers already produced) before closing.
        self.process(&weak, &mut wbuf);
        let flush = async {
            let _ = self.writer.write_all_buf(&mut wbuf).await;
            let _ = self.writer.shutdown().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), flush).await;
        // Only now: a program that closes, waits for `closed` and exits must not lose the
        // final frame.
        let reason = self.close_reason.take().unwrap_or_else(|| "the connection is closed".to_owned());
        let _ = self.closed.send(Some(reason));
    }

    /// Acts on what was taken out of the inbox: signals, then commands, then producers.
    fn handle_taken(&mut self, wbuf: &mut BytesMut, max_buffered: usize) {
        self.inbox.set_busy();
        let mut taken = std::mem::take(&mut self.taken);
        for control in taken.controls.drain(..) {
            self.handle_control(control);
        }
        for command in taken.commands.drain(..) {
            self.handle_command(command, wbuf);
        }
        if taken.orphaned {
            self.orphaned = true;
            if self.entries.is_empty() {
                self.conn.close(true);
            }
        }
        self.runnable.append(&mut taken.ready);
        self.taken = taken;
        if wbuf.len() < max_buffered && !self.runnable.is_empty() {
            // The frames commands queued go first.
            self.flush_transmit(wbuf);
            self.run_producers(wbuf, max_buffered);
        }
    }

    fn transport_closed(&mut self) {
        self.conn.handle_transport_closed();
    }

    fn handle_bytes(&mut self, rbuf: &mut BytesMut) {
        let now = Instant::now().into_std();
        // A read of a stream is mostly a run of its plain messages: once one of them is on the
        // stage, the ones right after it go there too, with the stream looked up once for the
        // run (when the second arrives: messages of streams taking turns need no run).
        let mut run: Option<Receiving<'_>> = None;
        for mut bytes in self.framing.decode_all(rbuf) {
            if frame::plain_message(&bytes) == Some((self.staged_id, false)) && !self.staged.is_empty() {
                if run.is_none() {
                    run = self.conn.receiving(self.staged_id, now);
                }
                if let Some(r) = run.as_mut()
                    && r.take(bytes.len() - frame::HEADER_SIZE)
                {
                    bytes.advance(frame::HEADER_SIZE);
                    self.staged.push(Ok(Payload { metadata: Bytes::new(), data: bytes }));
                    continue;
                }
            }
            // Anything else may change the connection: the run ends.
            run = None;
            if self.conn.is_closed() {
                rbuf.clear();
                return;
            }
            self.handle_frame_bytes(bytes, now);
        }
        // What is left: a partial frame, or a prefix that cannot be accepted.
        loop {
            if self.conn.is_closed() {
                rbuf.clear();
                return;
            }
            match self.framing.decode(rbuf) {
                Ok(Some(bytes)) => self.handle_frame_bytes(bytes, now),
                Ok(None) => return,
                Err(e) => {
                    // The length prefix itself is unacceptable: framing is lost.
                    self.conn.handle_decode_error(&DecodeError { stream_id: None, ..e }, now);
                    rbuf.clear();
                    return;
                }
            }
        }
    }

    /// One frame's bytes from the peer.
    fn handle_frame_bytes(&mut self, mut bytes: Bytes, now: std::time::Instant) {
        // Most frames are a stream's plain messages, whose header says all: handed over
        // without decoding the frame or going through the connection's event queue.
        if let Some((id, complete)) = frame::plain_message(&bytes)
            && let Some(last) = self.conn.accept_message(id, complete, bytes.len() - frame::HEADER_SIZE, now)
        {
            bytes.advance(frame::HEADER_SIZE);
            let payload = Payload { metadata: Bytes::new(), data: bytes };
            return if last { self.answered(id, payload) } else { self.deliver(id, payload) };
        }
        // A request (one per call on a server): decoded as such, without building a `Frame`.
        if frame::is_request(&bytes) {
            match frame::decode_request_frame(bytes) {
                Ok(request) => self.conn.handle_request_frame(request, now),
                Err(e) => self.conn.handle_decode_error(&e, now),
            }
            return;
        }
        if !frame::is_payload(&bytes) {
            match Frame::decode(bytes) {
                Ok(frame) => self.conn.handle_frame(frame, now),
                Err(e) => self.conn.handle_decode_error(&e, now),
            }
            return;
        }
        // The other PAYLOAD frames: decoded as such, without building a `Frame`.
        match frame::decode_payload_frame(bytes) {
            Ok(p) => match self.conn.handle_payload(p, now) {
                Some(m) if m.last => self.answered(m.stream_id, Payload { metadata: m.metadata, data: m.data }),
                Some(m) => self.deliver(m.stream_id, Payload { metadata: m.metadata, data: m.data }),
                None => {}
            },
            Err(e) => self.conn.handle_decode_error(&e, now),
        }
    }

    /// Drains the connection's output: frames into `wbuf`, events into deliveries.
    fn process(&mut self, weak: &WeakSender, wbuf: &mut BytesMut) {
        // Until a write cannot go at once (then the turn's own write, with a real waker, does).
        let mut early = true;
        loop {
            self.flush_transmit(wbuf);
            if early && wbuf.len() >= EARLY_WRITE && !self.conn.is_closed() {
                early = matches!(self.write_now(wbuf), Poll::Ready(Ok(n)) if n > 0);
            }
            let Some(event) = self.conn.poll_event() else { break };
            self.handle_event(event, weak, wbuf);
        }
        self.flush_staged();
        if self.orphaned && self.entries.is_empty() && !self.conn.is_closed() {
            self.conn.close(true);
        }
    }

    /// Writes what the transport takes of `wbuf` at once, without waiting: a write that cannot
    /// go now is retried by the turn's select, with a real waker.
    fn write_now(&mut self, wbuf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
        write_some(&mut self.writer, &mut std::task::Context::from_waker(Waker::noop()), wbuf)
    }

    /// Encodes the frames the connection has queued into `wbuf`.
    // Always inlined: called several times a turn, and nearly always with nothing queued.
    #[inline(always)]
    fn flush_transmit(&mut self, wbuf: &mut BytesMut) {
        if self.conn.has_transmit() {
            self.encode_transmit(wbuf);
        }
    }

    fn encode_transmit(&mut self, wbuf: &mut BytesMut) {
        while let Some(frame) = self.conn.poll_transmit() {
            length::encode_frame(&frame, wbuf);
        }
    }

    fn handle_event(&mut self, event: Event, weak: &WeakSender, wbuf: &mut BytesMut) {
        if !matches!(event, Event::Next { .. }) {
            // Whatever else happens to a stream comes after the messages before it.
            self.flush_staged();
        }
        match event {
            Event::SetupAccepted(setup) => {
                // The protocol does not interpret MIME types ("The protocol implementation MUST
                // NOT interpret the MIME type itself"); this layer reads request metadata as
                // composite metadata, and MIME types compare without regard to case.
                if !setup.metadata_mime.eq_ignore_ascii_case(COMPOSITE_METADATA_MIME) {
                    let message =
                        format!("metadata MIME type must be {COMPOSITE_METADATA_MIME}, got {}", setup.metadata_mime);
                    self.conn.reject_setup(ErrorCode::UNSUPPORTED_SETUP, &message);
                }
            }
            Event::MetadataPush(_) => {}
            Event::Request { stream_id, kind, metadata, data, complete, initial_n } => {
                self.spawn_handler(stream_id, kind, metadata, data, complete, initial_n, weak, wbuf)
            }
            Event::Next { stream_id, metadata, data } => self.deliver(stream_id, Payload { metadata, data }),
            Event::Complete { stream_id } => {
                if let Some(entry) = self.entries.get_mut(&stream_id) {
                    entry.inbound = None;
                }
                self.reap(stream_id);
            }
            Event::Error { stream_id, code, message } => {
                if let Some(entry) = self.entries.remove(&stream_id) {
                    entry.fail(status_from_error(code, &message));
                }
            }
            // Events describe what happened when the frame arrived; the connection may have
            // moved on since (a whole read is handled before its events), so handlers here
            // must not consult its current state.
            Event::Cancelled { stream_id } => {
                if let Some(entry) = self.entries.remove(&stream_id) {
                    entry.stop();
                }
            }
            Event::StopSending { stream_id } => {
                if let Some(entry) = self.entries.get_mut(&stream_id) {
                    entry.producer = None;
                }
            }
            Event::RequestN { stream_id, n } => {
                if let Some(producer) = self.entries.get_mut(&stream_id).and_then(|e| e.producer.as_mut()) {
                    if producer.credit == 0 {
                        // Idle for want of credit, perhaps holding a message for it.
                        self.runnable.push(stream_id);
                    }
                    producer.credit = producer.credit.saturating_add(u64::from(n));
                }
            }
            Event::Closed(reason) => self.fail_all(&reason.to_string()),
        }
    }

    /// Hands a message from the peer to whoever reads stream `id`: a request/response caller
    /// at once, a stream's reader through the stage.
    fn deliver(&mut self, id: u32, payload: Payload) {
        if id == self.staged_id && !self.staged.is_empty() {
            self.staged.push(Ok(payload));
            return;
        }
        self.flush_staged();
        let Some(entry) = self.entries.get_mut(&id) else { return };
        match &entry.inbound {
            Some(Inbound::Single(_)) => {
                if let Some(Inbound::Single(tx)) = entry.inbound.take() {
                    tx.send(Ok(payload));
                }
            }
            Some(Inbound::Many(_)) => {
                self.staged_id = id;
                self.staged.push(Ok(payload));
            }
            None => {}
        }
    }

    /// Hands a request/response caller its answer; the connection has forgotten the stream
    /// already, so its entry goes too (one look-up, where the answer as events costs two).
    fn answered(&mut self, id: u32, payload: Payload) {
        if let Some(mut entry) = self.entries.remove(&id) {
            if let Some(Inbound::Single(tx)) = entry.inbound.take() {
                tx.send(Ok(payload));
            }
            entry.stop();
        }
    }

    /// Pushes the staged messages into their stream's queue. A read of the socket often holds
    /// many messages of one stream in a row; staging them costs a lookup and a lock per run
    /// instead of per message. Called before any other event and at the end of each batch of
    /// events, so nothing overtakes a staged message.
    fn flush_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        match self.entries.get(&self.staged_id) {
            Some(Entry { inbound: Some(Inbound::Many(inlet)), .. }) => inlet.push_all(&mut self.staged),
            _ => self.staged.clear(),
        }
    }

    fn fail_all(&mut self, reason: &str) {
        self.close_reason.get_or_insert_with(|| reason.to_owned());
        for (_, entry) in self.entries.drain() {
            entry.fail(Status::unavailable(reason));
        }
        self.fires.connection_closed();
    }

    /// Forgets the driver's side of a stream the connection no longer knows.
    fn reap(&mut self, id: u32) {
        if !self.conn.contains(id)
            && let Some(entry) = self.entries.remove(&id)
        {
            // A producer still here is one whose direction just ended (its stream was cancelled
            // or failed): it is dropped with the entry.
            entry.stop();
        }
    }

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::Consumed(id, n, bytes) => {
                self.conn.consumed(id, n, bytes);
                // The window may have grown: the reader reports in batches of its new half.
                if let Some(Entry { inbound: Some(Inbound::Many(inlet)), .. }) = self.entries.get(&id) {
                    inlet.set_batch(self.conn.credit_batch(id));
                }
            }
            Control::Cancel(id) => {
                self.conn.cancel(id);
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.inbound = None;
                }
                self.reap(id);
            }
            Control::Close { graceful } => self.conn.close(graceful),
            Control::Shutdown => {
                if self.grace_deadline.is_none() {
                    self.grace_deadline = Some(Instant::now() + self.conn.config().shutdown_grace);
                    self.conn.close(true);
                }
            }
        }
    }

    fn handle_command(&mut self, command: Command, wbuf: &mut BytesMut) {
        match command {
            Command::Open { kind, metadata, data, complete, inbound, outbound, opened } => {
                let id = match self.conn.open_into(kind, metadata, data, complete, wbuf) {
                    Ok(id) => id,
                    Err(e) => {
                        let status = command_status(&e, &self.handles);
                        match (opened, inbound) {
                            (Opened::Reply(tx), _) => {
                                let _ = tx.send(Err(status));
                            }
                            (Opened::Slot, Some(Inbound::Single(tx))) => tx.send(Err(status)),
                            _ => {}
                        }
                        return;
                    }
                };
                let gone = match opened {
                    Opened::Reply(tx) => tx.send(Ok(id)).is_err(),
                    Opened::Slot => matches!(&inbound, Some(Inbound::Single(tx)) if tx.assign(id)),
                };
                if gone {
                    // The caller is gone already.
                    self.conn.cancel(id);
                    return;
                }
                if kind == Kind::FireAndForget {
                    return;
                }
                let mut entry = Entry { inbound, ..Entry::default() };
                if let Some(outbound) = outbound
                    && !complete
                {
                    // Polled once the responder grants credit.
                    entry.producer = Some(self.producer(id, outbound, 0));
                }
                self.entries.insert(id, entry);
            }
            Command::Respond { id, result, reserved } => {
                drop(reserved);
                self.answer(id, result, wbuf);
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.task = None;
                    entry.cancel = None;
                }
                self.reap(id);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_handler(
        &mut self,
        id: u32,
        kind: Kind,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        initial_n: u32,
        weak: &WeakSender,
        wbuf: &mut BytesMut,
    ) {
        let (route, service) = match self.routes.get(&metadata) {
            Some(known) => known,
            None => match CompositeMetadata::decode_route(&metadata) {
                Some(route) => {
                    let route: Arc<str> = route.into();
                    let service = self.resolver.as_ref().and_then(|r| r.resolve(&route));
                    self.routes.put(&metadata, route, service)
                }
                None => {
                    let status = Status::unimplemented("the request's metadata carries no readable route");
                    return self.refuse(id, kind, status);
                }
            },
        };
        let Some(tx) = weak.upgrade() else { return };
        let cancel = self.spare_cancels.pop().unwrap_or_default();
        let peer = Client::from_parts(tx.clone(), self.handles.clone());
        let call = Call::received(route, metadata, cancel.clone(), peer);
        // The service that serves the route, if it was resolved; otherwise the connection's
        // handler, which dispatches by route itself.
        let handler = service.unwrap_or_else(|| self.handler.clone());
        // The entry's own handle is made only for a call that outlives this function, so that
        // one answered at once leaves its signal unshared, for `recycle`.
        let mut entry = Entry::default();
        match kind {
            Kind::FireAndForget => {
                // Nobody waits for an answer: a panic (reported by the panic hook) ends the
                // call and nothing else.
                let first = unwind::guard(|| {
                    let mut future = handler.fire_and_forget(call, data);
                    poll_once(&mut future).is_none().then_some(future)
                });
                match first {
                    Err(_) => {}
                    Ok(None) => self.recycle(cancel),
                    Ok(Some(future)) => {
                        // Without a permit (a read's worth of requests can pass the limit) the
                        // task still runs: reading stops until the count is below the limit.
                        let permit = self.fire_and_forget.clone().try_acquire_owned().ok();
                        let task = tokio::spawn(async move {
                            let _permit = permit;
                            let _ = unwind::CatchUnwind::new(future).await;
                        });
                        self.fires.track(task.abort_handle(), cancel);
                    }
                }
                return;
            }
            Kind::RequestResponse => {
                // The handler is called and its future polled once under one guard (a guard
                // is a call that what it guards cannot be inlined through).
                let before = wbuf.len();
                let first = unwind::guard(|| {
                    let mut future = handler.request_response(call, data);
                    let polled = match &mut future.0 {
                        // Straight into the write buffer, behind its frame's head.
                        Answer::Encoded(encoded) => {
                            let start = length::begin_message(wbuf);
                            First::Encoded(start, poll_once_with(|cx| encoded.as_mut().poll_encode(cx, wbuf)))
                        }
                        Answer::Payload(payload) => First::Payload(poll_once(payload)),
                    };
                    (future, polled)
                });
                let (future, polled) = match first {
                    Ok(first) => first,
                    Err(panicked) => {
                        // Half an answer may be in the buffer: none of it goes.
                        wbuf.truncate(before);
                        return self.send_status(id, &panicked.status(HANDLER));
                    }
                };
                // Answered without waiting: no task, no trip through the command channel.
                let answered = match polled {
                    First::Encoded(start, Some(Ok(()))) => {
                        let _ = self.conn.finish_message(id, start, wbuf);
                        true
                    }
                    First::Encoded(start, Some(Err(status))) => {
                        wbuf.truncate(start);
                        self.send_status(id, &status);
                        true
                    }
                    First::Encoded(start, None) => {
                        wbuf.truncate(start);
                        false
                    }
                    First::Payload(Some(result)) => {
                        self.answer(id, result, wbuf);
                        true
                    }
                    First::Payload(None) => false,
                };
                if answered {
                    drop(future);
                    self.recycle(cancel);
                    return;
                }
                let budget = self.handles.budget.clone();
                let task = tokio::spawn(async move {
                    // A panic after the first poll answers INTERNAL too: the caller must not
                    // wait for an answer that never comes.
                    let result = unwind::CatchUnwind::new(future).await.unwrap_or_else(|p| Err(p.status(HANDLER)));
                    let reserved = match &result {
                        Ok(payload) => budget.reserve(payload.metadata.len() + payload.data.len()).await,
                        Err(_) => Reserved::none(),
                    };
                    let _ = tx.send(Command::Respond { id, result, reserved }).await;
                });
                entry.task = Some(task.abort_handle());
                entry.cancel = Some(cancel);
            }
            Kind::RequestStream => {
                let stream = match unwind::guard(|| handler.request_stream(call, data)) {
                    Ok(stream) => stream,
                    Err(panicked) => return self.send_status(id, &panicked.status(HANDLER)),
                };
                entry.producer = Some(self.producer(id, stream, initial_n));
                entry.cancel = Some(cancel);
            }
            Kind::Channel => {
                let (inlet, mut messages) = super::stream::inbound(&self.handles);
                messages.set_id(id);
                inlet.push(Ok(Payload { metadata: Bytes::new(), data }));
                if !complete {
                    entry.inbound = Some(Inbound::Many(inlet));
                }
                let stream = match unwind::guard(|| handler.request_channel(call, messages)) {
                    Ok(stream) => stream,
                    Err(panicked) => {
                        // The stream's reader (the handler's messages) went with the panic.
                        self.send_status(id, &panicked.status(HANDLER));
                        return;
                    }
                };
                entry.producer = Some(self.producer(id, stream, initial_n));
                entry.cancel = Some(cancel);
            }
        }
        self.entries.insert(id, entry);
    }

    /// Keeps a call's cancel signal for the next call if nothing else holds it any more (the
    /// handler answered at once and dropped its call): every request needs one, and most are
    /// answered at once, so this saves an allocation and a free per call.
    fn recycle(&mut self, cancel: CancelSignal) {
        if self.spare_cancels.len() < SPARE_CANCELS && cancel.is_unshared() {
            self.spare_cancels.push(cancel);
        }
    }

    /// A producer for stream `id` with `credit` granted; it is polled on the next turn, with
    /// no credit too (a stream that ends at once must complete: see `run_producer`).
    fn producer(&mut self, id: u32, stream: Responses, credit: u32) -> Box<Producer> {
        let (waker, flag) = self.inbox.producer_waker(id);
        self.runnable.push(id);
        Box::new(Producer { stream, credit: u64::from(credit), ahead: None, waker, flag })
    }

    /// Gives each runnable producer a turn, while the write buffer has room; round after
    /// round, until a write's worth ([`PRODUCERS_WRITE`]) waits or no producer is left with
    /// messages ready and credit.
    fn run_producers(&mut self, wbuf: &mut BytesMut, max_buffered: usize) {
        let enough = PRODUCERS_WRITE.min(max_buffered);
        loop {
            let mut runnable = std::mem::take(&mut self.runnable);
            let mut turns = 0;
            for &id in &runnable {
                turns += 1;
                self.run_producer(id, wbuf);
                self.flush_transmit(wbuf);
                if wbuf.len() >= max_buffered {
                    break;
                }
            }
            // Those that had no turn keep their place, ahead of any queued meanwhile.
            runnable.drain(..turns);
            runnable.append(&mut self.runnable);
            self.runnable = runnable;
            // Only a producer that used up its turn is queued again, so every round that goes
            // on wrote at least a batch of messages: the loop ends.
            if self.runnable.is_empty() || wbuf.len() >= enough {
                return;
            }
        }
    }

    /// One turn of producer `id`: takes messages from its stream while it has credit and they
    /// are ready, up to a batch, and sends them.
    ///
    /// Out of credit, the stream is still polled once (unless a message already waits in
    /// [`Producer::ahead`]): the peer owes no credit for the stream's end (a PAYLOAD with C
    /// alone, or an ERROR), so a requester that grants exactly the messages it expects must
    /// still see the stream complete, and only a poll can tell that it has. A message that
    /// poll yields waits in `ahead`, one per stream at most, until credit comes.
    fn run_producer(&mut self, id: u32, wbuf: &mut BytesMut) {
        let Some(producer) = self.entries.get_mut(&id).and_then(|e| e.producer.as_mut()) else { return };
        if producer.credit == 0 && producer.ahead.is_some() {
            // Nothing can go until the peer grants more; its REQUEST_N makes this runnable.
            return;
        }
        // Cleared before polling, so a wake-up during the poll marks it ready again.
        producer.flag.clear();
        let mut cx = std::task::Context::from_waker(&producer.waker);
        let (mut taken, mut size) = (0, 0);
        let ahead = producer.ahead.take();
        let end = match &mut producer.stream.0 {
            Source::Payloads(stream) => {
                // Each message is held back until the next poll tells whether it was the last,
                // so that it can carry (C) itself.
                let mut held: Option<Payload> = None;
                if let Some(payload) = ahead {
                    producer.credit -= 1;
                    taken += 1;
                    size += payload.metadata.len() + payload.data.len();
                    held = Some(payload);
                }
                // One guard for the turn, not one a message: a guard is a call the message's
                // poll cannot be inlined through. After a panic, the message held back is
                // still sent, ahead of the error.
                let turn = unwind::guard(|| {
                    // (The turn's counts are the closure's own: see the other source's.)
                    let (mut taken, mut size) = (taken, size);
                    loop {
                        let probe = producer.credit == 0;
                        if !probe && turn_is_over(&mut self.runnable, id, producer.credit, taken, size) {
                            break None;
                        }
                        match stream.as_mut().poll_next(&mut cx) {
                            Poll::Ready(Some(Ok(payload))) if probe => {
                                producer.ahead = Some(payload);
                                break None;
                            }
                            Poll::Ready(Some(Ok(payload))) => {
                                producer.credit -= 1;
                                taken += 1;
                                size += payload.metadata.len() + payload.data.len();
                                if let Some(previous) = held.replace(payload) {
                                    let _ = self.conn.send_next_into(id, previous.metadata, previous.data, false, wbuf);
                                }
                            }
                            Poll::Ready(Some(Err(status))) => break Some(End::Error(status)),
                            Poll::Ready(None) => break Some(End::Complete),
                            Poll::Pending => break None,
                        }
                    }
                });
                let end = turn.unwrap_or_else(|panicked| Some(End::Error(panicked.status(STREAM))));
                match (held, &end) {
                    (Some(last), Some(End::Complete)) => {
                        let _ = self.conn.send_next_into(id, last.metadata, last.data, true, wbuf);
                    }
                    (None, Some(End::Complete)) => {
                        let _ = self.conn.send_complete(id);
                    }
                    (Some(last), _) => {
                        let _ = self.conn.send_next_into(id, last.metadata, last.data, false, wbuf);
                    }
                    (None, _) => {}
                }
                end
            }
            Source::Encoded(stream) => {
                // Each message is encoded into `wbuf` behind its frame's head; the last one
                // written there this turn gets (C) if the next poll ends the stream.
                let mut last = None;
                if let Some(Payload { data, .. }) = ahead {
                    // (An encoded stream's messages carry no metadata.)
                    let start = length::begin_message(wbuf);
                    wbuf.extend_from_slice(&data);
                    producer.credit -= 1;
                    taken += 1;
                    size += data.len();
                    last = match self.conn.finish_message(id, start, wbuf) {
                        Ok(true) => Some(start),
                        Ok(false) | Err(_) => None,
                    };
                }
                // Where the message being encoded starts, while it is: a panic in its encoding
                // leaves half of it in the buffer, cut off after the guard.
                // (A cell: written in the guarded turn, read after it unwound.)
                let encoding = std::cell::Cell::new(None);
                // One guard for the turn, not one a message (see the other source's).
                let turn = unwind::guard(|| {
                    // The turn's counts are the closure's own, not borrowed from outside it:
                    // kept in registers across the loop.
                    let (mut taken, mut size, mut last) = (taken, size, last);
                    // The stream, looked up once for the turn's messages; a message that cannot
                    // go that way goes through `finish_message`, which says why.
                    let mut in_place = self.conn.messages_in_place(id);
                    let end = loop {
                        let probe = producer.credit == 0;
                        if !probe && turn_is_over(&mut self.runnable, id, producer.credit, taken, size) {
                            break None;
                        }
                        let start = length::begin_message(wbuf);
                        encoding.set(Some(start));
                        let polled = stream.as_mut().poll_encode(&mut cx, wbuf);
                        encoding.set(None);
                        if probe && matches!(polled, Poll::Ready(Some(Ok(())))) {
                            // Rare (the stream had a message ready beyond the peer's credit): a
                            // copy, so that the write buffer holds only what may be written.
                            producer.ahead =
                                Some(Payload::new(Bytes::copy_from_slice(&wbuf[start + length::MESSAGE_HEAD..])));
                            wbuf.truncate(start);
                            break None;
                        }
                        if !matches!(polled, Poll::Ready(Some(Ok(())))) {
                            wbuf.truncate(start);
                        }
                        match polled {
                            Poll::Ready(Some(Ok(()))) => {
                                producer.credit -= 1;
                                taken += 1;
                                size += wbuf.len() - start;
                                if in_place.as_mut().is_some_and(|run| run.finish(start, wbuf)) {
                                    last = Some(start);
                                    continue;
                                }
                                last = match self.conn.finish_message(id, start, wbuf) {
                                    Ok(true) => Some(start),
                                    Ok(false) | Err(_) => None,
                                };
                                in_place = self.conn.messages_in_place(id);
                            }
                            Poll::Ready(Some(Err(status))) => break Some(End::Error(status)),
                            Poll::Ready(None) => break Some(End::Complete),
                            Poll::Pending => break None,
                        }
                    };
                    (end, last)
                });
                let (end, last) = turn.unwrap_or_else(|panicked| {
                    if let Some(start) = encoding.get() {
                        wbuf.truncate(start);
                    }
                    (Some(End::Error(panicked.status(STREAM))), None)
                });
                if let Some(End::Complete) = end {
                    match last {
                        Some(start) => self.conn.complete_in_place(id, start, wbuf),
                        None => {
                            let _ = self.conn.send_complete(id);
                        }
                    }
                }
                end
            }
        };
        let Some(end) = end else { return };
        if let End::Error(status) = end {
            self.send_status(id, &status);
            // A requester's own stream failed (its outbound half of a channel): the call is
            // over, and its reader learns why.
            if self.conn.is_local_id(id)
                && let Some(entry) = self.entries.remove(&id)
            {
                return entry.fail(status);
            }
        }
        if let Some(entry) = self.entries.get_mut(&id) {
            // The stream ended on its own: nothing to stop, nobody cancelled.
            entry.producer = None;
            entry.cancel = None;
        }
        self.reap(id);
    }

    /// Answers a request that cannot reach a handler.
    fn refuse(&mut self, id: u32, kind: Kind, status: Status) {
        if kind != Kind::FireAndForget {
            self.send_status(id, &status);
        }
    }

    /// Sends a request/response's outcome. The stream may be gone (cancelled meanwhile); then
    /// there is nobody to answer.
    fn answer(&mut self, id: u32, result: Result<Payload, Status>, wbuf: &mut BytesMut) {
        match result {
            Ok(payload) => {
                let _ = self.conn.send_next_into(id, payload.metadata, payload.data, true, wbuf);
            }
            Err(status) => self.send_status(id, &status),
        }
    }

    /// Ends a stream with `status` as an APPLICATION_ERROR (see [`crate::Status`] for the text).
    fn send_status(&mut self, id: u32, status: &Status) {
        let _ = self.conn.send_error(id, ErrorCode::APPLICATION_ERROR, &status.to_wire());
    }
}

/// The routes of the last few distinct request metadata blocks this connection received, and
/// the services that serve them.
///
/// A requester sends the same metadata block (usually the routing entry alone) with every call
/// to a method, and checking it (every entry, every tag, UTF-8), copying its route out and
/// looking the route up cost more than the rest of dispatching the call. A block seen before is
/// compared byte for byte with the copy kept here, and its route and service shared. What a
/// peer can do with it is bounded: a few blocks of at most [`RouteCache::MAX_BLOCK`] bytes per
/// connection, each look-up at most that many comparisons.
#[derive(Default)]
struct RouteCache {
    entries: [Option<KnownBlock>; RouteCache::ENTRIES],
    /// The entry to replace next (oldest first).
    next: usize,
}

/// A route, and the service that serves it if it was resolved.
type Resolved = (Arc<str>, Option<Arc<dyn Handler>>);

/// A request metadata block (a copy), its route, and the service resolved for the route.
struct KnownBlock {
    block: Box<[u8]>,
    route: Arc<str>,
    service: Option<Arc<dyn Handler>>,
}

impl RouteCache {
    const ENTRIES: usize = 4;
    /// Blocks longer than this are checked every time (a route is at most 255 bytes, but
    /// method routes are much shorter, and a long block is rarely sent twice).
    const MAX_BLOCK: usize = 128;

    fn get(&self, block: &[u8]) -> Option<Resolved> {
        let known = self.entries.iter().flatten().find(|known| *known.block == *block)?;
        Some((known.route.clone(), known.service.clone()))
    }

    /// Remembers that `block` carries `route` (which `CompositeMetadata::decode_route` found
    /// in it), served by `service`; returns them.
    fn put(&mut self, block: &[u8], route: Arc<str>, service: Option<Arc<dyn Handler>>) -> Resolved {
        if block.len() <= RouteCache::MAX_BLOCK {
            let known = KnownBlock { block: block.into(), route: route.clone(), service: service.clone() };
            self.entries[self.next] = Some(known);
            self.next = (self.next + 1) % RouteCache::ENTRIES;
        }
        (route, service)
    }
}

/// What a request/response handler's first poll gave: an encoded answer (where its frame
/// starts in the write buffer) or a payload, if it answered at once.
enum First {
    Encoded(usize, Option<Result<(), Status>>),
    Payload(Option<Result<Payload, Status>>),
}

/// Polls a handler's future once, on the driver's task.
///
/// Most request/response and fire-and-forget handlers answer without waiting on anything;
/// running their first poll here saves a task and two trips between tasks per call. A future
/// that is not ready is then spawned, and the task's first poll registers its real waker, so
/// the no-op waker used here loses no wake-up.
fn poll_once<T>(future: &mut crate::BoxFuture<'static, T>) -> Option<T> {
    poll_once_with(|cx| future.as_mut().poll(cx))
}

/// [`poll_once`] for any poll.
fn poll_once_with<T>(poll: impl FnOnce(&mut std::task::Context<'_>) -> Poll<T>) -> Option<T> {
    match poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// Whether a producer's turn is over, having taken `taken` messages of `size` bytes with
/// `credit` left: out of credit, or at its batch's bounds. A producer stopped by its bounds
/// with credit left is queued for another turn, after the others had theirs.
#[inline]
fn turn_is_over(runnable: &mut Vec<u32>, id: u32, credit: u64, taken: usize, size: usize) -> bool {
    if credit > 0 && taken < PRODUCER_BATCH && size < PRODUCER_BATCH_BYTES {
        return false;
    }
    if credit > 0 {
        runnable.push(id);
    }
    true
}

/// Writes what it can of `wbuf` and takes that off its front. Not `write_buf`: the write
/// buffer is one contiguous slice, and `write_buf` prepares a vectored write of up to 64
/// slices on every call (~180 instructions, most of a small write's cost outside the kernel).
fn write_some<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    cx: &mut std::task::Context<'_>,
    wbuf: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    let written = std::pin::Pin::new(writer).poll_write(cx, wbuf);
    if let Poll::Ready(Ok(n)) = written {
        bytes::Buf::advance(wbuf, n);
    }
    written
}

/// A waker of the driver's own for one thing it waits on (the timer; a client's socket reads):
/// it notes that it was woken, so that the driver polls that thing again only then (see
/// `Driver::run`), and wakes the task that polled the driver last.
struct Flagged {
    fired: AtomicBool,
    /// Locked only when the polling task changes and when the thing wakes.
    target: std::sync::Mutex<Waker>,
}

impl Flagged {
    fn new() -> (Arc<Flagged>, Waker) {
        let flagged =
            Arc::new(Flagged { fired: AtomicBool::new(false), target: std::sync::Mutex::new(Waker::noop().clone()) });
        let waker = Waker::from(flagged.clone());
        (flagged, waker)
    }

    /// Makes `waker` the one woken, unless `last` (a copy of the one there) wakes the same task.
    fn follow(&self, last: &mut Option<Waker>, waker: &Waker) {
        if !last.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *super::lock(&self.target) = waker.clone();
            *last = Some(waker.clone());
        }
    }

    /// Whether it was woken since the last call.
    fn take(&self) -> bool {
        self.fired.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for Flagged {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        super::lock(&self.target).wake_by_ref();
    }
}

/// Polls with `task`'s waker if there is one (see [`Drive`]), else with `cx`'s.
fn on_task<R>(
    task: &Option<Waker>,
    cx: &mut std::task::Context<'_>,
    poll: impl FnOnce(&mut std::task::Context<'_>) -> R,
) -> R {
    match task {
        Some(waker) => poll(&mut std::task::Context::from_waker(waker)),
        None => poll(cx),
    }
}

/// The status a stream error from the peer maps to (see [`crate::status`]).
pub(crate) fn status_from_error(code: ErrorCode, message: &str) -> Status {
    match code {
        ErrorCode::APPLICATION_ERROR => Status::from_wire(message),
        ErrorCode::REJECTED => Status::unavailable(message),
        ErrorCode::CANCELED => Status::cancelled(message),
        ErrorCode::INVALID => Status::invalid_argument(message),
        other => Status::unknown(format!("{message} (error code 0x{:x})", other.0)),
    }
}

fn command_status(e: &CommandError, handles: &Handles) -> Status {
    match e {
        // Not closed yet: closing (this side or the peer began a graceful close, which lets
        // open streams finish but takes no new ones).
        CommandError::Closed => {
            Status::unavailable(closed_reason_or(handles, "the connection is closing: it takes no new streams"))
        }
        other => Status::unavailable(other.to_string()),
    }
}

/// Why the connection is closed, for error messages.
pub(crate) fn closed_reason(handles: &Handles) -> String {
    closed_reason_or(handles, "the connection is closed")
}

/// Why the connection closed, or `otherwise` while it has not.
fn closed_reason_or(handles: &Handles, otherwise: &str) -> String {
    handles.closed.borrow().clone().unwrap_or_else(|| otherwise.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_cache_keeps_the_last_few_short_blocks_and_matches_them_exactly() {
        let mut cache = RouteCache::default();
        let block = |i: usize| format!("block {i}").into_bytes();
        for i in 0..RouteCache::ENTRIES + 1 {
            assert!(cache.get(&block(i)).is_none());
            assert_eq!(&*cache.put(&block(i), format!("r{i}").into(), None).0, format!("r{i}"));
        }
        assert!(cache.get(&block(0)).is_none(), "the oldest made room");
        for i in 1..RouteCache::ENTRIES + 1 {
            assert_eq!(cache.get(&block(i)).map(|(route, _)| route).as_deref(), Some(&*format!("r{i}")));
        }
        assert!(cache.get(b"block").is_none(), "a prefix is another block");
        assert!(cache.get(b"block 10").is_none(), "so is a longer one");
        let long = vec![7u8; RouteCache::MAX_BLOCK + 1];
        assert_eq!(&*cache.put(&long, "long".into(), None).0, "long");
        assert!(cache.get(&long).is_none(), "too long to keep");
        assert!(cache.get(&block(1)).is_some(), "and it pushed nothing out");
    }

    fn shutdowns(inbox: &Inbox) -> usize {
        let mut taken = Taken::default();
        inbox.take_now(&mut taken, true);
        taken.controls.iter().filter(|c| matches!(c, Control::Shutdown)).count()
    }

    #[test]
    fn a_shutdown_reaches_every_live_connection_and_every_later_one_once() {
        let hub = ShutdownHub::default();
        let (a, _a) = Inbox::new();
        let (b, _b) = Inbox::new();
        hub.register(&a);
        hub.register(&b);
        {
            let (gone, _sender) = Inbox::new();
            hub.register(&gone);
        }
        assert_eq!((shutdowns(&a), shutdowns(&b)), (0, 0), "nothing before the shutdown");
        hub.shutdown();
        assert_eq!((shutdowns(&a), shutdowns(&b)), (1, 1));
        hub.shutdown();
        assert_eq!(shutdowns(&a), 0, "told once");
        let (late, _late) = Inbox::new();
        hub.register(&late);
        assert_eq!(shutdowns(&late), 1, "a connection accepted after the shutdown is told at once");
    }

    #[tokio::test]
    async fn running_fires_are_told_when_the_connection_closes_and_finished_ones_forgotten() {
        let mut fires = Fires::default();
        for _ in 0..1_000 {
            let task = tokio::spawn(async {});
            let abort = task.abort_handle();
            task.await.unwrap();
            fires.track(abort, CancelSignal::default());
        }
        assert!(fires.running.len() <= 32, "{} kept for no running handler", fires.running.len());
        let waiting = CancelSignal::default();
        let task = tokio::spawn({
            let waiting = waiting.clone();
            async move { waiting.cancelled().await }
        });
        fires.track(task.abort_handle(), waiting.clone());
        fires.connection_closed();
        assert!(waiting.is_cancelled());
        tokio::time::timeout(std::time::Duration::from_secs(5), task).await.expect("the handler ended").unwrap();
        assert!(fires.running.is_empty());
    }

    #[test]
    fn the_hub_forgets_closed_connections() {
        let hub = ShutdownHub::default();
        let (live, _sender) = Inbox::new();
        hub.register(&live);
        for _ in 0..1_000 {
            let (gone, _sender) = Inbox::new();
            hub.register(&gone);
        }
        assert!(hub.len() <= 32, "{} registrations kept for one live connection", hub.len());
        hub.shutdown();
        assert_eq!(shutdowns(&live), 1);
    }
}
