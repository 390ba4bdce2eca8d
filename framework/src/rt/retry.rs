//! Retries and hedging of idempotent calls: [`Retry`], the policy a [`ClientBuilder`] is
//! given, and the budget that keeps retries a fraction of the traffic.
//!
//! [`ClientBuilder`]: crate::ClientBuilder

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a client retries the calls marked idempotent ([`ClientBuilder::retry`]): a call that
/// fails with `UNAVAILABLE` is sent again, after a backoff, up to `max_attempts` in all and
/// within its deadline; and, with [`hedge_after`](Retry::hedge_after), a request/response
/// that has no answer after that delay is sent a second time, the first answer winning (the
/// other call is cancelled).
///
/// Only calls marked idempotent are ever retried or hedged: the methods marked
/// `#[weft(idempotent)]` in a trait or `option (weft.idempotent) = true;` (or gRPC's
/// `idempotency_level = IDEMPOTENT`) in a `.proto` file, and [`Call::idempotent`]. A call
/// not marked is never sent twice, except when the server certainly did not process it (a
/// reconnecting client's rule, which holds with or without this policy).
///
/// Retries are kept to a fraction of the traffic by a budget: each call adds
/// [`budget`](Retry::budget) to it (0.2 by default: one retry for every five calls), up to a
/// reserve of 10, and each retry or hedge takes 1. When the servers are failing, retries stop
/// once the budget is spent, instead of multiplying the load on servers that are already
/// down.
///
/// ```
/// use std::time::Duration;
/// use weft::{Client, Retry};
///
/// let builder = Client::builder()
///     .retry(Retry::new().max_attempts(3).hedge_after(Duration::from_millis(50)));
/// # let _ = builder;
/// ```
///
/// [`ClientBuilder::retry`]: crate::ClientBuilder::retry
/// [`Call::idempotent`]: crate::Call::idempotent
#[derive(Clone, Debug)]
pub struct Retry {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    budget: f64,
    reserve: u32,
    hedge_after: Option<Duration>,
}

impl Default for Retry {
    /// Three attempts in all, 50 ms then 100 ms apart (±50 %, up to 1 s), a budget of 0.2
    /// retries per call with a reserve of 10, no hedging.
    fn default() -> Retry {
        Retry {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            budget: 0.2,
            reserve: 10,
            hedge_after: None,
        }
    }
}

impl Retry {
    /// The default policy (see [`Retry::default`]).
    pub fn new() -> Retry {
        Retry::default()
    }

    /// How many times a call is sent at most, the first included (at least 1). Default: 3.
    pub fn max_attempts(mut self, attempts: u32) -> Retry {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry, doubled for each further one up to `max`; each wait
    /// is drawn from ±50 % of its nominal length. Default: 50 ms, up to 1 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Retry {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Retries (and hedges) allowed per call, on average: each call adds this much to the
    /// budget, which holds `reserve` retries at first and at most (one at least), and each
    /// retry takes one. Default: 0.2, reserve 10.
    pub fn budget(mut self, per_call: f64, reserve: u32) -> Retry {
        self.budget = if per_call.is_finite() { per_call.clamp(0.0, 1000.0) } else { 0.0 };
        self.reserve = reserve;
        self
    }

    /// Sends an idempotent request/response again if it has no answer after `delay`, and
    /// takes the first answer (the other call is cancelled): a tail latency cut for the price
    /// of a few extra calls (each hedge is taken from the budget). One hedge per attempt.
    /// Default: no hedging.
    pub fn hedge_after(mut self, delay: Duration) -> Retry {
        self.hedge_after = Some(delay);
        self
    }

    pub(crate) fn max_attempts_of(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn hedge_delay(&self) -> Option<Duration> {
        self.hedge_after
    }

    /// The wait before the `retry`-th retry (1 for the first), jittered by `random` in [0, 1).
    pub(crate) fn wait(&self, retry: u32, random: f64) -> Duration {
        let nominal = self.initial_backoff.as_secs_f64() * 2f64.powi(retry.saturating_sub(1).min(30) as i32);
        let nominal = nominal.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(nominal * (0.5 + random))
    }
}

/// A client's retry policy and its budget, shared by the client's clones.
#[derive(Debug)]
pub(crate) struct Retrying {
    pub(crate) policy: Retry,
    /// Thousandths of a retry.
    tokens: AtomicU64,
}

impl Retrying {
    pub(crate) fn new(policy: Retry) -> Retrying {
        let full = u64::from(policy.reserve) * 1000;
        Retrying { policy, tokens: AtomicU64::new(full) }
    }

    /// A call is made: the budget grows by its share.
    pub(crate) fn deposit(&self) {
        // Room for one retry at least, however small the reserve.
        let (share, full) = ((self.policy.budget * 1000.0) as u64, u64::from(self.policy.reserve.max(1)) * 1000);
        let _ = self.tokens.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some((t + share).min(full)));
    }

    /// Takes one retry from the budget, if one is left.
    pub(crate) fn withdraw(&self) -> bool {
        self.tokens.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1000)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_share_of_retries_and_its_reserve() {
        let retrying = Retrying::new(Retry::new().budget(0.25, 2));
        assert!(retrying.withdraw() && retrying.withdraw(), "the reserve");
        assert!(!retrying.withdraw(), "spent");
        for _ in 0..3 {
            retrying.deposit();
        }
        assert!(!retrying.withdraw(), "three calls earn 0.75 of a retry");
        retrying.deposit();
        assert!(retrying.withdraw(), "four earn one");
        for _ in 0..100 {
            retrying.deposit();
        }
        assert!(retrying.withdraw() && retrying.withdraw() && !retrying.withdraw(), "never more than the reserve");
        let none = Retrying::new(Retry::new().budget(0.0, 0));
        none.deposit();
        assert!(!none.withdraw());
    }

    #[test]
    fn waits_double_up_to_the_cap_within_the_jitter() {
        let policy = Retry::new().backoff(Duration::from_millis(10), Duration::from_millis(35));
        assert_eq!(policy.wait(1, 0.5), Duration::from_millis(10));
        assert_eq!(policy.wait(2, 0.5), Duration::from_millis(20));
        assert_eq!(policy.wait(3, 0.5), Duration::from_millis(35));
        assert_eq!(policy.wait(1, 0.0), Duration::from_millis(5));
        assert_eq!(Retry::new().max_attempts(0).max_attempts, 1);
    }
}
