//! A connection's deadlines, kept off tokio's timer wheel while tokio's clock is the real one.
//!
//! A connection waits on a few coarse deadlines: the next KEEPALIVE to send, the peer's
//! silence limit (max lifetime), the setup timeout, a server's shutdown grace. They are seconds
//! away and move rarely. Held as a tokio `Sleep`, any of them costs the runtime on every park,
//! however far off it is: tokio reads the clock and scans its wheel around each wait, and its
//! `epoll_wait` then carries a timeout, which the kernel arms as a timer of its own. Measured
//! with callgrind, a `Sleep` per connection costs a request/response server ~180 instructions
//! a call (3 %); a connection that serves thousands of calls a second parks thousands of times
//! a second, for deadlines that fire every twenty seconds.
//!
//! So the deadlines of all connections go to one thread, `weft-alarm`, that sleeps until the
//! earliest and then wakes its connection's driver (through the waker the driver gave its
//! [`Alarm`]). The driver checks the real deadlines when woken: an early or stale wake-up does
//! nothing but cost a turn. The thread is not process-wide state that outlives its use: it is
//! started with the first alarm, shared by the alarms alive, and stops a moment after the last
//! one is dropped (so after the connections of a runtime that shut down), to be started again
//! by the next. If it cannot be started, an alarm is a tokio `Sleep`.
//!
//! Tests drive time with tokio's clock (`tokio::time::pause`, `advance`, a paused runtime's
//! auto-advance), which knows nothing of the thread. So an alarm set while tokio's clock is not
//! the real one (paused, or moved from the real time by a pause or an advance) is a tokio
//! `Sleep`, which that clock drives: a keepalive timeout under a paused clock fires as soon as
//! the runtime has nothing else to do, as every tokio timer does. Telling the clocks apart
//! costs a few reads of both at each setting, which comes rarely.

use super::sync::lock;
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How long the thread lingers once no alarm is alive, before it stops: connections come and go
/// in bursts, and a thread is not free to start.
const LINGER: Duration = Duration::from_secs(1);

/// A connection's one deadline at a time: set, moved or cancelled by its driver, fired by the
/// alarm thread or, while tokio's clock is not the real one (tests), by a tokio `Sleep`.
pub(crate) struct Alarm {
    waker: Waker,
    /// The thread's part, unless it could not be started.
    thread: Option<(Arc<Alarms>, Arc<Slot>)>,
    /// A tokio `Sleep`, made when first needed.
    tokio: Option<TokioSleep>,
}

struct TokioSleep {
    sleep: Pin<Box<Sleep>>,
    /// Set and not polled since: the next poll registers it with the wheel. Cleared by a
    /// cancel too (a `Sleep` that fires anyway wakes the waker for nothing).
    fresh: bool,
}

/// What the thread holds of an alarm: the waker to wake and which setting is current.
struct Slot {
    waker: Waker,
    /// Bumped by every set and cancel: an entry of an older setting is stale.
    generation: AtomicU64,
}

/// One setting of one alarm, in the thread's queue.
struct Setting {
    at: std::time::Instant,
    generation: u64,
    slot: Weak<Slot>,
}

impl Setting {
    /// The slot, if this is still its current setting.
    fn current(&self) -> Option<Arc<Slot>> {
        self.slot.upgrade().filter(|slot| slot.generation.load(Ordering::Acquire) == self.generation)
    }
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Setting {}

impl PartialOrd for Setting {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Setting {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.at.cmp(&other.at)
    }
}

/// The alarm thread's queue, shared by the thread and the alarms alive.
struct Alarms {
    queue: Mutex<Queue>,
    /// Signalled when a setting goes to the front of the queue (the thread sleeps until the
    /// front setting's time) and when the last alarm goes (the thread then stops).
    changed: Condvar,
}

struct Queue {
    settings: BinaryHeap<Reverse<Setting>>,
    /// Alarms alive: with many more settings than that, most are stale and are swept out, so
    /// the queue stays proportional to the connections even when they come and go quickly.
    alive: usize,
    /// The thread has stopped (no alarm was alive for [`LINGER`]): the next alarm starts
    /// another.
    stopped: bool,
}

impl Queue {
    /// Stale settings beyond this many per live alarm (plus a constant) are swept out.
    const STALE_PER_ALARM: usize = 2;

    fn sweep_if_stale(&mut self) {
        if self.settings.len() > Self::STALE_PER_ALARM * self.alive + 64 {
            self.settings.retain(|Reverse(s)| s.current().is_some());
        }
    }
}

/// The running thread's queue, if one runs.
static RUNNING: Mutex<Option<Arc<Alarms>>> = Mutex::new(None);

/// The thread's queue, with one more alarm counted alive: the running thread's, or a new one's
/// (`None` if it could not be started).
fn join() -> Option<Arc<Alarms>> {
    let mut running = lock(&RUNNING);
    if let Some(alarms) = running.as_ref() {
        let mut queue = lock(&alarms.queue);
        if !queue.stopped {
            queue.alive += 1;
            drop(queue);
            return Some(alarms.clone());
        }
    }
    let alarms = Arc::new(Alarms {
        queue: Mutex::new(Queue { settings: BinaryHeap::new(), alive: 1, stopped: false }),
        changed: Condvar::new(),
    });
    let thread = alarms.clone();
    std::thread::Builder::new().name("weft-alarm".into()).spawn(move || run(&thread)).ok()?;
    *running = Some(alarms.clone());
    Some(alarms)
}

/// The thread: wakes every current setting whose time has come, then sleeps until the next;
/// stops once no alarm has been alive for [`LINGER`].
fn run(alarms: &Arc<Alarms>) {
    let mut due = Vec::new();
    loop {
        let mut queue = lock(&alarms.queue);
        loop {
            let now = std::time::Instant::now();
            match queue.settings.peek() {
                Some(Reverse(first)) if first.at <= now => {
                    let Some(Reverse(setting)) = queue.settings.pop() else { break };
                    due.extend(setting.current());
                }
                // Wake what is due before sleeping, outside the lock.
                _ if !due.is_empty() => break,
                // Settings of dropped alarms are stale: with none alive, nothing can fire.
                _ if queue.alive == 0 => {
                    let (q, waited) = alarms.changed.wait_timeout(queue, LINGER).unwrap_or_else(|p| p.into_inner());
                    queue = q;
                    if queue.alive == 0 && waited.timed_out() {
                        queue.stopped = true;
                        queue.settings.clear();
                        drop(queue);
                        // Forgotten as the running one, unless another has replaced it.
                        let mut running = lock(&RUNNING);
                        if running.as_ref().is_some_and(|r| Arc::ptr_eq(r, alarms)) {
                            *running = None;
                        }
                        return;
                    }
                }
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

/// Whether tokio's clock is not the real one: paused (it stands still while the real clock
/// moves), or moved from it by an earlier pause or advance. Without tokio's `test-util`
/// feature its clock is the real one, and this is false.
fn tokio_clock_is_virtual() -> bool {
    let tokio_now = Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let skew = real_now.saturating_duration_since(tokio_now).max(tokio_now.saturating_duration_since(real_now));
    if skew > Duration::from_millis(1) {
        return true;
    }
    // Wait for the real clock to move (a few reads), then see whether tokio's moved too.
    for _ in 0..10_000 {
        if std::time::Instant::now() > real_now {
            return Instant::now().into_std() == tokio_now;
        }
    }
    false
}

impl Alarm {
    /// An alarm, not set, that wakes `waker` when it fires.
    pub(crate) fn new(waker: Waker) -> Alarm {
        let thread = join().map(|alarms| {
            let slot = Arc::new(Slot { waker: waker.clone(), generation: AtomicU64::new(0) });
            (alarms, slot)
        });
        Alarm { waker, thread, tokio: None }
    }

    /// Fires at `at` (tokio's clock), or soon after; replaces any earlier setting.
    pub(crate) fn set(&mut self, at: Instant) {
        self.cancel();
        match &self.thread {
            Some((alarms, slot)) if !tokio_clock_is_virtual() => {
                let generation = slot.generation.load(Ordering::Acquire);
                let at = std::time::Instant::now() + at.saturating_duration_since(Instant::now());
                let mut queue = lock(&alarms.queue);
                let first = queue.settings.peek().is_none_or(|Reverse(s)| at < s.at);
                queue.settings.push(Reverse(Setting { at, generation, slot: Arc::downgrade(slot) }));
                queue.sweep_if_stale();
                drop(queue);
                if first {
                    alarms.changed.notify_one();
                }
            }
            _ => {
                let tokio = self
                    .tokio
                    .get_or_insert_with(|| TokioSleep { sleep: Box::pin(tokio::time::sleep_until(at)), fresh: false });
                tokio.sleep.as_mut().reset(at);
                tokio.fresh = true;
            }
        }
    }

    /// Will not fire for any setting made so far.
    pub(crate) fn cancel(&mut self) {
        if let Some((_, slot)) = &self.thread {
            slot.generation.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(tokio) = &mut self.tokio {
            tokio.fresh = false;
        }
    }

    /// Whether the `Sleep` is due: polled once after each setting (to register with the
    /// wheel, which then wakes the alarm's waker). On the thread, always pending: the thread
    /// wakes the waker.
    pub(crate) fn poll_due(&mut self) -> Poll<()> {
        match &mut self.tokio {
            Some(tokio) if tokio.fresh => {
                tokio.fresh = false;
                tokio.sleep.as_mut().poll(&mut Context::from_waker(&self.waker))
            }
            _ => Poll::Pending,
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some((alarms, slot)) = &self.thread {
            // Its settings are stale from now on, so the sweep can take them.
            slot.generation.fetch_add(1, Ordering::AcqRel);
            let mut queue = lock(&alarms.queue);
            queue.alive -= 1;
            queue.sweep_if_stale();
            let last = queue.alive == 0;
            drop(queue);
            if last {
                alarms.changed.notify_one();
            }
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
        assert!(alarm.thread.is_some(), "the thread starts");
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
        let (_, waker, _) = counter();
        let probe = Alarm::new(waker);
        let alarms = probe.thread.as_ref().expect("the thread starts").0.clone();
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
            let (len, alive) = (queue.settings.len(), queue.alive);
            assert!(alive >= 50);
            assert!(len <= Queue::STALE_PER_ALARM * alive + 65, "{len} entries for {alive} alarms");
        }
        drop(held);
        for _ in 0..200 {
            let (_, waker, _) = counter();
            Alarm::new(waker).set(Instant::now() + Duration::from_secs(3600));
        }
        let queue = lock(&alarms.queue);
        assert!(queue.settings.len() <= Queue::STALE_PER_ALARM * queue.alive + 65, "dropped alarms are swept");
    }

    #[tokio::test]
    async fn without_the_thread_an_alarm_is_a_tokio_sleep_polled_once_per_setting() {
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
        let mut alarm = Alarm { waker, thread: None, tokio: None };
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

    #[tokio::test(start_paused = true)]
    async fn under_a_paused_clock_an_alarm_is_a_tokio_sleep_that_the_clock_drives() {
        let (count, waker, _rx) = counter();
        let mut alarm = Alarm::new(waker);
        assert!(tokio_clock_is_virtual());
        let real = std::time::Instant::now();
        alarm.set(Instant::now() + Duration::from_secs(3600));
        assert!(alarm.tokio.is_some(), "a tokio Sleep");
        assert!(alarm.poll_due().is_pending(), "registered with the wheel");
        // An hour of tokio's time passes at once: the runtime has nothing else to do.
        tokio::time::sleep(Duration::from_secs(3601)).await;
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "fired by tokio's clock");
        assert!(real.elapsed() < SLACK);
    }

    #[test]
    fn the_real_clock_is_not_virtual() {
        assert!(!tokio_clock_is_virtual());
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        assert!(!rt.block_on(async { tokio_clock_is_virtual() }));
    }

    #[test]
    fn the_thread_stops_once_no_alarm_is_left_and_starts_again_for_the_next() {
        let (_, waker, _) = counter();
        let alarm = Alarm::new(waker.clone());
        let alarms = alarm.thread.as_ref().expect("the thread runs").0.clone();
        drop(alarm);
        // Other tests' alarms may keep it running: wait until none is alive (bounded).
        let start = std::time::Instant::now();
        while !lock(&alarms.queue).stopped {
            assert!(start.elapsed() < LINGER * 20, "the thread never stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        let next = Alarm::new(waker);
        let (again, _) = next.thread.as_ref().expect("a new thread");
        assert!(!Arc::ptr_eq(again, &alarms));
    }
}
