//! Weft's workspace-level tests, in one binary: generated clients against generated servers
//! over TCP and in memory (`e2e`), services generated from `.proto` files by `build.rs` against
//! services written as traits (`proto`), request streams with no messages, from generated and
//! hand-made clients (`no_messages`), the macro's compile-pass and compile-fail cases (`ui`),
//! and the public API of `weft` and `weft-codegen` against their snapshots (`public_api`).

mod data_mime;
mod e2e;
mod lab;
mod no_messages;
mod proto;
mod public_api;
mod ui;
mod websocket;
