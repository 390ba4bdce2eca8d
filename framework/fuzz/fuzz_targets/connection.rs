//! A `Connection` (server, client, or a client and a server wired together) driven by a
//! program of frames and commands read from arbitrary bytes; see
//! `harness::connection_program`.
#![no_main]

#[path = "../../tests/it/props/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::connection_program(data));
