//! The framework crate's one integration-test binary.

mod credit;
mod frames;
mod peer;
mod runtime;
