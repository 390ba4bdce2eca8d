//! The driver's inbox: everything that asks a connection's driver to act — commands from
//! handles and handler tasks, signals from stream handles, producers woken by their streams —
//! behind one lock and one waker.
//!
//! Three channels (two queues and a ready set) cost the driver three polls, each with its own
//! atomics and waker registration, every time it waits; on a channel round trip that was most
//! of what the driver did. One inbox costs one uncontended lock.
//!
//! Commands are bounded: a [`Sender`] waits for room ([`COMMAND_CAPACITY`] queued at most), so
//! requesters and handler tasks slow down when the driver is behind. Signals are not: they are
//! sent from `Drop` (a cancel), which cannot wait, and are bounded by construction (see the
//! driver's module doc). The connection closes once the last [`Sender`] is dropped, as a
//! channel's receiver learns that its senders are gone.

use super::assist::Assist;
use super::command::{COMMAND_CAPACITY, Command, Control};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Semaphore;

/// See the module doc.
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Room for commands: a sender takes a permit, the driver gives it back on taking the
    /// command.
    room: Semaphore,
    /// Live [`Sender`]s.
    senders: AtomicUsize,
    /// The driver is running and looks at the inbox before it waits again: nobody needs to
    /// wake it. Producers are mostly woken by the driver itself (a channel's handler reading
    /// what the driver just queued), and a task that wakes itself is polled once more for
    /// nothing. Set by the driver whenever it runs; cleared, under the lock, just before it
    /// registers its waker, so a wake-up is never lost.
    busy: AtomicBool,
    /// Something may be queued: set with every change, under the lock; cleared when the driver
    /// takes everything. Lets the driver's look before it waits skip the lock when nothing is
    /// there (a stale answer only defers what came to the wait's own look, which locks).
    pending: AtomicBool,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").field("senders", &self.senders.load(Ordering::Relaxed)).finish()
    }
}

#[derive(Default)]
struct State {
    commands: VecDeque<Command>,
    controls: Vec<Control>,
    /// Producers whose streams woke them.
    ready: Vec<u32>,
    /// The driver, waiting.
    waker: Option<Waker>,
    /// The driver is gone: nothing is taken any more.
    closed: bool,
    /// The driver has been told that every sender is gone.
    orphan_reported: bool,
}

/// What the driver takes out of the inbox at once.
#[derive(Default)]
pub(crate) struct Taken {
    pub(crate) commands: VecDeque<Command>,
    pub(crate) controls: Vec<Control>,
    pub(crate) ready: Vec<u32>,
    /// Every [`Sender`] is gone (reported once).
    pub(crate) orphaned: bool,
}

impl Inbox {
    /// A new inbox and its first sender.
    pub(crate) fn new() -> (Arc<Inbox>, Sender) {
        let inbox = Arc::new(Inbox {
            state: Mutex::new(State::default()),
            room: Semaphore::new(COMMAND_CAPACITY),
            senders: AtomicUsize::new(1),
            busy: AtomicBool::new(false),
            pending: AtomicBool::new(false),
        });
        (inbox.clone(), Sender(inbox))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        super::sync::lock(&self.state)
    }

    /// Wakes the driver unless it is running, with `state` locked (and just changed).
    fn wake(&self, mut state: MutexGuard<'_, State>) {
        self.pending.store(true, Ordering::Release);
        let waker = if self.busy.load(Ordering::Acquire) { None } else { state.waker.take() };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Changes the inbox with `change` and wakes the driver, unless the driver is gone.
    fn put(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        if !state.closed {
            change(&mut state);
            self.wake(state);
        }
    }

    /// Queues a signal for the driver; dropped if the driver is gone.
    pub(crate) fn control(&self, control: Control) {
        self.put(|state| state.controls.push(control));
    }

    /// Marks producer `id` ready.
    fn mark_ready(&self, id: u32) {
        self.put(|state| state.ready.push(id));
    }

    /// A producer's waker: it marks `id` ready, once until the driver has looked.
    pub(crate) fn producer_waker(self: &Arc<Self>, id: u32) -> (Waker, Arc<ReadyFlag>) {
        let flag = Arc::new(ReadyFlag { id, queued: AtomicBool::new(false), inbox: self.clone() });
        (Waker::from(flag.clone()), flag)
    }

    /// Driver: it runs, and will look at the inbox before it waits.
    pub(crate) fn set_busy(&self) {
        self.busy.store(true, Ordering::Release);
    }

    /// Driver: takes what is there (commands only if `commands`), returning whether anything
    /// was; otherwise registers the driver's waker, and from then on anything arriving wakes
    /// it.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, taken: &mut Taken, commands: bool) -> Poll<()> {
        let mut state = self.lock();
        if self.take_locked(&mut state, taken, commands) {
            return Poll::Ready(());
        }
        self.busy.store(false, Ordering::Release);
        super::sync::register_waker(&mut state.waker, cx);
        Poll::Pending
    }

    /// Driver: takes what is there without waiting (commands only if `commands`); whether
    /// anything was.
    pub(crate) fn take_now(&self, taken: &mut Taken, commands: bool) -> bool {
        if !self.pending.load(Ordering::Acquire) {
            taken.orphaned = false;
            return false;
        }
        let mut state = self.lock();
        self.take_locked(&mut state, taken, commands)
    }

    fn take_locked(&self, state: &mut State, taken: &mut Taken, commands: bool) -> bool {
        taken.controls.append(&mut state.controls);
        taken.ready.append(&mut state.ready);
        if commands && !state.commands.is_empty() {
            let n = state.commands.len();
            taken.commands.extend(state.commands.drain(..));
            self.room.add_permits(n);
        }
        // Orphaned once no sender is left and every command they sent has been taken; told once.
        taken.orphaned = false;
        if !state.orphan_reported && self.senders.load(Ordering::Acquire) == 0 && state.commands.is_empty() {
            state.orphan_reported = true;
            taken.orphaned = true;
        }
        // Commands left behind (not taken while congested) are still pending.
        self.pending.store(!state.commands.is_empty(), Ordering::Release);
        !(taken.controls.is_empty() && taken.ready.is_empty() && taken.commands.is_empty()) || taken.orphaned
    }

    /// Driver: it is gone. Queued commands are dropped (their callers learn it through their
    /// reply channels), and senders waiting for room fail. The driver's waker goes too: handles
    /// may outlive the connection (a handler's task holds its call's), and a waker keeps the
    /// finished task's memory allocated.
    pub(crate) fn close(&self) {
        drop(self.close_taking());
    }

    /// Closes the inbox as [`Inbox::close`] does, handing over the commands that were still
    /// queued (for the driver to refuse them, rather than drop them unanswered).
    pub(crate) fn close_taking(&self) -> VecDeque<Command> {
        let (commands, waker) = {
            let mut state = self.lock();
            state.closed = true;
            state.controls.clear();
            state.ready = Vec::new();
            (std::mem::take(&mut state.commands), state.waker.take())
        };
        self.room.close();
        drop(waker);
        commands
    }
}

/// Closes the inbox when dropped: the driver's, so that however its task ends (a runtime
/// shutting down drops it mid-flight), queued commands are dropped and senders fail.
pub(crate) struct CloseOnDrop(pub(crate) Arc<Inbox>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A producer's waker; see [`Inbox::producer_waker`].
pub(crate) struct ReadyFlag {
    id: u32,
    queued: AtomicBool,
    inbox: Arc<Inbox>,
}

impl ReadyFlag {
    /// Driver: about to poll the producer; a wake-up from now on marks it ready again.
    pub(crate) fn clear(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl std::task::Wake for ReadyFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.inbox.mark_ready(self.id);
        }
    }
}

/// Sends commands to the driver; the connection closes once the last one is dropped.
pub(crate) struct Sender(Arc<Inbox>);

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Sender").finish()
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the driver must learn that nobody can ask for anything any more.
            self.0.wake(self.0.lock());
        }
    }
}

impl Sender {
    /// Queues `command`, waiting for room; gives it back if the driver is gone.
    pub(crate) async fn send(&self, command: Command) -> Result<(), Command> {
        if !self.reserve().await {
            return Err(command);
        }
        self.push(command, true)
    }

    /// [`send`](Self::send), by a caller that then runs the driver itself if it can (see
    /// [`Assist::drive_after`]): the command is queued without waking the driver's task, which
    /// the caller's poll makes needless. If another thread is running the driver, queued and
    /// woken as by `send`.
    pub(crate) async fn send_driving(&self, command: Command, assist: &Assist) -> Result<(), Command> {
        if !self.reserve().await {
            return Err(command);
        }
        let mut command = Some(command);
        if let Some(queued) = assist.drive_after(|| command.take().map(|c| self.push(c, false))) {
            return queued.unwrap_or(Ok(()));
        }
        match command {
            Some(command) => self.push(command, true),
            None => Ok(()),
        }
    }

    /// Waits for room for a command and takes it; false if the driver is gone.
    async fn reserve(&self) -> bool {
        // Mostly there is room: taking it without building `acquire`'s future saves most of
        // what sending costs.
        let permit = match self.0.room.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => return false,
            Err(tokio::sync::TryAcquireError::NoPermits) => self.0.room.acquire().await,
        };
        permit.map(|permit| permit.forget()).is_ok()
    }

    /// Queues `command`, in room taken by [`Sender::reserve`], waking the driver if `wake`.
    fn push(&self, command: Command, wake: bool) -> Result<(), Command> {
        let mut state = self.0.lock();
        if state.closed {
            return Err(command);
        }
        state.commands.push_back(command);
        if wake {
            self.0.wake(state);
        } else {
            self.0.pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// A reference that does not keep the connection open.
    pub(crate) fn downgrade(&self) -> WeakSender {
        WeakSender(self.0.clone())
    }
}

/// See [`Sender::downgrade`].
#[derive(Clone)]
pub(crate) struct WeakSender(Arc<Inbox>);

impl WeakSender {
    /// A sender, unless every sender is gone already (then the connection is closing).
    pub(crate) fn upgrade(&self) -> Option<Sender> {
        let mut n = self.0.senders.load(Ordering::Acquire);
        loop {
            if n == 0 {
                return None;
            }
            match self.0.senders.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Sender(self.0.clone())),
                Err(now) => n = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use futures_util::FutureExt;
    use std::sync::atomic::AtomicUsize;

    fn command(id: u32) -> Command {
        Command::Respond { id, result: Err(Status::cancelled("test")), reserved: crate::rt::budget::Reserved::none() }
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ids(taken: &Taken) -> Vec<u32> {
        taken.commands.iter().map(|c| if let Command::Respond { id, .. } = c { *id } else { 0 }).collect()
    }

    #[test]
    fn commands_are_bounded_and_taken_in_order() {
        let (inbox, tx) = Inbox::new();
        for id in 0..COMMAND_CAPACITY as u32 {
            assert!(tx.send(command(id)).now_or_never().unwrap().is_ok());
        }
        // Full: the next sender waits until the driver takes what is queued.
        let mut waiting = Box::pin(tx.send(command(9999)));
        assert!((&mut waiting).now_or_never().is_none());
        let mut taken = Taken::default();
        assert!(inbox.take_now(&mut taken, true));
        assert_eq!(ids(&taken), (0..COMMAND_CAPACITY as u32).collect::<Vec<_>>());
        assert!(waiting.now_or_never().unwrap().is_ok());
        taken.commands.clear();
        // Commands stay queued while the driver takes none (it is congested); signals do not.
        inbox.control(Control::Cancel(3));
        assert!(inbox.take_now(&mut taken, false));
        assert!(taken.commands.is_empty() && matches!(taken.controls[..], [Control::Cancel(3)]));
        assert!(inbox.take_now(&mut taken, true));
        assert_eq!(ids(&taken), [9999]);
    }

    #[test]
    fn a_waiting_driver_is_woken_and_a_running_one_is_not() {
        let (inbox, tx) = Inbox::new();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut taken = Taken::default();
        assert!(inbox.poll_take(&mut cx, &mut taken, true).is_pending());
        inbox.control(Control::Cancel(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Running: it will look before it waits, so nothing wakes it.
        inbox.set_busy();
        assert!(tx.send(command(2)).now_or_never().unwrap().is_ok());
        let (producer, _flag) = inbox.producer_waker(7);
        producer.wake_by_ref();
        producer.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(inbox.poll_take(&mut cx, &mut taken, true).is_ready());
        assert_eq!(taken.ready, [7], "a producer is marked once until the driver looks");
        assert_eq!(ids(&taken), [2]);
    }

    #[test]
    fn the_last_sender_gone_is_reported_once_and_weak_senders_cannot_revive_it() {
        let (inbox, tx) = Inbox::new();
        let weak = tx.downgrade();
        let second = weak.upgrade().unwrap();
        let mut taken = Taken::default();
        drop(tx);
        assert!(!inbox.take_now(&mut taken, true));
        drop(second);
        assert!(inbox.take_now(&mut taken, true) && taken.orphaned);
        assert!(!inbox.take_now(&mut taken, true) && !taken.orphaned, "told once");
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn a_closed_inbox_drops_what_it_held_and_refuses_more() {
        let (inbox, tx) = Inbox::new();
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A queued command with a reply channel: closing drops it, so its caller hears.
        let queued = Command::Open {
            kind: crate::conn::Kind::RequestStream,
            metadata: bytes::Bytes::new(),
            data: bytes::Bytes::new(),
            complete: false,
            inbound: None,
            outbound: None,
            opened: crate::rt::command::Opened::Reply(reply),
        };
        assert!(tx.send(queued).now_or_never().unwrap().is_ok());
        inbox.close();
        assert!(answer.now_or_never().unwrap().is_err());
        assert!(tx.send(command(2)).now_or_never().unwrap().is_err());
        inbox.control(Control::Cancel(1));
        let mut taken = Taken::default();
        inbox.take_now(&mut taken, true);
        assert!(taken.controls.is_empty() && taken.commands.is_empty());
    }
}
