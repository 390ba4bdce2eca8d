//! Weft's workspace-level tests, in one binary: generated clients against generated servers
//! over every transport: TCP, in memory, WebSocket, TLS, WebSocket over TLS and Unix sockets
//! (`e2e`), TLS's failures and identities (`tls`), Unix sockets and listeners of one's own
//! (`listeners`), authentication in SETUP and per request (`auth`), the errors of connections and listeners
//! (`errors`), a client serving services the server calls back (`callback`), each side's own
//! settings on its builder (`builders`), services generated from `.proto` files by `build.rs`
//! against services written as traits (`proto`), request streams with no messages, from
//! generated and hand-made clients (`no_messages`), data MIME types announced and checked
//! (`data_mime`), deadlines in every interaction model and passed on by handlers (`deadlines`), a client
//! that reconnects after its server restarts (`reconnect`), a client balancing over many servers,
//! three of them processes (`balance`), the health service (`health`), the events a `tracing`
//! subscriber is told (`observe`), retries and hedging of idempotent calls (`retry`),
//! the WebSocket transport's refusals and origin check (`websocket`), the macro's compile-pass and
//! compile-fail cases (`ui`), and the public API of `weft` and `weft-codegen` against their
//! snapshots (`public_api`).

mod auth;
mod balance;
mod builders;
mod callback;
mod data_mime;
mod deadlines;
mod e2e;
mod errors;
mod health;
mod lab;
mod listeners;
mod no_messages;
mod observe;
mod proto;
mod public_api;
mod reconnect;
mod retry;
mod tls;
mod ui;
mod websocket;
