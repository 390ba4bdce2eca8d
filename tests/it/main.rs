//! Weft's workspace-level tests, in one binary: generated clients against generated servers
//! over TCP and in memory (`e2e`), services generated from `.proto` files by `build.rs` against
//! services written as traits (`proto`), and the macro's compile-pass and compile-fail cases (`ui`).

mod e2e;
mod lab;
mod proto;
mod ui;
