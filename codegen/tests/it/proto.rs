//! The `.proto` front-end: snapshots of what it generates (so that a change to the generator
//! shows in review as a diff of `tests/snapshots/proto_*.rs`), and its build errors.
//!
//! Regenerate the snapshots with `WEFT_BLESS=1 cargo test -p weft-codegen --test it proto`.

use super::{check, idempotent_routes};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn scratch_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-codegen-proto").join(name)
}

/// A fresh directory for one test's output and inputs.
fn scratch(name: &str) -> PathBuf {
    let dir = scratch_path(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn route_guide() {
    let out = scratch("route_guide");
    let root = workspace();
    weft_codegen::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile_protos(&[root.join("proto/route_guide.proto")], &[root.join("proto")])
        .unwrap();
    check("proto_route_guide", &read(&out, "routeguide.rs"));
}

#[test]
fn corners() {
    let out = scratch("corners");
    let root = workspace().join("tests/proto");
    weft_codegen::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .fire_and_forget("acme.corners.v1.Corners/Ping")
        .crate_path("::renamed::weft")
        .compile_protos(&[root.join("acme/corners.proto")], &[&root])
        .unwrap();
    check("proto_corners", &read(&out, "acme.corners.v1.rs"));
    // The import is generated too; the well-known types and weft's options are not.
    assert!(out.join("acme.common.rs").exists());
    assert!(!out.join("google.protobuf.rs").exists() && !out.join("weft.rs").exists());
}

#[test]
fn client_only_and_server_only() {
    let root = workspace().join("tests/proto");
    for (name, client, server) in [("client_only", true, false), ("server_only", false, true)] {
        let out = scratch(name);
        weft_codegen::configure()
            .out_dir(&out)
            .emit_rerun_if_changed(false)
            .build_client(client)
            .build_server(server)
            .compile_protos(&[root.join("mirror.proto")], &[&root])
            .unwrap();
        let code = read(&out, "mirror.rs");
        assert_eq!(code.contains("pub struct MirrorClient"), client, "{name}");
        assert_eq!(code.contains("pub trait Mirror:"), server, "{name}");
        assert_eq!(code.contains("pub struct MirrorServer"), server, "{name}");
        // Docs link only to what exists.
        assert_eq!(code.contains("[`MirrorClient`]"), client && server, "{name}");
    }
}

/// Writes `files` into a scratch directory and compiles the first with `builder`.
fn compile(name: &str, files: &[(&str, &str)], builder: weft_codegen::Builder) -> Result<PathBuf, String> {
    let dir = scratch(name);
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    builder
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile_protos(&[dir.join(files[0].0)], &[&dir])
        .map(|()| out)
        .map_err(|e| e.to_string())
}

fn error(name: &str, files: &[(&str, &str)], builder: weft_codegen::Builder) -> String {
    match compile(name, files, builder) {
        Ok(_) => panic!("{name}: compiled, but should have failed"),
        Err(e) => e,
    }
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let e = error(
        "syntax",
        &[("bad.proto", "syntax = \"proto3\";\npackage p;\nmessage M {\n  string name = 1\n}\n")],
        weft_codegen::configure(),
    );
    // The path on disk, so that an editor can jump to it.
    let path = scratch_path("syntax").join("bad.proto");
    assert!(e.starts_with(&format!("{}:5:1: expected ';'", path.display())), "{e}");
}

#[test]
fn an_undefined_type_names_file_line_and_column() {
    let e = error(
        "undefined",
        &[("bad.proto", "syntax = \"proto3\";\npackage p;\nmessage M {\n  Missing m = 1;\n}\n")],
        weft_codegen::configure(),
    );
    let path = scratch_path("undefined").join("bad.proto");
    assert!(e.starts_with(&format!("{}:4:3: name 'Missing' is not defined", path.display())), "{e}");
}

#[test]
fn a_missing_import_names_what_was_searched() {
    let e = error(
        "import",
        &[("a.proto", "syntax = \"proto3\";\nimport \"nowhere/b.proto\";\n")],
        weft_codegen::configure(),
    );
    let dir = scratch_path("import");
    assert!(
        e.starts_with(&format!("{}:2:1: import 'nowhere/b.proto' not found", dir.join("a.proto").display())),
        "{e}"
    );
    assert!(e.contains(&format!("searched the include paths `{}`, then", dir.display())), "{e}");
    assert!(e.contains("weft/options.proto") && e.contains("google/protobuf"), "{e}");
}

#[test]
fn a_missing_input_file_names_what_was_searched() {
    let dir = scratch("missing-input");
    let e = weft_codegen::configure()
        .out_dir(&dir)
        .emit_rerun_if_changed(false)
        .compile_protos(&["not_there.proto"], &[&dir])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not_there.proto") && e.contains("searched the include paths"), "{e}");
}

const EMPTY_IMPORTS: &str = "syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/empty.proto\";\nimport \"weft/options.proto\";\nmessage M {}\n";

fn service(body: &str) -> String {
    format!("{EMPTY_IMPORTS}service S {{\n{body}\n}}\n")
}

#[test]
fn fire_and_forget_on_a_method_that_cannot_be_is_an_error_naming_file_service_and_method() {
    let proto = service(
        "  rpc Fine(M) returns (google.protobuf.Empty) { option (weft.fire_and_forget) = true; }\n\
         rpc Answers(M) returns (M) { option (weft.fire_and_forget) = true; }\n\
         rpc Streams(stream M) returns (google.protobuf.Empty) { option (weft.fire_and_forget) = true; }",
    );
    let e = error("fnf", &[("s.proto", &proto)], weft_codegen::configure());
    assert!(e.contains("2 problems"), "{e}");
    assert!(e.contains("s.proto: service `p.S`, method `Answers`: `option (weft.fire_and_forget) = true`"), "{e}");
    assert!(e.contains("it returns `p.M`"), "{e}");
    assert!(e.contains("s.proto: service `p.S`, method `Streams`"), "{e}");
    assert!(e.contains("it takes a `stream`"), "{e}");
    assert!(!e.contains("`Fine`"), "{e}");
}

#[test]
fn fire_and_forget_from_the_builder_is_checked_too() {
    let proto = service("  rpc Answers(M) returns (M);\n  rpc Fine(M) returns (google.protobuf.Empty);");
    let e = error(
        "fnf-builder",
        &[("s.proto", &proto)],
        weft_codegen::configure().fire_and_forget("p.S/Answers").fire_and_forget("p.S/Typo"),
    );
    assert!(e.contains("method `Answers`: the builder's `fire_and_forget`"), "{e}");
    assert!(e.contains("`fire_and_forget(\"p.S/Typo\")` names no method"), "{e}");
    assert!(e.contains("`p.S/Fine`"), "{e}");
    // And where it fits, it works.
    let out = compile("fnf-builder-ok", &[("s.proto", &proto)], weft_codegen::configure().fire_and_forget("p.S/Fine"))
        .unwrap();
    assert!(read(&out, "p.rs").contains("Route `p.S/Fine` (fire-and-forget)"));
}

#[test]
fn rpcs_with_the_same_rust_name_are_an_error() {
    let proto = service("  rpc GetThing(M) returns (M);\n  rpc get_thing(M) returns (M);");
    let e = error("collision", &[("s.proto", &proto)], weft_codegen::configure());
    assert!(e.contains("method `get_thing`: its Rust name `get_thing` is also the Rust name of `GetThing`"), "{e}");
}

#[test]
fn bad_builder_input_is_an_error() {
    let proto = service("  rpc Get(M) returns (M);");
    let e = error(
        "builder",
        &[("s.proto", &proto)],
        weft_codegen::configure().crate_path("not a path").client_attribute(".", "derive(Hash)"),
    );
    assert!(e.contains("`crate_path(\"not a path\")` is not a path"), "{e}");
    assert!(e.contains("`client_attribute(\".\", \"derive(Hash)\")`"), "{e}");
}

#[test]
fn the_options_file_in_the_repository_is_the_one_weft_codegen_serves() {
    let on_disk = std::fs::read_to_string(workspace().join("proto/weft/options.proto")).unwrap();
    assert_eq!(on_disk, weft_codegen::OPTIONS_PROTO);
}

#[test]
fn a_route_longer_than_a_routing_tag_holds_is_an_error() {
    let long = format!("Get{}", "x".repeat(260));
    let proto = service(&format!("  rpc {long}(M) returns (M);\n  rpc Fine(M) returns (M);"));
    let e = error("long-route", &[("s.proto", &proto)], weft_codegen::configure());
    assert!(e.contains(&format!("method `{long}`: the route `p.S/{long}` is 267 bytes long")), "{e}");
    assert!(e.contains("at most 255 bytes"), "{e}");
    assert!(!e.contains("`Fine`"), "{e}");
}

#[test]
fn messages_named_context_and_status_are_messages_and_weft_types_are_spelled_by_path() {
    // The .proto front-end matches no names: the generated trait spells Weft's `Context` and
    // `Status` through `__private`, and the messages by prost-build's paths, so a .proto's own
    // `Context` and `Status` cannot be taken for Weft's.
    let proto = "syntax = \"proto3\";\npackage p;\nmessage Context { string user = 1; }\n\
                 message Status { bool healthy = 1; }\nservice S {\n  rpc Check(Context) returns (Status);\n}\n";
    let out = compile("names", &[("s.proto", proto)], weft_codegen::configure()).unwrap();
    let code: String = read(&out, "p.rs").split_whitespace().collect();
    let trait_method = "fncheck(&self,ctx:::weft::__private::Context,request:Context,)\
                        ->impl::core::future::Future<Output=::core::result::Result<Status,::weft::__private::Status>,>";
    assert!(code.contains(trait_method), "{code}");
}

#[test]
fn idempotent_by_weft_option_or_by_idempotency_level() {
    let proto = service(
        "  rpc ByOption(M) returns (M) { option (weft.idempotent) = true; }\n\
         rpc ByLevel(M) returns (M) { option idempotency_level = IDEMPOTENT; }\n\
         rpc NoSideEffects(M) returns (stream M) { option idempotency_level = NO_SIDE_EFFECTS; }\n\
         rpc Fire(M) returns (google.protobuf.Empty) {\n\
           option (weft.fire_and_forget) = true;\n\
           option (weft.idempotent) = true;\n\
         }\n\
         rpc Overridden(M) returns (M) {\n\
           option idempotency_level = IDEMPOTENT;\n\
           option (weft.idempotent) = false;\n\
         }\n\
         rpc Unknown(M) returns (M) { option idempotency_level = IDEMPOTENCY_UNKNOWN; }\n\
         rpc Plain(M) returns (M);\n\
         rpc Upload(stream M) returns (M);\n\
         rpc Chat(stream M) returns (stream M) { option (weft.idempotent) = false; }",
    );
    let out = compile("idempotent", &[("s.proto", &proto)], weft_codegen::configure()).unwrap();
    let code = read(&out, "p.rs");
    assert_eq!(idempotent_routes(&code), ["p.S/ByOption", "p.S/ByLevel", "p.S/NoSideEffects", "p.S/Fire"], "{code}");
    assert_eq!(code.matches("MethodRoute::new(").count(), 9, "{code}");
    assert!(code.contains("Calls `p.S/ByLevel` (request/response). Idempotent: may be retried."), "{code}");
    assert!(code.contains("Route `p.S/Fire` (fire-and-forget). Idempotent: may be retried"), "{code}");

    // `idempotency_level` is standard: it needs no import of weft/options.proto.
    let standard = "syntax = \"proto3\";\npackage p;\nmessage M {}\n\
                    service S {\n  rpc Get(M) returns (M) { option idempotency_level = IDEMPOTENT; }\n}\n";
    let out = compile("idempotent-standard", &[("s.proto", standard)], weft_codegen::configure()).unwrap();
    assert_eq!(idempotent_routes(&read(&out, "p.rs")), ["p.S/Get"]);
}

#[test]
fn idempotent_on_a_method_that_takes_a_stream_is_an_error_naming_file_service_and_method() {
    let proto = service(
        "  rpc Fine(M) returns (M) { option (weft.idempotent) = true; }\n\
         rpc Upload(stream M) returns (M) { option (weft.idempotent) = true; }\n\
         rpc Chat(stream M) returns (stream M) { option idempotency_level = NO_SIDE_EFFECTS; }",
    );
    let e = error("idempotent-stream", &[("s.proto", &proto)], weft_codegen::configure());
    assert!(e.contains("2 problems"), "{e}");
    assert!(
        e.contains(
            "s.proto: service `p.S`, method `Upload`: `option (weft.idempotent) = true` marks it idempotent, \
             but it takes a `stream` of requests, which cannot be replayed"
        ),
        "{e}"
    );
    assert!(
        e.contains("s.proto: service `p.S`, method `Chat`: `option idempotency_level = NO_SIDE_EFFECTS` marks it"),
        "{e}"
    );
    assert!(e.contains("drop the option"), "{e}");
    assert!(!e.contains("`Fine`"), "{e}");
}

#[test]
fn idempotent_from_the_builder_marks_a_method_and_is_checked() {
    let proto = service(
        "  rpc Get(M) returns (M);\n\
         rpc Overridden(M) returns (M) { option (weft.idempotent) = false; }\n\
         rpc Plain(M) returns (M);\n\
         rpc Upload(stream M) returns (M);",
    );
    let builder = weft_codegen::configure().idempotent("p.S/Get").idempotent("p.S/Overridden");
    let out = compile("idempotent-builder", &[("s.proto", &proto)], builder).unwrap();
    assert_eq!(idempotent_routes(&read(&out, "p.rs")), ["p.S/Get", "p.S/Overridden"], "the builder's word wins");

    let builder = weft_codegen::configure().idempotent("p.S/Upload").idempotent("p.S/Typo");
    let e = error("idempotent-builder-bad", &[("s.proto", &proto)], builder);
    assert!(e.contains("method `Upload`: the builder's `idempotent(\"p.S/Upload\")` marks it idempotent"), "{e}");
    assert!(e.contains("`idempotent(\"p.S/Typo\")` names no method"), "{e}");
}
