//! The driver's loop: what it waits on (the transport, the inbox, the timer), and writing.

use super::Driver;
use crate::frame::length;
use crate::rt::alarm::Alarm;
use crate::rt::sync::lock;
use crate::rt::transport::Transport;
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes asked of the transport per read.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free room, the read buffer is grown by a chunk before the next read.
const MIN_READ_ROOM: usize = 1024;
/// How long a closed connection reads (and drops) what the peer still sends, waiting for it
/// to close its side (see the end of `Driver::run`): a few round trips on any network.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

impl<T: Transport> Driver<T> {
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
        // A reader that polls the driver (see `Assist`) is woken by the socket's reads, not by
        // the inbox or the timer: those wake the driver's task alone.
        let task_waker = self.task_waker.clone();
        // The alarm wakes a waker of the driver's own that records its firing, so a turn
        // looks at the deadlines only when it fired. Its firing wakes the task that polls the
        // driver: the driver's own (see `Assist`) or, for a server's connection, whichever
        // polled it last (`serve_connection` runs inside a caller's future, which may move
        // between tasks).
        let (timer, timer_waker) = Flagged::new();
        let mut alarm = Alarm::new(timer_waker);
        let mut timer_task: Option<Waker> = None;
        // A client's driver always follows its own task (see `Assist`): once is enough.
        if let Some(task) = &task_waker {
            timer.follow(&mut timer_task, task);
        }
        // A client's socket read readiness is registered with a waker of its own too, which
        // records that it fired and wakes whichever waker polled the read last (a reader's,
        // see `Assist`, or the driver's task's): a client's turns are often woken by something
        // else (the caller's next message), and then skip the read. A server's turns nearly
        // all begin with a read: there it would cost more than it saves.
        let read_wake = task_waker.as_ref().map(|_| Flagged::new());
        let mut read_target: Option<Waker> = None;
        let mut read_armed = true;
        let fire_and_forget = self.fire_and_forget.clone();
        let mut fnf_wait = None;
        // On a multi-thread runtime, a task woken by another task of the same worker runs
        // right after it (tokio's LIFO slot): woken by one caller's command, the driver would
        // write that one request while the callers woken with it (by a read's answers, say)
        // have yet to run, and then write theirs one by one, a system call each on both sides
        // (measured: 64 calls in flight, one worker: one write a call, against one per ~40 on
        // the current-thread runtime, and 3-5x the CPU a call). So a turn begun by commands,
        // with other streams live whose callers may be about to send, yields once before it
        // writes: a task that wakes itself is queued behind the tasks already woken, which
        // then queue their commands first. The current-thread runtime has no LIFO slot.
        let batch_commands = matches!(
            tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()),
            Ok(tokio::runtime::RuntimeFlavor::MultiThread)
        );
        let mut by_commands = false;
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
            if std::mem::take(&mut by_commands) && !wbuf.is_empty() && self.conn.stream_count() > 1 {
                tokio::task::yield_now().await;
                continue;
            }
            // (With nothing left to write after the turn's early writes, only the flush: left to
            // the select, it would cost a turn of its own.)
            if (!wbuf.is_empty() || self.unflushed) && !self.conn.is_closed() {
                // A write that cannot go now is retried by the select, with a real waker.
                let now = &mut std::task::Context::from_waker(Waker::noop());
                if let Poll::Ready(Err(error)) = write_flush(&mut self.writer, now, &mut wbuf, &mut self.unflushed) {
                    self.transport_failed(Some(error));
                    continue;
                }
            }
            if self.conn.is_closed() {
                break;
            }
            self.tell_draining();
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
                written = std::future::poll_fn(|cx| write_flush(&mut self.writer, cx, &mut wbuf, &mut self.unflushed)), if !wbuf.is_empty() || self.unflushed => {
                    if let Err(error) = written {
                        self.transport_failed(Some(error));
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
                        Ok(0) => {
                            reading = false;
                            self.transport_closed();
                        }
                        Err(error) => {
                            reading = false;
                            self.transport_failed(Some(error));
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
                }) => {
                    self.handle_taken(&mut wbuf, max_buffered);
                    by_commands = batch_commands;
                }
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
        self.refuse_late_commands();
        let flush = async {
            let _ = self.writer.write_all_buf(&mut wbuf).await;
            let _ = self.writer.shutdown().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), flush).await;
        // Only now: a program that closes, waits for `closed` and exits must not lose the
        // final frame.
        let reason =
            self.close_reason.take().unwrap_or_else(|| crate::Error::closed(crate::conn::CloseReason::Local, None));
        crate::rt::trace::connection_closed(&reason, self.conn.side(), self.handles.peer.addr);
        let _ = self.closed.send(Some(reason));
        // Closing a socket with unread input makes the kernel reset the connection, and a
        // reset can destroy what the peer has not read yet: this side's last frames, and the
        // clean end that tells a peer which closed gracefully that requests it sent meanwhile
        // were never taken (see `Connection::peer_closed_gracefully`). So, having said all,
        // read and drop what the peer still sends until it closes too (it does once it has
        // read this side's end), for a bounded time.
        if reading {
            let linger = async {
                loop {
                    rbuf.clear();
                    if !matches!(self.reader.read_buf(&mut rbuf).await, Ok(n) if n > 0) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, linger).await;
        }
    }

    /// Acts on what was taken out of the inbox: signals, then commands, then producers.
    pub(super) fn handle_taken(&mut self, wbuf: &mut BytesMut, max_buffered: usize) {
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
            if self.conn.stream_count() == 0 {
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

    pub(super) fn transport_closed(&mut self) {
        self.conn.handle_transport_closed();
    }

    /// The transport ended with `error` (none: a write that took nothing, which means the
    /// same). Kept for the close's reason, unless an error came first.
    pub(super) fn transport_failed(&mut self, error: Option<std::io::Error>) {
        let error = error.unwrap_or_else(|| std::io::ErrorKind::WriteZero.into());
        self.transport_error.get_or_insert(error);
        self.transport_closed();
    }

    /// Writes what the transport takes of `wbuf` at once, without waiting (or flushing: the
    /// turn's own write does, see `write_flush`): a write that cannot go now is retried by the
    /// turn's select, with a real waker.
    pub(super) fn write_now(&mut self, wbuf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
        let written = write_some(&mut self.writer, &mut std::task::Context::from_waker(Waker::noop()), wbuf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.unflushed = true;
        }
        written
    }

    /// Encodes the frames the connection has queued into `wbuf`.
    // Always inlined: called several times a turn, and nearly always with nothing queued.
    #[inline(always)]
    pub(super) fn flush_transmit(&mut self, wbuf: &mut BytesMut) {
        if self.conn.has_transmit() {
            self.encode_transmit(wbuf);
        }
    }

    pub(super) fn encode_transmit(&mut self, wbuf: &mut BytesMut) {
        while let Some(frame) = self.conn.poll_transmit() {
            length::encode_frame(&frame, wbuf);
        }
    }
}

/// Writes what it can of `wbuf` (see [`write_some`]), and once all of it is written, flushes
/// the transport. TCP's flush does nothing, but a transport that buffers what it is given (TLS
/// records, WebSocket messages) sends it only when flushed, and the last write of a burst is
/// followed by no other that would push it out. `unflushed` says whether anything was written
/// since the last flush; it keeps the turn's select polling the flush until it is done.
/// An error: the transport failed (a write that took nothing, `WriteZero`, means it closed).
fn write_flush<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    cx: &mut std::task::Context<'_>,
    wbuf: &mut BytesMut,
    unflushed: &mut bool,
) -> Poll<std::io::Result<()>> {
    if !wbuf.is_empty() {
        match write_some(writer, cx, wbuf) {
            Poll::Ready(Ok(n)) if n > 0 => *unflushed = true,
            Poll::Ready(Ok(_)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        if !wbuf.is_empty() {
            return Poll::Ready(Ok(()));
        }
    }
    let flushed = std::pin::Pin::new(writer).poll_flush(cx);
    if let Poll::Ready(Ok(())) = flushed {
        *unflushed = false;
    }
    flushed
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
    pub(super) fn new() -> (Arc<Flagged>, Waker) {
        let flagged =
            Arc::new(Flagged { fired: AtomicBool::new(false), target: std::sync::Mutex::new(Waker::noop().clone()) });
        let waker = Waker::from(flagged.clone());
        (flagged, waker)
    }

    /// Makes `waker` the one woken, unless `last` (a copy of the one there) wakes the same task.
    pub(super) fn follow(&self, last: &mut Option<Waker>, waker: &Waker) {
        if !last.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *lock(&self.target) = waker.clone();
            *last = Some(waker.clone());
        }
    }

    /// Whether it was woken since the last call.
    pub(super) fn take(&self) -> bool {
        self.fired.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for Flagged {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        lock(&self.target).wake_by_ref();
    }
}

/// Polls with `task`'s waker if there is one (see [`Assist`](crate::rt::assist::Assist)), else with `cx`'s.
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
