//! Many servers behind one client: a balancing [`Client`] spreads its calls over a set of
//! servers that changes as it runs ([`Change`]: a static list, DNS re-resolved periodically,
//! or a discovery stream of the user's).
//!
//! Each server is a member with its own reconnecting endpoint, which connects as soon as the
//! member joins and again whenever its connection is lost (with the policy's backoff after
//! failures). A call goes to the less loaded of two members drawn at random among those
//! connected ("power of two choices", by calls in flight): as good as picking the least
//! loaded of all, without looking at all, and without every client herding onto the same
//! least-loaded server. A member that cannot connect, or whose server is closing, is simply
//! not connected: it takes no calls (ejected) until its endpoint connects again after its
//! backoff (re-admitted). A call that finds no member connected waits for one up to its
//! deadline, or fails at once if the policy fails fast and every member has failed.

use super::connect::ClientBuilder;
use super::endpoint::{Endpoint, Reconnect, Target};
use crate::{Client, Status};
use futures_core::Stream;
use futures_util::StreamExt;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// A change to the set of servers a balancing client spreads its calls over
/// ([`ClientBuilder::connect_discovered`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A server to call (nothing happens if it is in the set already).
    Insert(SocketAddr),
    /// A server to call no more: calls in flight on it finish, new ones go elsewhere.
    Remove(SocketAddr),
}

/// One server of the set.
struct Member {
    addr: SocketAddr,
    endpoint: Endpoint,
    /// Calls made through this member and not yet answered (for a stream: not yet opened).
    in_flight: AtomicUsize,
}

/// A call's hold on the member it runs on: counts it in flight until dropped.
pub(crate) struct InFlight(Option<Arc<Member>>);

impl InFlight {
    /// A call that no balancer counts (a single endpoint's).
    pub(crate) fn none() -> InFlight {
        InFlight(None)
    }

    fn on(member: &Arc<Member>) -> InFlight {
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Some(member.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(member) = &self.0 {
            member.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a balancer's handles and its discovery task share.
struct Shared {
    members: RwLock<Vec<Arc<Member>>>,
    /// Told when a member's endpoint changes state or the set changes: calls waiting for a
    /// connected member look again.
    changed: Arc<Notify>,
    /// `true` once the client is closed (or every handle on it dropped).
    closed: watch::Sender<bool>,
    policy: Reconnect,
    builder: ClientBuilder,
}

impl Shared {
    fn apply(&self, change: Change) {
        let mut members = super::sync::write(&self.members);
        match change {
            Change::Insert(addr) => {
                if members.iter().any(|m| m.addr == addr) {
                    return;
                }
                let endpoint =
                    Endpoint::eager(&self.builder, self.policy.clone(), Target::Tcp(vec![addr]), self.changed.clone());
                members.push(Arc::new(Member { addr, endpoint, in_flight: AtomicUsize::new(0) }));
            }
            // The member's endpoint closes once the calls in flight on it let it go.
            Change::Remove(addr) => members.retain(|m| m.addr != addr),
        }
        drop(members);
        self.changed.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// A connected member for a call, by the power of two choices.
    fn pick(&self) -> Option<(Client, InFlight)> {
        let members = super::sync::read(&self.members);
        let n = members.len();
        let ready = |i: usize| members[i].endpoint.ready().map(|conn| (conn, &members[i]));
        let choice = match n {
            0 => None,
            1 => ready(0),
            _ => {
                let a = random_below(n);
                let b = (a + 1 + random_below(n - 1)) % n;
                match (ready(a), ready(b)) {
                    (Some(x), Some(y)) => Some(if load(y.1) < load(x.1) { y } else { x }),
                    (x, y) => x.or(y),
                }
            }
        };
        // Both draws unconnected: the least loaded of those connected, if any is.
        let (conn, member) = choice.or_else(|| (0..n).filter_map(ready).min_by_key(|(_, member)| load(member)))?;
        Some((conn, InFlight::on(member)))
    }

    /// Why no member can take a call now, if there are members and every one has failed
    /// to connect: a call that fails fast says so.
    fn all_failed(&self) -> Option<String> {
        let members = super::sync::read(&self.members);
        if members.is_empty() {
            return None;
        }
        let mut why = Vec::with_capacity(members.len());
        for member in members.iter() {
            why.push(format!("{}: {}", member.addr, member.endpoint.failure()?));
        }
        Some(why.join("; "))
    }
}

fn load(member: &Member) -> usize {
    member.in_flight.load(Ordering::Relaxed)
}

/// A uniform draw from [0, 1) (see [`random_below`]).
pub(crate) fn random_unit() -> f64 {
    random_below(1 << 30) as f64 / (1u64 << 30) as f64
}

/// A uniform draw from `0..n` (`n` > 0), from a per-thread xorshift generator: the draws of
/// a balancer need to be cheap and spread, not unpredictable.
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0u8) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // Multiply-shift: no modulo bias worth the name for the sets a client balances over.
        (((x >> 32) * n as u64) >> 32) as usize
    })
}

/// The balancer behind a balancing [`Client`]: every clone of the client holds it, and when
/// the last is dropped the members' endpoints close (each connection once its last call
/// ends) and discovery stops.
pub(crate) struct Balancer {
    shared: Arc<Shared>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
        super::sync::write(&self.shared.members).clear();
    }
}

impl Balancer {
    /// Starts a balancer whose set of servers follows `changes`, and waits until one of them
    /// is connected (up to the policy's connect timeout): the balancer, and that connection.
    pub(crate) async fn start<S>(
        builder: &ClientBuilder,
        policy: Reconnect,
        changes: S,
    ) -> Result<(Balancer, Client), crate::Error>
    where
        S: Stream<Item = Change> + Send + 'static,
    {
        let timeout = policy.connect_timeout_of();
        let shared = Arc::new(Shared {
            members: RwLock::new(Vec::new()),
            changed: Arc::new(Notify::new()),
            closed: watch::Sender::new(false),
            policy,
            builder: builder.clone(),
        });
        tokio::spawn(follow(Arc::downgrade(&shared), shared.closed.subscribe(), changes));
        let balancer = Balancer { shared };
        let first = async {
            loop {
                let changed = balancer.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some((conn, _)) = balancer.shared.pick() {
                    return Ok(conn);
                }
                // Each member has tried once, and failed: as a plain client's `connect` would.
                if let Some(why) = balancer.shared.all_failed() {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, why));
                }
                changed.await;
            }
        };
        let first = tokio::time::timeout(timeout, first).await.unwrap_or_else(|_| {
            let why = "no server was known and connected within the connect timeout";
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
        });
        match first {
            Ok(first) => Ok((balancer, first)),
            Err(why) => Err(crate::Error::connect("the balanced servers", why)),
        }
    }

    /// A connected member's connection for a call with `deadline` on `route`, counted in
    /// flight on it while the returned hold lives; waits for one up to the deadline.
    pub(crate) async fn connection(
        &self,
        deadline: Option<Instant>,
        route: &str,
    ) -> Result<(Client, InFlight), Status> {
        let shared = &self.shared;
        if let Some(pick) = shared.pick() {
            return Ok(pick);
        }
        loop {
            // Registered before looking, so that a change in between is not missed.
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if shared.is_closed() {
                return Err(Status::unavailable("the client was closed"));
            }
            if let Some(pick) = shared.pick() {
                return Ok(pick);
            }
            if shared.policy.fails_fast() {
                let why = match shared.all_failed() {
                    Some(why) => Some(why),
                    None if super::sync::read(&shared.members).is_empty() => Some("no server is known".into()),
                    None => None,
                };
                if let Some(why) = why {
                    return Err(Status::unavailable(format!("no server is connected: {why}")));
                }
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(Status::deadline_exceeded(format!(
                            "{route}: no server connected within the deadline"
                        )));
                    }
                }
                None => changed.await,
            }
        }
    }

    /// A connected member's connection, if there is one now (see [`Balancer::connection`]).
    pub(crate) fn ready(&self) -> Option<(Client, InFlight)> {
        self.shared.pick()
    }

    /// Closes every member's connection (their calls fail with `UNAVAILABLE`) and makes no
    /// more.
    pub(crate) fn close(&self) {
        self.shared.closed.send_replace(true);
        let members = std::mem::take(&mut *super::sync::write(&self.shared.members));
        for member in members {
            member.endpoint.close();
        }
        self.shared.changed.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Resolves once the client is closed for good.
    pub(crate) async fn closed(&self) {
        let _ = self.shared.closed.subscribe().wait_for(|closed| *closed).await;
    }
}

/// The discovery task: applies `changes` until they end or the balancer closes.
async fn follow<S>(shared: Weak<Shared>, mut closed: watch::Receiver<bool>, changes: S)
where
    S: Stream<Item = Change> + Send + 'static,
{
    let mut changes = std::pin::pin!(changes);
    loop {
        let change = tokio::select! {
            change = changes.next() => change,
            // Closed, or the balancer dropped (the sender with it).
            _ = closed.wait_for(|closed| *closed) => return,
        };
        let (Some(change), Some(shared)) = (change, shared.upgrade()) else { return };
        if shared.is_closed() {
            return;
        }
        shared.apply(change);
    }
}

/// The set of servers `name` (`host:port`) resolves to, resolved again every `every`: the
/// changes from one resolution to the next. A resolution that fails changes nothing.
pub(crate) fn dns(name: String, every: Duration) -> impl Stream<Item = Change> + Send + 'static {
    let state = (name, Vec::<SocketAddr>::new(), true);
    futures_util::stream::unfold(state, move |(name, known, first)| async move {
        if !first {
            tokio::time::sleep(every).await;
        }
        let now = match tokio::net::lookup_host(&name).await {
            Ok(addrs) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                addrs.dedup();
                addrs
            }
            Err(_) => known.clone(),
        };
        let removed = known.iter().filter(|a| !now.contains(a)).map(|a| Change::Remove(*a));
        let inserted = now.iter().filter(|a| !known.contains(a)).map(|a| Change::Insert(*a));
        let changes: Vec<Change> = removed.chain(inserted).collect();
        Some((futures_util::stream::iter(changes), (name, now, false)))
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_in_range() {
        for n in [1, 2, 3, 1000] {
            assert!((0..100).all(|_| random_below(n) < n), "{n}");
        }
        assert!((0..100).map(|_| random_unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}
