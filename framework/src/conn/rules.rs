//! What a frame the connection cannot take as it is costs: nothing (it is ignored), the stream
//! it names, or the connection. The one place that decides it, for frames that failed to
//! decode and for frames that decoded but break a rule; each rule quotes the sentence of
//! Protocol.md it comes from, and `spec_tests` tests each by that sentence.

use super::State;
use crate::frame::{DecodeError, DecodeErrorKind, ErrorCode, FrameType};

/// What a frame the connection cannot take as it is leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Dropped, as if it never came; the rule says why.
    Ignore(&'static str),
    /// The stream it names ends (ERROR\[INVALID\] where this side responds on it, CANCEL where
    /// this side requested it, a refusal for a new request); the connection carries on.
    Stream,
    /// ERROR on stream 0 with this code, then the connection closes.
    Connection(ErrorCode),
}

/// "Any other frame received that is NOT a SETUP|RESUME frame or a SETUP|RESUME frame with a
/// Stream ID > 0, MUST cause the server to send an ERROR\[INVALID_SETUP\] and close the
/// connection." (Connection Establishment)
pub(super) const BEFORE_SETUP: Verdict = Verdict::Connection(ErrorCode::INVALID_SETUP);

/// "A server MUST ignore a SETUP frame after it has accepted a previous SETUP." / "A client
/// MUST ignore a SETUP frame." (Handling the Unexpected)
pub(super) const SECOND_SETUP: &str = "a SETUP after connection establishment is ignored";

/// "Receiving a Request frame on a Stream ID that is already in use MUST be ignored."
pub(super) const REQUEST_IN_USE: &str = "a request on a stream id in use is ignored";

/// "A server MUST ignore an ERROR\[INVALID_SETUP|UNSUPPORTED_SETUP|REJECTED_SETUP|REJECTED_RESUME\]
/// frame." / "A client MUST ignore \[one\] after it has completed connection establishment."
pub(super) const SETUP_ERROR: &str = "a SETUP or RESUME error after establishment is ignored";

/// "All other received frames that are not accounted for in previous sections MUST be ignored."
/// (Handling the Unexpected): RESUME, RESUME_OK and LEASE, none of which was negotiated.
pub(super) const NOT_NEGOTIATED: &str = "a frame for a feature that was not negotiated is ignored";

/// "The (I)gnore flag is used for extension of the protocol. [...] An implementation MAY send
/// an ERROR\[CONNECTION_ERROR\] frame and close the underlying transport connection on
/// reception of a frame that it does not understand with this bit not set." An EXT is never
/// understood; staying up is the lenient choice, and harms nothing since its content is never
/// acted on.
pub(super) const EXTENSION: &str = "an extension frame is not understood, and ignored";

/// The verdict on a frame that failed to decode, in connection state `state`.
pub(super) fn decode_error(error: &DecodeError, state: State) -> Verdict {
    use DecodeErrorKind::*;
    use FrameType::*;
    if state == State::AwaitingSetup {
        // Nothing but a whole SETUP or RESUME on stream 0 is acceptable first (see BEFORE_SETUP).
        return BEFORE_SETUP;
    }
    let stream_id = error.stream_id.unwrap_or(0);
    match (error.frame_type, &error.kind) {
        // "Ignore frame if not understood": a frame that cannot be read is not understood.
        _ if error.ignore => Verdict::Ignore("a frame with the (I)gnore flag that cannot be read is ignored"),
        // A frame type not known without (I) (see EXTENSION: this one MAY close), a header cut
        // short, or a length prefix that cannot be accepted: framing is lost.
        (None, _) => Verdict::Connection(ErrorCode::CONNECTION_ERROR),
        (Some(Setup), _) => Verdict::Ignore(SECOND_SETUP),
        // "Receiving a CANCEL on an unknown Stream ID (including 0) MUST be ignored." /
        // "Receiving a PAYLOAD on an unknown Stream ID (including 0) MUST be ignored." Stream 0
        // is never a stream, so REQUEST_N and requests there are "not accounted for" alike.
        (Some(Cancel | Payload | RequestN | RequestResponse | RequestFnf | RequestStream | RequestChannel), _)
            if stream_id == 0 =>
        {
            Verdict::Ignore("a stream frame on stream 0 is ignored")
        }
        // "Receiving a METADATA_PUSH with a non-0 Stream ID MUST be ignored." The other
        // connection frames on a stream are "not accounted for" alike.
        (Some(MetadataPush | Keepalive), InvalidStreamId { .. }) => {
            Verdict::Ignore("a connection frame on a non-zero stream is ignored")
        }
        (Some(Resume | ResumeOk | Lease), _) => Verdict::Ignore(NOT_NEGOTIATED),
        // "If Metadata Length is not equal to this value, the frame is invalid and the receiver
        // MUST send an ERROR[CONNECTION_ERROR] frame and close the underlying transport
        // connection on reception unless the frame's IGNORE flag is set." (Metadata Optional
        // Header)
        (Some(_), LengthOverrun { field: "metadata length", .. }) => Verdict::Connection(ErrorCode::CONNECTION_ERROR),
        // A malformed frame of a stream (its header named one): that stream alone. An ERROR on
        // stream 0 is the connection's.
        (Some(RequestResponse | RequestFnf | RequestStream | RequestChannel | RequestN | Cancel | Payload), _) => {
            Verdict::Stream
        }
        (Some(Error), _) if stream_id != 0 => Verdict::Stream,
        // Connection frames (KEEPALIVE, METADATA_PUSH, ERROR on stream 0) and EXT headers that
        // cannot be read.
        (Some(_), _) => Verdict::Connection(ErrorCode::CONNECTION_ERROR),
    }
}

/// Whether an ERROR with `code` is one of the SETUP and RESUME errors, which only mean
/// something while the connection is being established.
pub(super) fn is_setup_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::INVALID_SETUP
            | ErrorCode::UNSUPPORTED_SETUP
            | ErrorCode::REJECTED_SETUP
            | ErrorCode::REJECTED_RESUME
    )
}

/// Does nothing: where a rule says to drop a frame, the code names the rule by calling this.
#[inline]
pub(super) fn ignore(_rule: &'static str) {}
