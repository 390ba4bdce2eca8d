//! Compiles `proto/route_guide.proto` (messages and the `RouteGuide` service) for the
//! `route_guide` example; `weft::include_proto!("routeguide")` pulls the result in.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    weft_codegen::configure().compile_protos(&["../proto/route_guide.proto"], &["../proto"])?;
    Ok(())
}
