//! Authenticating connections: the server's hook that sees each SETUP ([`SetupInfo`]) and
//! accepts it, with a principal its handlers read, or rejects it (see
//! [`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).

use super::handles::Peer;
use crate::Status;
use crate::frame::Setup;
use crate::frame::auth::{AUTHENTICATION_MIME, Credentials};
use crate::frame::metadata::CompositeMetadata;
use bytes::Bytes;
use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// What a server's [`authenticate`](crate::ServerBuilder::authenticate) hook is shown of a
/// client's SETUP: its credentials (RSocket's Authentication extension), its metadata and
/// data, its MIME types, and what the transport knows of the client (its address, the
/// certificate it presented in a mutual-TLS handshake).
pub struct SetupInfo<'a> {
    setup: &'a Setup,
    metadata: CompositeMetadata,
    peer: &'a Peer,
}

impl fmt::Debug for SetupInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupInfo")
            .field("data_mime", &self.setup.data_mime)
            .field("remote_addr", &self.peer.addr)
            .field("origin", &self.peer.origin)
            .field("credentials", &self.credentials())
            .finish_non_exhaustive()
    }
}

impl<'a> SetupInfo<'a> {
    pub(crate) fn new(setup: &'a Setup, peer: &'a Peer) -> SetupInfo<'a> {
        // SETUP's metadata is composite (a SETUP announcing another metadata type is refused
        // before the hook); a block that does not decode shows no entries.
        let metadata = setup
            .payload
            .metadata
            .as_ref()
            .and_then(|block| CompositeMetadata::decode(block.clone()).ok())
            .unwrap_or_default();
        SetupInfo { setup, metadata, peer }
    }

    /// The credentials in SETUP's metadata, if any decode
    /// ([`ClientBuilder::credentials`](crate::ClientBuilder::credentials)).
    pub fn credentials(&self) -> Option<Credentials> {
        Credentials::decode(self.metadata.get(AUTHENTICATION_MIME)?).ok()
    }

    /// SETUP's metadata entries.
    pub fn metadata(&self) -> &CompositeMetadata {
        &self.metadata
    }

    /// SETUP's data.
    pub fn data(&self) -> &Bytes {
        &self.setup.payload.data
    }

    /// The data MIME type the client announced.
    pub fn data_mime(&self) -> &str {
        &self.setup.data_mime
    }

    /// The metadata MIME type the client announced (composite metadata).
    pub fn metadata_mime(&self) -> &str {
        &self.setup.metadata_mime
    }

    /// The client's address, over TCP (plain, TLS or WebSocket).
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.peer.addr
    }

    /// The certificate chain the client presented in its TLS handshake (DER, its own first),
    /// on a server that asks for one.
    pub fn peer_certificates(&self) -> Option<&[Bytes]> {
        self.peer.certificates.as_deref()
    }

    /// The origin of the web page that opened this connection (the `Origin` header of its
    /// WebSocket handshake, as `https://app.example.com`), for a client in a browser; `None`
    /// over other transports and from clients that are not browsers. See
    /// [`ServerBuilder::websocket_origins`](crate::ServerBuilder::websocket_origins) to refuse
    /// pages by origin before SETUP.
    pub fn origin(&self) -> Option<&str> {
        self.peer.origin.as_deref()
    }
}

/// A server's authenticate hook, with its principal type erased.
pub(crate) type Authenticate = dyn Fn(&SetupInfo<'_>) -> Result<Arc<dyn Any + Send + Sync>, Status> + Send + Sync;

/// Runs `hook` on `setup`: the principal, or the status to reject it with. A hook that panics
/// (user code) rejects the connection, and the driver goes on.
pub(crate) fn authenticate(
    hook: &Authenticate,
    setup: &Setup,
    peer: &Peer,
) -> Result<Arc<dyn Any + Send + Sync>, Status> {
    let info = SetupInfo::new(setup, peer);
    catch_unwind(AssertUnwindSafe(|| hook(&info)))
        .unwrap_or_else(|_| Err(Status::internal("the server's authentication failed")))
}
