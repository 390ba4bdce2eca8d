//! What the connection emits (frames to write, events), and what handles ask (commands,
//! signals), turned into writes, deliveries to readers, and handler calls.

use super::{Attached, Driver};
use crate::conn::{CommandError, Event, Kind};
use crate::frame::metadata::COMPOSITE_METADATA_MIME;
use crate::frame::{ErrorCode, length};
use crate::rt::command::{Command, Control, Inbound, Opened};
use crate::rt::handles::Handles;
use crate::rt::inbox::WeakSender;
use crate::rt::transport::Transport;
use crate::{Payload, Status};
use bytes::BytesMut;
use std::task::Poll;
use tokio::time::Instant;

/// While the events of a read are handled (a read's worth of requests, answered at once), the
/// answers are written as soon as this many bytes are waiting, rather than all after the last:
/// the peer starts on the first answers while this side makes the rest. With 64 calls of 1 KiB
/// in flight across two cores that took Weft from ~0.5x to ~0.8x raw TCP's calls/s; on one
/// core, where the peer cannot run meanwhile, it costs a few percent (more system calls).
/// Small answers (64 of 16 bytes) never reach it.
const EARLY_WRITE: usize = 16 * 1024;

impl<T: Transport> Driver<T> {
    /// Drains the connection's output: frames into `wbuf`, events into deliveries.
    pub(super) fn process(&mut self, weak: &WeakSender, wbuf: &mut BytesMut) {
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
        // After the batch's last event: none of these streams has an event left to handle.
        while let Some(id) = self.reap_later.pop() {
            self.reap(id);
        }
        debug_assert_eq!(self.conn.unreleased(), 0, "an ended stream's record was not released");
        if self.orphaned && self.conn.stream_count() == 0 && !self.conn.is_closed() {
            self.conn.close(true);
        }
    }

    pub(super) fn handle_event(&mut self, event: Event, weak: &WeakSender, wbuf: &mut BytesMut) {
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
                } else if let Some(hook) = &self.authenticate {
                    // Before any request of the connection: a rejection drops those that came
                    // with SETUP (`reject_setup` clears the events), so no handler runs.
                    match crate::rt::auth::authenticate(&**hook, &setup, &self.handles.peer) {
                        Ok(principal) => {
                            let _ = self.handles.principal.set(principal);
                        }
                        Err(status) => self.conn.reject_setup(ErrorCode::REJECTED_SETUP, &status.to_wire()),
                    }
                }
                // Read by the route table (a generated method answers only data it can
                // decode) and by generated clients made over this connection's handles.
                let _ = self.handles.data_mime.set(setup.data_mime.as_str().into());
            }
            Event::MetadataPush(_) => {}
            Event::Request { stream_id, kind, metadata, data, complete, .. } => {
                self.spawn_handler(stream_id, kind, metadata, data, complete, weak, wbuf)
            }
            Event::Next { stream_id, metadata, data } => self.deliver(stream_id, Payload { metadata, data }),
            Event::Complete { stream_id } => {
                if let Some(att) = self.conn.attachment(stream_id) {
                    att.inbound = None;
                }
                self.reap(stream_id);
            }
            Event::Error { stream_id, code, message } => {
                // A request REJECTED because the peer is closing: its caller, about to send
                // it again elsewhere, must find this connection draining already.
                self.tell_draining();
                if let Some(att) = self.conn.release(stream_id) {
                    att.fail(crate::status::status_from_error(code, &message));
                }
            }
            // Events describe what happened when the frame arrived; the connection may have
            // moved on since (a whole read is handled before its events), so handlers here
            // must not consult its current state.
            Event::Cancelled { stream_id } => {
                if let Some(att) = self.conn.release(stream_id) {
                    att.stop();
                }
            }
            Event::StopSending { stream_id } => {
                if let Some(att) = self.conn.attachment(stream_id) {
                    att.producer = None;
                }
                // Ended, if its inbound direction had ended before; but frames after the CANCEL
                // may have ended it too, and their events are still to come.
                self.reap_later.push(stream_id);
            }
            Event::RequestN { stream_id, .. } => {
                if let Some(producer) = self.conn.attachment(stream_id).and_then(|e| e.producer.as_mut())
                    && producer.granted()
                {
                    self.runnable.push(stream_id);
                }
            }
            Event::Closed(reason) => self.fail_all(reason),
        }
    }

    /// Hands a message from the peer to whoever reads stream `id`: a request/response caller
    /// at once, a stream's reader through the stage.
    pub(super) fn deliver(&mut self, id: u32, payload: Payload) {
        if id == self.staged_id && !self.staged.is_empty() {
            self.staged.push(Ok(payload));
            return;
        }
        self.flush_staged();
        let Some(att) = self.conn.attachment(id) else { return };
        match &att.inbound {
            Some(Inbound::Single(_)) => {
                if let Some(Inbound::Single(tx)) = att.inbound.take() {
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

    /// Hands a request/response caller its answer; the stream has ended in the connection, so
    /// its record goes (one look-up, where the answer as events costs two).
    pub(super) fn answered(&mut self, id: u32, payload: Payload) {
        if let Some(mut att) = self.conn.release(id) {
            if let Some(Inbound::Single(tx)) = att.inbound.take() {
                tx.send(Ok(payload));
            }
            att.stop();
        }
    }

    /// Pushes the staged messages into their stream's queue. A read of the socket often holds
    /// many messages of one stream in a row; staging them costs a lookup and a lock per run
    /// instead of per message. Called before any other event and at the end of each batch of
    /// events, so nothing overtakes a staged message.
    pub(super) fn flush_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        match self.conn.attachment(self.staged_id) {
            Some(Attached { inbound: Some(Inbound::Many(inlet)), .. }) => inlet.push_all(&mut self.staged),
            _ => self.staged.clear(),
        }
    }

    pub(super) fn fail_all(&mut self, reason: crate::conn::CloseReason) {
        self.handles.refuse();
        let transport = self.transport_error.take();
        // The peer closed gracefully and its transport ended cleanly: what this side asked
        // that is still open, the peer never took (see `Connection::peer_closed_gracefully`).
        let unprocessed =
            reason == crate::conn::CloseReason::PeerClosed && transport.is_none() && self.conn.peer_closed_gracefully();
        let mut status = self.close_reason.get_or_insert_with(|| crate::Error::closed(reason, transport)).to_status();
        if unprocessed {
            status = status.unprocessed();
            // Before the callers learn it: each sends its call again only to a connection
            // that is not this one.
            self.handles.begin_draining();
        }
        for att in self.conn.release_all() {
            att.fail(status.clone());
        }
        self.fires.connection_closed();
    }

    /// Releases stream `id`'s record if the stream has ended, stopping what works for it.
    pub(super) fn reap(&mut self, id: u32) {
        if let Some(att) = self.conn.release(id) {
            // A producer still here is one whose direction just ended (its stream was cancelled
            // or failed): it is dropped with the rest.
            att.stop();
        }
    }

    pub(super) fn handle_control(&mut self, control: Control) {
        match control {
            Control::Consumed(id, n, bytes) => {
                self.conn.consumed(id, n, bytes);
                // The window may have grown: the reader reports in batches of its new half.
                let batch = self.conn.credit_batch(id);
                if let Some(Attached { inbound: Some(Inbound::Many(inlet)), .. }) = self.conn.attachment(id) {
                    inlet.set_batch(batch);
                }
            }
            Control::Cancel(id) => {
                self.conn.cancel(id);
                if let Some(att) = self.conn.attachment(id) {
                    att.inbound = None;
                }
                self.reap(id);
            }
            Control::Close { graceful } => self.conn.close(graceful),
            Control::Shutdown => {
                if self.grace_deadline.is_none() {
                    self.grace_deadline = Some(Instant::now() + self.shutdown_grace);
                    self.conn.close(true);
                }
            }
        }
    }

    /// Tells the handles, once, that the connection has begun to drain: a reconnecting client
    /// then takes its new calls to a new connection while this one's streams finish.
    pub(super) fn tell_draining(&mut self) {
        if !self.draining_told && self.conn.is_draining() {
            self.draining_told = true;
            self.handles.begin_draining();
        }
    }

    /// Closes the inbox (later commands fail as they are sent) and refuses the commands that
    /// came after the connection closed: never sent, they may go to the next connection.
    pub(super) fn refuse_late_commands(&mut self) {
        let status = match &self.close_reason {
            Some(reason) => reason.to_status(),
            None => Status::unavailable("the connection is closed"),
        };
        self.handles.refuse();
        for command in self.inbox.close_taking() {
            if let Command::Open { opened, inbound, .. } = command {
                refuse(opened, inbound, status.clone().unprocessed());
            }
        }
    }

    pub(super) fn handle_command(&mut self, command: Command, wbuf: &mut BytesMut) {
        match command {
            Command::Open { kind, metadata, data, complete, inbound, outbound, opened } => {
                // Written in place behind its length prefix, or queued.
                let start = length::begin(wbuf);
                let written = self.conn.open_into(kind, metadata, data, complete, wbuf);
                length::seal(wbuf, start);
                let id = match written {
                    Ok(id) => id,
                    Err(e) => return refuse(opened, inbound, command_status(&e, &self.handles)),
                };
                let gone = match opened {
                    Opened::Reply(tx) => tx.send(Ok(id)).is_err(),
                    Opened::Slot => matches!(&inbound, Some(Inbound::Single(tx)) if tx.assign(id)),
                };
                if gone {
                    // The caller is gone already.
                    self.conn.cancel(id);
                    self.reap(id);
                    return;
                }
                if kind == Kind::FireAndForget {
                    return;
                }
                // Polled once the responder grants credit.
                let producer = outbound.filter(|_| !complete).map(|outbound| self.producer(id, outbound));
                if let Some(att) = self.conn.attachment(id) {
                    att.inbound = inbound;
                    att.producer = producer;
                }
            }
            Command::Respond { id, result, reserved } => {
                drop(reserved);
                self.answer(id, result, wbuf);
                if let Some(att) = self.conn.attachment(id) {
                    att.task = None;
                    att.cancel = None;
                }
                self.reap(id);
            }
        }
    }
}

/// Answers a request the connection did not open with `status`.
fn refuse(opened: Opened, inbound: Option<Inbound>, status: Status) {
    match (opened, inbound) {
        (Opened::Reply(tx), _) => {
            let _ = tx.send(Err(status));
        }
        (Opened::Slot, Some(Inbound::Single(tx))) => tx.send(Err(status)),
        _ => {}
    }
}

fn command_status(e: &CommandError, handles: &Handles) -> Status {
    match e {
        // Not closed yet: closing (this side or the peer began a graceful close, which lets
        // open streams finish but takes no new ones).
        CommandError::Closed => {
            handles.refuse();
            handles.closed_status_or("the connection is closing: it takes no new streams").unprocessed()
        }
        // The connection can open no more streams: as good as closing, for a reconnecting
        // client, which then makes a new one.
        CommandError::StreamIdsExhausted => {
            handles.begin_draining();
            Status::unavailable(e.to_string()).unprocessed()
        }
        other => Status::unavailable(other.to_string()),
    }
}
