//! How a server tells its connections to shut down, and counts them.

use super::command::Control;
use super::inbox::Inbox;
use super::sync::lock;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How a server tells its connections to shut down: each connection's driver registers its
/// inbox, and a shutdown queues [`Control::Shutdown`] in every inbox still alive (and in any
/// registered later). A signal in the inbox costs a running connection nothing, where a watch
/// channel polled on every turn of every driver cost each turn a few hundred instructions.
///
/// It also counts the server's live connections (see [`Live`]).
#[derive(Debug, Default)]
pub(crate) struct ShutdownHub {
    state: std::sync::Mutex<HubState>,
    live: AtomicUsize,
    /// How long a connection told to shut down lets its streams finish
    /// (`ServerBuilder::shutdown_grace`).
    grace: std::time::Duration,
}

#[derive(Debug, Default)]
struct HubState {
    stopping: bool,
    inboxes: Vec<std::sync::Weak<Inbox>>,
    /// Live inboxes after the last sweep of dead ones: the next sweep comes when the list has
    /// doubled, so registering stays O(1) amortised and the list at most twice the live ones.
    swept: usize,
}

impl ShutdownHub {
    /// A hub whose connections, told to shut down, give their streams `grace` to finish.
    pub(crate) fn new(grace: std::time::Duration) -> ShutdownHub {
        ShutdownHub { grace, ..ShutdownHub::default() }
    }

    /// See [`ShutdownHub::new`].
    pub(crate) fn grace(&self) -> std::time::Duration {
        self.grace
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        lock(&self.state)
    }

    pub(crate) fn register(&self, inbox: &Arc<Inbox>) {
        let mut state = self.lock();
        if state.stopping {
            drop(state);
            inbox.control(Control::Shutdown);
            return;
        }
        if state.inboxes.len() >= 2 * state.swept.max(16) {
            state.inboxes.retain(|weak| weak.strong_count() > 0);
            state.swept = state.inboxes.len();
        }
        state.inboxes.push(Arc::downgrade(inbox));
    }

    /// Tells every connection, and every one registered from now on, to shut down.
    pub(crate) fn shutdown(&self) {
        let inboxes = {
            let mut state = self.lock();
            state.stopping = true;
            std::mem::take(&mut state.inboxes)
        };
        for inbox in inboxes.iter().filter_map(std::sync::Weak::upgrade) {
            inbox.control(Control::Shutdown);
        }
    }

    /// Registered inboxes, dead ones included (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().inboxes.len()
    }

    /// Counts a connection as live until the returned guard is dropped.
    pub(crate) fn live(self: &Arc<Self>) -> Live {
        self.live.fetch_add(1, Ordering::Relaxed);
        Live(self.clone())
    }

    /// Connections accepted and not yet over.
    pub(crate) fn connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// A live connection of a server, counted by its [`ShutdownHub`] until dropped: held by the
/// connection's task, so it is dropped however the connection ends (closed, or its task
/// dropped before or while it ran). One count a connection, never per message.
#[derive(Debug)]
pub(crate) struct Live(Arc<ShutdownHub>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::inbox::Taken;

    fn shutdowns(inbox: &Inbox) -> usize {
        let mut taken = Taken::default();
        inbox.take_now(&mut taken, true);
        taken.controls.iter().filter(|c| matches!(c, Control::Shutdown)).count()
    }

    #[test]
    fn a_shutdown_reaches_every_live_connection_and_every_later_one_once() {
        let hub = ShutdownHub::default();
        let (a, _a) = Inbox::new();
        let (b, _b) = Inbox::new();
        hub.register(&a);
        hub.register(&b);
        {
            let (gone, _sender) = Inbox::new();
            hub.register(&gone);
        }
        assert_eq!((shutdowns(&a), shutdowns(&b)), (0, 0), "nothing before the shutdown");
        hub.shutdown();
        assert_eq!((shutdowns(&a), shutdowns(&b)), (1, 1));
        hub.shutdown();
        assert_eq!(shutdowns(&a), 0, "told once");
        let (late, _late) = Inbox::new();
        hub.register(&late);
        assert_eq!(shutdowns(&late), 1, "a connection accepted after the shutdown is told at once");
    }

    #[test]
    fn the_hub_forgets_closed_connections() {
        let hub = ShutdownHub::default();
        let (live, _sender) = Inbox::new();
        hub.register(&live);
        for _ in 0..1_000 {
            let (gone, _sender) = Inbox::new();
            hub.register(&gone);
        }
        assert!(hub.len() <= 32, "{} registrations kept for one live connection", hub.len());
        hub.shutdown();
        assert_eq!(shutdowns(&live), 1);
    }
}
