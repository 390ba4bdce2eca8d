//! The interop service's implementation, `echo.Echo` as the table in tests/interop/README.md
//! says, served by `interop_server` and by `browser_server`.

use super::{Echo, MAX_CHANNEL_COUNT, MAX_STREAM_N};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Mutex;
use weft::{Status, Streaming};

/// The interop service's implementation.
#[derive(Default)]
pub(crate) struct EchoService {
    /// Fires counted per key, and their total (the answer to FireCount with an empty key).
    fires: Mutex<FireCounts>,
}

#[derive(Default)]
struct FireCounts {
    by_key: HashMap<Bytes, u64>,
    total: u64,
}

impl Echo for EchoService {
    async fn unary(&self, data: Bytes) -> Result<Bytes, Status> {
        Ok(data)
    }

    async fn error(&self, message: Bytes) -> Result<Bytes, Status> {
        // Code::Unknown is written on the wire as the bare message (see weft::Status), so the
        // ERROR[APPLICATION_ERROR] text is exactly the request data: what a peer that knows
        // nothing of Weft's `CODE: message` convention must read back.
        Err(Status::unknown(String::from_utf8_lossy(&message).into_owned()))
    }

    async fn server_stream(
        &self,
        n: Bytes,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        let n = parse_count(&n).ok_or_else(|| {
            Status::invalid_argument(format!(
                "ServerStream wants an ASCII decimal 0..={MAX_STREAM_N}, got {:?}",
                String::from_utf8_lossy(&n)
            ))
        })?;
        // Lazy: the runtime polls this only while the requester has granted credit, so a
        // million-item stream costs nothing beyond what the peer asked for.
        Ok(futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(i.to_string())))))
    }

    async fn channel(
        &self,
        msgs: Streaming<Bytes>,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        // Every inbound message (the one inside REQUEST_CHANNEL first) goes straight back; the
        // response stream ends when the requester's does, so the channel completes after it.
        // Credit both ways is the runtime's: inbound REQUEST_N follows consumption, outbound
        // messages wait for the requester's credit.
        Ok(msgs.map(|msg| msg))
    }

    async fn channel_count(
        &self,
        mut msgs: Streaming<Bytes>,
    ) -> Result<impl Stream<Item = Result<Bytes, Status>> + Send + 'static, Status> {
        let first = msgs.message().await?.unwrap_or_default();
        let n = parse_count(&first).filter(|n| (1..=MAX_CHANNEL_COUNT).contains(n)).ok_or_else(|| {
            Status::invalid_argument(format!(
                "ChannelCount wants an ASCII decimal 1..={MAX_CHANNEL_COUNT} first, got {:?}",
                String::from_utf8_lossy(&first)
            ))
        })?;
        // The requester's half is counted to its end by a task of its own, so it goes on
        // whatever credit this half has; the response ends only after it (ERROR on a count
        // other than N), so a requester that sees COMPLETE knows both halves completed.
        let requester_half = AbortOnDrop(tokio::spawn(async move {
            let mut received = 1;
            while msgs.message().await?.is_some() {
                received += 1;
            }
            if received == n {
                Ok(())
            } else {
                Err(Status::invalid_argument(format!("ChannelCount {n}: the requester sent {received} payloads")))
            }
        }));
        let items = futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(i.to_string()))));
        let end = futures_util::stream::once(async move {
            let mut requester_half = requester_half;
            match (&mut requester_half.0).await {
                Ok(counted) => counted,
                Err(e) => Err(Status::internal(format!("ChannelCount: the counting task failed: {e}"))),
            }
        })
        .filter_map(|counted| std::future::ready(counted.err().map(Err)));
        Ok(items.chain(end))
    }

    async fn fire(&self, key: Bytes) {
        let mut fires = self.fires.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A new key is kept as a copy: the request's bytes are a slice of the connection's read
        // buffer, and keeping the slice would keep that whole buffer (64 KiB or more) for the
        // life of the server, one for every connection that fired under a key of its own.
        match fires.by_key.get_mut(&key) {
            Some(count) => *count += 1,
            None => {
                fires.by_key.insert(Bytes::copy_from_slice(&key), 1);
            }
        }
        fires.total += 1;
    }

    async fn fire_count(&self, key: Bytes) -> Result<Bytes, Status> {
        let fires = self.fires.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = if key.is_empty() { fires.total } else { fires.by_key.get(&key).copied().unwrap_or(0) };
        Ok(Bytes::from(count.to_string()))
    }
}

/// A task that is aborted when this is dropped (a response stream that goes away, cancelled or
/// with its connection, takes its helper with it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An ASCII decimal in 0..=MAX_STREAM_N, nothing else (no sign, no spaces, not empty).
fn parse_count(data: &[u8]) -> Option<u64> {
    if data.is_empty() || data.len() > 7 || !data.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(data).ok()?.parse().ok()?;
    (n <= MAX_STREAM_N).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::{EchoService, parse_count};
    use crate::interop::Echo;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use weft::{Code, Streaming};

    /// What `channel_count` answers to `inbound`: its items, then how it ended.
    async fn channel_count(inbound: &[&'static str]) -> (Vec<Bytes>, Result<(), Code>) {
        let msgs =
            Streaming::from_messages(inbound.iter().map(|m| Bytes::from_static(m.as_bytes())).collect::<Vec<_>>());
        let mut out = match EchoService::default().channel_count(msgs).await {
            Ok(out) => Box::pin(out),
            Err(status) => return (Vec::new(), Err(status.code())),
        };
        let mut items = Vec::new();
        while let Some(item) = out.next().await {
            match item {
                Ok(item) => items.push(item),
                Err(status) => return (items, Err(status.code())),
            }
        }
        (items, Ok(()))
    }

    #[tokio::test]
    async fn channel_count_sends_n_and_completes_after_n_inbound() {
        let (items, end) = channel_count(&["3", "a", "b"]).await;
        assert_eq!(items, ["0", "1", "2"]);
        assert_eq!(end, Ok(()));
        assert_eq!(channel_count(&["1"]).await, (vec![Bytes::from_static(b"0")], Ok(())));
    }

    #[tokio::test]
    async fn channel_count_fails_on_another_inbound_count_or_a_bad_n() {
        assert_eq!(channel_count(&["3", "a"]).await.1, Err(Code::InvalidArgument));
        assert_eq!(channel_count(&["2", "a", "b"]).await.1, Err(Code::InvalidArgument));
        for bad in [&["0"][..], &["1001"], &["x"], &[]] {
            assert_eq!(channel_count(bad).await, (Vec::new(), Err(Code::InvalidArgument)), "{bad:?}");
        }
    }

    #[test]
    fn counts_are_plain_ascii_decimals_up_to_a_million() {
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b"1000000"), Some(1_000_000));
        for bad in [&b""[..], b"1000001", b"-1", b" 5", b"5 ", b"+5", b"x", b"99999999999999999999"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }
}
