//! The `#[weft::service]` attribute macro; use it through the `weft` crate, whose
//! `weft::service` re-export carries the full documentation.
//!
//! This crate is a thin shell: parsing, validation, the service model and the emitter all live
//! in `weft-codegen`, which has no `proc_macro` dependency so that `build.rs` and unit tests can
//! use the same code.

use proc_macro::TokenStream;

/// Turns a trait into a typed Weft service: a client, `{Trait}Client`, and a server,
/// `{Trait}Server<T>`, for every implementation `T` of the trait.
///
/// See the documentation of `weft::service` for the rules and every generated item.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    weft_codegen::expand_service(attr.into(), item.into()).into()
}
