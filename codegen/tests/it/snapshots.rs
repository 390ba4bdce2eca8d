//! Snapshot tests of the emitted code, formatted with prettyplease, so that a change to the
//! generator shows in review as a diff of `tests/snapshots/*.rs`.
//!
//! Regenerate the snapshots with `WEFT_BLESS=1 cargo test -p weft-codegen --test it snapshots`.

use super::{check, idempotent_routes};
use proc_macro2::TokenStream;
use quote::quote;

fn expand(attr: TokenStream, item: TokenStream) -> String {
    let tokens = weft_codegen::expand_service(attr, item);
    let file = syn::parse2::<syn::File>(tokens).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
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

/// Contexts, a default body, forwarded attributes, an idempotent method, no package, a renamed
/// runtime and a codec.
#[test]
fn corners() {
    let out = expand(
        quote!(crate = "::my_rpc::weft", codec = my_rpc::JsonCodec, name = "Corners"),
        quote! {
            #[cfg(feature = "corners")]
            pub(crate) trait CornerCases: Named {
                async fn with_context(&self, ctx: Context, req: Ping) -> Result<Pong, Status>;
                #[weft(idempotent)]
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

/// `#[weft(idempotent)]` marks the generated route of that method, and only of that method, and
/// is consumed: it appears nowhere in the output.
#[test]
fn idempotent_methods_have_idempotent_routes() {
    let out = weft_codegen::expand_service(
        quote!(package = "p"),
        quote!(
            pub trait S {
                #[weft(idempotent)]
                async fn get(&self, r: R) -> Result<R, Status>;
                /// Documented.
                #[weft(idempotent)]
                #[deprecated]
                async fn fire(&self, r: R);
                #[weft(idempotent)]
                async fn list(&self, r: R) -> Result<impl Stream<Item = Result<R, Status>>, Status>;
                async fn put(&self, r: R) -> Result<R, Status>;
                async fn chat(&self, r: Streaming<R>) -> Result<impl Stream<Item = Result<R, Status>>, Status>;
                async fn upload(&self, r: Streaming<R>) -> Result<R, Status>;
            }
        ),
    )
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert_eq!(idempotent_routes(&out), ["p.S/Get", "p.S/Fire", "p.S/List"], "{out}");
    assert_eq!(out.matches("MethodRoute :: new").count(), 6, "{out}");
    assert!(!out.contains("# [weft"), "{out}");
    // Both the client method and the trait method say so in their docs.
    assert_eq!(out.matches("Idempotent: may be retried").count(), 6, "{out}");
    assert!(out.contains("Calls `p.S/Get` (request/response). Idempotent: may be retried."), "{out}");
}

/// On error the `#[weft(...)]` attributes are removed from the trait as written, so that rustc
/// reports the macro's errors and not an unknown attribute as well.
#[test]
fn errors_keep_the_trait_without_weft_attributes() {
    let out = weft_codegen::expand_service(
        quote!(),
        quote!(
            pub trait S {
                #[weft(idempotent)]
                async fn chat(&self, r: Streaming<R>) -> Result<impl Stream<Item = Result<R, Status>>, Status>;
            }
        ),
    )
    .to_string();
    assert!(out.contains("a method that takes a stream of requests cannot be retried"), "{out}");
    assert!(!out.contains("# [weft"), "{out}");
}
