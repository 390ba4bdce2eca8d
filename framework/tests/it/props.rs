//! A stable property test over what the fuzzers (`framework/fuzz`) see: the fixture frames,
//! mutated (bit flips, truncation, extension, corrupt length fields, splices), random bytes,
//! and connection programs, fed to the frame decoder, the metadata decoders and a `Connection`
//! (server, client, and the two wired together). The checks are `harness.rs`, shared with the
//! fuzz targets. Seeded and bounded in count and time, so it always runs and runs the same.
//!
//! Inputs that once broke something are kept at the end as regression cases.

mod harness;

use crate::seeded::{Rng, mutate, to_hex};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Each test stops generating cases after this long, however many it was asked for, so that a
/// slow machine makes it shorter rather than stuck; it reports how many it ran.
const TIME_BOUND: Duration = Duration::from_secs(30);

/// Runs `check` on `cases` inputs from `generate`, panicking with the failing input in hex.
fn run_cases(name: &str, cases: usize, mut generate: impl FnMut(&mut Rng) -> Vec<u8>, check: fn(&[u8])) {
    // Seeded from the name: each test has its own cases, the same on every run.
    let mut rng = Rng(name.bytes().fold(0x5EED, |h, b| h.wrapping_mul(31) ^ u64::from(b)));
    let started = Instant::now();
    let mut ran = 0;
    for _ in 0..cases {
        if started.elapsed() > TIME_BOUND {
            break;
        }
        let input = generate(&mut rng);
        run_one(name, &input, check);
        ran += 1;
    }
    eprintln!("{name}: {ran} cases in {:?}", started.elapsed());
}

/// One input through one check; a panic is re-raised with the input, ready to paste into a
/// regression case.
fn run_one(name: &str, input: &[u8], check: fn(&[u8])) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(input))) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        panic!("{name} failed on input {}: {message}", to_hex(input));
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

/// Fixture frames, each with the transport's 3-byte length prefix.
fn prefixed(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(frame);
    out
}

#[test]
fn frame_decoder_and_framing_hold_on_mutated_fixtures_and_random_bytes() {
    let frames = harness::fixture_bytes("frame");
    assert!(frames.len() > 100, "the fixture file has its frames");
    // The seeds decode as they are.
    for frame in &frames {
        run_one("fixture frame", frame, harness::frame_bytes);
    }
    run_cases(
        "frame_bytes",
        40_000,
        |rng| match rng.below(5) {
            0 => {
                let len = rng.below(48);
                rng.bytes(len)
            }
            1 => {
                let frame = rng.pick(&frames).clone();
                mutate(rng, &frame, &frames)
            }
            // A stream of several length-prefixed frames, then mutated: the framing's paths.
            2 | 3 => {
                let mut stream = Vec::new();
                for _ in 0..=rng.below(4) {
                    stream.extend(prefixed(rng.pick::<Vec<u8>>(&frames)));
                }
                if rng.below(3) == 0 { stream } else { mutate(rng, &stream, &frames) }
            }
            _ => {
                let frame = rng.pick(&frames).clone();
                mutate(rng, &prefixed(&frame), &frames)
            }
        },
        harness::frame_bytes,
    );
}

#[test]
fn metadata_decoders_hold_on_mutated_fixtures_and_random_bytes() {
    let mut blocks = harness::fixture_bytes("composite-metadata");
    assert!(blocks.len() >= 5, "the fixture file has its composite metadata");
    // Routing contents, hand-made: the composite fixtures' own are inside them.
    blocks.push(b"\x0eecho.Echo/Unary\x03two".to_vec());
    blocks.push(b"\x00".to_vec());
    for block in blocks.clone() {
        run_one("fixture metadata", &block, harness::metadata_bytes);
    }
    run_cases(
        "metadata_bytes",
        40_000,
        |rng| match rng.below(5) {
            0 => {
                let len = rng.below(40);
                rng.bytes(len)
            }
            // Routing tags of any length, mostly text.
            4 => {
                let mut out = Vec::new();
                for _ in 0..=rng.below(3) {
                    let len = if rng.below(2) == 0 { rng.below(256) } else { rng.below(16) };
                    out.push(len as u8);
                    out.extend((0..len).map(|i| if rng.below(64) == 0 { 0xC3 } else { b'a' + (i % 26) as u8 }));
                }
                mutate(rng, &out, &blocks)
            }
            1 => {
                // Well-formed entries with random MIME ids or names and contents.
                let mut out = Vec::new();
                for _ in 0..=rng.below(3) {
                    if rng.below(2) == 0 {
                        out.push(0x80 | rng.next() as u8);
                    } else {
                        let name = rng.pick(&["message/x.rsocket.routing.v0", "text/plain", "a", "\u{e9}"]);
                        out.push(name.len() as u8 - 1);
                        out.extend_from_slice(name.as_bytes());
                    }
                    let len = if rng.below(4) == 0 { rng.below(300) } else { rng.below(20) };
                    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
                    out.extend(rng.bytes(len));
                }
                out
            }
            _ => {
                let block = rng.pick(&blocks).clone();
                mutate(rng, &block, &blocks)
            }
        },
        harness::metadata_bytes,
    );
}

/// A connection program feeding fixture frames as bare frames (op 0), after a SETUP for a
/// server: what the seeds of the `connection` fuzz target are.
fn fixture_program(rng: &mut Rng, side: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut program = vec![side];
    if side.is_multiple_of(3) {
        program.extend([5, 0]); // op 5: a valid SETUP
    }
    for _ in 0..=rng.below(12) {
        let frame = rng.pick(frames);
        if frame.len() > 255 {
            continue;
        }
        program.extend([0, frame.len() as u8]);
        program.extend_from_slice(frame);
        // Now and then a command or a tick between frames.
        if rng.below(3) == 0 {
            program.extend(rng.bytes(3));
        }
    }
    program
}

#[test]
fn connections_hold_on_frame_sequences_and_commands() {
    let frames = harness::fixture_bytes("frame");
    run_cases(
        "connection_program",
        40_000,
        |rng| match rng.below(6) {
            // Random programs: every byte is an op or an operand, so all of them run.
            0 | 1 => {
                let len = rng.below(160);
                rng.bytes(len)
            }
            // Server or client fed fixture frames, then mutated.
            2 | 3 => {
                let side = rng.below(2) as u8 + 3 * rng.below(64) as u8;
                let program = fixture_program(rng, side, &frames);
                if rng.below(2) == 0 { program } else { mutate(rng, &program, &frames) }
            }
            // Client and server wired together.
            _ => {
                let len = rng.below(200);
                let mut program = rng.bytes(len);
                if let Some(head) = program.first_mut() {
                    *head = 2 + 3 * (*head % 85);
                }
                program
            }
        },
        harness::connection_program,
    );
}

// =============================================================================================
// Regression cases: inputs that broke something once, minimised.
// =============================================================================================

/// A graceful close whose last stream ends by the peer's ERROR: the stream's `Event::Error`
/// comes after `Event::Closed`. Found by the pair programs (minimised input below): client
/// opens a request/response, server reads it and closes gracefully, client sends ERROR on the
/// stream. `remove_stream` closed the draining connection before the caller queued the
/// stream's event; now the event is queued first.
#[test]
fn regression_event_after_close_on_graceful_close_input() {
    run_one("connection_program", &unhex("02000500001c00cf00"), harness::connection_program);
}

/// The same bug through the public API, as an application meets it: a client closes
/// gracefully with a request/response in flight, and the answer arrives after `Closed`.
#[test]
fn regression_answer_after_close_on_graceful_close() {
    use bytes::Bytes;
    use weft::conn::{Connection, Event, Kind};
    use weft::frame::{Frame, Payload, PayloadFrame};
    let now = Instant::now();
    let mut client = Connection::client(weft::Config::default(), weft::conn::ClientSettings::default(), now);
    let id = client.open(Kind::RequestResponse, Bytes::new(), Bytes::from_static(b"hi"), false).unwrap();
    client.close(true);
    let answer =
        PayloadFrame { stream_id: id, follows: false, complete: true, next: true, payload: Payload::data("ok") };
    client.handle_frame(Frame::Payload(answer), now);
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(events.last(), Some(Event::Closed(_))), "Closed is the last event: {events:?}");
}
