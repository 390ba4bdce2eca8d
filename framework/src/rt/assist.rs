//! A client connection's driver, run by its own task and, while they wait, by its readers.
//!
//! The driver is a task of its own (see [`super::driver`]). A task that waits for a stream's
//! next message would then be woken by that task, after the driver's task was woken by the
//! socket: two hops per message where one would do. And a task woken by another task costs
//! more than one woken by the socket when it is a program's main future (`block_on`, as in
//! `#[tokio::main]`): tokio polls its I/O driver once more (a zero-timeout `epoll_wait`) before
//! it polls such a future again. So a [`PayloadStream`] that finds nothing queued polls the
//! driver itself, if nobody else is polling it ([`Assist::help`]), and so does a
//! request/response caller that is the connection's only one waiting (see
//! [`super::reply::Reply::helped_by`]): what the reader's task has just queued for sending
//! goes out at once, and the reader's task is woken by the socket directly when the next
//! message arrives.
//!
//! The driver's task still runs it whenever anything the driver waits on wakes it, so a
//! reader that stops polling stalls nothing: every waker the driver registers wakes its task
//! ([`Assist::task_waker`]); a reader's poll adds the reader's waker to the socket's read
//! readiness only (where it lasts until the next poll re-registers), never to the inbox or the
//! timer, so a reader is not woken by what it sends. The task skips a poll when nothing woke it
//! since the last poll began, by whoever ran it (that poll saw what there was).
//!
//! The future lives behind a lock that readers only try: a reader polled from inside the
//! driver (a stream the driver polls as a producer) or while another thread drives, or from
//! another runtime than the driver's (whose tasks and timers belong to the driver's), simply
//! waits to be woken as before. So does a reader outside the tasks of a multi-thread runtime
//! (`block_on`'s thread): the driver's task runs on a worker meanwhile, and the two would
//! contend for the driver. Such a caller still writes its own request, though, when it is the
//! connection's only request/response caller ([`Assist::drive_after`]): it queues the request
//! without waking the driver's task and polls the driver once, as a caller of a plain socket
//! writes its own request; the task is then woken by the socket alone, when the answer comes.
//!
//! [`PayloadStream`]: super::stream::PayloadStream

use super::sync::lock;
use crate::BoxFuture;
use futures_util::task::AtomicWaker;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Wake, Waker};

/// See the module doc.
pub(crate) struct Assist {
    inner: Mutex<Inner>,
    wake: Arc<TaskWake>,
    /// `wake` as a waker.
    task_waker: Waker,
    /// `wake.wakes` when the last poll began: the task need not poll again until it changes.
    polled_at: AtomicU64,
    /// The task found the driver being polled: whoever polls it wakes the task when done.
    retry: AtomicBool,
    /// The runtime the driver was started on.
    runtime: tokio::runtime::Id,
    /// That runtime is a multi-thread one: then a reader outside its tasks does not help (see
    /// [`Assist::help`]).
    multi_thread: bool,
}

struct Inner {
    /// The driver; gone once it has finished (or panicked, or its task was dropped).
    future: Option<BoxFuture<'static, ()>>,
    /// The last helping reader's waker, and the waker that wakes it and the task.
    both: Option<(Waker, Waker)>,
}

/// Wakes the driver's task, counting wake-ups. Without a lock: a reader's thread wakes the
/// task while the task's worker registers it (a lock there was contended on every call of a
/// caller on `block_on`'s thread).
struct TaskWake {
    task: AtomicWaker,
    wakes: AtomicU64,
}

// `AtomicWaker` is not `RefUnwindSafe` (it holds an `UnsafeCell`), which would take the auto
// trait away from `Client` and everything holding one. A panic cannot leave it inconsistent:
// its state changes by atomic operations alone, and a waker that panics while being cloned or
// woken leaves it as registered or as empty.
impl std::panic::RefUnwindSafe for TaskWake {}

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::AcqRel);
        self.task.wake();
    }
}

/// Wakes the driver's task and a reader that polled the driver.
struct Both {
    task: Arc<TaskWake>,
    reader: Waker,
}

impl Wake for Both {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.task.wake_by_ref();
        self.reader.wake_by_ref();
    }
}

impl fmt::Debug for Assist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assist").field("wakes", &self.wake.wakes.load(Ordering::Relaxed)).finish()
    }
}

impl Assist {
    /// A drive for a driver not yet started. Must be called within a tokio runtime: the
    /// driver is started on it.
    pub(crate) fn new() -> Arc<Assist> {
        let wake = Arc::new(TaskWake { task: AtomicWaker::new(), wakes: AtomicU64::new(0) });
        let handle = tokio::runtime::Handle::current();
        Arc::new(Assist {
            inner: Mutex::new(Inner { future: None, both: None }),
            task_waker: Waker::from(wake.clone()),
            wake,
            // Not a value `wakes` has yet: the first poll always runs.
            polled_at: AtomicU64::new(u64::MAX),
            retry: AtomicBool::new(false),
            runtime: handle.id(),
            multi_thread: matches!(handle.runtime_flavor(), tokio::runtime::RuntimeFlavor::MultiThread),
        })
    }

    /// The waker the driver registers with what it waits on (except the socket's reads, see
    /// the module doc): it wakes the driver's task.
    pub(crate) fn task_waker(&self) -> Waker {
        self.task_waker.clone()
    }

    /// Starts `driver` in a task of its own.
    pub(crate) fn start(self: &Arc<Self>, driver: impl Future<Output = ()> + Send + 'static) {
        self.locked().future = Some(Box::pin(driver));
        tokio::spawn(Task(self.clone()));
    }

    fn locked(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Polls the driver from a reader's task, if nobody else is polling it and the reader runs
    /// on the driver's runtime; the socket's read readiness then wakes the reader as well as
    /// the driver's task. Call only when the reader has nothing to read, and with the reader's
    /// own waker out of its queue: what this poll delivers to the reader is found by looking
    /// again, and a wake-up of the reader by its own poll would cost it another poll.
    pub(crate) fn help(&self, cx: &Context<'_>) {
        // On a multi-thread runtime, a reader outside its tasks (`block_on`'s thread, as in
        // `#[tokio::main]`) would poll the driver on one thread while the driver's task is
        // woken, by the same commands, on a worker: both then contend for the driver, a futex
        // call and a context switch a call (measured). The reader waits to be woken instead,
        // as with a plain task. (On the current-thread runtime, `block_on`'s future is where
        // helping saves the most: see the module doc.)
        if self.caller_writes() {
            return;
        }
        let Some(mut inner) = self.try_hold() else { return };
        let Inner { future, both } = &mut *inner;
        if future.is_none() {
            return;
        }
        // The same reader as last time if its waker has the same data: `will_wake` would
        // compare the vtables too, and a clone of tokio's `block_on` waker has another vtable
        // than the waker it was cloned from (one per codegen unit), so it never matched. A
        // false match would cost nothing but a fast path: the reader's own waker is in its
        // queue, and this waker always wakes the driver's task, which delivers there.
        let waker = match both {
            Some((reader, both)) if reader.data() == cx.waker().data() => &*both,
            slot => {
                let both = Waker::from(Arc::new(Both { task: self.wake.clone(), reader: cx.waker().clone() }));
                &slot.insert((cx.waker().clone(), both)).1
            }
        };
        let ended = self.poll_held(future, waker);
        self.release(inner, ended);
    }

    /// Whether a caller on this thread waits to be woken rather than polling the driver
    /// ([`Assist::help`]), and writes its own request instead ([`Assist::drive_after`]): on a
    /// multi-thread runtime, outside its tasks (`block_on`'s thread).
    pub(crate) fn caller_writes(&self) -> bool {
        self.multi_thread && tokio::task::try_id().is_none()
    }

    /// Calls `queue` (which queues a command without waking the driver's task) and then polls
    /// the driver once, with the waker of the driver's task: if nobody else is polling the
    /// driver and this thread is on the driver's runtime. Otherwise returns `None`, without
    /// calling `queue`, and the caller queues its command as anyone does.
    ///
    /// For a request/response caller on `block_on`'s thread of a multi-thread runtime (see
    /// [`Assist::caller_writes`]): the command would wake the driver's task on a worker, a
    /// futex call and a context switch, only for the task to write one frame. Polled here, the
    /// driver writes it at once; whatever it waits on next (the socket, for the answer) wakes
    /// the task, and the caller waits for its answer as before. The waker is the task's own,
    /// not the caller's as in [`Assist::help`]: the caller is woken once, by its answer, not
    /// first by the socket and then again by the task that read the answer.
    pub(crate) fn drive_after<R>(&self, queue: impl FnOnce() -> R) -> Option<R> {
        let mut inner = self.try_hold()?;
        let future = &mut inner.future;
        future.as_ref()?;
        let queued = queue();
        let ended = self.poll_held(future, &self.task_waker);
        self.release(inner, ended);
        Some(queued)
    }

    /// The driver, if nobody else holds it and this thread is on its runtime (whose tasks and
    /// timers the driver's are).
    fn try_hold(&self) -> Option<MutexGuard<'_, Inner>> {
        let inner = match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if tokio::runtime::Handle::try_current().map(|h| h.id()).ok() != Some(self.runtime) {
            return None;
        }
        Some(inner)
    }

    /// Polls the driver held in `future` (present) with `waker` outside its task; returns
    /// whether it has ended, taking it out of `future` then.
    fn poll_held(&self, future: &mut Option<BoxFuture<'static, ()>>, waker: &Waker) -> Option<BoxFuture<'static, ()>> {
        let driver = future.as_mut()?;
        self.polled_at.store(self.wake.wakes.load(Ordering::Acquire), Ordering::Release);
        // A panic in the driver (a producer's stream is user code) ends the connection, as it
        // would in the driver's task; it must not unwind into the caller.
        let ended = !matches!(
            catch_unwind(AssertUnwindSafe(|| driver.as_mut().poll(&mut Context::from_waker(waker)))),
            Ok(Poll::Pending)
        );
        if ended { future.take() } else { None }
    }

    /// Lets go of the driver after [`Assist::poll_held`]: drops it if it `finished` (after the
    /// lock, as dropping it drops handles whose drop may lock again), and wakes the task if it
    /// ended or tried to poll meanwhile.
    fn release(&self, inner: MutexGuard<'_, Inner>, finished: Option<BoxFuture<'static, ()>>) {
        drop(inner);
        let ended = finished.is_some();
        drop(finished);
        if ended || self.retry.swap(false, Ordering::AcqRel) {
            self.task_waker.wake_by_ref();
        }
    }

    /// The driver's task polls it: when something woke the task since the last poll began.
    fn poll_task(&self, cx: &Context<'_>) -> Poll<()> {
        self.wake.task.register(cx.waker());
        let seen = self.wake.wakes.load(Ordering::Acquire);
        if self.polled_at.load(Ordering::Acquire) == seen {
            return Poll::Pending;
        }
        // Set before trying, so that a holder that releases just after the try wakes the task.
        self.retry.store(true, Ordering::Release);
        let mut inner = match self.inner.try_lock() {
            Ok(inner) => inner,
            Err(TryLockError::WouldBlock) => return Poll::Pending,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        self.retry.store(false, Ordering::Release);
        self.polled_at.store(seen, Ordering::Release);
        let Some(driver) = inner.future.as_mut() else { return Poll::Ready(()) };
        if driver.as_mut().poll(&mut Context::from_waker(&self.task_waker)).is_pending() {
            return Poll::Pending;
        }
        let finished = inner.future.take();
        drop(inner);
        drop(finished);
        Poll::Ready(())
    }
}

/// The driver's task.
struct Task(Arc<Assist>);

impl Future for Task {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_task(cx)
    }
}

impl Drop for Task {
    /// The task is gone (finished, or dropped with its runtime): so is the driver, which would
    /// otherwise live on through the handles it holds, which hold this drive.
    fn drop(&mut self) {
        let driver = self.0.locked().future.take();
        drop(driver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// What a driver stand-in shows: its polls, the waker of its last poll, and whether it
    /// should finish.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        waker: Mutex<Option<Waker>>,
        ready: AtomicBool,
    }

    impl Probe {
        fn polls(&self) -> usize {
            self.polls.load(Ordering::SeqCst)
        }

        fn last_waker(&self) -> Waker {
            lock(&self.waker).take().expect("polled and pending")
        }
    }

    /// A driver stand-in: pending until its probe says `ready`.
    struct Fake(Arc<Probe>);

    impl Future for Fake {
        type Output = ();

        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::SeqCst);
            if self.0.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *lock(&self.0.waker) = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn fake() -> (Fake, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        (Fake(probe.clone()), probe)
    }

    /// Lets the driver's task run until it is idle.
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    struct CountWake(AtomicUsize);

    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_task_polls_only_when_woken_and_a_reader_can_poll_in_between() {
        let (f, probe) = fake();
        let drive = Assist::new();
        drive.start(f);
        settle().await;
        assert_eq!(probe.polls(), 1, "the task's first poll");
        let reader = Arc::new(CountWake(AtomicUsize::new(0)));
        let reader_waker = Waker::from(reader.clone());
        drive.help(&Context::from_waker(&reader_waker));
        assert_eq!(probe.polls(), 2, "the reader polled it");
        // What the reader's poll registered wakes both the reader and the task.
        probe.last_waker().wake();
        assert_eq!(reader.0.load(Ordering::SeqCst), 1);
        settle().await;
        assert_eq!(probe.polls(), 3, "the task ran on its wake-up");
        // Woken, but a reader's poll began after the wake-up: the task has nothing to see.
        probe.last_waker().wake();
        drive.help(&Context::from_waker(&reader_waker));
        settle().await;
        assert_eq!(probe.polls(), 4, "the task skipped its poll");
        probe.ready.store(true, Ordering::SeqCst);
        probe.last_waker().wake();
        settle().await;
        assert_eq!(probe.polls(), 5);
        assert!(drive.locked().future.is_none(), "a finished driver is dropped");
        drive.help(&Context::from_waker(&reader_waker));
        assert_eq!(probe.polls(), 5, "nothing is left to poll");
    }

    #[tokio::test]
    async fn a_driver_that_panics_under_a_reader_ends_without_unwinding_into_it() {
        struct Panics;
        impl Future for Panics {
            type Output = ();
            fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                panic!("a producer's stream panicked");
            }
        }
        let drive = Assist::new();
        // Not started as a task: the reader is the first to poll it.
        drive.locked().future = Some(Box::pin(Panics));
        drive.help(&Context::from_waker(Waker::noop()));
        assert!(drive.locked().future.is_none());
    }

    #[test]
    fn a_reader_on_another_runtime_leaves_the_driver_alone() {
        let home = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (f, probe) = fake();
        let drive = home.block_on(async {
            let drive = Assist::new();
            drive.locked().future = Some(Box::pin(f));
            drive
        });
        let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
        other.block_on(async { drive.help(&Context::from_waker(Waker::noop())) });
        drive.help(&Context::from_waker(Waker::noop()));
        assert_eq!(probe.polls(), 0);
        home.block_on(async { drive.help(&Context::from_waker(Waker::noop())) });
        assert_eq!(probe.polls(), 1);
    }

    #[tokio::test]
    async fn dropping_the_task_drops_the_driver() {
        let (f, _probe) = fake();
        let alive = Arc::new(());
        let held = alive.clone();
        let drive = Assist::new();
        drive.locked().future = Some(Box::pin(async move {
            let _held = held;
            f.await
        }));
        drop(Task(drive.clone()));
        assert_eq!(Arc::strong_count(&alive), 1);
    }

    /// A one-worker multi-thread runtime, and a driver stand-in started on it, once its task
    /// has polled it (on the worker).
    fn started_on_one_worker() -> (tokio::runtime::Runtime, Arc<Assist>, Arc<Probe>) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let (f, probe) = fake();
        let drive = runtime.block_on(async {
            let drive = Assist::new();
            drive.start(f);
            drive
        });
        for _ in 0..100 {
            if probe.polls() == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(probe.polls(), 1, "the task's first poll");
        (runtime, drive, probe)
    }

    #[test]
    fn on_a_multi_thread_runtime_only_its_tasks_help() {
        let (runtime, drive, probe) = started_on_one_worker();
        let reader = Waker::from(Arc::new(CountWake(AtomicUsize::new(0))));
        // `block_on`'s thread is not one of the runtime's tasks: it leaves the driver to the task.
        runtime.block_on(async { drive.help(&Context::from_waker(&reader)) });
        assert_eq!(probe.polls(), 1, "polled from block_on's thread");
        // A task of the runtime helps.
        let helper = drive.clone();
        runtime.block_on(runtime.spawn(async move { helper.help(&Context::from_waker(&reader)) })).unwrap();
        assert_eq!(probe.polls(), 2, "a task's help polls the driver");
        probe.ready.store(true, Ordering::SeqCst);
        drop(drive);
        drop(runtime);
    }

    #[test]
    fn a_caller_on_block_on_thread_queues_and_polls_once_with_the_tasks_waker() {
        let (runtime, drive, probe) = started_on_one_worker();
        let wakes = || drive.wake.wakes.load(Ordering::SeqCst);
        let before = wakes();
        runtime.block_on(async {
            assert!(drive.caller_writes(), "block_on's thread of a multi-thread runtime");
            let polls_when_queued = drive.drive_after(|| probe.polls());
            assert_eq!(polls_when_queued, Some(1), "queued before the poll");
        });
        assert_eq!(probe.polls(), 2, "polled once, by the caller");
        assert_eq!(wakes(), before, "the driver's task was not woken");
        // What the driver waits on next wakes its task, not the caller.
        probe.last_waker().wake();
        for _ in 0..100 {
            if probe.polls() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(probe.polls(), 3, "the task ran on the wake-up");
        // Held elsewhere: nothing is queued and nothing polled.
        let held = drive.locked();
        let mut queued = false;
        assert!(runtime.block_on(async { drive.drive_after(|| queued = true) }).is_none());
        drop(held);
        assert!(!queued);
        assert_eq!(probe.polls(), 3);
        // A task of the runtime is not such a caller.
        let inside = drive.clone();
        assert!(!runtime.block_on(runtime.spawn(async move { inside.caller_writes() })).unwrap());
        probe.ready.store(true, Ordering::SeqCst);
        drop(drive);
        drop(runtime);
    }
}
