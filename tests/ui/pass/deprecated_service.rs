//! A deprecated service: `#[deprecated]` follows the trait onto the client and server structs,
//! and the generated impls compile without warnings (rustc rejects `#[deprecated]` on trait
//! impls, so they allow `deprecated` instead).
#![deny(warnings, missing_docs)]

use weft::Status;

/// A message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct M {
    /// Data.
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

/// An old service.
#[deprecated = "use NewService"]
#[weft::service(package = "old")]
pub trait OldService {
    /// request/response
    async fn get(&self, req: M) -> Result<M, Status>;
    /// a deprecated method of a deprecated service
    #[deprecated]
    async fn older(&self, req: M) -> Result<M, Status>;
}

#[allow(deprecated)]
struct Impl;

#[allow(deprecated)]
impl OldService for Impl {
    async fn get(&self, req: M) -> Result<M, Status> {
        Ok(req)
    }
    async fn older(&self, req: M) -> Result<M, Status> {
        Ok(req)
    }
}

#[allow(deprecated)]
fn main() {
    let _server = OldServiceServer::new(Impl);
    let _call = |client: OldServiceClient| async move { client.older(M { n: 1 }).await };
}
