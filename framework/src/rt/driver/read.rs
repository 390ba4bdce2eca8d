//! Reading: the frames of the bytes read, handed to the connection (most by a short way in:
//! a stream's plain messages, requests), and what comes of them to whoever waits.

use super::{Attached, Driver};
use crate::Payload;
use crate::conn::Receiving;
use crate::frame::{self, DecodeError};
use crate::rt::transport::Transport;
use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

impl<T: Transport> Driver<T> {
    pub(super) fn handle_bytes(&mut self, rbuf: &mut BytesMut) {
        let now = Instant::now().into_std();
        // A read of a stream is mostly a run of its plain messages: once one of them is on the
        // stage, the ones right after it go there too, with the stream looked up once for the
        // run (when the second arrives: messages of streams taking turns need no run).
        let mut run: Option<Receiving<'_, Attached>> = None;
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

    /// One frame's bytes from the peer: a message the connection hands over at once goes to
    /// its reader; the rest comes out as events.
    pub(super) fn handle_frame_bytes(&mut self, bytes: Bytes, now: std::time::Instant) {
        if let Some(m) = self.conn.handle_bytes(bytes, now) {
            let payload = Payload { metadata: m.metadata, data: m.data };
            if m.last { self.answered(m.stream_id, payload) } else { self.deliver(m.stream_id, payload) }
        }
    }
}
