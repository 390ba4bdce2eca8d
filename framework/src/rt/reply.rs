//! A request/response caller's end of its reply slot ([`super::slot`]): a future that resolves
//! to the answer, and cancels the stream if dropped before.

use super::assist::Assist;
use super::command::Control;
use super::inbox::Inbox;
use super::slot::{Answer, ReplySender, Slot};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// A new slot: the driver's end and the caller's.
pub(crate) fn slot(inbox: &Inbox) -> (ReplySender, Reply<'_>) {
    let slot = Arc::new(Slot::default());
    (ReplySender(Some(slot.clone())), Reply { slot, inbox, helper: None })
}

/// The caller's end: resolves to the answer, or `None` if the driver went away without one.
/// Dropped before that (the caller gave up), it cancels the stream if the driver opened one.
pub(crate) struct Reply<'a> {
    slot: Arc<Slot>,
    inbox: &'a Inbox,
    /// The connection's driver, which the caller may run, and how many request/response callers of the connection wait.
    helper: Option<(&'a Assist, &'a AtomicUsize)>,
}

impl<'a> Reply<'a> {
    /// Lets the caller run the connection while it waits (see [`super::assist`]), when it is
    /// the connection's only request/response caller waiting: one call in flight, as a program
    /// that makes its calls one after another has. With many in flight each would poll the
    /// driver, where one poll serves them all.
    pub(crate) fn helped_by(mut self, assist: &'a Assist, waiting: &'a AtomicUsize) -> Reply<'a> {
        waiting.fetch_add(1, Ordering::Relaxed);
        self.helper = Some((assist, waiting));
        self
    }

    /// Whether this is the connection's only request/response caller waiting.
    pub(crate) fn is_lone(&self) -> bool {
        self.helper.is_some_and(|(_, waiting)| waiting.load(Ordering::Relaxed) == 1)
    }
}

impl Future for Reply<'_> {
    type Output = Option<Answer>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Answer>> {
        if let Some((assist, _)) = self.helper
            && self.is_lone()
        {
            if let Some(outcome) = self.slot.outcome(None) {
                return Poll::Ready(outcome);
            }
            assist.help(cx);
        }
        match self.slot.outcome(Some(cx)) {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        if let Some((_, waiting)) = self.helper {
            waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(id) = self.slot.give_up() {
            self.inbox.control(Control::Cancel(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Payload, Status};
    use futures_util::FutureExt;

    fn taken(inbox: &Inbox) -> Vec<Control> {
        let mut taken = crate::rt::inbox::Taken::default();
        inbox.take_now(&mut taken, true);
        taken.controls
    }

    #[test]
    fn the_answer_reaches_the_caller_and_nothing_is_cancelled() {
        let (inbox, _sender) = Inbox::new();
        let (tx, mut reply) = slot(&inbox);
        assert!(!tx.assign(3));
        assert!((&mut reply).now_or_never().is_none(), "no answer yet");
        tx.send(Ok(Payload::new("hi")));
        assert_eq!((&mut reply).now_or_never(), Some(Some(Ok(Payload::new("hi")))));
        drop(reply);
        assert!(taken(&inbox).is_empty());
    }

    #[test]
    fn a_driver_that_goes_away_leaves_no_answer() {
        let (inbox, _sender) = Inbox::new();
        let (tx, reply) = slot(&inbox);
        drop(tx);
        assert_eq!(reply.now_or_never(), Some(None));
        assert!(taken(&inbox).is_empty(), "nothing to cancel");
    }

    #[test]
    fn giving_up_cancels_exactly_once_whichever_side_comes_first() {
        // The caller gives up after the driver opened the stream: the caller cancels it.
        let (inbox, _sender) = Inbox::new();
        let (tx, reply) = slot(&inbox);
        assert!(!tx.assign(5));
        drop(reply);
        assert!(matches!(taken(&inbox)[..], [Control::Cancel(5)]));
        tx.send(Ok(Payload::default()));

        // The caller gives up before: the driver learns it when it opens the stream.
        let (inbox, _sender) = Inbox::new();
        let (tx, reply) = slot(&inbox);
        drop(reply);
        assert!(tx.assign(7), "the driver must cancel");
        assert!(taken(&inbox).is_empty(), "and the caller did not");

        // The answer came first: nothing to cancel.
        let (inbox, _sender) = Inbox::new();
        let (tx, reply) = slot(&inbox);
        assert!(!tx.assign(9));
        tx.send(Err(Status::internal("no")));
        drop(reply);
        assert!(taken(&inbox).is_empty());
    }

    #[tokio::test]
    async fn only_a_lone_caller_runs_the_connection() {
        // A driver stand-in that counts its polls.
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let drive = Assist::new();
        drive.start(std::future::poll_fn(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Poll::<()>::Pending
        }));
        tokio::task::yield_now().await;
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the driver's task polled it once");
        let (inbox, _sender) = Inbox::new();
        let waiting = AtomicUsize::new(0);
        let (_a_tx, mut a) = slot(&inbox);
        a = a.helped_by(&drive, &waiting);
        let (b_tx, mut b) = slot(&inbox);
        b = b.helped_by(&drive, &waiting);
        assert!((&mut a).now_or_never().is_none());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "two callers wait: neither polls the driver");
        b_tx.send(Ok(Payload::new("b")));
        assert_eq!(b.now_or_never(), Some(Some(Ok(Payload::new("b")))));
        assert_eq!(waiting.load(Ordering::SeqCst), 1);
        assert!((&mut a).now_or_never().is_none());
        assert_eq!(polls.load(Ordering::SeqCst), 2, "the one left waiting polled it");
        drop(a);
        assert_eq!(waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_waiting_caller_is_woken_from_another_task() {
        let (inbox, _sender) = Inbox::new();
        let (tx, reply) = slot(&inbox);
        let answer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(Ok(Payload::new("later")));
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reply).await.expect("woken");
        assert_eq!(got, Some(Ok(Payload::new("later"))));
        answer.await.unwrap();
    }
}
