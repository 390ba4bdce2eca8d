//! `#[weft(idempotent)]` on every model that takes one request message, next to other
//! attributes; the generated client's routes carry the mark (the codegen tests check which).
#![deny(warnings, missing_docs)]

use futures_util::Stream;
use weft::{Context, Status, Streaming};

/// Idempotent methods and others.
#[weft::service(package = "idem")]
pub trait Idem {
    /// request/response
    #[weft(idempotent)]
    async fn get(&self, ctx: Context, req: ()) -> Result<(), Status>;
    /// fire-and-forget, marked after another attribute
    #[allow(unused_variables)]
    #[weft(idempotent)]
    async fn touch(&self, req: ()) {}
    /// request/stream
    #[weft(idempotent)]
    async fn list(&self, req: ()) -> Result<impl Stream<Item = Result<(), Status>>, Status>;
    /// not marked
    async fn put(&self, req: ()) -> Result<(), Status>;
    /// a request stream, not marked
    async fn upload(&self, req: Streaming<()>) -> Result<(), Status>;
}

fn main() {}
