//! The peer's requests: each is routed to its handler, whose first poll runs here; what does
//! not finish then runs as a task of its own.

use super::{Attached, Driver};
use crate::conn::Kind;
use crate::frame::metadata::CompositeMetadata;
use crate::frame::{HEADER_SIZE, length};
use crate::payload::CancelSignal;
use crate::rt::budget::Reserved;
use crate::rt::command::{Command, Inbound};
use crate::rt::deadline::{self, Deadlined};
use crate::rt::inbox::WeakSender;
use crate::rt::transport::Transport;
use crate::rt::unwind;
use crate::{Call, Client, Payload, Response, Responses, Status};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::task::Poll;
use tokio::task::AbortHandle;

/// What a panic is blamed on, in the status the call ends with (see [`unwind`]).
const HANDLER: &str = "the handler";
/// The most cancel signals kept for reuse (see `Driver::recycle`); calls answered at once
/// need one at a time.
const SPARE_CANCELS: usize = 16;

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
pub(super) struct Fires {
    running: Vec<(AbortHandle, CancelSignal)>,
    /// Running after the last sweep of finished ones: the next sweep comes when the list has
    /// doubled, so tracking stays O(1) amortised.
    swept: usize,
}

impl Fires {
    pub(super) fn track(&mut self, task: AbortHandle, cancel: CancelSignal) {
        if self.running.len() >= 2 * self.swept.max(16) {
            self.running.retain(|(task, _)| !task.is_finished());
            self.swept = self.running.len();
        }
        self.running.push((task, cancel));
    }

    /// Tells every handler still running that its connection is gone.
    pub(super) fn connection_closed(&mut self) {
        for (task, cancel) in self.running.drain(..) {
            if !task.is_finished() {
                cancel.fire();
            }
        }
        self.swept = 0;
    }
}

impl<T: Transport> Driver<T> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn_handler(
        &mut self,
        id: u32,
        kind: Kind,
        metadata: Bytes,
        data: Bytes,
        complete: bool,
        weak: &WeakSender,
        wbuf: &mut BytesMut,
    ) {
        let ((route, served), more) = match self.routes.get(&metadata) {
            Some(known) => known,
            None => match CompositeMetadata::decode_route(&metadata) {
                Some(route) => {
                    let route: Arc<str> = route.into();
                    // Requests come after SETUP, which set the data MIME type.
                    let announced = self.handles.data_mime.get().map_or("", |mime| &**mime);
                    let served = self.resolver.as_ref().and_then(|r| r.resolve(&route, announced));
                    (self.routes.put(&metadata, route, served), true)
                }
                None => {
                    let status = Status::unimplemented("the request's metadata carries no readable route");
                    return self.refuse(id, kind, status);
                }
            },
        };
        // A deadline comes in an entry after the route: a block of the route alone has none.
        let deadline = if more { self.deadline_of(&metadata) } else { Ok(None) };
        let deadline = match deadline {
            Ok(deadline) => deadline,
            Err(status) => return self.refuse(id, kind, status),
        };
        if deadline.is_some_and(|deadline| deadline <= tokio::time::Instant::now()) {
            // No time left: the handler is not started.
            return self.refuse(id, kind, deadline::exceeded(&route));
        }
        let Some(tx) = weak.upgrade() else { return };
        let cancel = self.spare_cancels.pop().unwrap_or_default();
        let peer = Client::from_parts(tx.clone(), self.handles.clone());
        let mut call = Call::received(route, metadata, cancel.clone(), peer);
        call.set_deadline(deadline);
        // Kept for the statuses of calls that run out of time.
        let route = deadline.map(|_| Arc::<str>::from(call.route()));
        // What serves the route, if it was resolved: for a generated service, the method
        // itself, so this is the request's only dispatch. Otherwise the connection's handler,
        // which dispatches by route itself.
        let handler = served.unwrap_or_else(|| self.handler.clone());
        // The record keeps a handle on the call's cancel signal only for a call that outlives
        // this function, so that one answered at once leaves its signal unshared, for `recycle`.
        let att = match kind {
            Kind::FireAndForget => {
                // Nobody waits for an answer: a panic (reported by the panic hook) ends the
                // call and nothing else.
                let first = unwind::guard(|| {
                    let mut future = handler.fire_and_forget(call, data);
                    if let Some(deadline) = deadline {
                        // Dropped at the deadline, which stops the handler.
                        future = Box::pin(async move {
                            let _ = tokio::time::timeout_at(deadline, future).await;
                        });
                    }
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
                // The answer goes straight into the write buffer, behind its frame's prefix and
                // head.
                let start = length::begin_with(wbuf, HEADER_SIZE);
                let frame = start + length::PREFIX_SIZE;
                let first = unwind::guard(|| {
                    let mut future = handler.request_response(call, data);
                    if let (Some(deadline), Some(route)) = (deadline, route) {
                        future = Response::encoded(Deadlined::new(future.0, deadline, route));
                    }
                    let polled = poll_once_with(|cx| future.0.as_mut().poll_encode(cx, wbuf));
                    (future, polled)
                });
                let (future, polled) = match first {
                    Ok(first) => first,
                    Err(panicked) => {
                        // Half an answer may be in the buffer: none of it goes.
                        wbuf.truncate(before);
                        return self.refuse(id, kind, panicked.status(HANDLER));
                    }
                };
                // Answered without waiting: no task, no trip through the command channel.
                let answered = match polled {
                    Some(Ok(metadata)) => {
                        super::produce::sent(self.conn.finish_message(id, frame, wbuf, metadata));
                        length::seal(wbuf, start);
                        true
                    }
                    Some(Err(status)) => {
                        wbuf.truncate(start);
                        self.send_status(id, &status);
                        true
                    }
                    None => {
                        wbuf.truncate(start);
                        false
                    }
                };
                if answered {
                    drop(future);
                    self.recycle(cancel);
                    // Nothing was attached to it: its record just goes.
                    self.conn.release(id);
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
                Attached { task: Some(task.abort_handle()), cancel: Some(cancel), ..Attached::default() }
            }
            Kind::RequestStream => {
                let stream = match unwind::guard(|| handler.request_stream(call, data)) {
                    Ok(stream) => until(stream, deadline, route),
                    Err(panicked) => return self.refuse(id, kind, panicked.status(HANDLER)),
                };
                Attached { producer: Some(self.producer(id, stream)), cancel: Some(cancel), ..Attached::default() }
            }
            Kind::Channel => {
                let (inlet, mut messages) = crate::rt::stream::inbound(&self.handles);
                messages.set_id(id);
                inlet.push(Ok(Payload { metadata: Bytes::new(), data }));
                let stream = match unwind::guard(|| handler.request_channel(call, messages)) {
                    Ok(stream) => until(stream, deadline, route),
                    Err(panicked) => {
                        // The stream's reader (the handler's messages) went with the panic.
                        return self.refuse(id, kind, panicked.status(HANDLER));
                    }
                };
                // The requester's next messages go to the handler's reader, unless the request
                // was its last.
                let inbound = (!complete).then_some(Inbound::Many(inlet));
                Attached { inbound, producer: Some(self.producer(id, stream)), cancel: Some(cancel), task: None }
            }
        };
        // The stream's record is there even if it has ended since the request (a CANCEL in the
        // same read): the end's event, still to come, releases it and stops what was attached.
        if let Some(record) = self.conn.attachment(id) {
            *record = att;
        }
    }

    /// The deadline a request's metadata block sets (from now), if it carries one.
    #[cold]
    fn deadline_of(&self, metadata: &Bytes) -> Result<Option<tokio::time::Instant>, Status> {
        Ok(deadline::read_timeout(metadata)?.map(|timeout| tokio::time::Instant::now() + timeout))
    }

    /// Keeps a call's cancel signal for the next call if nothing else holds it any more (the
    /// handler answered at once and dropped its call): every request needs one, and most are
    /// answered at once, so this saves an allocation and a free per call.
    pub(super) fn recycle(&mut self, cancel: CancelSignal) {
        if self.spare_cancels.len() < SPARE_CANCELS && cancel.is_unshared() {
            self.spare_cancels.push(cancel);
        }
    }

    /// Answers a request that cannot reach a handler (or whose handler panicked), and
    /// releases its stream's record.
    pub(super) fn refuse(&mut self, id: u32, kind: Kind, status: Status) {
        if kind != Kind::FireAndForget {
            self.send_status(id, &status);
            self.reap(id);
        }
    }
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

/// A responder's stream, held to the call's deadline if it has one.
fn until(stream: Responses, deadline: Option<tokio::time::Instant>, route: Option<Arc<str>>) -> Responses {
    match (deadline, route) {
        (Some(deadline), Some(route)) => Responses::encoded(Deadlined::new(stream.0, deadline, route)),
        _ => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
