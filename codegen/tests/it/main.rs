//! weft-codegen's integration tests, one binary (the crate links once): snapshots of what the
//! `#[weft::service]` emitter and the `.proto` front-end generate, and the front-end's errors.

mod proto;
mod snapshots;

use std::path::Path;

/// Compares `actual` with the snapshot `tests/snapshots/{name}.rs`, or writes it there when
/// `WEFT_BLESS` is set.
fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.rs"));
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot at {}; run with WEFT_BLESS=1 to write it", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
        panic!(
            "the code generated for `{name}` differs from {} (first differing line: {}); \
             if the change is intended, run with WEFT_BLESS=1 and review the diff\n\n{actual}",
            path.display(),
            first.map_or_else(|| "past the end of one of them".to_owned(), |l| (l + 1).to_string()),
        );
    }
}

/// The routes whose generated `MethodRoute` is marked idempotent, in `code` (tokens as a string,
/// or formatted): `MethodRoute::new("route", b"…route")` followed by `.idempotent()`.
fn idempotent_routes(code: &str) -> Vec<String> {
    let code: String = code.split_whitespace().collect();
    let mut routes = Vec::new();
    for piece in code.split("MethodRoute::new(\"").skip(1) {
        let route = &piece[..piece.find('"').expect("a route literal")];
        // The metadata literal ends with the route: skip past it, the closing quote, an
        // optional trailing comma and the parenthesis.
        let after_literal = &piece[route.len() + 1..];
        let end = after_literal.find(&format!("{route}\"")).expect("the route in the metadata") + route.len() + 1;
        let rest = after_literal[end..].trim_start_matches(',');
        let rest = rest.strip_prefix(')').expect("the end of MethodRoute::new");
        if rest.starts_with(".idempotent()") {
            routes.push(route.to_owned());
        }
    }
    routes
}
