//! A connection's deadlines, kept off tokio's timer wheel.
//!
//! A connection waits on a few coarse deadlines: the next KEEPALIVE to send, the peer's
//! silence limit (max lifetime), the setup timeout, a server's shutdown grace. They are seconds
//! away and move rarely. Held as a tokio `Sleep`, any of them costs the runtime on every park,
//! however far off it is: tokio reads the clock twice and scans its wheel before and after
//! each wait (~300 instructions a park on each side of a channel round trip), and its
//! `epoll_wait` then carries a timeout, which the kernel arms as a timer of its own. A
//! connection that sends and receives thousands of messages a second parks thousands of times
//! a second, for deadlines that fire every twenty seconds.
//!
//! So the deadlines of all connections in a process go to one thread, started with the first,
//! that sleeps until the earliest and then wakes its connection's driver (through the waker
//! the driver gave its [`Alarm`]). The driver checks the real deadlines when woken: an early or
//! stale wake-up does nothing but cost a turn. If the thread cannot be started, an alarm falls
//! back to a tokio `Sleep`.
//!
//! Deadlines are handed over as a time from now on tokio's clock, so a program that pauses
//! tokio's clock (`tokio::time::pause`) gets wake-ups in real time, early ones, never a spin.

use super::sync::lock;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use tokio::time::{Instant, Sleep};

/// A connection's one deadline at a time: set, moved or cancelled by its driver, fired by the
/// process's alarm thread (or a tokio `Sleep` where that thread could not be started).
pub(crate) struct Alarm {
    kind: Kind,
}

enum Kind {
    Thread {
        alarms: &'static Alarms,
        slot: Arc<Slot>,
    },
    Tokio {
        sleep: Pin<Box<Sleep>>,
        waker: Waker,
        /// Set and not polled since: the next poll registers it with the wheel. Cleared by a
        /// cancel too (a `Sleep` that fires anyway wakes the waker for nothing).
        fresh: bool,
    },
}

/// What the thread holds of an alarm: the waker to wake and which setting is current.
struct Slot {
    waker: Waker,
    /// Bumped by every set and cancel: an entry of an older setting is stale.
    generation: AtomicU64,
}

/// One setting of one alarm, in the thread's queue.
struct Entry {
    at: std::time::Instant,
    generation: u64,
    slot: Weak<Slot>,
}

impl Entry {
    /// The slot, if this is still its current setting.
    fn current(&self) -> Option<Arc<Slot>> {
        self.slot.upgrade().filter(|slot| slot.generation.load(Ordering::Acquire) == self.generation)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.at.cmp(&other.at)
    }
}

/// The process's alarm thread and its queue.
struct Alarms {
    queue: Mutex<Queue>,
    /// Signalled when an entry goes to the front of the queue (the thread sleeps until the
    /// front entry's time).
    changed: Condvar,
}

struct Queue {
    entries: BinaryHeap<Reverse<Entry>>,
    /// Alarms alive: with many more entries than that, most are stale and are swept out, so
    /// the queue stays proportional to the connections even when they come and go quickly.
    alive: usize,
}

impl Queue {
    /// Stale entries beyond this many per live alarm (plus a constant) are swept out.
    const STALE_PER_ALARM: usize = 2;

    fn sweep_if_stale(&mut self) {
        if self.entries.len() > Self::STALE_PER_ALARM * self.alive + 64 {
            self.entries.retain(|Reverse(e)| e.current().is_some());
        }
    }
}

/// The alarm thread, started on first use; `None` if it could not be started.
fn alarms() -> Option<&'static Alarms> {
    static ALARMS: OnceLock<Option<&'static Alarms>> = OnceLock::new();
    *ALARMS.get_or_init(|| {
        let alarms: &'static Alarms = Box::leak(Box::new(Alarms {
            queue: Mutex::new(Queue { entries: BinaryHeap::new(), alive: 0 }),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new().name("weft-alarm".into()).spawn(move || run(alarms)).ok().map(|_| alarms)
    })
}

/// The thread: wakes every current entry whose time has come, then sleeps until the next.
fn run(alarms: &'static Alarms) {
    let mut due = Vec::new();
    loop {
        let mut queue = lock(&alarms.queue);
        loop {
            let now = std::time::Instant::now();
            match queue.entries.peek() {
                Some(Reverse(first)) if first.at <= now => {
                    let Some(Reverse(entry)) = queue.entries.pop() else { break };
                    due.extend(entry.current());
                }
                // Wake what is due before sleeping, outside the lock.
                _ if !due.is_empty() => break,
                Some(Reverse(first)) => {
                    let wait = first.at - now;
                    queue = alarms.changed.wait_timeout(queue, wait).unwrap_or_else(|p| p.into_inner()).0;
                }
                None => queue = alarms.changed.wait(queue).unwrap_or_else(|p| p.into_inner()),
            }
        }
        drop(queue);
        for slot in due.drain(..) {
            // A waker is the runtime's (or, for a server connection run inside a caller's
            // future, the caller's): one that panics must not stop every other connection's
            // deadlines.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.waker.wake_by_ref()));
        }
    }
}

impl Alarm {
    /// An alarm, not set, that wakes `waker` when it fires.
    pub(crate) fn new(waker: Waker) -> Alarm {
        let Some(alarms) = alarms() else { return Alarm::on_tokio(waker) };
        lock(&alarms.queue).alive += 1;
        Alarm { kind: Kind::Thread { alarms, slot: Arc::new(Slot { waker, generation: AtomicU64::new(0) }) } }
    }

    /// The fallback: an alarm that is a tokio `Sleep`.
    fn on_tokio(waker: Waker) -> Alarm {
        let sleep = Box::pin(tokio::time::sleep_until(Instant::now()));
        Alarm { kind: Kind::Tokio { sleep, waker, fresh: false } }
    }

    /// Fires at `at` (tokio's clock), or soon after; replaces any earlier setting.
    pub(crate) fn set(&mut self, at: Instant) {
        match &mut self.kind {
            Kind::Thread { alarms, slot } => {
                let generation = slot.generation.fetch_add(1, Ordering::AcqRel) + 1;
                let at = std::time::Instant::now() + at.saturating_duration_since(Instant::now());
                let mut queue = lock(&alarms.queue);
                let first = queue.entries.peek().is_none_or(|Reverse(e)| at < e.at);
                queue.entries.push(Reverse(Entry { at, generation, slot: Arc::downgrade(slot) }));
                queue.sweep_if_stale();
                drop(queue);
                if first {
                    alarms.changed.notify_one();
                }
            }
            Kind::Tokio { sleep, fresh, .. } => {
                sleep.as_mut().reset(at);
                *fresh = true;
            }
        }
    }

    /// Will not fire for any setting made so far.
    pub(crate) fn cancel(&mut self) {
        match &mut self.kind {
            Kind::Thread { slot, .. } => {
                slot.generation.fetch_add(1, Ordering::AcqRel);
            }
            Kind::Tokio { fresh, .. } => *fresh = false,
        }
    }

    /// Whether the fallback's `Sleep` is due: polled once after each setting (to register
    /// with the wheel, which then wakes the alarm's waker). With the thread, always pending:
    /// the thread wakes the waker.
    pub(crate) fn poll_due(&mut self) -> Poll<()> {
        match &mut self.kind {
            Kind::Thread { .. } => Poll::Pending,
            Kind::Tokio { sleep, waker, fresh } => {
                if !std::mem::take(fresh) {
                    return Poll::Pending;
                }
                sleep.as_mut().poll(&mut Context::from_waker(waker))
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Kind::Thread { alarms, slot } = &self.kind {
            // Its entries are stale from now on, so the sweep can take them.
            slot.generation.fetch_add(1, Ordering::AcqRel);
            let mut queue = lock(&alarms.queue);
            queue.alive -= 1;
            queue.sweep_if_stale();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long the thread may take past a deadline here (the machine may be busy).
    const SLACK: Duration = Duration::from_secs(5);
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize, Mutex<Option<std::sync::mpsc::Sender<()>>>);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = lock(&self.1).as_ref() {
                let _ = tx.send(());
            }
        }
    }

    fn counter() -> (Arc<Count>, Waker, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let count = Arc::new(Count(AtomicUsize::new(0), Mutex::new(Some(tx))));
        (count.clone(), Waker::from(count), rx)
    }

    #[tokio::test]
    async fn fires_once_at_its_deadline_and_only_for_its_current_setting() {
        let (count, waker, rx) = counter();
        let mut alarm = Alarm::new(waker);
        assert!(matches!(alarm.kind, Kind::Thread { .. }), "the thread starts");
        let start = std::time::Instant::now();
        // Set, then moved later: the first setting is stale and must not fire.
        alarm.set(Instant::now() + Duration::from_millis(20));
        alarm.set(Instant::now() + Duration::from_millis(150));
        rx.recv_timeout(Duration::from_millis(150) + SLACK).expect("fired");
        assert!(start.elapsed() >= Duration::from_millis(150), "not before its deadline");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Cancelled: nothing more fires.
        alarm.set(Instant::now() + Duration::from_millis(10));
        alarm.cancel();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "a cancelled alarm stays quiet");
        // An earlier deadline than the thread sleeps for wakes the thread up.
        let (_far_count, far_waker, _far_rx) = counter();
        let mut far = Alarm::new(far_waker);
        far.set(Instant::now() + Duration::from_secs(3600));
        let set_at = std::time::Instant::now();
        alarm.set(Instant::now() + Duration::from_millis(10));
        rx.recv_timeout(SLACK).expect("the earlier deadline fired");
        assert!(set_at.elapsed() < SLACK);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stale_settings_do_not_pile_up() {
        let alarms = alarms().expect("the thread starts");
        let mut held = Vec::new();
        for _ in 0..50 {
            let (_, waker, _) = counter();
            let mut alarm = Alarm::new(waker);
            // Each setting replaces the last; far off, so none leaves the queue by firing.
            for _ in 0..100 {
                alarm.set(Instant::now() + Duration::from_secs(3600));
            }
            held.push(alarm);
        }
        {
            // Other tests' alarms may be alive too; the bound is what the sweep keeps to.
            let queue = lock(&alarms.queue);
            let (len, alive) = (queue.entries.len(), queue.alive);
            assert!(alive >= 50);
            assert!(len <= Queue::STALE_PER_ALARM * alive + 65, "{len} entries for {alive} alarms");
        }
        drop(held);
        for _ in 0..200 {
            let (_, waker, _) = counter();
            Alarm::new(waker).set(Instant::now() + Duration::from_secs(3600));
        }
        let queue = lock(&alarms.queue);
        assert!(queue.entries.len() <= Queue::STALE_PER_ALARM * queue.alive + 65, "dropped alarms are swept");
    }

    #[tokio::test]
    async fn the_fallback_is_a_tokio_sleep_polled_once_per_setting() {
        let (count, waker, _rx) = counter();
        let woken = |n| {
            let count = count.clone();
            async move {
                // Bounded by the timeout around it; the runtime's timer runs between the polls.
                while count.0.load(Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        let mut alarm = Alarm::on_tokio(waker);
        assert!(alarm.poll_due().is_pending(), "not set");
        alarm.set(Instant::now() + Duration::from_millis(20));
        assert!(alarm.poll_due().is_pending(), "registered with the wheel");
        assert!(alarm.poll_due().is_pending(), "not polled again until it is set again");
        tokio::time::timeout(SLACK, woken(1)).await.expect("the sleep woke the alarm's waker");
        // Set again, for a time already past: it fires on the runtime's next turn.
        alarm.set(Instant::now());
        if alarm.poll_due().is_pending() {
            tokio::time::timeout(SLACK, woken(2)).await.expect("fired again");
        }
        alarm.set(Instant::now() + Duration::from_millis(10));
        alarm.cancel();
        assert!(alarm.poll_due().is_pending(), "cancelled: not polled");
    }
}
