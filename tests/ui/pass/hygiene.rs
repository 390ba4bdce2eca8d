//! Generated code names everything by absolute path: it compiles with no prelude at all, and
//! `crate = "…"` points it at a renamed (or re-exported) runtime.
#![no_implicit_prelude]

extern crate futures_util;
extern crate prost;
extern crate std;
extern crate weft as weft_renamed;

use std::result::Result;
use weft_renamed::{Context, Status, Streaming};

/// Shadows every prelude name generated code might lean on.
#[allow(dead_code, non_camel_case_types)]
mod shadows {
    pub struct Result;
    pub struct Ok;
    pub struct Err;
    pub struct Option;
    pub struct Some;
    pub struct None;
    pub struct Box;
    pub struct Send;
    pub struct Sync;
    pub struct Clone;
    pub struct Arc;
    pub struct Future;
    pub struct Stream;
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct M {
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

#[weft_renamed::service(crate = "::weft_renamed", package = "hygiene")]
pub trait Clean {
    async fn unary(&self, ctx: Context, req: M) -> Result<M, Status>;
    async fn fnf(&self, req: M);
    async fn stream(&self, req: M) -> Result<impl futures_util::Stream<Item = Result<M, Status>>, Status>;
    async fn chat(&self, reqs: Streaming<M>) -> Result<impl futures_util::Stream<Item = Result<M, Status>>, Status>;
    async fn upload(&self, reqs: Streaming<M>) -> Result<M, Status>;
    /// Weft's types by the `crate = "…"` path are Weft's.
    async fn spelled(&self, ctx: ::weft_renamed::Context, req: M) -> Result<M, weft_renamed::Status>;
}

#[allow(unused_imports)]
use shadows::*;

fn main() {
    let _ = CleanClient::new;
    let _ = CleanServer::<std::boxed::Box<dyn std::any::Any>>::from_arc;
}
