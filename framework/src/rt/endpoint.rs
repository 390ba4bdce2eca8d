//! A client that comes back after its connection drops: [`Reconnect`], the policy a
//! [`ClientBuilder`] is given, and the endpoint behind a reconnecting [`Client`].
//!
//! The endpoint keeps at most one connection. Its supervisor (one task per endpoint) waits for
//! the connection to close, then dials again when a call needs a connection — on demand, as a
//! gRPC channel does, so an idle client does not keep knocking on a server that is gone — with
//! exponential backoff and jitter between failed attempts. Calls take the current connection
//! and run on it as on any `Client`; a call that finds none waits for the next one, up to its
//! deadline, or fails at once if the policy says so. A connection that begins to close
//! gracefully (a server shutting down or draining sends ERROR[CONNECTION_CLOSE]) takes no new
//! calls: the next one is made while its open calls finish. A call the closing connection
//! certainly did not process (refused before it was sent, REJECTED by the server, or still
//! open when a server that closed gracefully ended the transport cleanly) is sent again on the
//! next connection (see `Client::through`); any other failure is the call's: a call in flight
//! when its connection drops fails with `UNAVAILABLE`, as on a plain `Client`.

use super::balance::{Balancer, InFlight};
use super::connect::ClientBuilder;
use super::retry::Retrying;
use crate::{Client, Error, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// How a client reconnects ([`ClientBuilder::reconnect`]): the backoff between failed
/// attempts, how long an attempt may take, and what a call does while there is no connection.
///
/// A connection that drops is redialled when the next call needs it (at once: a restarted
/// server is usually back by then). An attempt that fails waits `initial_backoff` before the
/// next, and each further failure multiplies the wait by `multiplier`, up to `max_backoff`;
/// every wait is spread by `jitter` (±20 % by default) so that the clients of a restarted
/// server do not all come back in the same instant. A connection that stays up a second
/// resets the backoff.
///
/// ```
/// use std::time::Duration;
/// use weft::{Client, Reconnect};
///
/// let builder = Client::builder().reconnect(
///     Reconnect::new().initial_backoff(Duration::from_millis(100)).max_backoff(Duration::from_secs(5)),
/// );
/// # let _ = builder;
/// ```
#[derive(Clone, Debug)]
pub struct Reconnect {
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: f64,
    connect_timeout: Duration,
    fail_fast: bool,
}

impl Default for Reconnect {
    /// gRPC's connection backoff: 1 s, ×1.6 per failure, up to 120 s, ±20 %; 20 s for an
    /// attempt; calls wait for a connection.
    fn default() -> Reconnect {
        Reconnect {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            multiplier: 1.6,
            jitter: 0.2,
            connect_timeout: Duration::from_secs(20),
            fail_fast: false,
        }
    }
}

impl Reconnect {
    /// The default policy (see [`Reconnect::default`]).
    pub fn new() -> Reconnect {
        Reconnect::default()
    }

    /// The wait after the first failed attempt. Default: 1 s.
    pub fn initial_backoff(mut self, wait: Duration) -> Reconnect {
        self.initial_backoff = wait;
        self
    }

    /// The longest wait between attempts. Default: 120 s.
    pub fn max_backoff(mut self, wait: Duration) -> Reconnect {
        self.max_backoff = wait;
        self
    }

    /// How much longer each wait is than the one before (at least 1). Default: 1.6.
    pub fn multiplier(mut self, multiplier: f64) -> Reconnect {
        self.multiplier = if multiplier.is_finite() { multiplier.max(1.0) } else { 1.0 };
        self
    }

    /// How far a wait may stray from its nominal length, as a fraction of it (0 to 1): a wait
    /// is drawn uniformly from `wait × (1 ± jitter)`. Default: 0.2.
    pub fn jitter(mut self, jitter: f64) -> Reconnect {
        self.jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        self
    }

    /// How long one attempt (connecting, and the TLS or WebSocket handshake) may take before
    /// it counts as failed. Default: 20 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Reconnect {
        self.connect_timeout = timeout;
        self
    }

    /// Whether a call made while the last attempt to connect has failed fails at once with
    /// `UNAVAILABLE` (and why the attempt failed), rather than waiting for the next attempt up
    /// to its deadline. A call made while an attempt is under way waits for it either way.
    /// Default: `false` (calls wait; give them a deadline, see
    /// [`ClientBuilder::timeout`]).
    pub fn fail_fast(mut self, fail_fast: bool) -> Reconnect {
        self.fail_fast = fail_fast;
        self
    }

    pub(crate) fn connect_timeout_of(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn fails_fast(&self) -> bool {
        self.fail_fast
    }

    /// The wait after the `failures`-th failed attempt in a row (1 for the first), jittered
    /// by `random` (uniform in [0, 1)).
    fn backoff(&self, failures: u32, random: f64) -> Duration {
        let nominal =
            self.initial_backoff.as_secs_f64() * self.multiplier.powi(failures.saturating_sub(1).min(64) as i32);
        let nominal = nominal.min(self.max_backoff.as_secs_f64());
        let spread = nominal * self.jitter * (2.0 * random - 1.0);
        Duration::try_from_secs_f64((nominal + spread).max(0.0)).unwrap_or(self.max_backoff)
    }
}

/// Where an endpoint connects: what a `connect*` method of [`ClientBuilder`] was given.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// The addresses the TCP address resolved to when the client was built.
    Tcp(Vec<std::net::SocketAddr>),
    #[cfg(feature = "tls")]
    Tls(String),
    #[cfg(feature = "websocket")]
    WebSocket(String),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// What a call finds when it asks for a connection.
enum State {
    /// Connected: calls run on this connection (unless it has just closed).
    Connected(Client),
    /// No connection, and none being made; a call wakes the supervisor to make one.
    Idle,
    /// An attempt to connect is under way.
    Connecting,
    /// The last attempt failed, for this reason; the supervisor waits its backoff.
    Failed(Error),
    /// The client was closed, or every handle on it dropped: no more connections.
    Closed,
}

/// What the endpoint's handles and its supervisor share.
struct Shared {
    state: watch::Sender<State>,
    /// Woken by calls that find no connection: the supervisor's cue to dial.
    demand: Notify,
    policy: Reconnect,
    /// Makes each connection: the user's builder, with no reconnection and no default timeout
    /// of its own (the endpoint's `Client` gives its calls their deadlines).
    builder: ClientBuilder,
    target: Target,
    /// Dials as soon as a connection is lost (a balancer's member), rather than when a call
    /// needs one: a balancer picks among the members that are connected.
    eager: bool,
    /// Told of every change of state (a balancer's, whose calls wait for any member).
    changed: Option<Arc<Notify>>,
}

impl Shared {
    /// Moves to `state`, unless the endpoint has closed.
    fn set(&self, state: State) {
        let changed = self.state.send_if_modified(|now| {
            if matches!(now, State::Closed) {
                return false;
            }
            *now = state;
            true
        });
        if let (true, Some(notify)) = (changed, &self.changed) {
            notify.notify_waiters();
        }
    }

    async fn dial(&self) -> Result<Client, Error> {
        let attempt = async {
            match &self.target {
                Target::Tcp(addrs) => self.builder.dial_tcp(&addrs[..]).await,
                #[cfg(feature = "tls")]
                Target::Tls(addr) => self.builder.dial_tls(addr).await,
                #[cfg(feature = "websocket")]
                Target::WebSocket(url) => self.builder.dial_websocket(url).await,
                #[cfg(unix)]
                Target::Unix(path) => self.builder.dial_unix(path).await,
            }
        };
        match tokio::time::timeout(self.policy.connect_timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::connect(
                self.target_name(),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the attempt timed out"),
            )),
        }
    }

    fn target_name(&self) -> String {
        match &self.target {
            Target::Tcp(addrs) => addrs.first().map(ToString::to_string).unwrap_or_default(),
            #[cfg(feature = "tls")]
            Target::Tls(addr) => addr.clone(),
            #[cfg(feature = "websocket")]
            Target::WebSocket(url) => url.clone(),
            #[cfg(unix)]
            Target::Unix(path) => path.display().to_string(),
        }
    }

    /// The backoff after the `failures`-th failure in a row, jittered.
    fn wait_after(&self, failures: u32) -> Duration {
        self.policy.backoff(failures, super::balance::random_unit())
    }

    /// Waits out a backoff of `wait` after a failure, `why` shown meanwhile to the calls that
    /// fail fast, then idles (the next call's demand starts the next attempt); `false` if the
    /// endpoint closed meanwhile.
    async fn back_off(&self, why: Error, wait: Duration) -> bool {
        self.set(State::Failed(why));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.closing() => return false,
        }
        // Calls that failed fast or waited during the backoff have left a permit; with none,
        // the supervisor idles until a call comes.
        self.set(State::Idle);
        true
    }

    /// Resolves once the endpoint has closed.
    async fn closing(&self) {
        let mut rx = self.state.subscribe();
        // The sender lives as long as `self`: `wait_for` fails only if it were dropped.
        let _ = rx.wait_for(|s| matches!(s, State::Closed)).await;
    }

    fn close(&self, abort: bool) {
        let before = self.state.send_replace(State::Closed);
        if let (true, State::Connected(conn)) = (abort, before) {
            conn.close();
        }
    }
}

/// The endpoint behind a reconnecting [`Client`]: every clone of the client holds it, and
/// when the last is dropped the supervisor stops (the current connection then closes once its
/// last call ends, as a plain client's does).
pub(crate) struct Endpoint {
    shared: Arc<Shared>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.close(false);
    }
}

impl Endpoint {
    /// Connects to `target` (failing as the builder's `connect*` method would) and starts
    /// the supervisor that connects again when the connection drops: the endpoint and its
    /// first connection.
    pub(crate) async fn start(
        builder: &ClientBuilder,
        policy: Reconnect,
        target: Target,
    ) -> Result<(Endpoint, Client), Error> {
        let shared = Arc::new(Shared {
            state: watch::Sender::new(State::Connecting),
            demand: Notify::new(),
            policy,
            builder: builder.for_endpoint(),
            target,
            eager: false,
            changed: None,
        });
        let first = shared.dial().await?;
        shared.set(State::Connected(first.clone()));
        tokio::spawn(supervise(shared.clone(), Some(first.clone())));
        Ok((Endpoint { shared }, first))
    }

    /// A balancer's member: connects to `target` in the background at once, and again as
    /// soon as a connection is lost (with the backoff after failures), telling `changed` of
    /// every change.
    pub(crate) fn eager(builder: &ClientBuilder, policy: Reconnect, target: Target, changed: Arc<Notify>) -> Endpoint {
        let shared = Arc::new(Shared {
            state: watch::Sender::new(State::Connecting),
            demand: Notify::new(),
            policy,
            builder: builder.for_endpoint(),
            target,
            eager: true,
            changed: Some(changed),
        });
        tokio::spawn(supervise(shared.clone(), None));
        Endpoint { shared }
    }

    /// The connection a call can start on now, if there is one.
    pub(crate) fn ready(&self) -> Option<Client> {
        match &*self.shared.state.borrow() {
            State::Connected(conn) if usable(conn) => Some(conn.clone()),
            _ => None,
        }
    }

    /// Why the last attempt to connect failed, while the endpoint waits to try again.
    pub(crate) fn failure(&self) -> Option<Error> {
        match &*self.shared.state.borrow() {
            State::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// A connection for a call with `deadline` on `route`: the current one, or the next one
    /// made, waiting for it up to the deadline (`DEADLINE_EXCEEDED` then), or `UNAVAILABLE` if
    /// the client was closed or, failing fast, the last attempt failed.
    pub(crate) async fn connection(&self, deadline: Option<Instant>, route: &str) -> Result<Client, Status> {
        // Connected: the common case, without subscribing.
        if let State::Connected(conn) = &*self.shared.state.borrow()
            && usable(conn)
        {
            return Ok(conn.clone());
        }
        let mut rx = self.shared.state.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                State::Connected(conn) if usable(conn) => return Ok(conn.clone()),
                State::Closed => return Err(Status::unavailable("the client was closed")),
                State::Failed(why) if self.shared.policy.fail_fast => {
                    // The next call may find a connection: the supervisor tries again after
                    // its backoff.
                    self.shared.demand.notify_one();
                    return Err(Status::unavailable(format!("not connected: {why}")));
                }
                _ => {}
            }
            self.shared.demand.notify_one();
            let changed = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(changed) => changed,
                    Err(_) => {
                        return Err(Status::deadline_exceeded(format!(
                            "{route}: no connection to {} within the deadline",
                            self.shared.target_name()
                        )));
                    }
                },
                None => rx.changed().await,
            };
            if changed.is_err() {
                return Err(Status::unavailable("the client was closed"));
            }
        }
    }

    /// Closes the current connection (its calls fail with `UNAVAILABLE`) and makes no more.
    pub(crate) fn close(&self) {
        self.shared.close(true);
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.shared.state.borrow(), State::Closed)
    }

    /// Resolves once the client is closed for good.
    pub(crate) async fn closed(&self) {
        self.shared.closing().await;
    }
}

/// What the calls of a reconnecting or balancing [`Client`] run through: its server or
/// servers, and how it retries idempotent calls.
pub(crate) struct Upstream {
    pub(crate) servers: Servers,
    pub(crate) retry: Option<Retrying>,
}

/// See [`Upstream`].
pub(crate) enum Servers {
    /// One server, one connection at a time.
    One(Endpoint),
    /// Many servers (see [`Balancer`]).
    Many(Balancer),
}

impl Upstream {
    /// A connection a call can start on now, and its hold on its server, if there is one.
    pub(crate) fn ready(&self) -> Option<(Client, InFlight)> {
        match &self.servers {
            Servers::One(endpoint) => endpoint.ready().map(|conn| (conn, InFlight::none())),
            Servers::Many(balancer) => balancer.ready(),
        }
    }

    /// A connection for a call with `deadline` on `route`, and its hold on the server it
    /// goes to (a balancer counts the call in flight there while the hold lives).
    pub(crate) async fn connection(
        &self,
        deadline: Option<Instant>,
        route: &str,
    ) -> Result<(Client, InFlight), Status> {
        match &self.servers {
            Servers::One(endpoint) => Ok((endpoint.connection(deadline, route).await?, InFlight::none())),
            Servers::Many(balancer) => balancer.connection(deadline, route).await,
        }
    }

    pub(crate) fn close(&self) {
        match &self.servers {
            Servers::One(endpoint) => endpoint.close(),
            Servers::Many(balancer) => balancer.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match &self.servers {
            Servers::One(endpoint) => endpoint.is_closed(),
            Servers::Many(balancer) => balancer.is_closed(),
        }
    }

    pub(crate) async fn closed(&self) {
        match &self.servers {
            Servers::One(endpoint) => endpoint.closed().await,
            Servers::Many(balancer) => balancer.closed().await,
        }
    }
}

/// Whether a call can start on `conn`: it is neither closed nor closing.
fn usable(conn: &Client) -> bool {
    !conn.refuses_calls()
}

/// The supervisor: waits for the connection to close or begin closing (a server shutting
/// down or draining closes it gracefully: its open calls finish on it), then makes the next
/// one when a call needs it, until the endpoint closes.
async fn supervise(shared: Arc<Shared>, mut first: Option<Client>) {
    let mut failures = 0u32;
    loop {
        let conn = match first.take() {
            Some(conn) => conn,
            None => match connect(&shared, &mut failures).await {
                Some(conn) => conn,
                None => return,
            },
        };
        shared.set(State::Connected(conn.clone()));
        let up_since = Instant::now();
        let why = tokio::select! {
            why = conn.closed() => why,
            // Closing gracefully: the calls still open on it hold the connection as long as
            // they need it, and new ones go to the next.
            () = conn.draining() => Error::closed(crate::conn::CloseReason::PeerClosed, None),
            () = shared.closing() => return,
        };
        drop(conn);
        // A connection refused at SETUP, or one that closed at once, counts as a failed
        // attempt: a server that takes connections only to close them is not hammered.
        let rejected = matches!(why.kind(), crate::ErrorKind::SetupRejected { .. });
        if rejected || up_since.elapsed() < Duration::from_secs(1) {
            failures += 1;
        } else {
            failures = 0;
        }
        if failures == 0 {
            shared.set(State::Idle);
        } else if !shared.back_off(why, shared.wait_after(failures)).await {
            return;
        }
    }
}

/// Makes the next connection: when a call needs one (or at once, if eager), again after each
/// failure's backoff; `None` once the endpoint has closed.
async fn connect(shared: &Shared, failures: &mut u32) -> Option<Client> {
    loop {
        if !shared.eager {
            tokio::select! {
                () = shared.demand.notified() => {}
                () = shared.closing() => return None,
            }
        }
        shared.set(State::Connecting);
        let attempt = tokio::select! {
            attempt = shared.dial() => attempt,
            () = shared.closing() => return None,
        };
        match attempt {
            Ok(conn) => {
                if *failures > 0 {
                    super::trace::reconnected(&shared.target_name());
                }
                return Some(conn);
            }
            Err(why) => {
                *failures += 1;
                let wait = shared.wait_after(*failures);
                super::trace::connect_failed(&shared.target_name(), &why, *failures, wait);
                if !shared.back_off(why, wait).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap_within_the_jitter() {
        let policy = Reconnect::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1))
            .multiplier(2.0)
            .jitter(0.5);
        let ms = |failures, random| policy.backoff(failures, random).as_millis();
        assert_eq!(ms(1, 0.5), 100);
        assert_eq!(ms(2, 0.5), 200);
        assert_eq!(ms(3, 0.5), 400);
        assert_eq!(ms(5, 0.5), 1000, "capped");
        assert_eq!(ms(1000, 0.5), 1000, "no overflow");
        assert_eq!(ms(1, 0.0), 50, "-50 %");
        assert!(ms(1, 0.999_999) >= 149, "+50 %");
        let steady = Reconnect::new().jitter(0.0).initial_backoff(Duration::from_millis(10));
        assert_eq!(steady.backoff(1, 0.9), Duration::from_millis(10));
        assert_eq!(Reconnect::new().multiplier(0.5).multiplier, 1.0);
        assert_eq!(Reconnect::new().jitter(7.0).jitter, 1.0);
    }
}
