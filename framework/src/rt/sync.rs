//! Small synchronisation helpers every part of the runtime uses.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Waker};

/// Locks `mutex` whether or not it is poisoned: nothing in Weft panics while holding one of
/// its locks, so a poisoned one still guards a consistent state, and a panic elsewhere must
/// not take the connection down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `lock` whether or not it is poisoned (see [`lock`]).
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `lock` whether or not it is poisoned (see [`lock`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the waker of `cx` in `slot` to be woken later, unless the one there already wakes the
/// same task (cloning a waker is not free, and a task polls with the same one every time).
pub(crate) fn register_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        slot => *slot = Some(cx.waker().clone()),
    }
}
