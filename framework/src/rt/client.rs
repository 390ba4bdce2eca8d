//! The requester's handle on a connection: [`Client`] and its calls, one per interaction
//! model. (Its constructors, which start the connection, are in [`super::connect`].)

use super::command::{Command, Control, Inbound, Opened};
use super::deadline;
use super::endpoint::Upstream;
use super::handles::Handles;
use super::inbox;
use super::reply;
use super::routing::request_metadata;
use crate::conn::Kind;
use crate::{Call, Payload, PayloadStream, Responses, Status};
use bytes::Bytes;
use futures_util::StreamExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A handle for making requests on one connection. Cheap to clone; every clone shares the
/// connection, and many calls run on it at once. The connection closes when the last clone
/// and the last stream obtained from it are dropped, or on [`Client::close`].
///
/// A client built with [`ClientBuilder::reconnect`](crate::ClientBuilder::reconnect) is one
/// that connects again when its connection drops (a server restart): each call runs on the
/// connection current when it is made.
///
/// ```
/// # async fn demo() -> Result<(), weft::Status> {
/// use weft::{Call, Client};
///
/// let client = Client::connect("127.0.0.1:7878").await?;
/// let reply = client.request_response(Call::new("echo.Echo/Unary"), "hi".into()).await?;
/// println!("{:?}", reply.data);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    commands: inbox::Sender,
    handles: Handles,
    /// The calls' default timeout (see [`Client::with_timeout`]).
    timeout: Option<Duration>,
    /// A reconnecting or balancing client's endpoint (or endpoints), whose current
    /// connection its calls run on (`commands` and `handles` are then its first connection's,
    /// for what is the same on every connection: the data MIME type its builder announces).
    endpoint: Option<Arc<Upstream>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("closed", &self.handles.closed.borrow().is_some()).finish()
    }
}

impl Client {
    pub(crate) fn from_parts(commands: inbox::Sender, handles: Handles) -> Client {
        Client { commands, handles, timeout: None, endpoint: None }
    }

    /// `first` (the first connection), as the handle on `endpoint`.
    pub(crate) fn of_endpoint(first: Client, endpoint: Upstream) -> Client {
        // Not `first`'s sender: holding one keeps a connection open, and the first
        // connection must close when its endpoint lets it go (a balancer's server removed).
        let (unused, commands) = inbox::Inbox::new();
        unused.close();
        Client { commands, endpoint: Some(Arc::new(endpoint)), ..first }
    }

    /// Runs `attempt` (a call made on a plain client) on the endpoint's current connection,
    /// with this client's deadline made the call's own (a connection has no default timeout).
    /// A call that connection did not process because it is closing (refused before anything
    /// was sent, or REJECTED by a server that had begun to close) runs again on the next
    /// connection, [`Client::ATTEMPTS`] times at most: nothing of it reached a handler, and a server's
    /// graceful close should cost its clients no failed call. Any other failure is the call's.
    ///
    /// A call marked idempotent, on a client with a retry policy, is also sent again when it
    /// fails with `UNAVAILABLE` (within the policy's attempts, budget and the call's deadline),
    /// and, if `hedge` (a request/response) and the policy hedges, sent a second time when
    /// its answer is late.
    async fn through<R, F, A>(&self, endpoint: &Upstream, mut call: Call, hedge: bool, attempt: F) -> Result<R, Status>
    where
        // A future that owns what it uses (not an `AsyncFn`, whose borrowing future would
        // make the call's future `Send` for one lifetime only, not for all).
        F: Fn(Client, Call) -> A,
        A: Future<Output = Result<R, Status>>,
    {
        let deadline = self.deadline_of(&call);
        call.set_deadline(deadline);
        match endpoint.retry.as_ref().filter(|_| call.is_idempotent()) {
            None => Self::unprocessed_again(endpoint, &call, deadline, &attempt).await,
            // Boxed apart: the loop, the hedge and their timers would otherwise make every
            // call's future several times larger, retried or not (measured: 5.6 KB against
            // 2 KB, a fifth of the throughput of a reconnecting client in copies).
            Some(retry) => Box::pin(Self::retried(endpoint, call, deadline, hedge, attempt, retry)).await,
        }
    }

    /// [`Client::through`] for a call a retry policy applies to.
    async fn retried<R, F, A>(
        endpoint: &Upstream,
        call: Call,
        deadline: Option<Instant>,
        hedge: bool,
        attempt: F,
        retry: &super::retry::Retrying,
    ) -> Result<R, Status>
    where
        F: Fn(Client, Call) -> A,
        A: Future<Output = Result<R, Status>>,
    {
        retry.deposit();
        let hedge_after = retry.policy.hedge_delay().filter(|_| hedge);
        let mut retries = 0;
        loop {
            let once = Self::unprocessed_again(endpoint, &call, deadline, &attempt);
            let outcome = match hedge_after {
                Some(delay) => Self::hedged(endpoint, &call, deadline, &attempt, once, delay, retry).await,
                None => once.await,
            };
            match outcome {
                Err(status)
                    if status.code() == crate::Code::Unavailable
                        && retries + 1 < retry.policy.max_attempts_of()
                        && !endpoint.is_closed()
                        && retry.withdraw() =>
                {
                    retries += 1;
                    let wait = retry.policy.wait(retries, super::balance::random_unit());
                    if deadline.is_some_and(|deadline| Instant::now() + wait >= deadline) {
                        return Err(status);
                    }
                    tokio::time::sleep(wait).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// One attempt of a call through `endpoint`, made again on the next connection while the
    /// connections refuse it unprocessed (see [`Client::through`]).
    async fn unprocessed_again<R, F, A>(
        endpoint: &Upstream,
        call: &Call,
        deadline: Option<Instant>,
        attempt: &F,
    ) -> Result<R, Status>
    where
        F: Fn(Client, Call) -> A,
        A: Future<Output = Result<R, Status>>,
    {
        let mut left = Self::ATTEMPTS;
        loop {
            // A connection ready now is taken without a future of waiting for one.
            let (conn, _in_flight) = match endpoint.ready() {
                Some(ready) => ready,
                None => endpoint.connection(deadline, call.route()).await?,
            };
            // The handles alone are kept to look at afterwards: the connection goes to the
            // attempt, a clone of it would cost its sender count twice.
            let handles = conn.handles.clone();
            match attempt(conn, call.clone()).await {
                Err(status) if status.is_unprocessed() && left > 1 && handles.refuses_calls() => {
                    left -= 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// `first`, and, if it has no outcome after `delay` and the budget allows, a second copy
    /// of the call: the first success wins (the other is dropped, which cancels it), or the
    /// last failure if both fail.
    async fn hedged<R, F, A>(
        endpoint: &Upstream,
        call: &Call,
        deadline: Option<Instant>,
        attempt: &F,
        first: impl Future<Output = Result<R, Status>>,
        delay: Duration,
        retry: &super::retry::Retrying,
    ) -> Result<R, Status>
    where
        F: Fn(Client, Call) -> A,
        A: Future<Output = Result<R, Status>>,
    {
        use futures_util::future::{Either, select};
        let mut first = std::pin::pin!(first);
        if let Ok(outcome) = tokio::time::timeout(delay, &mut first).await {
            return outcome;
        }
        if !retry.withdraw() {
            return first.await;
        }
        let second = std::pin::pin!(Self::unprocessed_again(endpoint, call, deadline, attempt));
        match select(first, second).await {
            Either::Left((Ok(answer), _)) | Either::Right((Ok(answer), _)) => Ok(answer),
            Either::Left((Err(_), other)) => other.await,
            Either::Right((Err(_), other)) => other.await,
        }
    }

    /// How many times a reconnecting client tries a call its connections did not process:
    /// each try follows a connection's close, and more in a row is a server closing every
    /// connection as it comes, which waiting for its next one (the backoff) deals with.
    const ATTEMPTS: usize = 3;

    /// Whether the connection takes no new calls (it is closed, closing or draining).
    pub(crate) fn refuses_calls(&self) -> bool {
        self.handles.refuses_calls()
    }

    /// Resolves once the connection has begun to close gracefully (or can open no more
    /// streams): it takes no new calls, and the open ones go on.
    pub(crate) async fn draining(&self) {
        // The sender lives in the handles this client holds: `wait_for` cannot fail.
        let _ = self.handles.draining.subscribe().wait_for(|draining| *draining).await;
    }

    /// This client's connection, giving every call made through it `timeout` (from when the
    /// call is made) unless the call sets its own deadline. A generated client built from it
    /// (`GreeterClient::new(client.with_timeout(…))`) gives all its calls that timeout. See
    /// [`ClientBuilder::timeout`](crate::ClientBuilder::timeout), which sets it for a new
    /// connection, and [`Call::with_deadline`] for what a deadline does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use weft::{Call, Code, Handler, Response, Server};
    ///
    /// /// Never answers.
    /// struct Silent;
    /// impl Handler for Silent {
    ///     fn request_response(&self, _call: Call, _data: bytes::Bytes) -> Response {
    ///         Response::new(std::future::pending())
    ///     }
    /// }
    ///
    /// let server = Server::builder().add_handler(&["slow.Slow/Wait"], Silent).build();
    /// let client = server.connect_in_memory().await?.with_timeout(Duration::from_millis(50));
    /// let late = client.request_response(Call::new("slow.Slow/Wait"), "hi".into()).await;
    /// assert_eq!(late.unwrap_err().code(), Code::DeadlineExceeded);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client { timeout: Some(timeout), ..self.clone() }
    }

    /// The default timeout of this client's calls, if it has one.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The deadline of `call`: its own, or this client's default timeout from now.
    #[inline]
    fn deadline_of(&self, call: &Call) -> Option<Instant> {
        call.deadline().or_else(|| Some(Instant::now() + self.timeout?))
    }

    /// What the server's authenticate hook made of this connection's SETUP.
    pub(crate) fn principal(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        self.handles.principal.get().map(|p| &**p)
    }

    /// Who is at the other end of the connection, as far as its transport knows.
    pub(crate) fn peer_info(&self) -> &super::handles::Peer {
        &self.handles.peer
    }

    /// Request/response: one request, one response.
    pub async fn request_response(&self, call: Call, data: Bytes) -> Result<Payload, Status> {
        if let Some(endpoint) = &self.endpoint {
            let attempt = |conn: Client, call| {
                let data = data.clone();
                async move { conn.request_response(call, data).await }
            };
            return Box::pin(self.through(endpoint, call, true, attempt)).await;
        }
        if let Some(deadline) = self.deadline_of(&call) {
            // Boxed: the call without a deadline, by far the most common, keeps its future small.
            return Box::pin(self.request_response_by(deadline, call, data)).await;
        }
        self.respond(call, data).await
    }

    /// A request/response held to `deadline`: dropping the answer's slot at the deadline
    /// cancels the stream.
    async fn request_response_by(&self, deadline: Instant, call: Call, data: Bytes) -> Result<Payload, Status> {
        let route = call.route().to_owned();
        let call = timed(call, deadline, &route)?;
        let answer = tokio::time::timeout_at(deadline, self.respond(call, data)).await;
        answer.unwrap_or_else(|_| Err(deadline::exceeded(&route)))
    }

    async fn respond(&self, call: Call, data: Bytes) -> Result<Payload, Status> {
        let metadata = request_metadata(call)?;
        // The caller waits for the answer alone (not first for the stream id): one wake-up
        // per call. Dropping `reply` (the caller gave up) cancels the stream.
        let (tx, mut reply) = reply::slot(&self.handles.inbox);
        let mut writes_own = None;
        if let Some(assist) = &self.handles.assist {
            reply = reply.helped_by(assist, &self.handles.unary_waiting);
            // The connection's only caller, on a thread that does not run the driver: it
            // writes its own request (see `Assist::drive_after`).
            if reply.is_lone() && assist.caller_writes() {
                writes_own = Some(&**assist);
            }
        }
        let command = Command::Open {
            kind: Kind::RequestResponse,
            metadata,
            data,
            complete: false,
            inbound: Some(Inbound::Single(tx)),
            outbound: None,
            opened: Opened::Slot,
        };
        let sent = match writes_own {
            Some(assist) => self.commands.send_driving(command, assist).await,
            None => self.commands.send(command).await,
        };
        if sent.is_err() {
            return Err(self.closed_status().unprocessed());
        }
        reply.await.unwrap_or_else(|| Err(self.closed_status()))
    }

    /// Fire-and-forget: resolves once the request is queued for writing. No reply comes.
    pub async fn fire_and_forget(&self, call: Call, data: Bytes) -> Result<(), Status> {
        if let Some(endpoint) = &self.endpoint {
            let attempt = |conn: Client, call| {
                let data = data.clone();
                async move { conn.fire_and_forget(call, data).await }
            };
            return Box::pin(self.through(endpoint, call, false, attempt)).await;
        }
        let call = match self.deadline_of(&call) {
            Some(deadline) => {
                let route = call.route().to_owned();
                timed(call, deadline, &route)?
            }
            None => call,
        };
        self.open(Kind::FireAndForget, call, data, false, None, None).await.map(drop)
    }

    /// Request/stream: one request, a stream of responses.
    pub async fn request_stream(&self, call: Call, data: Bytes) -> Result<PayloadStream, Status> {
        if let Some(endpoint) = &self.endpoint {
            let attempt = |conn: Client, call| {
                let data = data.clone();
                async move { conn.request_stream(call, data).await }
            };
            return Box::pin(self.through(endpoint, call, false, attempt)).await;
        }
        let (inlet, mut stream) = super::stream::inbound(&self.handles);
        let (call, deadline) = self.stream_deadline(call)?;
        stream.set_id(self.open(Kind::RequestStream, call, data, false, Some(Inbound::Many(inlet)), None).await?);
        if let Some((deadline, route)) = deadline {
            stream.set_deadline(deadline, route);
        }
        Ok(stream)
    }

    /// Channel: a stream of messages each way.
    ///
    /// The first item of `messages` rides in the REQUEST_CHANNEL frame, so this waits for it;
    /// if `messages` ends before yielding one, the channel opens with an empty first message
    /// that is also the last (RSocket has no channel without a first message). A typed Weft
    /// server reads that as one message unless the call carries the no-messages entry
    /// ([`NO_MESSAGES_MIME`](crate::typed::NO_MESSAGES_MIME)), which a generated client adds
    /// in that case and which a call made here can add itself. Later items are
    /// sent as the responder grants credit: out of credit, `messages` is polled once more (to
    /// learn whether it has ended, which needs no credit), and a message it yields then waits
    /// for the responder's next grant.
    pub async fn request_channel<S>(&self, call: Call, messages: S) -> Result<PayloadStream, Status>
    where
        S: futures_core::Stream<Item = Payload> + Send + 'static,
    {
        let mut messages = Box::pin(messages);
        let (first, complete) = match messages.next().await {
            Some(first) => (first, false),
            None => (Payload::default(), true),
        };
        if !first.metadata.is_empty() {
            // The first message's metadata slot holds the call's composite metadata.
            return Err(Status::invalid_argument("the first message of a channel cannot carry its own metadata"));
        }
        self.open_channel(call, first.data, complete, Responses::new(messages.map(Ok))).await
    }

    /// A channel whose first message is `first` (and the last, if `complete`), the others
    /// coming from `rest`.
    pub(crate) async fn open_channel(
        &self,
        call: Call,
        first: Bytes,
        complete: bool,
        rest: Responses,
    ) -> Result<PayloadStream, Status> {
        if let Some(endpoint) = &self.endpoint {
            // Tried once (see `Client::through`): the messages after the first are the
            // caller's stream, which the attempt consumes.
            let mut call = call;
            let deadline = self.deadline_of(&call);
            call.set_deadline(deadline);
            return Box::pin(async move {
                let (conn, _in_flight) = endpoint.connection(deadline, call.route()).await?;
                conn.open_channel(call, first, complete, rest).await
            })
            .await;
        }
        let (inlet, mut stream) = super::stream::inbound(&self.handles);
        let inbound = Some(Inbound::Many(inlet));
        let (call, deadline) = self.stream_deadline(call)?;
        stream.set_id(self.open(Kind::Channel, call, first, complete, inbound, Some(rest)).await?);
        if let Some((deadline, route)) = deadline {
            stream.set_deadline(deadline, route);
        }
        Ok(stream)
    }

    /// A stream's call with its deadline's entry, and the deadline for its response stream to
    /// keep (which ends it then).
    fn stream_deadline(&self, call: Call) -> Result<(Call, Option<(Instant, String)>), Status> {
        match self.deadline_of(&call) {
            None => Ok((call, None)),
            Some(deadline) => {
                let route = call.route().to_owned();
                Ok((timed(call, deadline, &route)?, Some((deadline, route))))
            }
        }
    }

    /// Closes the connection: in-flight calls fail with `UNAVAILABLE`. A reconnecting client
    /// also makes no more connections: later calls fail with `UNAVAILABLE`.
    pub fn close(&self) {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.close();
        }
        self.handles.inbox.control(Control::Close { graceful: false });
    }

    /// Whether the connection has closed (a reconnecting client's: whether the client was
    /// closed with [`Client::close`], rather than between connections).
    pub fn is_closed(&self) -> bool {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.is_closed();
        }
        self.handles.is_closed()
    }

    /// Resolves when the connection has closed, with why: [`ErrorKind::Closed`] with the
    /// [`CloseReason`] (this side closed it, the peer did, or it was silent too long),
    /// [`ErrorKind::SetupRejected`] (the server refused the connection), or
    /// [`ErrorKind::Transport`] (the transport failed). Every call still open on the
    /// connection has failed with this error as its [`Status`]. A reconnecting client's
    /// resolves only when the client is closed ([`Client::close`]), with `Closed(Local)`.
    ///
    /// ```
    /// use weft::conn::CloseReason;
    /// use weft::{ErrorKind, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), weft::Error> {
    /// let client = Server::builder().build().connect_in_memory().await?;
    /// client.close();
    /// assert_eq!(client.closed().await.kind(), &ErrorKind::Closed(CloseReason::Local));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`ErrorKind::Closed`]: crate::ErrorKind::Closed
    /// [`ErrorKind::SetupRejected`]: crate::ErrorKind::SetupRejected
    /// [`ErrorKind::Transport`]: crate::ErrorKind::Transport
    /// [`CloseReason`]: crate::conn::CloseReason
    pub async fn closed(&self) -> crate::Error {
        if let Some(endpoint) = &self.endpoint {
            endpoint.closed().await;
            return crate::Error::closed(crate::conn::CloseReason::Local, None);
        }
        let mut rx = self.handles.closed.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The driver ended without saying why: it panicked, which is this side's doing.
                return crate::Error::closed(crate::conn::CloseReason::Local, None);
            }
        }
    }

    /// The data MIME type of the connection, as SETUP announced it (this side's, or the
    /// peer's on a server). `None` only before a server connection's SETUP, when no handle
    /// exists.
    pub(crate) fn data_mime(&self) -> Option<&str> {
        self.handles.data_mime.get().map(|mime| &**mime)
    }

    fn closed_status(&self) -> Status {
        self.handles.closed_status()
    }

    /// Opens a stream (or sends a fire-and-forget): the stream id.
    async fn open(
        &self,
        kind: Kind,
        call: Call,
        data: Bytes,
        complete: bool,
        inbound: Option<Inbound>,
        outbound: Option<Responses>,
    ) -> Result<u32, Status> {
        let metadata = request_metadata(call)?;
        let (opened, rx) = oneshot::channel();
        let command =
            Command::Open { kind, metadata, data, complete, inbound, outbound, opened: Opened::Reply(opened) };
        if self.commands.send(command).await.is_err() {
            return Err(self.closed_status().unprocessed());
        }
        rx.await.unwrap_or_else(|_| Err(self.closed_status()))
    }
}

/// `call` with its time left until `deadline` in its metadata ([`crate::TIMEOUT_MIME`]); or, if
/// none is left, the status it fails with, before anything is sent.
fn timed(call: Call, deadline: Instant, route: &str) -> Result<Call, Status> {
    let left = deadline::left(deadline).ok_or_else(|| deadline::exceeded(route))?;
    let entry = crate::MimeType::Custom(crate::TIMEOUT_MIME.into());
    Ok(call.with_metadata(entry, deadline::encode_timeout(left)))
}
