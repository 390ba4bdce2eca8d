//! Weft's workspace-level tests, in one binary: generated clients against generated servers
//! over TCP and in memory (`e2e`), the errors of connections and listeners (`errors`), a client serving services the server calls
//! back (`callback`), each side's own settings on its builder (`builders`), services generated from `.proto` files by `build.rs` against
//! services written as traits (`proto`), the macro's compile-pass and compile-fail cases (`ui`),
//! and the public API of `weft` and `weft-codegen` against their snapshots (`public_api`).

mod builders;
mod callback;
mod e2e;
mod errors;
mod lab;
mod proto;
mod public_api;
mod ui;
