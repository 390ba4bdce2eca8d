//! The framework crate's one integration-test binary.

mod frames;
mod props;
mod runtime;
