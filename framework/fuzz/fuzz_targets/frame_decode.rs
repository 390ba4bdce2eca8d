//! `Frame::decode` on arbitrary bytes, the same bytes as a length-prefixed stream through
//! `LengthDelimited`, and the round trips of whatever decodes; see `harness::frame_bytes`.
#![no_main]

#[path = "../../tests/it/props/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::frame_bytes(data));
