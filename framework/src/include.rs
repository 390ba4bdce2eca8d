//! `include_proto!`: pulls the code `weft-codegen` generated from `.proto` files into a module.

/// Includes the Rust code that `weft_codegen::configure().compile_protos(…)` generated in the
/// build script for the protobuf package `package`: its messages (from prost-build) and, for
/// each service, the server trait, `{Service}Client` and `{Service}Server<T>` (the same items
/// `#[weft::service]` generates).
///
/// ```ignore
/// // build.rs: weft_codegen::configure().compile_protos(&["proto/route_guide.proto"], &["proto"])?;
/// pub mod routeguide {
///     weft::include_proto!("routeguide");
/// }
/// use routeguide::{Point, RouteGuide, RouteGuideClient, RouteGuideServer};
/// ```
///
/// A package `a.b` is one file, `$OUT_DIR/a.b.rs`, whose types name those of other packages
/// relative to the module nesting (`super::common::Id`); nest the modules as the packages are
/// nested (`pub mod a { pub mod b { weft::include_proto!("a.b"); } }`). Files without a
/// `package` go to `"_"`. If the build script writes elsewhere (`.out_dir(…)`), use
/// `include!` with that path instead.
#[macro_export]
macro_rules! include_proto {
    ($package:tt $(,)?) => {
        ::core::include!(::core::concat!(::core::env!("OUT_DIR"), "/", $package, ".rs"));
    };
}
