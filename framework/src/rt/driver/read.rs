//! Reading: the frames of the bytes read, handed to the connection (most by a short way in:
//! a stream's plain messages, requests), and what comes of them to whoever waits.

use super::Driver;
use crate::Payload;
use crate::conn::Receiving;
use crate::frame::{self, DecodeError, Frame};
use crate::rt::transport::Transport;
use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

impl<T: Transport> Driver<T> {
    pub(super) fn handle_bytes(&mut self, rbuf: &mut BytesMut) {
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
    pub(super) fn handle_frame_bytes(&mut self, mut bytes: Bytes, now: std::time::Instant) {
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
}
