//! Weft: a code-generating RPC framework for Rust that speaks RSocket 1.0 on the wire.

pub mod frame;
