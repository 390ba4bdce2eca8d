//! Connection configuration: keepalive, flow control, fragmentation and limits.

use crate::frame::MAX_FRAME_SIZE;
use std::time::Duration;

/// The data MIME type Weft announces by default: protobuf.
pub const DEFAULT_DATA_MIME: &str = "application/vnd.google.protobuf";

/// The smallest fragment size accepted: enough for the largest header (REQUEST_STREAM with
/// metadata, 13 bytes) and a useful slice of payload.
pub const MIN_FRAGMENT_SIZE: usize = 64;

/// Settings for one connection, either side.
///
/// Every limit exists so that a peer cannot make this side use unbounded memory; each has a
/// default that suits a service on a LAN and can be tightened.
///
/// ```
/// use std::time::Duration;
/// use weft::Config;
///
/// let config = Config::default()
///     .keepalive(Duration::from_secs(5), Duration::from_secs(30))
///     .fragment_size(Some(16 * 1024))
///     .inbound_window(64);
/// assert_eq!(config.inbound_window_size(), 64);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) keepalive_interval: Duration,
    pub(crate) max_lifetime: Duration,
    pub(crate) data_mime: String,
    pub(crate) fragment_size: Option<usize>,
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) max_concurrent_streams: usize,
    pub(crate) inbound_window: u32,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) setup_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keepalive_interval: Duration::from_secs(20),
            max_lifetime: Duration::from_secs(90),
            data_mime: DEFAULT_DATA_MIME.to_owned(),
            fragment_size: None,
            max_frame_size: MAX_FRAME_SIZE,
            max_message_size: 16 * 1024 * 1024,
            max_concurrent_streams: 65_536,
            inbound_window: 256,
            max_buffered_bytes: 4 * 1024 * 1024,
            setup_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Client: send KEEPALIVE every `interval`, and give up on a server that sends nothing for
    /// `max_lifetime`. Both are announced in SETUP. A server takes the client's values.
    /// Defaults: 20 s and 90 s. Zero durations are raised to one millisecond, the wire's unit.
    pub fn keepalive(mut self, interval: Duration, max_lifetime: Duration) -> Self {
        self.keepalive_interval = interval.max(Duration::from_millis(1));
        self.max_lifetime = max_lifetime.max(Duration::from_millis(1));
        self
    }

    /// Client: the data MIME type announced in SETUP. Default: protobuf.
    pub fn data_mime(mut self, mime: impl Into<String>) -> Self {
        self.data_mime = mime.into();
        self
    }

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

    /// Credit granted to the peer per inbound stream (`REQUEST_N`): at most this many
    /// messages are buffered per stream; more is granted as the application consumes, in
    /// batches of half the window. Default: 256, the prefetch most Reactive Streams
    /// implementations use; a stream cannot go faster than a window per round trip, so a
    /// high-latency link wants more, and large messages want less. Values below 2 are raised to 2.
    pub fn inbound_window(mut self, n: u32) -> Self {
        self.inbound_window = n.clamp(2, crate::frame::MAX_U31);
        self
    }

    /// The credit window; see [`Config::inbound_window`].
    pub fn inbound_window_size(&self) -> u32 {
        self.inbound_window
    }

    /// Outgoing bytes a connection holds before senders are made to wait: applied twice, to
    /// messages queued by handlers and streams and to the driver's write buffer, so a peer that
    /// grants credit but reads nothing costs at most about twice this. Default: 4 MiB.
    pub fn max_buffered_bytes(mut self, n: usize) -> Self {
        self.max_buffered_bytes = n.max(MIN_FRAGMENT_SIZE);
        self
    }

    /// Server: how long a new connection may take to send SETUP. Default: 10 s.
    pub fn setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = timeout;
        self
    }

    /// Server: how long a graceful shutdown waits for in-flight streams. Default: 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Replenish threshold: credit is re-granted once this many messages were consumed.
    pub(crate) fn credit_batch(&self) -> u32 {
        (self.inbound_window / 2).max(1)
    }

    /// The frame size outgoing messages are split at.
    pub(crate) fn effective_fragment_size(&self) -> usize {
        self.fragment_size.unwrap_or(MAX_FRAME_SIZE)
    }
}
