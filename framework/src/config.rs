//! Connection configuration: [`Config`], what applies to either side of a connection (flow
//! control, fragmentation, limits), and what applies to one side only: [`ClientSettings`]
//! (what a client announces in SETUP) and [`ServerSettings`] (what a server holds a client's
//! SETUP to).

use crate::frame::MAX_FRAME_SIZE;
use std::time::Duration;

/// The client's own settings for a connection: what it announces in SETUP. Set through
/// [`ClientBuilder`](crate::ClientBuilder) ([`keepalive`](crate::ClientBuilder::keepalive),
/// [`data_mime`](crate::ClientBuilder::data_mime)); this type is what the sans-IO
/// [`Connection::client`](crate::conn::Connection::client) takes.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub(crate) keepalive_interval: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) data_mime: String,
    /// SETUP's metadata (composite), if any: the client's credentials.
    pub(crate) setup_metadata: Option<bytes::Bytes>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            keepalive_interval: Duration::from_secs(20),
            max_lifetime: Duration::from_secs(90),
            data_mime: DEFAULT_DATA_MIME.to_owned(),
            setup_metadata: None,
        }
    }
}

impl ClientSettings {
    /// See [`ClientBuilder::keepalive`](crate::ClientBuilder::keepalive).
    pub fn keepalive(mut self, interval: Duration, max_lifetime: Duration) -> Self {
        self.keepalive_interval = interval.max(Duration::from_millis(1));
        self.max_lifetime = max_lifetime.max(Duration::from_millis(1));
        self
    }

    /// See [`ClientBuilder::data_mime`](crate::ClientBuilder::data_mime).
    pub fn data_mime(mut self, mime: impl Into<String>) -> Self {
        self.data_mime = mime.into();
        self
    }

    /// SETUP's metadata: a composite-metadata block (see
    /// [`CompositeMetadata`](crate::CompositeMetadata)), such as the one
    /// [`ClientBuilder::credentials`](crate::ClientBuilder::credentials) makes.
    pub fn setup_metadata(mut self, composite: bytes::Bytes) -> Self {
        self.setup_metadata = Some(composite);
        self
    }
}

/// The server's own settings for a connection: what it holds a client's SETUP to. Set
/// through [`ServerBuilder`](crate::ServerBuilder)
/// ([`setup_timeout`](crate::ServerBuilder::setup_timeout),
/// [`max_peer_lifetime`](crate::ServerBuilder::max_peer_lifetime)); this type is what the
/// sans-IO [`Connection::server`](crate::conn::Connection::server) takes.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub(crate) setup_timeout: Duration,
    pub(crate) max_peer_lifetime: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings { setup_timeout: Duration::from_secs(10), max_peer_lifetime: Duration::from_secs(300) }
    }
}

impl ServerSettings {
    /// See [`ServerBuilder::setup_timeout`](crate::ServerBuilder::setup_timeout).
    pub fn setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = timeout;
        self
    }

    /// See [`ServerBuilder::max_peer_lifetime`](crate::ServerBuilder::max_peer_lifetime).
    pub fn max_peer_lifetime(mut self, max: Duration) -> Self {
        self.max_peer_lifetime = max.max(Duration::from_millis(1));
        self
    }
}

/// The data MIME type Weft announces by default: protobuf.
pub const DEFAULT_DATA_MIME: &str = "application/vnd.google.protobuf";

/// The smallest fragment size accepted: enough for the largest header (REQUEST_STREAM with
/// metadata, 13 bytes) and a useful slice of payload.
pub const MIN_FRAGMENT_SIZE: usize = 64;

/// Settings for one connection that apply to either side of it: how this side sends
/// (fragmentation, buffering) and what it lets the peer make it hold (frame and message sizes,
/// credit windows, streams, unread and reassembled bytes, fire-and-forget handlers). A client
/// and a server take one each: [`ClientBuilder::config`](crate::ClientBuilder::config),
/// [`ServerBuilder::config`](crate::ServerBuilder::config).
///
/// Every limit exists so that a peer cannot make this side use unbounded memory; each has a
/// default that suits a service on a LAN and can be tightened.
///
/// What applies to one side only is set on that side's builder, so that it cannot be set on
/// the other:
///
/// | setting | side | where | why that side |
/// |---|---|---|---|
/// | keepalive interval and max lifetime | client | [`ClientBuilder::keepalive`](crate::ClientBuilder::keepalive) | announced in SETUP; the server takes the client's |
/// | data MIME type | client | [`ClientBuilder::data_mime`](crate::ClientBuilder::data_mime) | announced in SETUP |
/// | time to send SETUP | server | [`ServerBuilder::setup_timeout`](crate::ServerBuilder::setup_timeout) | only a server waits for SETUP |
/// | longest max lifetime a client may ask for | server | [`ServerBuilder::max_peer_lifetime`](crate::ServerBuilder::max_peer_lifetime) | bounds what the client announced |
/// | graceful shutdown's grace period | server | [`ServerBuilder::shutdown_grace`](crate::ServerBuilder::shutdown_grace) | a [`RunningServer`](crate::RunningServer) shuts down; a client closes |
/// | connections served at once | server | [`ServerBuilder::max_connections`](crate::ServerBuilder::max_connections) | a listener's limit |
///
/// ```
/// use weft::Config;
///
/// let config = Config::default().fragment_size(Some(16 * 1024)).inbound_window(64);
/// assert_eq!(config.inbound_window_size(), 64);
/// ```
///
/// A side's own settings are not here:
///
/// ```compile_fail
/// let config = weft::Config::default().max_connections(10); // a server's: ServerBuilder::max_connections
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) fragment_size: Option<usize>,
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) max_concurrent_streams: usize,
    pub(crate) inbound_window: u32,
    pub(crate) max_inbound_window: u32,
    pub(crate) inbound_window_bytes: usize,
    pub(crate) max_unread_bytes: usize,
    pub(crate) unread_stall: Duration,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_reassembly_bytes: usize,
    pub(crate) reassembly_timeout: Duration,
    pub(crate) max_concurrent_fire_and_forget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fragment_size: None,
            max_frame_size: MAX_FRAME_SIZE,
            max_message_size: 16 * 1024 * 1024,
            max_concurrent_streams: 65_536,
            inbound_window: 256,
            max_inbound_window: 8192,
            inbound_window_bytes: 1024 * 1024,
            max_unread_bytes: 64 * 1024 * 1024,
            unread_stall: Duration::from_secs(5),
            max_buffered_bytes: 4 * 1024 * 1024,
            max_reassembly_bytes: 32 * 1024 * 1024,
            reassembly_timeout: Duration::from_secs(30),
            max_concurrent_fire_and_forget: 1024,
        }
    }
}

impl Config {
    /// Split outgoing messages into frames of at most this many bytes (RSocket fragmentation).
    /// `None` (the default) sends each message in one frame up to the 16 MiB frame limit and
    /// fragments only beyond it. Values below [`MIN_FRAGMENT_SIZE`] are raised to it.
    pub fn fragment_size(mut self, size: Option<usize>) -> Self {
        self.fragment_size = size.map(|s| s.clamp(MIN_FRAGMENT_SIZE, MAX_FRAME_SIZE));
        self
    }

    /// The largest frame accepted from the peer; a longer one closes the connection before
    /// any of it is buffered. Default and maximum: 16 MiB − 1 (the wire's limit).
    pub fn max_frame_size(mut self, size: usize) -> Self {
        self.max_frame_size = size.clamp(MIN_FRAGMENT_SIZE, MAX_FRAME_SIZE);
        self
    }

    /// The largest message (metadata + data) reassembled from fragments; a longer one fails
    /// its stream. Default: 16 MiB.
    pub fn max_message_size(mut self, size: usize) -> Self {
        self.max_message_size = size;
        self
    }

    /// The most streams the peer may have open towards this side at once; further requests
    /// are answered with ERROR\[REJECTED\]. Default: 65,536.
    pub fn max_concurrent_streams(mut self, n: usize) -> Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Credit granted to the peer per inbound stream (`REQUEST_N`), in messages: a stream
    /// starts with this window, and more is granted as the application consumes, in batches of
    /// half the window. Default: 256, the prefetch most Reactive Streams implementations use.
    /// Values below 2 are raised to 2.
    ///
    /// Setting it also fixes the window at `n` (no growth; see
    /// [`inbound_window_growth`](Config::inbound_window_growth), which may follow it).
    pub fn inbound_window(mut self, n: u32) -> Self {
        self.inbound_window = n.clamp(2, crate::frame::MAX_U31);
        self.max_inbound_window = self.inbound_window;
        self
    }

    /// Lets a stream's window grow beyond [`inbound_window`](Config::inbound_window) when its
    /// messages are small: each time credit is granted back, the window doubles (up to
    /// `max_messages`) if twice the window's worth of messages, at the average size seen since
    /// the last grant, still fits in `bytes`, and halves (down to 2 messages, below
    /// `inbound_window` for large messages) once the window's worth no longer fits.
    ///
    /// RSocket counts credit in messages, and a stream cannot go faster than a window per
    /// round trip: a window that suits 1 KiB messages starves a stream of 16-byte ones. This
    /// keeps the buffered bytes per stream near `bytes` instead. A peer can still exceed it by
    /// sending larger messages than before on credit already granted; the window then shrinks
    /// from the next grant on, and [`unread_limits`](Config::unread_limits) is the hard
    /// limit. Default: up to 8,192 messages and 1 MiB.
    ///
    /// ```
    /// let config = weft::Config::default().inbound_window(64).inbound_window_growth(1024, 256 * 1024);
    /// assert_eq!(config.inbound_window_size(), 64);
    /// ```
    pub fn inbound_window_growth(mut self, max_messages: u32, bytes: usize) -> Self {
        self.max_inbound_window = max_messages.clamp(self.inbound_window, crate::frame::MAX_U31);
        self.inbound_window_bytes = bytes;
        self
    }

    /// The credit window a stream starts with; see [`Config::inbound_window`].
    pub fn inbound_window_size(&self) -> u32 {
        self.inbound_window
    }

    /// Bytes a connection holds at most in messages received and not yet read by the
    /// application, all streams together, and how long its readers may make no progress while
    /// it holds more.
    ///
    /// Credit counts messages, not bytes: a peer may send the granted window of messages of
    /// any size up to [`max_message_size`](Config::max_message_size), faster than they are
    /// read. Beyond `max_bytes` unread, the connection stops reading (the peer feels TCP
    /// back-pressure; what one read already holds is still handed over) until the application
    /// reads. If no stream's reader makes progress for `stall`, the stream holding the most
    /// unread bytes ends, with CANCEL to the peer where this side requested it, ERROR where
    /// the peer did, and [`Code::ResourceExhausted`](crate::Code::ResourceExhausted) for its
    /// reader, and reading resumes: one stuck reader holds up the connection's other streams
    /// for `stall` at most. The window growth
    /// ([`inbound_window_growth`](Config::inbound_window_growth)) keeps a stream's credit near
    /// its share in bytes, so a reader that keeps up rarely meets the limit. Defaults: 64 MiB
    /// and 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = weft::Config::default().unread_limits(8 << 20, Duration::from_secs(1));
    /// # let _ = config;
    /// ```
    pub fn unread_limits(mut self, max_bytes: usize, stall: Duration) -> Self {
        self.max_unread_bytes = max_bytes;
        self.unread_stall = stall.max(Duration::from_millis(1));
        self
    }

    /// Outgoing bytes a connection holds before senders are made to wait: applied twice, to
    /// answers queued by request/response handlers that ran as tasks and to the driver's write
    /// buffer (streams are not polled while it is full), so a peer that grants credit but reads
    /// nothing costs at most about twice this. Default: 4 MiB.
    pub fn max_buffered_bytes(mut self, n: usize) -> Self {
        self.max_buffered_bytes = n.max(MIN_FRAGMENT_SIZE);
        self
    }

    /// Bytes a connection holds at most in fragmented messages the peer has begun and not
    /// finished, all streams together, and how long one may take to finish. A fragment
    /// beyond the budget, or a message unfinished after `timeout`, ends its stream with
    /// ERROR\[INVALID\] (CANCEL where this side requested it); the connection carries on.
    /// Each message is also bounded by [`max_message_size`](Config::max_message_size).
    /// Defaults: 32 MiB and 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = weft::Config::default().reassembly_limits(4 << 20, Duration::from_secs(5));
    /// # let _ = config;
    /// ```
    pub fn reassembly_limits(mut self, max_bytes: usize, timeout: Duration) -> Self {
        self.max_reassembly_bytes = max_bytes;
        self.reassembly_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Fire-and-forget handlers that may run at once on one connection (those that finish at
    /// their first poll do not count). At the limit the connection stops reading until one
    /// finishes, so the peer feels TCP back-pressure instead of the server spawning without
    /// bound; what one read already holds is still served. Default: 1,024. Values below 1
    /// are raised to 1.
    pub fn max_concurrent_fire_and_forget(mut self, n: usize) -> Self {
        self.max_concurrent_fire_and_forget = n.max(1);
        self
    }

    /// Replenish threshold of a new stream: credit is re-granted once this many messages were
    /// consumed (half the window).
    pub(crate) fn credit_batch(&self) -> u32 {
        (self.inbound_window / 2).max(1)
    }

    /// The window a stream with `window` should have next, having received `count` messages
    /// of `bytes` in all since the last decision (see [`Config::inbound_window_growth`]).
    pub(crate) fn next_window(&self, window: u32, bytes: u64, count: u32) -> u32 {
        if count == 0 || self.max_inbound_window <= self.inbound_window {
            return window;
        }
        // What a queued message costs besides its bytes: its slot in the queue and the
        // handles to its buffers.
        const OVERHEAD: u64 = 64;
        let per_message = bytes / u64::from(count) + OVERHEAD;
        let fits = self.inbound_window_bytes as u64 / per_message;
        if u64::from(window) * 2 <= fits {
            window.saturating_mul(2).min(self.max_inbound_window)
        } else if u64::from(window) > fits {
            // Below the base too: a window of large messages is what fills memory. Two keep
            // one message in flight while the other is read.
            (window / 2).max(2)
        } else {
            window
        }
    }

    /// The frame size outgoing messages are split at.
    pub(crate) fn effective_fragment_size(&self) -> usize {
        self.fragment_size.unwrap_or(MAX_FRAME_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_grow_while_twice_fits_and_shrink_when_once_does_not() {
        let c = Config::default().inbound_window(4).inbound_window_growth(32, 1024);
        // 0-byte messages count 64 bytes: 16 fit.
        assert_eq!(c.next_window(4, 0, 10), 8);
        assert_eq!(c.next_window(8, 0, 10), 16);
        assert_eq!(c.next_window(16, 0, 10), 16);
        // 192 bytes each (128 + 64): 5 fit.
        assert_eq!(c.next_window(16, 128 * 10, 10), 8);
        assert_eq!(c.next_window(8, 128 * 10, 10), 4);
        assert_eq!(c.next_window(4, 128 * 10, 10), 4);
        // 512 bytes each: 2 fit, below the base; 1,024: 1 fits, but the window keeps two.
        assert_eq!(c.next_window(4, 448 * 10, 10), 2, "below the base for large messages");
        assert_eq!(c.next_window(2, 960 * 10, 10), 2, "never below two");
        assert_eq!(c.next_window(4, 0, 0), 4, "no messages, no evidence");
        // A fixed window, and the growth cap.
        assert_eq!(Config::default().inbound_window(4).next_window(4, 0, 10), 4);
        let wide = Config::default().inbound_window(4).inbound_window_growth(6, 1 << 20);
        assert_eq!(wide.next_window(4, 0, 10), 6);
    }

    #[test]
    fn the_default_window_grows_for_small_messages_only() {
        let c = Config::default();
        assert_eq!(c.next_window(256, 18 * 100, 100), 512);
        assert_eq!(c.next_window(4096, 18 * 100, 100), 8192);
        assert_eq!(c.next_window(8192, 18 * 100, 100), 8192);
        assert_eq!(c.next_window(256, 1024 * 10, 10), 512);
        assert_eq!(c.next_window(256, 64 * 1024 * 10, 10), 128, "64 KiB messages: 15 fit in 1 MiB");
        assert_eq!(c.next_window(16, 64 * 1024 * 10, 10), 8);
        assert_eq!(c.next_window(8, 64 * 1024 * 10, 10), 8);
    }
}
