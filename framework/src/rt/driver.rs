//! The connection driver: the one task that touches a connection's transport.
//!
//! It owns the sans-IO [`Connection`] and feeds it bytes read from the transport, commands
//! from handles ([`Command`], [`Control`]) and timer expiries; it writes the frames the
//! connection emits and turns the connection's events into deliveries to the handles that wait
//! for them and into handler tasks for requests from the peer.
//!
//! Tasks around it:
//! * a **producer** task per stream this side writes to (a responder's stream, a channel
//!   requester's messages): it waits for credit (a semaphore the driver fills on REQUEST_N)
//!   before it polls the application's stream again, so a stream with no credit is not polled;
//! * a **handler** task per request/response from the peer;
//! * the application's handles: [`super::client::Client`] and [`PayloadStream`].
//!
//! Channels: `Command` is bounded (producers and requesters wait when the driver is behind).
//! `Control` (credit returned, cancel) is unbounded *by type* but bounded by construction:
//! each live stream has at most one cancel and at most two credit returns in flight (a
//! [`PayloadStream`] returns credit per half window, and cannot consume more than the window
//! before the driver grants again), and live streams are capped by the stream limit. Making it
//! bounded would let a full queue turn a `Drop` (which cannot wait) into a lost cancel.

use super::stream::PayloadStream;
use super::transport::Transport;
use crate::conn::{CommandError, Connection, Event, Kind};
use crate::frame::length::{self, LengthDelimited};
use crate::frame::metadata::CompositeMetadata;
use crate::frame::{DecodeError, ErrorCode, Frame};
use crate::payload::CancelSignal;
use crate::{BoxStream, Call, Client, Handler, Payload, Status};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Capacity of the command channel.
pub(crate) const COMMAND_CAPACITY: usize = 1024;
/// Messages a producer hands the driver at once, when it has the credit and they are ready.
const PRODUCER_BATCH: usize = 64;
/// ... and at most about this many bytes of them, so a batch never holds much more than one
/// large message.
const PRODUCER_BATCH_BYTES: usize = 64 * 1024;
/// Commands handled before the driver writes, so that many small frames go out in one write.
const COMMAND_BATCH: usize = 256;
/// Bytes asked of the transport per read.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free room, the read buffer is grown by a chunk before the next read.
const MIN_READ_ROOM: usize = 1024;

/// A request from a handle, or output of a producer or handler task.
pub(crate) enum Command {
    /// Open a stream. `opened` learns the stream id (or why not); if it was dropped (the
    /// caller gave up) the stream is cancelled at once.
    Open {
        kind: Kind,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        inbound: Option<Inbound>,
        outbound: Option<BoxStream<'static, Result<Payload, Status>>>,
        opened: Opened,
    },
    /// A producer's next messages (one credit each, in order), holding their share of the
    /// outgoing byte budget; `end` says how the stream went on after them, if it ended.
    Next { id: u32, payloads: Vec<Payload>, end: Option<End>, reserved: Reserved },
    /// A request/response handler's outcome, holding `permits` of the outgoing byte budget.
    Respond { id: u32, result: Result<Payload, Status>, reserved: Reserved },
}

/// How the driver tells a caller which stream its request opened.
pub(crate) enum Opened {
    /// Through a channel, with the id or why the stream could not open; if the receiver is
    /// gone (the caller gave up), the stream is cancelled at once.
    Reply(oneshot::Sender<Result<u32, Status>>),
    /// Request/response: through a shared slot, so the caller waits for one thing only (the
    /// answer, on its `Inbound::Single`, which also carries a failure to open).
    Slot(Arc<PendingCall>),
}

/// The meeting point of a request/response caller that may give up and the driver that
/// assigns the stream id. Each side writes its fact, then reads the other's (sequentially
/// consistent), so at least one of them sees both and the CANCEL is sent exactly when needed.
#[derive(Debug, Default)]
pub(crate) struct PendingCall {
    id: std::sync::atomic::AtomicU32,
    cancelled: std::sync::atomic::AtomicBool,
}

impl PendingCall {
    /// Driver: records the id; true if the caller already gave up (cancel it now).
    fn assign(&self, id: u32) -> bool {
        self.id.store(id, std::sync::atomic::Ordering::SeqCst);
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caller: gives up; the id to cancel if the driver already opened the stream.
    pub(crate) fn cancel(&self) -> Option<u32> {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        Some(self.id.load(std::sync::atomic::Ordering::SeqCst)).filter(|id| *id != 0)
    }
}

/// How a producer's stream ended.
pub(crate) enum End {
    Complete,
    Error(Status),
}

/// Signals from stream handles; see the module doc for why this channel is unbounded.
#[derive(Debug)]
pub(crate) enum Control {
    /// The application consumed `n` messages of a stream.
    Consumed(u32, u32),
    /// The application dropped its end of a stream before it finished.
    Cancel(u32),
    /// Close the connection; `graceful` waits for open streams (bounded by the grace period).
    Close { graceful: bool },
}

/// Where a stream's inbound messages go.
pub(crate) enum Inbound {
    Single(oneshot::Sender<Result<Payload, Status>>),
    Many(mpsc::Sender<Result<Payload, Status>>),
}

/// What the driver keeps per live stream.
#[derive(Default)]
struct Entry {
    inbound: Option<Inbound>,
    /// Credit for the producer: permits are messages the peer granted.
    credit: Option<Arc<Semaphore>>,
    /// Producer or handler tasks to stop when the stream ends.
    tasks: Vec<AbortHandle>,
    /// Fired when the stream ends early, for handlers watching [`Call::cancelled`].
    cancel: Option<CancelSignal>,
}

impl Entry {
    /// Ends the stream with `status`: its reader gets it as the last item.
    fn fail(mut self, status: Status) {
        match self.inbound.take() {
            Some(Inbound::Single(tx)) => {
                let _ = tx.send(Err(status));
            }
            Some(Inbound::Many(tx)) => {
                // Cannot be full: see `Handles::queue_capacity`.
                let _ = tx.try_send(Err(status));
            }
            None => {}
        }
        self.stop();
    }

    fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(cancel) = &self.cancel {
            cancel.fire();
        }
    }
}

/// What every handle of a connection shares (the command sender is held apart, because the
/// connection closes once the last one is dropped).
#[derive(Clone, Debug)]
pub(crate) struct Handles {
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// The credit batch size [`PayloadStream`]s return credit in.
    pub(crate) credit_batch: u32,
    /// The credit window; see [`Handles::queue_capacity`].
    pub(crate) window: u32,
    /// Flips to the close reason once the connection is over.
    pub(crate) closed: watch::Receiver<Option<String>>,
    /// See [`Budget`].
    pub(crate) budget: Arc<Budget>,
}

/// Bytes of outgoing messages that tasks may have queued for the driver.
///
/// The command channel bounds how many messages wait, not how large they are: a producer with
/// plenty of credit could otherwise queue a channel's worth of large messages while the peer
/// reads nothing. A task reserves a message's size before queueing it; the driver releases it
/// when the message enters its write buffer, whose own size is bounded by stopping intake
/// while it is full.
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
            Err(_) => Reserved(None),
        }
    }
}

/// A message's share of the [`Budget`], given back when dropped: when the driver has taken
/// the message, or when the task or command carrying it is dropped on the way (a cancelled
/// stream must not shrink the budget for good).
pub(crate) struct Reserved(Option<(Arc<Budget>, u32)>);

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
    commands: mpsc::Receiver<Command>,
    control: mpsc::UnboundedReceiver<Control>,
    handles: Handles,
    /// For tasks the driver spawns; weak, so that it does not keep the connection alive.
    weak: mpsc::WeakSender<Command>,
    closed: watch::Sender<Option<String>>,
    /// Why the connection closed; published on `closed` once the last frame is written.
    close_reason: Option<String>,
    handler: Arc<dyn Handler>,
    entries: HashMap<u32, Entry>,
    /// Every handle is gone: close once no stream is left.
    orphaned: bool,
    /// Fires a graceful close (server shutdown).
    shutdown: Option<watch::Receiver<bool>>,
    grace_deadline: Option<Instant>,
}

impl Handles {
    /// Capacity of a stream's inbound queue: the window of credit, the message that rides in a
    /// REQUEST_CHANNEL (which no credit covers), and the terminal error. A peer cannot fill it
    /// beyond that without exceeding its credit, which the connection refuses before delivery.
    pub(crate) fn queue_capacity(&self) -> usize {
        self.window as usize + 2
    }
}

impl<T: Transport> Driver<T> {
    /// Creates a driver for `conn` over `transport`, answering the peer's requests with
    /// `handler`, and returns it with the handles to talk to it.
    pub(crate) fn new(
        conn: Connection,
        transport: T,
        handler: Arc<dyn Handler>,
        shutdown: Option<watch::Receiver<bool>>,
    ) -> (Driver<T>, mpsc::Sender<Command>, Handles) {
        let (reader, writer) = transport.split();
        let (command_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (control_tx, control) = mpsc::unbounded_channel();
        let (closed, closed_rx) = watch::channel(None);
        let config = conn.config();
        let handles = Handles {
            control: control_tx,
            credit_batch: config.credit_batch(),
            window: config.inbound_window_size(),
            closed: closed_rx,
            budget: Arc::new(Budget::new(config.max_buffered_bytes)),
        };
        let framing = LengthDelimited::new(config.max_frame_size);
        let driver = Driver {
            conn,
            reader,
            writer,
            framing,
            commands,
            control,
            handles: handles.clone(),
            weak: command_tx.downgrade(),
            closed,
            close_reason: None,
            handler,
            entries: HashMap::new(),
            orphaned: false,
            shutdown,
            grace_deadline: None,
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
        loop {
            self.process(&weak, &mut wbuf);
            if self.conn.is_closed() {
                break;
            }
            let timeout = self.conn.poll_timeout().map(Instant::from_std);
            let sleep = async {
                match (timeout, self.grace_deadline) {
                    (Some(a), Some(b)) => tokio::time::sleep_until(a.min(b)).await,
                    (Some(a), None) | (None, Some(a)) => tokio::time::sleep_until(a).await,
                    (None, None) => std::future::pending().await,
                }
            };
            let draining = self.grace_deadline.is_some();
            let shutdown = async {
                match self.shutdown.as_mut() {
                    // `wait_for` also sees a shutdown signalled before this connection was
                    // accepted.
                    Some(rx) if !draining => {
                        if rx.wait_for(|stop| *stop).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            // Back-pressure: with too much unwritten, stop taking new work and stop reading
            // (the peer then feels TCP back-pressure) until the writes drain.
            let congested = wbuf.len() >= max_buffered;
            // `read_buf` on a full buffer would grow it by a few bytes and read that little;
            // keep room for a real read. The buffer holds at most one partial frame (bounded by
            // the maximum frame size) plus one chunk, since whole frames are taken off at once.
            if rbuf.capacity() - rbuf.len() < MIN_READ_ROOM {
                rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                written = self.writer.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                    if !matches!(written, Ok(n) if n > 0) {
                        self.transport_closed();
                    }
                }
                read = self.reader.read_buf(&mut rbuf), if reading && !congested => {
                    match read {
                        Ok(0) | Err(_) => {
                            reading = false;
                            self.transport_closed();
                        }
                        Ok(_) => self.handle_bytes(&mut rbuf),
                    }
                }
                control = self.control.recv() => {
                    if let Some(control) = control {
                        self.handle_control(control);
                    }
                }
                command = self.commands.recv(), if !congested && !self.orphaned => {
                    match command {
                        Some(command) => {
                            self.handle_command(command, &weak);
                            for _ in 0..COMMAND_BATCH {
                                match self.commands.try_recv() {
                                    Ok(command) => self.handle_command(command, &weak),
                                    Err(_) => break,
                                }
                            }
                        }
                        None => {
                            self.orphaned = true;
                            if self.entries.is_empty() {
                                self.conn.close(true);
                            }
                        }
                    }
                }
                _ = sleep => {
                    let now = Instant::now();
                    if self.grace_deadline.is_some_and(|d| now >= d) {
                        self.conn.close(false);
                    }
                    self.conn.handle_timeout(now.into_std());
                }
                _ = shutdown => {
                    let grace = self.conn.config().shutdown_grace;
                    self.grace_deadline = Some(Instant::now() + grace);
                    self.conn.close(true);
                }
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

    fn transport_closed(&mut self) {
        self.conn.handle_transport_closed();
    }

    fn handle_bytes(&mut self, rbuf: &mut BytesMut) {
        let now = Instant::now().into_std();
        loop {
            if self.conn.is_closed() {
                rbuf.clear();
                return;
            }
            match self.framing.decode(rbuf) {
                Ok(Some(bytes)) => match Frame::decode(bytes) {
                    Ok(frame) => self.conn.handle_frame(frame, now),
                    Err(e) => self.conn.handle_decode_error(&e, now),
                },
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

    /// Drains the connection's output: frames into `wbuf`, events into deliveries.
    fn process(&mut self, weak: &mpsc::WeakSender<Command>, wbuf: &mut BytesMut) {
        loop {
            while let Some(frame) = self.conn.poll_transmit() {
                length::encode_frame(&frame, wbuf);
            }
            let Some(event) = self.conn.poll_event() else { break };
            self.handle_event(event, weak);
        }
        if self.orphaned && self.entries.is_empty() && !self.conn.is_closed() {
            self.conn.close(true);
        }
    }

    fn handle_event(&mut self, event: Event, weak: &mpsc::WeakSender<Command>) {
        match event {
            Event::SetupAccepted(_) | Event::MetadataPush(_) => {}
            Event::Request { stream_id, kind, metadata, data, complete, initial_n } => {
                self.spawn_handler(stream_id, kind, metadata, data, complete, initial_n, weak)
            }
            Event::Next { stream_id, metadata, data } => {
                let payload = Payload { metadata, data };
                let Some(entry) = self.entries.get_mut(&stream_id) else { return };
                match entry.inbound.take() {
                    Some(Inbound::Single(tx)) => {
                        let _ = tx.send(Ok(payload));
                    }
                    Some(Inbound::Many(tx)) => {
                        // Cannot be full: see `Handles::queue_capacity`.
                        let _ = tx.try_send(Ok(payload));
                        entry.inbound = Some(Inbound::Many(tx));
                    }
                    None => {}
                }
            }
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
                    entry.credit = None;
                    for task in entry.tasks.drain(..) {
                        task.abort();
                    }
                }
            }
            Event::RequestN { stream_id, n } => {
                if let Some(credit) = self.entries.get(&stream_id).and_then(|e| e.credit.as_ref()) {
                    let room = Semaphore::MAX_PERMITS.saturating_sub(credit.available_permits());
                    credit.add_permits((n as usize).min(room));
                }
            }
            Event::Closed(reason) => self.fail_all(&reason.to_string()),
        }
    }

    fn fail_all(&mut self, reason: &str) {
        self.close_reason.get_or_insert_with(|| reason.to_owned());
        for (_, entry) in self.entries.drain() {
            entry.fail(Status::unavailable(reason));
        }
    }

    /// Forgets the driver's side of a stream the connection no longer knows.
    fn reap(&mut self, id: u32) {
        if !self.conn.contains(id)
            && let Some(entry) = self.entries.remove(&id)
        {
            // Tasks still running here are producers whose direction just ended (their
            // stream was cancelled or failed); finished ones ignore the abort.
            entry.stop();
        }
    }

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::Consumed(id, n) => self.conn.consumed(id, n),
            Control::Cancel(id) => {
                self.conn.cancel(id);
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.inbound = None;
                }
                self.reap(id);
            }
            Control::Close { graceful } => self.conn.close(graceful),
        }
    }

    fn handle_command(&mut self, command: Command, weak: &mpsc::WeakSender<Command>) {
        match command {
            Command::Open { kind, metadata, data, complete, inbound, outbound, opened } => {
                let id = match self.conn.open(kind, metadata, data, complete) {
                    Ok(id) => id,
                    Err(e) => {
                        let status = command_status(&e, &self.handles);
                        match (opened, inbound) {
                            (Opened::Reply(tx), _) => {
                                let _ = tx.send(Err(status));
                            }
                            (Opened::Slot(_), Some(Inbound::Single(tx))) => {
                                let _ = tx.send(Err(status));
                            }
                            _ => {}
                        }
                        return;
                    }
                };
                let gone = match opened {
                    Opened::Reply(tx) => tx.send(Ok(id)).is_err(),
                    Opened::Slot(pending) => pending.assign(id),
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
                    let credit = Arc::new(Semaphore::new(0));
                    if let Some(tx) = weak.upgrade() {
                        let task = tokio::spawn(produce(id, credit.clone(), self.handles.budget.clone(), outbound, tx));
                        entry.tasks.push(task.abort_handle());
                    }
                    entry.credit = Some(credit);
                }
                self.entries.insert(id, entry);
            }
            Command::Next { id, payloads, end, reserved } => {
                // Encoded below: the write buffer's bound takes over from the budget.
                drop(reserved);
                let count = payloads.len();
                let ended = end.is_some();
                for (i, payload) in payloads.into_iter().enumerate() {
                    // The last message of a completed stream carries (C) itself.
                    let complete = i + 1 == count && matches!(end, Some(End::Complete));
                    if let Err(CommandError::NoCredit(_)) =
                        self.conn.send_next(id, payload.metadata, payload.data, complete)
                    {
                        // A producer only sends with a permit; this would be a bug in the driver.
                        let _ = self.conn.send_error(id, ErrorCode::APPLICATION_ERROR, "INTERNAL: credit exceeded");
                    }
                }
                match end {
                    Some(End::Complete) if count == 0 => {
                        let _ = self.conn.send_complete(id);
                    }
                    Some(End::Error(status)) => self.send_status(id, &status),
                    _ => {}
                }
                if ended && let Some(entry) = self.entries.get_mut(&id) {
                    // The stream ended on its own: nothing to stop, nobody cancelled.
                    entry.credit = None;
                    entry.tasks.clear();
                    entry.cancel = None;
                }
                self.reap(id);
            }
            Command::Respond { id, result, reserved } => {
                drop(reserved);
                self.answer(id, result);
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.tasks.clear();
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
        weak: &mpsc::WeakSender<Command>,
    ) {
        let composite = match CompositeMetadata::decode(metadata) {
            Ok(m) => m,
            Err(e) => return self.refuse(id, kind, Status::invalid_argument(format!("bad request metadata: {e}"))),
        };
        let route = match composite.routing() {
            Ok(Some(r)) if !r.tags.is_empty() => r.tags.into_iter().next().unwrap_or_default(),
            Ok(_) => return self.refuse(id, kind, Status::unimplemented("the request carries no route")),
            Err(e) => return self.refuse(id, kind, Status::invalid_argument(format!("bad routing metadata: {e}"))),
        };
        let Some(tx) = weak.upgrade() else { return };
        let cancel = CancelSignal::default();
        let peer = Client::from_parts(tx.clone(), self.handles.clone());
        let call = Call::from_parts(route, composite, cancel.clone(), peer);
        let handler = self.handler.clone();
        let mut entry = Entry { cancel: Some(cancel), ..Entry::default() };
        match kind {
            Kind::FireAndForget => {
                let mut future = handler.fire_and_forget(call, data);
                if poll_once(&mut future).is_none() {
                    tokio::spawn(future);
                }
                return;
            }
            Kind::RequestResponse => {
                let mut future = handler.request_response(call, data);
                if let Some(result) = poll_once(&mut future) {
                    // Answered without waiting: no task, no trip through the command channel.
                    self.answer(id, result);
                    return;
                }
                let budget = self.handles.budget.clone();
                let task = tokio::spawn(async move {
                    let result = future.await;
                    let reserved = match &result {
                        Ok(payload) => budget.reserve(payload.metadata.len() + payload.data.len()).await,
                        Err(_) => Reserved(None),
                    };
                    let _ = tx.send(Command::Respond { id, result, reserved }).await;
                });
                entry.tasks.push(task.abort_handle());
            }
            Kind::RequestStream => {
                let stream = handler.request_stream(call, data);
                let credit = Arc::new(Semaphore::new(initial_n as usize));
                entry.tasks.push(
                    tokio::spawn(produce(id, credit.clone(), self.handles.budget.clone(), stream, tx)).abort_handle(),
                );
                entry.credit = Some(credit);
            }
            Kind::Channel => {
                let (in_tx, in_rx) = mpsc::channel(self.handles.queue_capacity());
                let _ = in_tx.try_send(Ok(Payload { metadata: Bytes::new(), data }));
                if !complete {
                    entry.inbound = Some(Inbound::Many(in_tx));
                }
                let messages = PayloadStream::new(id, in_rx, self.handles.clone());
                let stream = handler.request_channel(call, messages);
                let credit = Arc::new(Semaphore::new(initial_n as usize));
                entry.tasks.push(
                    tokio::spawn(produce(id, credit.clone(), self.handles.budget.clone(), stream, tx)).abort_handle(),
                );
                entry.credit = Some(credit);
            }
        }
        self.entries.insert(id, entry);
    }

    /// Answers a request that cannot reach a handler.
    fn refuse(&mut self, id: u32, kind: Kind, status: Status) {
        if kind != Kind::FireAndForget {
            self.send_status(id, &status);
        }
    }

    /// Sends a request/response's outcome. The stream may be gone (cancelled meanwhile); then
    /// there is nobody to answer.
    fn answer(&mut self, id: u32, result: Result<Payload, Status>) {
        match result {
            Ok(payload) => {
                let _ = self.conn.send_next(id, payload.metadata, payload.data, true);
            }
            Err(status) => self.send_status(id, &status),
        }
    }

    /// Ends a stream with `status` as an APPLICATION_ERROR (see [`crate::Status`] for the text).
    fn send_status(&mut self, id: u32, status: &Status) {
        let _ = self.conn.send_error(id, ErrorCode::APPLICATION_ERROR, &status.to_wire());
    }
}

/// Polls a handler's future once, on the driver's task.
///
/// Most request/response and fire-and-forget handlers answer without waiting on anything;
/// running their first poll here saves a task and two trips between tasks per call. A future
/// that is not ready is then spawned, and the task's first poll registers its real waker, so
/// the no-op waker used here loses no wake-up.
fn poll_once<T>(future: &mut crate::BoxFuture<'static, T>) -> Option<T> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}

/// Feeds one stream's messages to the driver, one per credit.
async fn produce(
    id: u32,
    credit: Arc<Semaphore>,
    budget: Arc<Budget>,
    mut stream: BoxStream<'static, Result<Payload, Status>>,
    tx: mpsc::Sender<Command>,
) {
    loop {
        // Back-pressure: the stream is not polled again until the peer granted credit.
        match credit.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
        let mut payloads = Vec::new();
        let mut end = match stream.next().await {
            Some(Ok(payload)) => {
                payloads.push(payload);
                None
            }
            Some(Err(status)) => Some(End::Error(status)),
            None => Some(End::Complete),
        };
        // While credit lasts and the stream has messages ready, take them too: one command and
        // one wake-up of the driver for the lot. Polling with a no-op waker loses no wake-up:
        // a stream that is not ready is polled again with the real one at the top of the loop.
        let mut size = payloads.first().map_or(0, |p: &Payload| p.metadata.len() + p.data.len());
        while end.is_none() && payloads.len() < PRODUCER_BATCH && size < PRODUCER_BATCH_BYTES {
            let Ok(permit) = credit.try_acquire() else { break };
            match futures_util::FutureExt::now_or_never(stream.next()) {
                Some(Some(Ok(payload))) => {
                    permit.forget();
                    size += payload.metadata.len() + payload.data.len();
                    payloads.push(payload);
                }
                Some(Some(Err(status))) => end = Some(End::Error(status)),
                Some(None) => end = Some(End::Complete),
                // Not ready: the credit goes back with the permit.
                None => break,
            }
        }
        let reserved = budget.reserve(size).await;
        let last = end.is_some();
        if tx.send(Command::Next { id, payloads, end, reserved }).await.is_err() || last {
            return;
        }
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
        CommandError::Closed => Status::unavailable(closed_reason(handles)),
        other => Status::unavailable(other.to_string()),
    }
}

/// Why the connection is closed, for error messages.
pub(crate) fn closed_reason(handles: &Handles) -> String {
    handles.closed.borrow().clone().unwrap_or_else(|| "the connection is closed".to_owned())
}
