//! [`Status`]: the outcome of a call that did not succeed.

use crate::frame::ErrorCode;
use std::fmt;

/// A status code: the familiar gRPC set, so that errors map one to one across frameworks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Not an error.
    Ok,
    /// The call was cancelled, usually by the caller.
    Cancelled,
    /// An error with no better code; also any error from a peer that does not speak Weft's
    /// status convention.
    Unknown,
    /// The request was invalid regardless of the server's state.
    InvalidArgument,
    /// The deadline passed before the call completed.
    DeadlineExceeded,
    /// A requested entity was not found.
    NotFound,
    /// The entity a client tried to create already exists.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// A resource (quota, memory, stream slots) is exhausted.
    ResourceExhausted,
    /// The system is not in a state in which the operation can run.
    FailedPrecondition,
    /// The operation was aborted, typically by a concurrency conflict.
    Aborted,
    /// An argument was out of the valid range.
    OutOfRange,
    /// The method is not implemented, or no such route exists.
    Unimplemented,
    /// An invariant of the server broke.
    Internal,
    /// The service (or the connection) is unavailable; retrying may help.
    Unavailable,
    /// Unrecoverable data loss.
    DataLoss,
    /// The caller did not prove who it is.
    Unauthenticated,
}

const CODES: [(Code, &str); 17] = [
    (Code::Ok, "OK"),
    (Code::Cancelled, "CANCELLED"),
    (Code::Unknown, "UNKNOWN"),
    (Code::InvalidArgument, "INVALID_ARGUMENT"),
    (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (Code::NotFound, "NOT_FOUND"),
    (Code::AlreadyExists, "ALREADY_EXISTS"),
    (Code::PermissionDenied, "PERMISSION_DENIED"),
    (Code::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (Code::FailedPrecondition, "FAILED_PRECONDITION"),
    (Code::Aborted, "ABORTED"),
    (Code::OutOfRange, "OUT_OF_RANGE"),
    (Code::Unimplemented, "UNIMPLEMENTED"),
    (Code::Internal, "INTERNAL"),
    (Code::Unavailable, "UNAVAILABLE"),
    (Code::DataLoss, "DATA_LOSS"),
    (Code::Unauthenticated, "UNAUTHENTICATED"),
];

impl Code {
    /// The code's name as written on the wire, e.g. `NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        CODES.iter().find(|(c, _)| *c == self).map_or("UNKNOWN", |(_, n)| n)
    }

    fn from_name(name: &str) -> Option<Code> {
        CODES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a call that did not succeed: a [`Code`] and a message.
///
/// Handlers return it, clients receive it.
///
/// # On the wire
///
/// A status travels in an ERROR frame with code APPLICATION_ERROR (0x201) — the one code every
/// RSocket implementation turns into an application error — and its data is a UTF-8 text:
///
/// ```text
/// NOT_FOUND: no feature at (1, 2)
/// ```
///
/// that is, the code's name (as in the table below), a colon and a space, then the message. A
/// peer that knows nothing of Weft shows that text as the error message, which reads well; a
/// Weft peer splits the code back off. A status with [`Code::Unknown`] is written as the bare
/// message, and an error text that does not start with a known code name (any error from a
/// non-Weft peer) is read as [`Code::Unknown`] with the whole text as its message, so a message
/// crosses the wire unchanged either way.
///
/// The other stream error codes of the spec are read as: REJECTED → [`Code::Unavailable`]
/// (the responder guarantees it did not process the request, so retrying is safe), CANCELED →
/// [`Code::Cancelled`], INVALID → [`Code::InvalidArgument`]. Connection errors (stream 0) fail
/// every open call with [`Code::Unavailable`] and the peer's message.
///
/// | code | name on the wire |
/// |---|---|
/// | [`Code::Ok`] | `OK` |
/// | [`Code::Cancelled`] | `CANCELLED` |
/// | [`Code::Unknown`] | (none: the bare message) |
/// | [`Code::InvalidArgument`] | `INVALID_ARGUMENT` |
/// | [`Code::DeadlineExceeded`] | `DEADLINE_EXCEEDED` |
/// | [`Code::NotFound`] | `NOT_FOUND` |
/// | [`Code::AlreadyExists`] | `ALREADY_EXISTS` |
/// | [`Code::PermissionDenied`] | `PERMISSION_DENIED` |
/// | [`Code::ResourceExhausted`] | `RESOURCE_EXHAUSTED` |
/// | [`Code::FailedPrecondition`] | `FAILED_PRECONDITION` |
/// | [`Code::Aborted`] | `ABORTED` |
/// | [`Code::OutOfRange`] | `OUT_OF_RANGE` |
/// | [`Code::Unimplemented`] | `UNIMPLEMENTED` |
/// | [`Code::Internal`] | `INTERNAL` |
/// | [`Code::Unavailable`] | `UNAVAILABLE` |
/// | [`Code::DataLoss`] | `DATA_LOSS` |
/// | [`Code::Unauthenticated`] | `UNAUTHENTICATED` |
///
/// ```
/// use weft::{Code, Status};
///
/// let status = Status::not_found("no feature at (1, 2)");
/// assert_eq!(status.to_wire(), "NOT_FOUND: no feature at (1, 2)");
/// assert_eq!(Status::from_wire("NOT_FOUND: no feature at (1, 2)"), status);
/// // A message from a peer that knows nothing of Weft:
/// assert_eq!(Status::from_wire("boom").code(), Code::Unknown);
/// ```
#[derive(Clone)]
pub struct Status {
    code: Code,
    message: String,
    /// Known not to have been processed by the peer: refused before anything was sent, or
    /// REJECTED by the responder (which guarantees it did not process the request). A
    /// reconnecting client sends such a call again on its next connection. Not part of the
    /// status's value: it does not cross the wire and equality ignores it.
    unprocessed: bool,
}

impl PartialEq for Status {
    fn eq(&self, other: &Status) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl Eq for Status {}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code, message: message.into(), unprocessed: false }
    }

    /// This status, marked as the failure of a request the peer did not process.
    pub(crate) fn unprocessed(mut self) -> Status {
        self.unprocessed = true;
        self
    }

    /// Whether the request that failed with this status was certainly not processed by the
    /// peer (so sending it again cannot do anything twice).
    pub(crate) fn is_unprocessed(&self) -> bool {
        self.unprocessed
    }

    constructors! {
        /// [`Code::Cancelled`].
        cancelled => Cancelled,
        /// [`Code::Unknown`]: written on the wire as the bare message.
        unknown => Unknown,
        /// [`Code::InvalidArgument`].
        invalid_argument => InvalidArgument,
        /// [`Code::DeadlineExceeded`].
        deadline_exceeded => DeadlineExceeded,
        /// [`Code::NotFound`].
        not_found => NotFound,
        /// [`Code::AlreadyExists`].
        already_exists => AlreadyExists,
        /// [`Code::PermissionDenied`].
        permission_denied => PermissionDenied,
        /// [`Code::ResourceExhausted`].
        resource_exhausted => ResourceExhausted,
        /// [`Code::FailedPrecondition`].
        failed_precondition => FailedPrecondition,
        /// [`Code::Aborted`].
        aborted => Aborted,
        /// [`Code::OutOfRange`].
        out_of_range => OutOfRange,
        /// [`Code::Unimplemented`].
        unimplemented => Unimplemented,
        /// [`Code::Internal`].
        internal => Internal,
        /// [`Code::Unavailable`].
        unavailable => Unavailable,
        /// [`Code::DataLoss`].
        data_loss => DataLoss,
        /// [`Code::Unauthenticated`].
        unauthenticated => Unauthenticated,
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The text written into an APPLICATION_ERROR frame's data.
    pub fn to_wire(&self) -> String {
        match self.code {
            Code::Unknown => self.message.clone(),
            code => format!("{}: {}", code.as_str(), self.message),
        }
    }

    /// Reads the text of an APPLICATION_ERROR frame's data.
    pub fn from_wire(text: &str) -> Status {
        if let Some((name, message)) = text.split_once(": ")
            && let Some(code) = Code::from_name(name)
            && code != Code::Unknown
        {
            return Status::new(code, message);
        }
        Status::unknown(text)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status").field("code", &self.code).field("message", &self.message).finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

impl From<std::io::Error> for Status {
    fn from(e: std::io::Error) -> Status {
        Status::unavailable(format!("transport error: {e}"))
    }
}

/// The status a stream error from the peer maps to (see [`Status`]).
pub(crate) fn status_from_error(code: ErrorCode, message: &str) -> Status {
    match code {
        ErrorCode::APPLICATION_ERROR => Status::from_wire(message),
        ErrorCode::REJECTED => Status::unavailable(message).unprocessed(),
        ErrorCode::CANCELED => Status::cancelled(message),
        ErrorCode::INVALID => Status::invalid_argument(message),
        other => Status::unknown(format!("{message} (error code 0x{:x})", other.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_the_wire_text() {
        for (code, _) in CODES {
            let s = Status::new(code, "a: message with: colons");
            assert_eq!(Status::from_wire(&s.to_wire()), s, "{code:?}");
        }
    }

    #[test]
    fn foreign_messages_are_unknown_and_unchanged() {
        for text in ["boom", "", "NOT_A_CODE: x", "not_found: lower case is not a code"] {
            let s = Status::from_wire(text);
            assert_eq!((s.code(), s.message()), (Code::Unknown, text));
            assert_eq!(s.to_wire(), text);
        }
    }
}
