//! The `#[weft::service]` attribute macro; use it through the `weft` crate.
