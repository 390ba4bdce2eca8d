//! The `#[weft::service]` attribute macro; use it through the `weft` crate, whose
//! `weft::service` re-export carries the full documentation.
//!
//! This crate is a thin shell: parsing, validation, the service model and the emitter all live
//! in `weft-codegen`, which has no `proc_macro` dependency so that `build.rs` and unit tests can
//! use the same code.

use proc_macro::TokenStream;

#[doc = include_str!("service.md")]
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    weft_codegen::expand_service(attr.into(), item.into()).into()
}
