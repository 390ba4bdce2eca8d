//! A request/response's reply slot: one shared record for the stream id, the caller giving
//! up, and the answer, behind one uncontended lock. The driver's end is [`ReplySender`]; the
//! caller's is [`Reply`](super::reply::Reply).
//!
//! A request/response caller used to wait on a oneshot channel for its answer and share a
//! second record with the driver to learn the stream id to cancel: two allocations and two
//! sets of atomics per call, most of what a call cost its caller beyond the frames. One slot
//! does both jobs, and makes the cancel handshake plain: the driver records the id and the
//! caller records that it gave up under the same lock, so whichever comes second sees the
//! other's fact and exactly one of them sends the CANCEL.

use super::sync::{lock, register_waker};
use crate::{Payload, Status};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

/// The answer of one request/response.
pub(crate) type Answer = Result<Payload, Status>;

#[derive(Default)]
pub(crate) struct Slot(Mutex<State>);

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// Records `outcome` unless one is there, and wakes the caller.
    fn settle(&self, outcome: Outcome) {
        let mut state = self.lock();
        if !matches!(state.outcome, Outcome::Waiting) {
            return;
        }
        state.outcome = outcome;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[derive(Default)]
struct State {
    /// The stream id, once the driver has opened the stream (ids are never 0).
    id: u32,
    /// The caller stopped waiting.
    gave_up: bool,
    outcome: Outcome,
    waker: Option<Waker>,
}

#[derive(Default)]
enum Outcome {
    #[default]
    Waiting,
    Ready(Answer),
    /// The driver dropped its end without answering (the connection went away).
    Dropped,
    /// The caller has the answer.
    Taken,
}

/// The driver's end.
pub(crate) struct ReplySender(pub(crate) Option<Arc<Slot>>);

impl ReplySender {
    /// Records the stream id; true if the caller has already given up (cancel the stream now).
    pub(crate) fn assign(&self, id: u32) -> bool {
        self.0.as_ref().is_some_and(|slot| {
            let mut state = slot.lock();
            state.id = id;
            state.gave_up
        })
    }

    /// Hands the caller its answer.
    pub(crate) fn send(mut self, answer: Answer) {
        if let Some(slot) = self.0.take() {
            slot.settle(Outcome::Ready(answer));
        }
    }
}

impl Drop for ReplySender {
    fn drop(&mut self) {
        // Not after `send`, which took the slot.
        if let Some(slot) = self.0.take() {
            slot.settle(Outcome::Dropped);
        }
    }
}

impl Slot {
    /// The caller's look: the outcome, if there is one (`None` inside if the driver went away
    /// without an answer); otherwise registers `cx`'s waker, or without `cx` takes out any
    /// waker registered before (a poll of the driver from the caller then does not wake it).
    #[inline(always)]
    pub(crate) fn outcome(&self, cx: Option<&Context<'_>>) -> Option<Option<Answer>> {
        let mut state = self.lock();
        match std::mem::replace(&mut state.outcome, Outcome::Taken) {
            Outcome::Ready(answer) => Some(Some(answer)),
            Outcome::Dropped | Outcome::Taken => Some(None),
            Outcome::Waiting => {
                state.outcome = Outcome::Waiting;
                match cx {
                    Some(cx) => register_waker(&mut state.waker, cx),
                    None => state.waker = None,
                }
                None
            }
        }
    }

    /// The caller gives up: the id of the stream to cancel, if the driver opened one and has
    /// not answered (then the driver, which reads the fact under the same lock, does not).
    pub(crate) fn give_up(&self) -> Option<u32> {
        let mut state = self.lock();
        if !matches!(state.outcome, Outcome::Waiting) {
            return None;
        }
        state.gave_up = true;
        (state.id != 0).then_some(state.id)
    }
}
