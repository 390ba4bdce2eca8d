//! weft-codegen's integration tests, one binary (the crate links once): snapshots of what the
//! `#[weft::service]` emitter and the `.proto` front-end generate, and the front-end's errors.

mod proto;
mod snapshots;
