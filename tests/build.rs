//! Compiles the test protos in `proto/` for `it/proto.rs`: once with every part and the
//! builder's options exercised, then client-only and server-only into directories of their own.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    weft_codegen::configure()
        .fire_and_forget("acme.corners.v1.Corners/Ping")
        .type_attribute(".mirror.Note", "#[derive(PartialOrd)]")
        .client_attribute(".mirror", "#[doc(alias = \"mirror_client\")]")
        .server_attribute("Mirror", "#[doc(alias = \"mirror_server\")]")
        .compile_protos(&["proto/mirror.proto", "proto/acme/corners.proto", "proto/nopkg.proto"], &["proto"])?;

    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for (dir, client, server) in [("client_only", true, false), ("server_only", false, true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        weft_codegen::configure()
            .build_client(client)
            .build_server(server)
            .context_parameter(false)
            .out_dir(dir)
            .compile_protos(&["proto/mirror.proto"], &["proto"])?;
    }
    Ok(())
}
