//! Composite metadata, routing metadata and MIME type names on arbitrary bytes; see
//! `harness::metadata_bytes`.
#![no_main]

#[path = "../../tests/it/props/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::metadata_bytes(data));
