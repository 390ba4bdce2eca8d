//! Snapshot tests of the emitted code, formatted with prettyplease, so that a change to the
//! generator shows in review as a diff of `tests/snapshots/*.rs`.
//!
//! Regenerate the snapshots with `WEFT_BLESS=1 cargo test -p weft-codegen --test it snapshots`.

use proc_macro2::TokenStream;
use quote::quote;
use std::path::PathBuf;

fn expand(attr: TokenStream, item: TokenStream) -> String {
    let tokens = weft_codegen::expand_service(attr, item);
    let file = syn::parse2::<syn::File>(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.rs"));
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot at {}; run with WEFT_BLESS=1 to write it", path.display()));
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
        panic!(
            "the code emitted for `{name}` differs from {} (first differing line: {}); \
             if the change is intended, run with WEFT_BLESS=1 and review the diff\n\n{actual}",
            path.display(),
            first.map_or_else(|| "past the end of one of them".to_owned(), |l| (l + 1).to_string()),
        );
    }
}

/// The trait of issue 4: one method of every interaction model.
#[test]
fn greeter() {
    let out = expand(
        quote!(package = "greet"),
        quote! {
            /// Greets people.
            pub trait Greeter {
                /// request/response
                async fn say_hello(&self, req: HelloRequest) -> Result<HelloReply, Status>;
                /// fire-and-forget: no return value, no reply on the wire
                async fn record(&self, event: Event);
                /// request/stream: one request, a stream of replies
                async fn list(&self, req: ListRequest) -> Result<impl Stream<Item = Result<Item, Status>>, Status>;
                /// channel: a stream each way
                async fn chat(&self, msgs: Streaming<Msg>) -> Result<impl Stream<Item = Result<Msg, Status>>, Status>;
                /// client streaming: a stream in, one reply out
                async fn upload(&self, chunks: Streaming<Chunk>) -> Result<Summary, Status>;
            }
        },
    );
    check("greeter", &out);
}

/// Contexts, a default body, forwarded attributes, no package, a renamed runtime and a codec.
#[test]
fn corners() {
    let out = expand(
        quote!(crate = "::my_rpc::weft", codec = my_rpc::JsonCodec, name = "Corners"),
        quote! {
            #[cfg(feature = "corners")]
            pub(crate) trait CornerCases: Named {
                async fn with_context(&self, ctx: Context, req: Ping) -> Result<Pong, Status>;
                async fn defaulted(&self, mut req: Ping) -> Result<Pong, Status> {
                    req.n += 1;
                    Ok(Pong { n: req.n })
                }
                #[deprecated = "use with_context"]
                async fn old(&self, req: Ping) -> Result<Pong, Status>;
                #[cfg(unix)]
                async fn r#type(&self, ctx: Context, req: Streaming<Ping>) -> Result<Pong, Status>;
            }
        },
    );
    check("corners", &out);
}

/// The runtime is reached only through the `crate` override.
#[test]
fn crate_override_replaces_every_runtime_path() {
    let out = weft_codegen::expand_service(
        quote!(crate = "::renamed"),
        quote!(
            pub trait S {
                async fn m(&self, r: R) -> Result<R, Status>;
                async fn f(&self, r: R);
            }
        ),
    );
    fn idents(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
                proc_macro2::TokenTree::Group(g) => idents(g.stream(), out),
                _ => {}
            }
        }
    }
    let mut all = Vec::new();
    idents(out, &mut all);
    assert!(!all.iter().any(|i| i == "weft"), "{all:?}");
    assert!(all.iter().any(|i| i == "renamed"));
}

/// On error the trait comes back as written, followed by the errors.
#[test]
fn errors_keep_the_trait() {
    let item = quote!(
        pub trait S {
            async fn m(self, r: R) -> Result<R, Status>;
        }
    );
    let out = weft_codegen::expand_service(quote!(), item.clone()).to_string();
    assert!(out.starts_with(&item.to_string()), "{out}");
    assert!(out.contains("compile_error"), "{out}");
}
