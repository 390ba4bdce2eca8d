//! Weft's runnable examples live next to this file; run one with
//! `cargo run -p weft-examples --example NAME`.
