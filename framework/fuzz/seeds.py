#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (seeds/<target>/) from the fixture file.

The seeds are committed; run this again when tests/fixtures/rsocket-frames.jsonl changes.
Each seed is named by the SHA-1 of its content, as libFuzzer names corpus files.

- frame_decode: every fixture frame bare, each with its 3-byte length prefix, and the
  frames captured over TCP as one length-prefixed stream per writer.
- metadata: the composite metadata fixtures, and the routing content of their routing
  entries.
- connection: programs (see `connection_program` in tests/it/props/harness.rs) that feed the
  fixture frames to a server (after a SETUP) and to a client, and a client-server pair that
  opens and answers a stream.
"""
import hashlib
import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "rsocket-frames.jsonl"


def prefixed(frame):
    return len(frame).to_bytes(3, "big") + frame


def routing_contents(block):
    """The content of each entry with the well-known routing id (0x7E) in a composite block."""
    out, rest = [], block
    while rest:
        first = rest[0]
        if first & 0x80:
            mime, rest = first & 0x7F, rest[1:]
        else:
            mime, rest = None, rest[1 + first + 1:]
        length = int.from_bytes(rest[:3], "big")
        content, rest = rest[3:3 + length], rest[3 + length:]
        if mime == 0x7E:
            out.append(content)
    return out


def bare_frame_ops(frames):
    """Op 0 of a single-connection program: one bare frame of at most 255 bytes."""
    return b"".join(bytes([0, len(f)]) + f for f in frames if len(f) <= 255)


def main():
    records = [json.loads(line) for line in FIXTURES.read_text().splitlines() if line.strip()]
    frames = [bytes.fromhex(r["hex"]) for r in records if r["kind"] == "frame"]
    blocks = [bytes.fromhex(r["hex"]) for r in records if r["kind"] == "composite-metadata"]
    captured = {}
    for r in records:
        if r["kind"] == "frame" and r["source"] == "captured over TCP":
            captured.setdefault(r["writer"], []).append(bytes.fromhex(r["hex"]))

    seeds = {"frame_decode": [], "metadata": [], "connection": []}
    seeds["frame_decode"] += frames + [prefixed(f) for f in frames]
    seeds["frame_decode"] += [b"".join(prefixed(f) for f in fs) for fs in captured.values()]
    seeds["metadata"] += blocks + [c for b in blocks for c in routing_contents(b)]
    setup = bytes([5, 0])  # op 5: a valid SETUP
    server_frames = [f for w, fs in captured.items() if "client" in w for f in fs]
    client_frames = [f for w, fs in captured.items() if "server" in w for f in fs]
    seeds["connection"] += [
        bytes([0]) + setup + bare_frame_ops(server_frames),
        bytes([0]) + bare_frame_ops(server_frames),
        bytes([1]) + bare_frame_ops(client_frames),
    ]
    seeds["connection"] += [bytes([0]) + setup + bare_frame_ops([f]) for f in frames]
    seeds["connection"] += [bytes([1]) + bare_frame_ops([f]) for f in frames]
    # A pair: deliver SETUP, client opens a request/stream and a channel, deliver, server
    # answers on the peer's newest stream, deliver, client consumes a batch.
    seeds["connection"].append(bytes([2, 0x00, 0x25, 8, 0x35, 8, 0x70, 0x87, 0, 4, 0x87, 0, 4, 0xF0, 0x0B, 0, 0x70]))

    for target, inputs in seeds.items():
        directory = HERE / "seeds" / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for data in inputs:
            (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(set(inputs))} seeds")


if __name__ == "__main__":
    main()
