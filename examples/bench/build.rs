//! Generates the prost messages and the tonic client and server from `proto/bench.proto`,
//! parsed by protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bench.proto");
    let fds = protox::compile(["proto/bench.proto"], ["proto"])?;
    tonic_prost_build::configure()
        // `bytes::Bytes` rather than `Vec<u8>`: cloning a payload is a reference count, for
        // tonic and Weft alike (both use these generated messages).
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
