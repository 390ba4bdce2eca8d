//! The outgoing byte budget of a connection's request/response answers.

use std::sync::Arc;
use tokio::sync::Semaphore;

/// Bytes of answers that handler tasks may have queued for the driver.
///
/// The command channel bounds how many answers wait, not how large they are: a thousand slow
/// handlers finishing at once could otherwise queue a thousand large answers while the peer
/// reads nothing. A task reserves an answer's size before queueing it; the driver releases it
/// when the answer enters its write buffer, whose own size is bounded by stopping intake (and
/// the polling of producers) while it is full.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Semaphore,
    size: usize,
}

impl Budget {
    pub(crate) fn new(size: usize) -> Budget {
        let size = size.clamp(1, u32::MAX as usize);
        Budget { permits: Semaphore::new(size), size }
    }

    /// Waits for room for `payload`: its size, at least 1, at most the whole budget (so a
    /// message larger than the budget still goes, alone).
    pub(crate) async fn reserve(self: &Arc<Self>, size: usize) -> Reserved {
        let size = size.clamp(1, self.size);
        let permits = u32::try_from(size).unwrap_or(u32::MAX);
        match self.permits.acquire_many(permits).await {
            Ok(permit) => {
                permit.forget();
                Reserved(Some((self.clone(), permits)))
            }
            // Never closed; a closed budget would only mean nothing is bounded any more.
            Err(_) => Reserved::none(),
        }
    }
}

/// A message's share of the [`Budget`], given back when dropped: when the driver has taken
/// the message, or when the task or command carrying it is dropped on the way (a cancelled
/// stream must not shrink the budget for good).
pub(crate) struct Reserved(Option<(Arc<Budget>, u32)>);

impl Reserved {
    /// No share (an error, which the budget does not count).
    pub(crate) fn none() -> Reserved {
        Reserved(None)
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some((budget, permits)) = self.0.take() {
            budget.permits.add_permits(permits as usize);
        }
    }
}
