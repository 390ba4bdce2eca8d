//! [`Error`]: what goes wrong setting up, running and tearing down connections and listeners.
//!
//! Weft has two error types, split by who a failure concerns. [`Status`] is the outcome of
//! one call: the peer answered it with an error, or this side could not make it. [`Error`] is
//! the outcome of a connection or a listener: it could not be made (connecting, binding), the
//! server refused it (SETUP rejected), or it ended (closed by either side, silent too long,
//! its transport failed). A call on a connection that ended fails with the [`Status`] made
//! from the connection's [`Error`] (see [`From<Error> for Status`](Error#impl-From<Error>-for-Status)),
//! so `?` turns one into the other in a handler.

use crate::conn::CloseReason;
use crate::frame::ErrorCode;
use crate::{Code, Status};
use std::fmt;
use std::sync::Arc;

/// Why a connection or a listener could not be made, or why a connection ended.
///
/// Returned by everything that sets up a connection or a listener ([`Client::connect`],
/// [`ClientBuilder::connect`], [`Server::bind`], [`Server::connect_in_memory`], a generated
/// `{Service}Client::connect`), and by [`Client::closed`], which says why a connection ended.
/// Match on [`kind`](Error::kind) to tell the cases apart; [`source`](std::error::Error::source)
/// is the IO error underneath, where there is one.
///
/// ```
/// use weft::{Client, ErrorKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Nothing listens on port 1.
/// let error = Client::connect("127.0.0.1:1").await.unwrap_err();
/// assert!(matches!(error.kind(), ErrorKind::Connect));
/// assert!(std::error::Error::source(&error).is_some(), "the IO error that refused it");
/// // In a handler, `?` makes it a Status: UNAVAILABLE.
/// let status = weft::Status::from(error);
/// assert_eq!(status.code(), weft::Code::Unavailable);
/// # }
/// ```
///
/// [`Client::connect`]: crate::Client::connect
/// [`ClientBuilder::connect`]: crate::ClientBuilder::connect
/// [`Client::closed`]: crate::Client::closed
/// [`Server::bind`]: crate::Server::bind
/// [`Server::connect_in_memory`]: crate::Server::connect_in_memory
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    /// What the error is about (the address connected to or bound), for the message.
    target: Option<String>,
    /// Shared, so that every handle of a closed connection can hold the one error.
    source: Option<Arc<std::io::Error>>,
}

/// What kind of [`Error`] happened. New kinds may be added.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection could be made: the address did not resolve, or connecting to it failed
    /// (refused, unreachable, timed out). [`source`](std::error::Error::source) is the IO
    /// error.
    Connect,
    /// A listener could not be bound (the address is in use, or not this host's, or not this
    /// user's to bind). [`source`](std::error::Error::source) is the IO error.
    Bind,
    /// The server refused the connection's SETUP with ERROR on stream 0: `code` is
    /// `REJECTED_SETUP` (the server will not serve it now, such as over its connection limit),
    /// `INVALID_SETUP` or `UNSUPPORTED_SETUP` (it will not serve a SETUP like this one), and
    /// `message` is the server's reason.
    SetupRejected {
        /// The SETUP error code the server sent.
        code: ErrorCode,
        /// The server's reason.
        message: String,
    },
    /// The connection ended, for the reason given: this side closed it, the peer closed it
    /// (possibly with an error code and message), this side found the peer at fault, or the
    /// peer was silent beyond the keepalive max lifetime.
    Closed(CloseReason),
    /// The transport under the connection failed (reset by the peer, a broken pipe).
    /// [`source`](std::error::Error::source) is the IO error.
    Transport,
    /// A TLS configuration could not be made: a certificate, key or root that does not load,
    /// or a key that does not match its certificate. (A TLS handshake that fails is a
    /// [`Connect`](ErrorKind::Connect) error, naming why.)
    Tls,
}

impl Error {
    /// What kind of error this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Connecting to `target` failed with `error`.
    pub(crate) fn connect(target: impl fmt::Display, error: std::io::Error) -> Error {
        Error { kind: ErrorKind::Connect, target: Some(target.to_string()), source: Some(Arc::new(error)) }
    }

    /// A TLS configuration failed, for `why`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(why: impl Into<String>) -> Error {
        let error = std::io::Error::new(std::io::ErrorKind::InvalidInput, why.into());
        Error { kind: ErrorKind::Tls, target: None, source: Some(Arc::new(error)) }
    }

    /// Binding a listener failed with `error`.
    pub(crate) fn bind(error: std::io::Error) -> Error {
        Error { kind: ErrorKind::Bind, target: None, source: Some(Arc::new(error)) }
    }

    /// The connection ended for `reason`; `transport` is the IO error the transport failed
    /// with, if it did (the connection then learned only that the transport ended).
    pub(crate) fn closed(reason: CloseReason, transport: Option<std::io::Error>) -> Error {
        let kind = match reason {
            // The SETUP codes on stream 0 are the server's answer to SETUP (Protocol.md, "Error
            // Codes"); a client heeds them only before the server has said anything else.
            CloseReason::PeerError { code, message }
                if matches!(
                    code,
                    ErrorCode::INVALID_SETUP | ErrorCode::UNSUPPORTED_SETUP | ErrorCode::REJECTED_SETUP
                ) =>
            {
                ErrorKind::SetupRejected { code, message }
            }
            CloseReason::PeerClosed if transport.is_some() => ErrorKind::Transport,
            reason => ErrorKind::Closed(reason),
        };
        Error { kind, target: None, source: transport.map(Arc::new) }
    }

    /// The status a call fails with once its connection has ended with this error.
    pub(crate) fn to_status(&self) -> Status {
        let code = match &self.kind {
            // Not worth retrying as it is: the server will not take a SETUP like this one.
            ErrorKind::SetupRejected { code, .. } if *code != ErrorCode::REJECTED_SETUP => Code::FailedPrecondition,
            // A server that refused the client's credentials (its authenticate hook) says so
            // with the status's code in the message: the caller learns it was not let in.
            ErrorKind::SetupRejected { message, .. } => {
                let status = Status::from_wire(message);
                if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied) {
                    return status;
                }
                Code::Unavailable
            }
            _ => Code::Unavailable,
        };
        Status::new(code, self.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Connect => match &self.target {
                Some(target) => write!(f, "cannot connect to {target}")?,
                None => f.write_str("cannot connect")?,
            },
            ErrorKind::Bind => f.write_str("cannot bind the listener")?,
            ErrorKind::SetupRejected { code, message } => {
                let name = code.name().unwrap_or("SETUP error");
                write!(f, "the server rejected the connection ({name}): {message}")?
            }
            ErrorKind::Closed(reason) => write!(f, "{reason}")?,
            ErrorKind::Transport => f.write_str("the connection's transport failed")?,
            ErrorKind::Tls => f.write_str("TLS")?,
        }
        // The IO error is also `source()`, but most programs print only the top error, and
        // "cannot connect to 127.0.0.1:1" without "connection refused" does not say what to do.
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(target) = &self.target {
            d.field("target", target);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A connection's error as the status of a call: `UNAVAILABLE` (the connection or the server
/// is not there; a new connection may succeed), except a SETUP the server refused as invalid
/// or unsupported (`INVALID_SETUP`, `UNSUPPORTED_SETUP`), which is `FAILED_PRECONDITION`: the
/// same SETUP would be refused again. The message is the error's [`Display`](fmt::Display).
impl From<Error> for Status {
    fn from(error: Error) -> Status {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_codes_on_stream_zero_are_a_rejected_setup_and_the_rest_a_close() {
        let rejected =
            Error::closed(CloseReason::PeerError { code: ErrorCode::REJECTED_SETUP, message: "full".into() }, None);
        assert_eq!(
            rejected.kind(),
            &ErrorKind::SetupRejected { code: ErrorCode::REJECTED_SETUP, message: "full".into() }
        );
        assert_eq!(rejected.to_string(), "the server rejected the connection (REJECTED_SETUP): full");
        assert_eq!(Status::from(rejected).code(), Code::Unavailable);
        let invalid =
            Error::closed(CloseReason::PeerError { code: ErrorCode::INVALID_SETUP, message: "mime".into() }, None);
        assert_eq!(Status::from(invalid).code(), Code::FailedPrecondition);
        let other =
            Error::closed(CloseReason::PeerError { code: ErrorCode::CONNECTION_ERROR, message: "bye".into() }, None);
        assert!(matches!(other.kind(), ErrorKind::Closed(CloseReason::PeerError { .. })));
        assert_eq!(Status::from(other).code(), Code::Unavailable);
    }

    #[test]
    fn a_transport_that_failed_is_a_transport_error_with_its_source() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let error = Error::closed(CloseReason::PeerClosed, Some(reset));
        assert_eq!(error.kind(), &ErrorKind::Transport);
        let source = std::error::Error::source(&error).expect("the IO error");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionReset)
        );
        // A transport that ended cleanly is the peer closing.
        assert_eq!(Error::closed(CloseReason::PeerClosed, None).kind(), &ErrorKind::Closed(CloseReason::PeerClosed));
    }

    #[test]
    fn the_message_names_the_target_and_the_cause() {
        let error = Error::connect("127.0.0.1:1", std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(error.to_string().starts_with("cannot connect to 127.0.0.1:1: "), "{error}");
        let status = Status::from(error.clone());
        assert_eq!((status.code(), status.message()), (Code::Unavailable, &*error.to_string()));
    }
}
